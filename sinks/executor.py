"""The executor sink: order intents -> (journal claim) -> paper fill or venue -> execution reports.

Money safety, per intent: claim it in the PostgreSQL journal before anything is sent (`claimed`), so a
re-delivered intent is never executed twice; store its reports in the journal with the state `sent` (the
outbox) and publish them; once the broker acknowledged them, `delivered`; only then do the offsets commit.
A re-delivered intent in `sent` re-publishes the stored reports and never executes again; one in `claimed`
was never sent: paper executes it again (deterministically, on the levels the intent carries), live looks
its order up by the id journaled with the claim (`LiveOrders.resolve`) and never sends a different one.
Nothing counts as a harmless duplicate before its reports were delivered. A paper execution is pure (it sends
nothing), so a paper intent is executed first and claimed together with its reports in one statement
(`claim_sent`): one journal round trip per paper order. Live orders after placement
(reconciliation, deferrals, kill switch) live in `sinks.live_orders`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from polycopy.infra.kafka import Record, now_ms
from polycopy.infra.logs import bind_log_context
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import DELIVERED, SENT, JournalEntry
from polycopy.infra.settings import PolycopySettings
from processors.core.ids import build_paper_order_id
from processors.core.paper import RestingOrder, build_execution_report, execute_on_paper, rest_on_paper
from schemas.base import Message
from schemas.deadletter import DeadLetter
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, ReportKind
from schemas.topics import EXECUTION_REPORTS, ORDER_INTENTS, TopicSpec
from sinks.base import ConsumeLoop, Rejection
from sinks.live_orders import LiveOrders
from sinks.paper_orders import LatestBooks, RestingJournal, RestingPaperOrders

log = logging.getLogger(__name__)

REPORT_DELIVERY_SECS = 30.0


class IntentJournal(RestingJournal, Protocol):
    """The durable record per intent (`polycopy.infra.postgres.ExecutionJournal`, or a fake in tests)."""

    def connect(self) -> None: ...

    def claim(self, intent_id: str, order_id: str, mode: str) -> JournalEntry | None: ...

    def claim_sent(
        self,
        intent_id: str,
        order_id: str,
        mode: str,
        reports: Sequence[dict[str, Any]],
        resting: tuple[str, str, dict[str, Any]] | None = None,
    ) -> JournalEntry | None: ...

    def record_sent(
        self,
        intent_id: str,
        reports: Sequence[dict[str, Any]],
        resting: tuple[str, str, dict[str, Any]] | None = None,
    ) -> None: ...

    def mark_delivered(self, intent_ids: Sequence[str]) -> None: ...

    def close(self) -> None: ...


class ReportPublisher(Protocol):
    """Where reports and dead letters go (`polycopy.infra.kafka.MessagePublisher`, or a fake in tests)."""

    delivery_failures: int

    def publish(
        self, spec: TopicSpec, key: str | None, message: Message | None, *, timestamp_ms: int = 0
    ) -> None: ...

    def publish_dead_letter(self, letter: DeadLetter) -> None: ...

    def flush(self, timeout: float = 30.0) -> int: ...


class ReportsNotDelivered(RuntimeError):  # noqa: N818 - reads as the event it reports
    """Reports were still undelivered when the flush timed out, or the broker refused some."""


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
        books: LatestBooks | None = None,
        live: Callable[[Executor], LiveOrders] | None = None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._settings, self._metrics, self._clock_ms = settings, metrics, clock_ms
        self._loop, self._publisher, self._journal = loop, publisher, journal
        self._books = books or LatestBooks()
        self.resting = RestingPaperOrders(journal, self, metrics, books=self._books, clock_ms=clock_ms)
        # Live orders (a live deployment only): they publish through this executor's outbox and delivery.
        self.live = live(self) if live is not None else None
        self._sent: list[str] = []  # intents whose reports were published and await delivery
        self._failures_seen = publisher.delivery_failures
        self.handled = 0
        self.republished = 0

    @property
    def metrics(self) -> PipelineMetrics:
        return self._metrics

    @property
    def books(self) -> LatestBooks:
        """Where the follower of the books topic hands book states (for resting paper orders)."""
        return self._books

    def stop(self, *_: object) -> None:
        """End after the current batch is delivered and committed (usable as a signal handler)."""
        self._loop.stop()

    def run(self, max_idle_secs: float | None = None) -> None:
        """Run until stopped (or idle for `max_idle_secs`); offsets commit after each delivered batch."""
        self._journal.connect()
        try:
            self.resting.load()
            if self.live is not None:
                self.live.load()
            self._loop.run(self, max_idle_secs, between_polls=self._between_polls)
        finally:
            self._publisher.flush(REPORT_DELIVERY_SECS)
            self._journal.close()

    def _between_polls(self) -> None:
        self.resting.step()
        if self.live is not None:
            self.live.step()

    # --- the consume loop's hooks ---------------------------------------------------------------------------
    def topics(self) -> Sequence[str]:
        return [self._settings.topic_name(ORDER_INTENTS)]

    def decode(self, record: Record) -> OrderIntent:
        return OrderIntent.model_validate_json(record.value or b"")

    def write(self, intent: OrderIntent, record: Record) -> None:
        """Claim the intent; execute it only if it was never sent; publish its reports (stored first)."""
        live = self.live if intent.mode is ExecutionMode.LIVE else None
        # A live order's id is the venue's (its hash), computed before anything is sent and journaled with
        # the claim: a restart looks that very order up instead of sending another.
        order_id = live.order_id_for(intent) if live is not None else build_paper_order_id(intent.intent_id)
        bind_log_context(order_id=order_id)
        if live is not None:  # claim before send: the venue must never get a second order for the intent
            earlier = self._journal.claim(intent.intent_id, order_id, intent.mode.value)
            if earlier is None:
                sent_at = self._clock_ms()
                self._metrics.observe_order_sent(intent.received_at_ms, intent.created_at_ms, sent_at)
                self._record_and_publish(intent, order_id, self._execute(intent, order_id, sent_at))
                return
        else:
            # Paper (or a live intent a paper deployment refuses): executing it sends nothing anywhere, so it
            # runs first and the claim stores its reports in the same statement, one journal round trip per
            # order. A claim already there discards this execution, exactly as a claim made first would.
            sent_at = self._clock_ms()
            reports = self._execute(intent, order_id, sent_at)
            resting = self._rest(intent, order_id, reports)
            earlier = self._journal.claim_sent(
                intent.intent_id,
                order_id,
                intent.mode.value,
                [report.model_dump(mode="json") for report in reports],
                (order_id, intent.asset, resting.to_state()) if resting is not None else None,
            )
            if earlier is None:
                self._metrics.observe_order_sent(intent.received_at_ms, intent.created_at_ms, sent_at)
                self._publish_new(intent, reports, resting)
                return
        if earlier.state == DELIVERED or intent.intent_id in self._sent:
            # Its reports are in the log, or published in this batch and delivered with it: nothing to do.
            self._metrics.duplicate_intents.inc()
            return
        if earlier.state == SENT:
            # Sent but never confirmed delivered (a crash, a broker outage): the same reports again.
            for stored in earlier.reports or []:
                self.publish(ExecutionReport.model_validate(stored))
            self._sent.append(intent.intent_id)
            self.republished += 1
            return
        # Claimed by an earlier run that died before it stored any report.
        self._record_and_publish(intent, order_id, self.resolve_unsent(intent, order_id))

    def _record_and_publish(self, intent: OrderIntent, order_id: str, reports: list[ExecutionReport]) -> None:
        """Store the reports of an intent already claimed (the outbox), then publish them."""
        resting = self._rest(intent, order_id, reports)
        self._journal.record_sent(
            intent.intent_id,
            [report.model_dump(mode="json") for report in reports],
            (order_id, intent.asset, resting.to_state()) if resting is not None else None,
        )
        self._publish_new(intent, reports, resting)

    def _rest(
        self, intent: OrderIntent, order_id: str, reports: list[ExecutionReport]
    ) -> RestingOrder | None:
        """What of a paper order rests on the book after its first execution (a GTC/GTD remainder)."""
        if intent.mode is not ExecutionMode.PAPER:
            return None
        return rest_on_paper(intent, order_id, reports, gtc_max_secs=self._settings.paper_gtc_max_secs)

    def _publish_new(
        self, intent: OrderIntent, reports: list[ExecutionReport], resting: RestingOrder | None
    ) -> None:
        """Publish the reports of an execution the journal now holds."""
        if resting is not None:
            self.resting.add(resting)
        for first in reports[:1]:  # sent -> the venue's (or the paper book's) first answer
            self._metrics.observe_stage("ack", first.sent_at_ms, first.reported_at_ms)
        for report in reports:
            log.debug("order %s: %s", report.kind.value, report.detail or "reported")
            self._metrics.reports.labels(report.kind.value).inc()
            self.publish(report)
        self._sent.append(intent.intent_id)
        self.handled += 1

    def flush(self) -> Sequence[Rejection]:
        """The batch's reports delivered (then marked so), or an error: no offset commits and the intents are
        read again, finding their reports in the journal."""
        self.deliver()
        self._journal.mark_delivered(self._sent)
        self._sent.clear()
        return ()

    # --- reports --------------------------------------------------------------------------------------------
    def publish(self, report: ExecutionReport) -> None:
        self._publisher.publish(EXECUTION_REPORTS, report.wallet_id, report)

    def deliver(self) -> None:
        """Wait until every report published so far is acknowledged; raise if any was not."""
        undelivered = self._publisher.flush(REPORT_DELIVERY_SECS)
        failures, self._failures_seen = (
            self._publisher.delivery_failures - self._failures_seen,
            self._publisher.delivery_failures,
        )
        if undelivered or failures:
            raise ReportsNotDelivered(
                f"{undelivered} reports not delivered, {failures} refused by the broker"
            )

    # --- execution ------------------------------------------------------------------------------------------
    def resolve_unsent(self, intent: OrderIntent, order_id: str) -> list[ExecutionReport]:
        """An intent an earlier run claimed but stored no report for. Paper executes it again: the fill is
        deterministic (the intent's levels). Live looks its order up at the venue by the id journaled with the
        claim, and sends that same order only if the venue has never heard of it (`LiveOrders.resolve`)."""
        if self.live is not None and intent.mode is ExecutionMode.LIVE:
            return self.live.resolve(intent, order_id, self._clock_ms())
        sent_at = self._clock_ms()
        reports = self._execute(intent, order_id, sent_at)
        self._metrics.observe_order_sent(intent.received_at_ms, intent.created_at_ms, sent_at)
        return reports

    def _execute(self, intent: OrderIntent, order_id: str, sent_at: int) -> list[ExecutionReport]:
        """The reports of one execution (a live one sends the order; a paper one is pure)."""
        age_secs = (sent_at - intent.created_at_ms) / 1000
        if age_secs > self._settings.max_intent_age_secs:
            return [
                self._reject(
                    intent,
                    order_id,
                    f"intent {age_secs:.0f} s old: older than the "
                    f"executor's limit of {self._settings.max_intent_age_secs:g} s",
                    sent_at,
                )
            ]
        if intent.mode is ExecutionMode.LIVE:
            if self.live is None:  # a live wallet in a paper deployment: recorded, never sent
                detail = "not sent: the deployment is not live (POLYCOPY_EXECUTION_MODE=live)"
                return [self._reject(intent, order_id, detail, sent_at)]
            return self.live.place(intent, order_id, sent_at)
        try:
            # Paper fills take the book levels the liquidity gate saw (carried by the intent), not a book
            # fetched now: a replay of the log then fills exactly as this run did, and a re-execution after
            # an unsent claim gets the very same reports.
            return execute_on_paper(intent, order_id, sent_at_ms=sent_at, reported_at_ms=self._clock_ms())
        except Exception as error:  # noqa: BLE001 - one intent that cannot execute must not stop the executor
            log.exception("intent %s could not be executed on paper", intent.intent_id)
            return [self._reject(intent, order_id, f"could not execute: {error}", sent_at)]

    def _reject(self, intent: OrderIntent, order_id: str, detail: str, sent_at: int) -> ExecutionReport:
        return build_execution_report(
            intent,
            order_id,
            ReportKind.REJECTED,
            intent.mode,
            detail=detail,
            sent_at_ms=sent_at,
            reported_at_ms=self._clock_ms(),
        )
