"""What the worker tells about Faust itself: Faust's own Prometheus sensor on the worker's registry, and the
consumer lag of the agents' source topics (the consumer's positions against the high watermarks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

from polycopy.infra.kafka import partition_lag
from polycopy.infra.metrics import PipelineMetrics

log = logging.getLogger(__name__)

LAG_INTERVAL_SECS = 5.0
# Faust's metric names start with this (`faust_messages_received_total`, ...), whatever the app id: a test
# namespace or a tenant's consumer-group prefix must not rename the series a dashboard reads.
SENSOR_PREFIX = "faust"
POSITION_TIMEOUT_SECS = 5.0


def install_prometheus_sensor(app: faust.App, metrics: PipelineMetrics) -> None:
    """Faust's Prometheus monitor, recording into the worker's registry (served on the worker's /metrics):
    events and their runtime, messages sent, commits, table operations, rebalances, assignment latency."""
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(metrics.registry, SENSOR_PREFIX))


async def measure_lag(consumer: Any, monitor: Any, topics: Collection[str]) -> dict[tuple[str, int], int]:
    """Records still to read per assigned partition of `topics`: the high watermark minus the next offset the
    agents will see (the last offset the monitor saw delivered + 1; for a partition with nothing delivered
    since it was assigned, the consumer's position). Prefetched records count as not read yet."""
    assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
    if not assigned:
        return {}
    highs = await consumer.highwaters(*assigned)
    read_offsets = getattr(monitor, "tp_read_offsets", None) or {}
    lags = {}
    for tp in assigned:
        read = read_offsets.get(tp)
        if read is not None:
            position = read + 1
        else:
            position = await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT_SECS)
        lag = partition_lag(highs.get(tp), position=position)
        if lag is not None:
            lags[(tp.topic, tp.partition)] = lag
    return lags


def watch_consumer_lag(
    app: faust.App,
    metrics: PipelineMetrics,
    group: str,
    topics: Collection[str],
    interval_secs: float = LAG_INTERVAL_SECS,
) -> None:
    """Set `polycopy_consumer_lag{group,topic,partition}` every `interval_secs` while the worker runs."""

    @app.timer(interval=interval_secs, name="consumer-lag")
    async def report_consumer_lag() -> None:
        try:
            lags = await measure_lag(app.consumer, app.monitor, topics)
        except Exception as error:  # noqa: BLE001 - a timer that raises would stop the worker
            log.debug("consumer lag not measured: %s", error)
            return
        metrics.set_consumer_lag(group, lags)
