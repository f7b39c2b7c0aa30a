"""Turns venue frames into raw-trade messages on Kafka; malformed frames go to the dead-letter topic."""

from __future__ import annotations

import logging
from typing import Protocol

from polycopy.infra.kafka import now_ms
from polycopy.infra.logs import log_context
from polycopy.infra.metrics import PipelineMetrics
from processors.core.alerts import SilenceWatch
from producers.parsing import parse_rtds_frame
from schemas.base import Message
from schemas.deadletter import DeadLetter, build_dead_letter
from schemas.topics import ALERTS, RAW_TRADES, TopicSpec
from schemas.trades import RawTrade, TradeSource

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where producers publish (`polycopy.infra.kafka.MessagePublisher`, or a fake in tests)."""

    delivery_failures: int

    def publish(
        self, spec: TopicSpec, key: str | None, message: Message | None, *, timestamp_ms: int = 0
    ) -> None: ...

    def publish_dead_letter(self, letter: DeadLetter) -> None: ...

    def flush(self, timeout: float = 30.0) -> int: ...


class TradePublisher:
    """The common back half of every producer: parse, publish keyed by trader wallet, dead-letter, count."""

    def __init__(
        self,
        publisher: Publisher,
        metrics: PipelineMetrics,
        stage: str = "rtds-parse",
        *,
        silence: SilenceWatch | None = None,
    ) -> None:
        self._publisher, self._metrics, self._stage = publisher, metrics, stage
        self._silence = silence
        self.trades = 0
        self.dead_letters = 0
        self.alerts = 0

    def check_silence(self, at_ms: int) -> None:
        """Publish one `feed_silent` alert when no trade was published for the watch's threshold (called on
        the feed's own clock: a silent feed calls nothing else)."""
        alert = self._silence.check(at_ms) if self._silence is not None else None
        if alert is not None:
            log.warning("%s", alert.summary)
            self._publisher.publish(ALERTS, alert.kind.value, alert)
            self.alerts += 1

    def publish_frame(self, frame: str | bytes, received_at_ms: int, source: TradeSource) -> int:
        """Parse one frame and publish its trades; returns how many trades it held."""
        parsed = parse_rtds_frame(frame, received_at_ms, source)
        if parsed.error is not None:
            self._dead_letter(parsed.error, frame)
            return 0
        published = 0
        for trade in parsed.trades:
            try:
                self.publish_trade(trade)
            except ValueError as error:  # pydantic cannot serialise it: never let one trade stop the feed
                self._dead_letter(f"trade cannot be published: {error}", frame)
                continue
            published += 1
        return published

    def _dead_letter(self, reason: str, frame: str | bytes) -> None:
        self.dead_letters += 1
        self._metrics.parse_errors.labels(self._stage).inc()
        self._metrics.dead_letters.labels(self._stage).inc()
        self._publisher.publish_dead_letter(
            build_dead_letter(self._stage, reason, frame, occurred_at_ms=now_ms())
        )
        log.warning("malformed frame sent to the dead-letter topic: %s", reason)

    def count_frame(self, source: TradeSource) -> None:
        self._metrics.frames.labels(source.value).inc()

    def publish_trade(self, trade: RawTrade) -> None:
        # The record's time is when we publish it (the receive time is in the message): a replay of an old
        # capture must not carry old record times, which the topic's retention would delete at once.
        with log_context(stage="publish", dedup_key=trade.dedup_key):
            log.debug(
                "%s trade published: %s %s at %s", trade.source.value, trade.side, trade.size, trade.price
            )
            self._publisher.publish(RAW_TRADES, trade.proxy_wallet, trade)
        self._metrics.trades_published.labels(trade.source.value).inc()
        if trade.source is TradeSource.RTDS:  # the poller finds trades late by design; replays are history
            self._metrics.feed_lag.observe(max(trade.received_at_ms / 1000 - trade.timestamp, 0))
            self._metrics.observe_stage("feed", trade.timestamp * 1000, trade.received_at_ms)
            if self._silence is not None:
                self._silence.saw_trade(trade.received_at_ms)
        self.trades += 1

    def flush(self, timeout: float = 30.0) -> int:
        return self._publisher.flush(timeout)
