"""The bench's pipeline over the real broker: simulator, books producer, worker and executor as processes,
the RTDS producer feeding them, the feed rate stepped through the simulator's `/_sim/rate`, and each step's
trades, decisions and reports read back from the topics. py-spy may profile the worker and the executor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from polycopy.infra.kafka import (
    MessagePublisher,
    create_topics,
    end_offsets,
    read_topic,
    wait_for_broker,
    wait_for_consumer_group,
)
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.bench_figures import Out, StepFigures, measure_step, unique_in_receive_order
from polycopy.tools.demo import Processes
from schemas.decisions import Decision
from schemas.orders import ExecutionReport
from schemas.topics import ALL_TOPICS, DECISIONS, EXECUTION_REPORTS, RAW_TRADES, WALLET_CONFIG, TopicSpec
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig

PROGRESS_SECS = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
STABLE_SECS = 3.0  # a drain ends when the decision and report topics stopped growing this long


class BenchPipeline:
    """The running pipeline: `start()`, then `run_step(rate, secs)` as many times as wanted, then `stop()`."""

    def __init__(
        self,
        settings: PolycopySettings,
        wallets: list[WalletConfig],
        *,
        seed: int,
        simulator_wallets: int,
        out: Out,
        components: tuple[str, ...] = ("books", "worker", "executor"),
    ) -> None:
        self.settings, self.wallets, self._out = settings, wallets, out
        self._seed, self._simulator_wallets, self._components = seed, simulator_wallets, components
        self.processes = Processes(settings.data_dir / "logs")
        self._profilers: list[subprocess.Popen[bytes]] = []
        self.last_trades: list[RawTrade] = []  # the unique trades of the last step's window
        self._logged_decisions = self._logged_reports = 0

    def start(self) -> None:
        """Topics, wallets, the paused simulator, the components (ready in their groups), the producer."""
        bench = self.settings
        wait_for_broker(bench)
        create_topics(bench, ALL_TOPICS)
        publisher = MessagePublisher(bench, client_id="polycopy-bench")
        for wallet in self.wallets:
            publisher.publish(WALLET_CONFIG, wallet.id, wallet)
        if publisher.flush(30):
            raise RuntimeError("bench wallet configuration not delivered")
        env = bench.to_env()
        simulator = [
            "--seed",
            str(self._seed),
            "--trades-per-sec",
            "0",
            "--wallets",
            str(self._simulator_wallets),
        ]
        simulator += ["--rtds-port", str(urlsplit(bench.rtds_url).port)]
        simulator += ["--clob-port", str(urlsplit(bench.clob_url).port)]
        self.processes.start("simulator", "-m", "polycopy.simulator", *simulator, env=env)
        for component in self._components:
            self.processes.start(component, "-m", "polycopy.cli", component, env=env)
        groups = [
            bench.consumer_group(name) for name in ("processor", "executor", "sink") if name in self._groups()
        ]
        for group in groups:
            if not wait_for_consumer_group(bench, group, timeout_secs=120):
                self.processes.check()
                raise RuntimeError(f"consumer group {group} not ready; see {bench.data_dir / 'logs'}")
        self.processes.start("producer", "-m", "polycopy.cli", "rtds", env=env)
        self._wait_for_simulator()

    def _groups(self) -> set[str]:
        names = {"worker": "processor", "executor": "executor", "sink": "sink"}
        return {names[c] for c in self._components if c in names}

    def pid(self, component: str) -> int:
        return self.processes.running[component].pid

    def cpu_secs(self) -> dict[str, float]:
        """CPU seconds (user + system) each running component has used so far, from /proc."""
        return {name: process_cpu_secs(process.pid) for name, process in self.processes.running.items()}

    def profile(self, component: str, secs: float, directory: Path) -> Path | None:
        """Start py-spy on a running component for `secs` (collapsed stacks); None when py-spy is missing."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            self._out("  py-spy not found (pip install py-spy): no profile")
            return None
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{component}.folded"
        command = [spy, "record", "--pid", str(self.pid(component)), "--duration", str(int(secs))]
        command += ["--rate", "200", "--format", "raw", "--gil", "--threads", "--output", str(target)]
        self._profilers.append(
            subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=(directory / f"{component}.log").open("wb")
            )
        )
        self._out(f"  profiling {component}: {' '.join(command)}")
        return target

    def wait_for_profiles(self, timeout: float = 60.0) -> None:
        for profiler in self._profilers:
            try:
                profiler.wait(timeout)
            except subprocess.TimeoutExpired:
                profiler.terminate()
        self._profilers.clear()

    def set_rate(self, trades_per_sec: float) -> None:
        body = json.dumps({"trades_per_sec": trades_per_sec}).encode()
        request = urllib.request.Request(
            f"{self.settings.clob_url}/_sim/rate", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our own simulator
            answer.read()

    def _wait_for_simulator(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.set_rate(0)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                self.processes.check()
                time.sleep(0.2)

    def run_step(self, rate: float, secs: float, *, drain_secs: float = 60.0) -> StepFigures:
        """Feed `rate` trades/s for `secs`, pause the feed, wait for the pipeline to drain (at most
        `drain_secs`), and measure the trades received in the window."""
        starts = {
            spec: end_offsets(self.settings, spec) for spec in (RAW_TRADES, DECISIONS, EXECUTION_REPORTS)
        }
        window_start = time.time_ns() // 1_000_000
        cpu_before = self.cpu_secs()
        self.set_rate(rate)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < secs:
            time.sleep(min(PROGRESS_SECS, max(secs - elapsed, 0.05)))
            self.processes.check()
            if secs > 2 * PROGRESS_SECS:
                self._out(f"    [{time.monotonic() - started:4.0f} s] {self.progress()}")
        self.set_rate(0)
        window_end = time.time_ns() // 1_000_000
        self._drain(drain_secs)
        cpu = self.cpu_secs()
        figures = self._measure(rate, (window_start, window_end), starts)
        figures.cpu_secs = {name: cpu[name] - cpu_before.get(name, 0.0) for name in cpu}
        figures.logged = {"decisions": self._logged_decisions, "reports": self._logged_reports}
        return figures

    def _measure(
        self, rate: float, window: tuple[int, int], starts: dict[TopicSpec, dict[int, int]]
    ) -> StepFigures:
        def read(spec: TopicSpec) -> list[bytes]:
            return [r.value for r in read_topic(self.settings, spec, start_offsets=starts[spec]) if r.value]

        trades = [RawTrade.model_validate_json(value) for value in read(RAW_TRADES)]
        decisions: dict[str, Decision] = {}
        for value in read(DECISIONS):
            decision = Decision.model_validate_json(value)
            decisions.setdefault(decision.decision_id, decision)
        reports = [ExecutionReport.model_validate_json(value) for value in read(EXECUTION_REPORTS)]
        self._logged_decisions, self._logged_reports = len(decisions), len(reports)
        start, end = window
        self.last_trades = [t for t in unique_in_receive_order(trades) if start <= t.received_at_ms < end]
        return measure_step(rate, window, trades, decisions, reports, self.wallets)

    def progress(self) -> str:
        counts = {
            spec: sum(end_offsets(self.settings, spec).values())
            for spec in (RAW_TRADES, DECISIONS, EXECUTION_REPORTS)
        }
        return (
            f"raw trades {counts[RAW_TRADES]:7} | decisions {counts[DECISIONS]:7} | "
            f"reports {counts[EXECUTION_REPORTS]:6}"
        )

    def _drain(self, drain_secs: float) -> None:
        """Wait until the decision and report topics stop growing for STABLE_SECS (at most `drain_secs`)."""
        deadline, previous, stable_since = time.monotonic() + drain_secs, "", time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            current = self.progress()
            if current != previous:
                previous, stable_since = current, time.monotonic()
            elif time.monotonic() - stable_since >= STABLE_SECS:
                return
        self._out(f"    still not drained after {drain_secs:.0f} s: {previous}")

    def stop(self) -> None:
        for profiler in self._profilers:
            profiler.terminate()
        self.processes.stop_all()


def process_cpu_secs(pid: int) -> float:
    """User + system CPU seconds of a process (0 when /proc cannot tell)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
