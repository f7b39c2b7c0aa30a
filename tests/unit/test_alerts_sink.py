"""The alerts sink over a fake broker, posting to a real local HTTP receiver: each alert once, retries with
backoff, nothing committed while the webhook refuses, nothing posted twice after a re-read."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from processors.core.alerts import alert_for_breaker, alert_for_feed_silence
from schemas.control import KillSwitch
from schemas.topics import ALERTS, CONTROL, ORDER_EVENTS, TopicSpec
from sinks.alerts import AlertsSink, HttpWebhook, RetryPolicy, SentAlerts
from sinks.base import ConsumeLoop, LoopPolicy, SinkFlushError
from tests.builders import build_order_event
from tests.fakes import FakeBroker, FakePublisher
from tests.webhook import WebhookReceiver

PREFIX = "unit."


def topic(spec: TopicSpec) -> str:
    return PREFIX + spec.name


class Harness:
    def __init__(self, tmp_path: Path, url: str) -> None:
        self.settings = PolycopySettings(topic_prefix=PREFIX, metrics_enabled=False)
        self.broker, self.publisher, self.metrics = FakeBroker(), FakePublisher(), PipelineMetrics()
        self.store, self.url, self.sleeps = tmp_path / "sent", url, []

    def run(self, group: str = "alerts") -> AlertsSink:
        loop = ConsumeLoop(
            self.broker.consumer(group), self.publisher, self.metrics, LoopPolicy(batch_size=50)
        )
        sink = AlertsSink(
            self.settings,
            loop=loop,
            webhook=HttpWebhook(self.url),
            sent=SentAlerts(self.store),
            metrics=self.metrics,
            retry=RetryPolicy(attempts=3, base_secs=0.5),
            sleep=self.sleeps.append,
        )
        sink.run(max_idle_secs=0)
        return sink


def publish_everything(h: Harness) -> None:
    lost = build_order_event("lost", 2, released_usdc=Decimal("10.40"), detail="not found 3 times in a row")
    h.broker.append_message(topic(ORDER_EVENTS), lost)
    h.broker.append_message(topic(ORDER_EVENTS), lost)  # re-delivered
    h.broker.append_message(topic(ORDER_EVENTS), build_order_event("filled", 2))  # no alert
    breaker = alert_for_breaker("orders.place", "closed", "open", "5 consecutive failures", 1_000)
    assert breaker is not None
    h.broker.append_message(topic(ALERTS), breaker)
    h.broker.append_message(topic(ALERTS), alert_for_feed_silence("rtds", 20, since_ms=5, at_ms=20_005))
    switch = KillSwitch(wallet_id="*", engaged=True, reason="drill", set_by="ops", set_at_ms=7)
    h.broker.append_message(topic(CONTROL), switch, key="*")
    h.broker.append(topic(CONTROL), None, key=b"*")  # a tombstone: nothing to tell


def test_each_alert_is_posted_once_in_slack_format(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        h = Harness(tmp_path, receiver.url)
        publish_everything(h)

        h.run()

    texts = [body["text"] for body in receiver.bodies]
    assert len(texts) == 4
    assert any("*CRITICAL* order lost" in text and "10.40 USDC released" in text for text in texts)
    assert any("venue calls stopped: orders.place open" in text for text in texts)
    assert any("feed silent: rtds" in text for text in texts)
    assert any("kill switch engaged" in text and "every wallet" in text for text in texts)
    assert h.metrics.alerts.labels("order_lost", "duplicate")._value.get() == 1


def test_a_refusing_webhook_is_retried_with_backoff(tmp_path: Path) -> None:
    with WebhookReceiver(refuse_first=2) as receiver:
        h = Harness(tmp_path, receiver.url)
        h.broker.append_message(topic(ALERTS), alert_for_feed_silence("rtds", 20, since_ms=5, at_ms=1))

        h.run()

    assert len(receiver.bodies) == 1 and receiver.refused == 2
    assert h.sleeps == [0.5, 1.0]


def test_a_webhook_that_stays_down_commits_nothing_and_a_rerun_posts_each_alert_once(tmp_path: Path) -> None:
    with WebhookReceiver(refuse_first=4) as receiver:
        h = Harness(tmp_path, receiver.url)
        publish_everything(h)

        with pytest.raises(SinkFlushError):
            h.run()  # the first alert is refused 3 times: nothing is committed
        assert receiver.bodies == [] and not h.broker.committed.get("alerts")

        h.run()  # the webhook recovered (one more refusal, then accepted)
        h.run(group="another-group")  # everything read again: the dedup store stops every repost

    assert len(receiver.bodies) == 4
    assert h.metrics.alerts.labels("order_lost", "duplicate")._value.get() >= 2
