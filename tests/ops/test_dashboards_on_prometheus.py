"""A real Prometheus (Debian's binary, on a free port) scrapes a short demo run; every dashboard query is
valid PromQL and, unless its metric comes with a later issue, returns data. The shipped scrape configuration
and alert rules are what it loads."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from polycopy.infra.metrics import BASE_PORT, DEFAULT_PORTS
from polycopy.tools.demo import DemoOptions, run_demo
from tests.ops.helpers import REPO_ROOT, find_tool, free_port_block, load_dashboard_generator

pytestmark = pytest.mark.e2e

PROMETHEUS_DIR = REPO_ROOT / "infra" / "prometheus"
RATE_INTERVAL = "15s"  # what Grafana's $__rate_interval comes to at this test's 1 s scrape interval


class PrometheusProcess:
    """Prometheus with the shipped configuration, retargeted at this test's ports, in a temporary folder."""

    def __init__(self, folder: Path, metrics_base_port: int, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
        for job in config["scrape_configs"]:
            for entry in job["static_configs"]:
                entry["targets"] = [
                    self._retarget(target, metrics_base_port, port) for target in entry["targets"]
                ]
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        (folder / "alerts.yml").write_text((PROMETHEUS_DIR / "alerts.yml").read_text())
        self._log = (folder / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                find_tool("prometheus"),
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = folder / "prometheus.log"

    @staticmethod
    def _retarget(target: str, metrics_base_port: int, own_port: int) -> str:
        host, port = target.rsplit(":", 1)
        if host == "localhost":  # Prometheus scraping itself
            return f"127.0.0.1:{own_port}"
        assert host == "host.docker.internal", target
        return f"127.0.0.1:{int(port) - BASE_PORT + metrics_base_port}"

    def wait_ready(self, timeout_secs: float = 60) -> None:
        deadline = time.monotonic() + timeout_secs
        while time.monotonic() < deadline:
            assert self._process.poll() is None, self.log_path.read_text()
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.5)
        raise AssertionError("Prometheus did not become ready:\n" + self.log_path.read_text())

    def api(self, path: str, **params: object) -> dict:  # type: ignore[type-arg]
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as error:  # 400/422: the body says why (bad PromQL)
            return json.loads(error.read())  # type: ignore[no-any-return]

    def value(self, query: str) -> float:
        """The value of a one-series instant query now (NaN when it has no series)."""
        result = self.api("query", query=query)["data"]["result"]
        return float(result[0]["value"][1]) if result else math.nan

    def stop(self) -> None:
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._log.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[PrometheusProcess, int]]:
    """A running Prometheus, and the metrics base port it scrapes (a free block of component ports)."""
    metrics_base_port = free_port_block(len(DEFAULT_PORTS) + 1)
    server = PrometheusProcess(tmp_path, metrics_base_port, metrics_base_port + len(DEFAULT_PORTS))
    try:
        server.wait_ready()
        yield server, metrics_base_port
    finally:
        server.stop()


def dashboard_queries() -> list[tuple[str, str, str, str | None]]:
    """(dashboard, panel, expr, future) for every target of every committed dashboard file."""
    generator = load_dashboard_generator()
    futures = {
        query.expr: query.future
        for spec in generator.DASHBOARDS
        for _, panels in spec.rows
        for panel in panels
        for query in panel.queries
    }
    found = []
    for path in sorted((REPO_ROOT / "infra" / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                assert expr in futures, f"{path.name}: {expr} is not the generator's (run make dashboards)"
                found.append((board["uid"], panel["title"], expr, futures[expr]))
    return found


def wait_for(condition: Callable[[], bool], alongside: threading.Thread, timeout_secs: float = 300) -> bool:
    """Poll `condition` until it holds, `alongside` has ended, or the (generous) timeout passes."""
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline and alongside.is_alive():
        if condition():
            return True
        time.sleep(1)
    return condition()


def has_finite_value(result: list[dict]) -> bool:  # type: ignore[type-arg]
    return any(math.isfinite(float(value)) for series in result for _, value in series["values"])


def test_every_dashboard_query_is_valid_and_returns_data_from_a_scraped_demo_run(
    settings_factory, prometheus
) -> None:  # type: ignore[no-untyped-def]
    server, metrics_base_port = prometheus
    clob_port = free_port_block(2)
    settings = settings_factory(
        rtds_url=f"ws://127.0.0.1:{clob_port + 1}",
        clob_url=f"http://127.0.0.1:{clob_port}",
        clob_market_ws_url=f"ws://127.0.0.1:{clob_port}/ws/market",
        data_api_url=f"http://127.0.0.1:{clob_port}",
        gamma_url=f"http://127.0.0.1:{clob_port}",
        metrics_enabled=True,
        metrics_base_port=metrics_base_port,
    )
    # The safety-net poller is not part of the demo: its loop runs beside it so that its panels have data too,
    # and stops once scraped runs show up (a run in progress outlives the simulator by minutes of retries).
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, object] = {}

    def demo() -> None:
        try:
            outcome["result"] = run_demo(
                settings, DemoOptions(duration_secs=25, drain_secs=20), out=lambda _: None
            )
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = error

    started = time.time()
    with (settings.data_dir / "poller.log").open("wb") as poller_log:
        poller = subprocess.Popen(
            [str(Path(sys.executable).parent / "polycopy"), "poll", "--loop", "--interval-secs", "2"],
            env=os.environ | settings.to_env(),
            stdout=poller_log,
            stderr=subprocess.STDOUT,
        )
        runner = threading.Thread(target=demo, name="demo")
        runner.start()
        try:
            assert wait_for(lambda: server.value("sum(polycopy_poller_runs_total)") >= 3, runner), (
                "no poller run was scraped"
            )
        finally:
            poller.send_signal(signal.SIGTERM)
            try:
                poller.wait(120)
            except subprocess.TimeoutExpired:
                poller.kill()
                poller.wait(10)
            runner.join()
    ended = time.time()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    result = outcome["result"]
    assert result.summary.orders > 0  # type: ignore[attr-defined]

    # Every component of the run was scraped (the alerts sink does not exist yet).
    up = server.api(
        "query_range", query='max by (component) (up{job="polycopy"})', start=started, end=ended, step=1
    )
    seen_up = {
        s["metric"]["component"] for s in up["data"]["result"] if any(v == "1" for _, v in s["values"])
    }
    assert seen_up == {"worker", "books", "executor", "producer", "sink", "poller"}

    window = f"{max(int(ended - started), 60)}s"
    failures = []
    future_queries = []
    for uid, title, expr, future in dashboard_queries():
        promql = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", window)
        answer = server.api("query_range", query=promql, start=started, end=ended, step=1)
        if answer["status"] != "success":
            failures.append(f"{uid} / {title}: invalid: {answer.get('error')}: {promql}")
        elif future is not None:
            future_queries.append(f"{uid} / {title}")
        elif not has_finite_value(answer["data"]["result"]):
            failures.append(f"{uid} / {title}: no data: {promql}")
    assert not failures, "\n".join(failures)
    # Queries over metrics that later issues add (none at present) were checked for validity only.

    # The shipped alert rules loaded into the real server and evaluate without error.
    rules = server.api("rules")["data"]["groups"]
    loaded = [rule for group in rules for rule in group["rules"]]
    assert len(loaded) == len({rule["name"] for rule in loaded}) >= 9
    assert all(rule["health"] == "ok" for rule in loaded), [r for r in loaded if r["health"] != "ok"]
