"""Live execution's parts: the order gateway built from settings, and the alerts sink."""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Callable, Iterable
from typing import Any

from polycopy.infra.kafka import MessagePublisher, now_ms
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.wiring.common import build_consume_loop, build_metrics, build_publisher
from sinks.base import LoopPolicy

log = logging.getLogger(__name__)


def build_alerts_sink(settings: PolycopySettings, metrics: PipelineMetrics) -> Any:
    """The alerts sink: alerts, lost orders and kill switches -> `POLYCOPY_ALERT_WEBHOOK_URL`, each once."""
    from sinks.alerts import AlertsSink, HttpWebhook, SentAlerts

    publisher = build_publisher(settings, "polycopy-alerts")
    hook = settings.alert_webhook_url
    return AlertsSink(
        settings,
        loop=build_consume_loop(
            settings, "alerts", publisher, metrics, LoopPolicy(batch_size=50, flush_secs=0.0)
        ),
        webhook=HttpWebhook(hook.get_secret_value()) if hook is not None else None,
        # One store per topic namespace, not per consumer group: a new group re-reads what was posted already.
        sent=SentAlerts(settings.data_dir / "alerts" / f"{settings.topic_prefix or 'default.'}sent"),
        metrics=metrics,
    )


def run_alerts(settings: PolycopySettings) -> None:
    """`polycopy alerts`: run until SIGTERM/SIGINT."""
    sink = build_alerts_sink(settings, build_metrics(settings, "alerts"))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, sink.stop)
    if not settings.alert_webhook_url:
        log.warning("POLYCOPY_ALERT_WEBHOOK_URL is empty: alerts are logged, not posted")
    sink.run()


def live_api_credentials(settings: PolycopySettings) -> Any:
    """The deployment's L2 API credentials: from settings, or derived from the signer (an L1 request)."""
    from polycopy.polymarket.clob import ApiCredentials

    if settings.clob_api_key and settings.clob_api_secret and settings.clob_api_passphrase:
        return ApiCredentials(
            settings.clob_api_key.get_secret_value(),
            settings.clob_api_secret.get_secret_value(),
            settings.clob_api_passphrase.get_secret_value(),
        )
    if settings.private_key is None:
        raise ValueError("live execution needs POLYCOPY_PRIVATE_KEY")
    return _derived_credentials(settings.clob_url, settings.chain_id, settings.private_key.get_secret_value())


@functools.lru_cache(maxsize=4)
def _derived_credentials(host: str, chain_id: int, private_key: str) -> Any:
    """Derived once per process: the order gateway and the user channel use the same key (a failure is
    not kept, so the next caller asks again)."""
    from polycopy.polymarket.clob import derive_api_credentials

    return derive_api_credentials(host, chain_id, private_key)


def start_user_channel(
    settings: PolycopySettings, metrics: PipelineMetrics, on_orders: Callable[[Iterable[str]], None]
) -> Any:
    """The user-channel follower of a live executor, started (its events name orders to look up at once);
    None when disabled, or when its credentials cannot be had now: polling alone then, nothing refused."""
    from polycopy.polymarket.user_feed import UserChannelFollower

    if not settings.live_user_channel or not settings.clob_user_ws_url:
        log.info("CLOB user channel off: live orders are reconciled by polling alone")
        return None
    try:
        credentials = live_api_credentials(settings)
    except Exception as error:  # noqa: BLE001 - the channel is optional: any failure means polling alone
        log.warning("CLOB user channel off (no API credentials: %s): polling alone", error)
        return None
    return UserChannelFollower(settings.clob_user_ws_url, credentials, metrics, on_orders).start()


def build_live_gateway(
    settings: PolycopySettings, metrics: PipelineMetrics, publisher: MessagePublisher | None = None
) -> Any:
    """The live order gateway for the executor (refuses without a key): API credentials from settings or
    derived from the signer, signature type and funder from settings, breaker changes as metric and alert."""
    from polycopy.polymarket.live import LiveClobClient
    from processors.core.alerts import alert_for_breaker
    from processors.core.breaker import BreakerBoard, BreakerChange, BreakerPolicy, BreakerState
    from schemas.topics import ALERTS
    from sinks.gateway import LiveOrderGateway

    if settings.private_key is None:
        raise ValueError("live execution needs POLYCOPY_PRIVATE_KEY")
    key = settings.private_key.get_secret_value()
    credentials = live_api_credentials(settings)
    client = LiveClobClient.connect(
        settings.clob_url,
        settings.chain_id,
        key,
        credentials,
        signature_type=settings.signature_type,
        funder=settings.funder or None,
        timeout_secs=settings.clob_timeout_secs,
    )

    def on_change(change: BreakerChange) -> None:
        failing = change.current in (BreakerState.OPEN, BreakerState.HALF_OPEN)
        metrics.circuit_breaker_open.labels(change.group).set(1 if failing else 0)
        metrics.venue_paused.labels(change.group).set(1 if change.current is BreakerState.PAUSED else 0)
        metrics.circuit_breaker_changes.labels(change.group, change.current.value).inc()
        alert = alert_for_breaker(
            change.group, change.previous.value, change.current.value, change.reason, now_ms()
        )
        if alert is not None and publisher is not None:
            publisher.publish(ALERTS, alert.kind.value, alert)

    breakers = BreakerBoard(BreakerPolicy(open_secs=settings.live_breaker_open_secs))
    return LiveOrderGateway(client, breakers, on_change=on_change)
