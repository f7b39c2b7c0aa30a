"""The kill switch as an operator types it, and the alerts sink over the real broker posting to a local
webhook: each alert once, even when everything is read again."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.wiring import build_alerts_sink
from processors.core.alerts import alert_for_feed_silence
from schemas.control import KillSwitch
from schemas.topics import ALERTS, CONTROL, ORDER_EVENTS
from tests.builders import build_order_event
from tests.integration.helpers import publish, read_all
from tests.integration.test_cli import polycopy
from tests.webhook import WebhookReceiver

pytestmark = pytest.mark.integration


def test_kill_switch_on_and_off_land_on_the_compacted_control_topic(settings: PolycopySettings) -> None:
    on = polycopy(settings, "kill-switch", "on", "--wallet", "alice", "--reason", "drill")
    off = polycopy(settings, "kill-switch", "off")
    bad = polycopy(settings, "kill-switch", "maybe")

    assert on.returncode == 0 and on.stdout.strip() == "kill switch on for wallet alice"
    assert off.returncode == 0 and off.stdout.strip() == "kill switch off for every wallet"
    assert bad.returncode != 0
    switches = read_all(settings, CONTROL, KillSwitch)
    assert [(s.wallet_id, s.engaged, s.reason) for s in switches] == [
        ("alice", True, "drill"),
        ("*", False, ""),
    ]


def test_the_alerts_sink_posts_each_alert_once_across_reruns(
    settings_factory: Callable[..., PolycopySettings],
) -> None:
    with WebhookReceiver() as receiver:
        settings = settings_factory(alert_webhook_url=receiver.url, metrics_enabled=False)
        lost = build_order_event("lost", 2, released_usdc=Decimal("5"), detail="not found 3 times in a row")
        publish(settings, ORDER_EVENTS, [("w", lost), ("w", lost), ("w", build_order_event("filled", 2))])
        publish(
            settings, ALERTS, [("feed_silent", alert_for_feed_silence("rtds", 30, since_ms=1, at_ms=30_001))]
        )
        assert polycopy(settings, "kill-switch", "on").returncode == 0

        build_alerts_sink(settings, PipelineMetrics()).run(max_idle_secs=3)
        assert len(receiver.bodies) == 3

        # Another consumer group reads everything again: the dedup store posts nothing twice.
        again = settings.model_copy(
            update={"consumer_group_prefix": settings.consumer_group_prefix + "-again"}
        )
        rerun = build_alerts_sink(again, PipelineMetrics())
        rerun.run(max_idle_secs=3)

    assert len(receiver.bodies) == 3 and rerun.posted == []
    texts = sorted(body["text"] for body in receiver.bodies)
    assert any("order lost" in text for text in texts) and any(
        "kill switch engaged" in text for text in texts
    )
