"""The metrics endpoint of a component: /metrics with runtime collectors and build info, /healthz, /readyz."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from polycopy.infra.metrics import (
    BASE_PORT,
    DEFAULT_PORTS,
    MetricsServer,
    PipelineMetrics,
    component_port,
    package_version,
    serve_metrics,
)
from polycopy.infra.settings import PolycopySettings
from schemas.orders import OrderEventType


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def served() -> Iterator[tuple[PipelineMetrics, MetricsServer]]:
    metrics = PipelineMetrics(component="worker")
    server = MetricsServer(metrics.registry, 0, addr="127.0.0.1", ready=metrics.is_ready).start()
    yield metrics, server
    server.stop()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_metrics_carry_process_gc_and_build_info_beside_the_pipeline_metrics(served) -> None:  # type: ignore[no-untyped-def]
    metrics, server = served
    metrics.trades_published.labels("rtds").inc(3)
    status, body = get(server.port, "/metrics")
    assert status == 200
    found = samples(body)
    assert found["polycopy_trades_published_total"] == [({"source": "rtds"}, 3.0)]
    assert found["process_resident_memory_bytes"][0][1] > 0
    assert found["process_cpu_seconds_total"]
    assert {labels["generation"] for labels, _ in found["python_gc_collections_total"]} == {"0", "1", "2"}
    assert found["python_info"]
    [(labels, value)] = found["polycopy_build_info"]
    assert value == 1.0
    assert labels["component"] == "worker" and labels["version"] == package_version() != ""
    assert labels["python"].count(".") == 2


def test_known_label_values_are_exported_at_zero_so_rules_and_panels_see_a_series(served) -> None:  # type: ignore[no-untyped-def]
    _, server = served
    found = samples(get(server.port, "/metrics")[1])
    events = {labels["event"]: value for labels, value in found["polycopy_order_events_total"]}
    assert events == {event.value: 0.0 for event in OrderEventType}
    assert ({"stage": "rtds-parse"}, 0.0) in found["polycopy_dead_letters_total"]
    assert ({"source": "poll"}, 0.0) in found["polycopy_trades_first_seen_total"]
    assert ({"reason": "watchdog"}, 0.0) in found["polycopy_feed_reconnects_total"]
    assert ({"stage": "market-channel"}, 0.0) in found["polycopy_parse_errors_total"]
    assert ({"source": "rtds"}, 0.0) in found["polycopy_duplicate_trades_total"]


def test_healthz_answers_while_the_process_serves(served) -> None:  # type: ignore[no-untyped-def]
    _, server = served
    assert get(server.port, "/healthz") == (200, "ok\n")


def test_readyz_is_503_until_the_readiness_check_passes_then_200(served) -> None:  # type: ignore[no-untyped-def]
    metrics, server = served
    state = {"ready": False}
    metrics.set_readiness(lambda: state["ready"])
    assert get(server.port, "/readyz") == (503, "not ready\n")
    state["ready"] = True
    assert get(server.port, "/readyz") == (200, "ready\n")
    assert get(server.port, "/healthz")[0] == 200


def test_a_readiness_check_that_raises_reads_as_not_ready(served) -> None:  # type: ignore[no-untyped-def]
    metrics, server = served

    def broken() -> bool:
        raise RuntimeError("consumer not assigned")

    metrics.set_readiness(broken)
    assert get(server.port, "/readyz")[0] == 503
    assert get(server.port, "/metrics")[0] == 200


def test_without_a_check_a_serving_component_is_ready(served) -> None:  # type: ignore[no-untyped-def]
    _, server = served
    assert get(server.port, "/readyz") == (200, "ready\n")


def test_serve_metrics_takes_the_readiness_check_and_port_zero_serves_nothing() -> None:
    metrics = PipelineMetrics()
    assert serve_metrics(metrics, 0, ready=lambda: False) is None
    assert not metrics.is_ready()


def test_two_bundles_in_one_process_each_have_their_own_registry_and_collectors() -> None:
    first, second = PipelineMetrics(), PipelineMetrics()
    first.intents.labels("BUY").inc()
    assert second.registry.get_sample_value("polycopy_order_intents_total", {"side": "BUY"}) is None
    assert second.registry.get_sample_value("process_cpu_seconds_total") is not None


def test_the_base_port_moves_every_component_port_and_the_default_keeps_the_documented_ones() -> None:
    assert {name: component_port(name) for name in DEFAULT_PORTS} == DEFAULT_PORTS
    assert DEFAULT_PORTS == {
        "worker": 9108,
        "executor": 9109,
        "producer": 9110,
        "sink": 9111,
        "poller": 9112,
        "books": 9113,
        "alerts": 9114,
    }
    assert PolycopySettings().metrics_base_port == BASE_PORT
    assert component_port("sink", 20000) == 20003
    assert component_port("alerts", 20000) == 20006
    assert len({component_port(name, 20000) for name in DEFAULT_PORTS}) == len(DEFAULT_PORTS)


def test_the_base_port_is_a_setting_that_leaves_room_for_every_component() -> None:
    assert PolycopySettings(metrics_base_port=30000).metrics_base_port == 30000
    with pytest.raises(ValueError, match="metrics_base_port"):
        PolycopySettings(metrics_base_port=65535)


def test_the_composition_root_serves_each_component_on_its_port_moved_by_the_base_port() -> None:
    from polycopy.wiring import build_metrics
    from tests.ops.helpers import free_port_block

    base = free_port_block(len(DEFAULT_PORTS))
    settings = PolycopySettings(metrics_base_port=base)
    metrics = build_metrics(settings, "executor")
    assert get(base + 1, "/healthz") == (200, "ok\n")
    labels, _ = samples(get(base + 1, "/metrics")[1])["polycopy_build_info"][0]
    assert labels["component"] == "executor"
    metrics.set_readiness(lambda: False)
    assert get(base + 1, "/readyz")[0] == 503
