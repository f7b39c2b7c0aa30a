"""The RTDS producer's feed-silence alert: one `feed_silent` alert when no trade arrived for the threshold,
none while trades flow, and one again only after trades resumed and stopped anew."""

from __future__ import annotations

from polycopy.infra.metrics import PipelineMetrics
from processors.core.alerts import SilenceWatch
from producers.publisher import TradePublisher
from schemas.alerts import Alert, AlertKind
from schemas.topics import ALERTS
from schemas.trades import TradeSource
from tests.builders import build_trade
from tests.fakes import FakePublisher

STARTED_MS = 1_000_000


def test_a_silent_feed_publishes_one_alert_per_silence() -> None:
    publisher = FakePublisher()
    trades = TradePublisher(publisher, PipelineMetrics(), silence=SilenceWatch("rtds", 60, STARTED_MS))

    trades.check_silence(STARTED_MS + 59_000)  # not yet
    trades.check_silence(STARTED_MS + 61_000)
    trades.check_silence(STARTED_MS + 90_000)  # the same silence: no second alert
    trade = build_trade(received_at_ms=STARTED_MS + 100_000, source=TradeSource.RTDS)
    trades.publish_trade(trade)
    trades.check_silence(STARTED_MS + 150_000)  # trades flow again
    trades.check_silence(STARTED_MS + 161_000)  # a new silence

    alerts = publisher.on(ALERTS)
    assert [type(a) for a in alerts] == [Alert, Alert]
    assert [a.kind for a in alerts] == [AlertKind.FEED_SILENT] * 2
    assert publisher.keys(ALERTS) == ["feed_silent"] * 2 and alerts[0].alert_id != alerts[1].alert_id


def test_without_a_watch_nothing_is_ever_alerted() -> None:
    publisher = FakePublisher()
    TradePublisher(publisher, PipelineMetrics()).check_silence(STARTED_MS * 10)
    assert publisher.on(ALERTS) == []
