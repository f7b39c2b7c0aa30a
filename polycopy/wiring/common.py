"""What every builder shares: metrics, publishers, delivery checks, consume loops, compacted-table reads."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

from polycopy.infra.kafka import (
    CompactedTopicReader,
    MessagePublisher,
    RecordConsumer,
)
from polycopy.infra.metrics import PipelineMetrics, component_port, serve_metrics
from polycopy.infra.settings import PolycopySettings
from schemas.topics import TopicSpec
from sinks.base import ConsumeLoop, LoopPolicy

log = logging.getLogger(__name__)


class NotDeliveredError(RuntimeError):
    """Messages a command published did not reach Kafka."""


def build_metrics(settings: PolycopySettings, component: str, *, serve: bool = True) -> PipelineMetrics:
    """A component's metrics with /healthz and /readyz, served on its port (`POLYCOPY_METRICS_PORT`, else the
    component default moved by `POLYCOPY_METRICS_BASE_PORT`). A component that knows when it is ready says so
    with `metrics.set_readiness(check)`; until then /readyz answers ready while the process serves."""
    metrics = PipelineMetrics(component=component)
    if serve and settings.metrics_enabled:
        serve_metrics(metrics, settings.metrics_port or component_port(component, settings.metrics_base_port))
    return metrics


def build_publisher(settings: PolycopySettings, client_id: str) -> MessagePublisher:
    """A Kafka publisher named after the component that uses it."""
    return MessagePublisher(settings, client_id=client_id)


def deliver(publisher: MessagePublisher, what: str, timeout_secs: float = 30.0) -> None:
    """Wait until everything `publisher` queued is delivered, else raise `NotDeliveredError` naming `what`."""
    if publisher.flush(timeout_secs) or publisher.delivery_failures:
        raise NotDeliveredError(f"{what} not delivered to Kafka")


def stop_on_signals(stop: Callable[[], object]) -> None:
    """Call `stop` on SIGTERM and SIGINT."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


def build_consume_loop(
    settings: PolycopySettings,
    component: str,
    publisher: MessagePublisher,
    metrics: PipelineMetrics,
    policy: LoopPolicy,
) -> ConsumeLoop:
    """The at-least-once loop of a sink, consuming in the component's own consumer group."""
    consumer = RecordConsumer(settings, settings.consumer_group(component))
    return ConsumeLoop(consumer, publisher, metrics, policy)


def read_table(settings: PolycopySettings, spec: TopicSpec, decode: Callable[[bytes], Any]) -> dict[str, Any]:
    """The current content (latest value per key) of a compacted topic."""
    reader = CompactedTopicReader(settings, spec, decode).start()
    try:
        return reader.snapshot()
    finally:
        reader.stop()
