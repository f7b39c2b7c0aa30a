"""The executor sink: order intents -> (journal claim) -> paper fill or venue -> execution reports.

Money safety: an intent is claimed in the PostgreSQL journal before anything is sent, so a re-delivered
intent is never placed twice; offsets commit only after the reports are delivered, so none is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from polycopy.infra.kafka import Record, now_ms
from polycopy.infra.logs import bind_log_context
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from processors.core.ids import build_paper_order_id
from processors.core.paper import build_execution_report, execute_on_paper
from schemas.base import Message
from schemas.deadletter import DeadLetter
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, ReportKind
from schemas.topics import EXECUTION_REPORTS, ORDER_INTENTS, TopicSpec
from sinks.base import ConsumeLoop, Rejection

log = logging.getLogger(__name__)

REPORT_DELIVERY_SECS = 30.0


class IntentJournal(Protocol):
    """The durable claim per intent (`polycopy.infra.postgres.ExecutionJournal`, or a fake in tests)."""

    def connect(self) -> None: ...

    def claim(self, intent_id: str, order_id: str, mode: str) -> str | None: ...

    def mark(self, intent_id: str, state: str) -> None: ...

    def close(self) -> None: ...


class ReportPublisher(Protocol):
    """Where reports and dead letters go (`polycopy.infra.kafka.MessagePublisher`, or a fake in tests)."""

    def publish(
        self, spec: TopicSpec, key: str | None, message: Message | None, *, timestamp_ms: int = 0
    ) -> None: ...

    def publish_dead_letter(self, letter: DeadLetter) -> None: ...

    def flush(self, timeout: float = 30.0) -> int: ...


class ReportsNotDelivered(RuntimeError):  # noqa: N818 - reads as the event it reports
    """Reports were still undelivered when the flush timed out."""


class Executor:
    """Consumes intents and publishes what happened to each order; a `BatchSink` of the consume loop."""

    stage = "executor"

    def __init__(
        self,
        settings: PolycopySettings,
        *,
        loop: ConsumeLoop,
        publisher: ReportPublisher,
        journal: IntentJournal,
        metrics: PipelineMetrics,
    ) -> None:
        self._settings, self._metrics = settings, metrics
        self._loop, self._publisher, self._journal = loop, publisher, journal
        self.handled = 0

    def stop(self, *_: object) -> None:
        """End after the current batch is delivered and committed (usable as a signal handler)."""
        self._loop.stop()

    def run(self, max_idle_secs: float | None = None) -> None:
        """Run until stopped (or idle for `max_idle_secs`); offsets commit after each delivered batch."""
        self._journal.connect()
        try:
            self._loop.run(self, max_idle_secs)
        finally:
            self._publisher.flush(REPORT_DELIVERY_SECS)
            self._journal.close()

    # --- the consume loop's hooks ---------------------------------------------------------------------------
    def topics(self) -> Sequence[str]:
        return [self._settings.topic_name(ORDER_INTENTS)]

    def decode(self, record: Record) -> OrderIntent:
        return OrderIntent.model_validate_json(record.value or b"")

    def write(self, intent: OrderIntent, record: Record) -> None:
        """Claim the intent in the journal, then (first claim only) execute it and publish its reports."""
        order_id = build_paper_order_id(intent.intent_id)
        bind_log_context(order_id=order_id)
        earlier = self._journal.claim(intent.intent_id, order_id, intent.mode.value)
        if earlier is not None and not (earlier == "claimed" and intent.mode is ExecutionMode.PAPER):
            # Already sent (or ambiguous live claim): never send again; live reconciliation resolves it.
            self._metrics.duplicate_intents.inc()
            return
        reports = self._execute(intent, order_id)
        for first in reports[:1]:  # sent -> the venue's (or the paper book's) first answer
            self._metrics.observe_stage("ack", first.sent_at_ms, first.reported_at_ms)
        for report in reports:
            log.debug("order %s: %s", report.kind.value, report.detail or "reported")
            self._metrics.reports.labels(report.kind.value).inc()
            self._publisher.publish(EXECUTION_REPORTS, intent.wallet_id, report)
        self._journal.mark(intent.intent_id, "sent")
        self.handled += 1

    def flush(self) -> Sequence[Rejection]:
        """The batch's reports delivered, or an error (then no offset commits and the intents are re-read)."""
        undelivered = self._publisher.flush(REPORT_DELIVERY_SECS)
        if undelivered:
            raise ReportsNotDelivered(f"{undelivered} reports not delivered")
        return ()

    def _execute(self, intent: OrderIntent, order_id: str) -> list[ExecutionReport]:
        sent_at = now_ms()
        self._metrics.observe_order_sent(intent.received_at_ms, intent.created_at_ms, sent_at)
        if intent.mode is not ExecutionMode.PAPER or self._settings.execution_mode is not ExecutionMode.PAPER:
            detail = "live execution is not available in this release; order refused"
            return [
                build_execution_report(
                    intent,
                    order_id,
                    ReportKind.REJECTED,
                    intent.mode,
                    detail=detail,
                    sent_at_ms=sent_at,
                    reported_at_ms=now_ms(),
                )
            ]
        # Paper fills take the book levels the liquidity gate saw (carried by the intent), not a book fetched
        # now: a replay of the log then fills exactly as this run did.
        return execute_on_paper(intent, order_id, sent_at_ms=sent_at, reported_at_ms=now_ms())
