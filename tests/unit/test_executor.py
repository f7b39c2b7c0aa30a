"""The executor with fakes (consumer, publisher, journal): the journal claim comes before any report, a
re-delivered intent is never executed twice, reports are delivered before the offsets commit, and paper
fills take the book levels the intent carries (no book is fetched)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from polycopy.infra.kafka import Record
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from processors.core.ids import build_paper_order_id
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, OrderType, ReportKind
from schemas.topics import DEAD_LETTERS, EXECUTION_REPORTS, ORDER_INTENTS
from sinks.base import ConsumeLoop, LoopPolicy, SinkFlushError
from sinks.executor import Executor
from tests.builders import (
    ASSET,
    NOW_MS,
    WALLET_ID,
    build_book,
    build_intent,
    build_intent_on_book,
    build_report,
)
from tests.fakes import FakeBroker, FakeJournal, FakePublisher

PREFIX = "unit."
INTENTS = PREFIX + ORDER_INTENTS.name
# Asks of 10 at 0.50 and 30 at 0.51: a BUY of 20 limited at 0.52 fills whole at 0.505 on average.
BOOK = build_book(asks=[("0.50", "10"), ("0.51", "30")], bids=[("0.48", "50")])


def intent(**fields: object) -> OrderIntent:
    """A paper intent carrying BOOK's levels at its limit, as the evaluation attaches them."""
    return build_intent_on_book(BOOK, **fields)


class Harness:
    """An executor wired to fakes over one fake broker."""

    def __init__(self, *, settings: PolycopySettings | None = None) -> None:
        self.settings = settings or PolycopySettings(topic_prefix=PREFIX, metrics_enabled=False)
        self.broker, self.publisher, self.journal = FakeBroker(), FakePublisher(), FakeJournal()
        self.metrics = PipelineMetrics()
        self.consumers: list[object] = []
        self.now_ms = NOW_MS + 100  # the executor's clock: intents are decided at NOW_MS

    def send(self, *intents: OrderIntent) -> None:
        for intent in intents:
            self.broker.append_message(INTENTS, intent, key=intent.wallet_id)

    def run(self) -> Executor:
        executor = self.executor()
        executor.run(max_idle_secs=0)
        return executor

    def executor(self) -> Executor:
        consumer = self.broker.consumer("executor")
        self.consumers.append(consumer)
        return Executor(
            self.settings,
            loop=ConsumeLoop(consumer, self.publisher, self.metrics, LoopPolicy(batch_size=100)),
            publisher=self.publisher,
            journal=self.journal,
            metrics=self.metrics,
            clock_ms=lambda: self.now_ms,
        )

    def reports(self) -> list[ExecutionReport]:
        return self.publisher.on(EXECUTION_REPORTS)


def test_a_paper_intent_fills_against_its_book_levels_and_its_report_is_keyed_by_wallet() -> None:
    harness = Harness()
    order = intent()
    harness.send(order)

    executor = harness.run()

    [report] = harness.reports()
    assert (report.kind, report.matched_size, report.average_price) == (
        ReportKind.FILL,
        Decimal("20"),
        Decimal("0.505"),
    )
    assert report.order_id == build_paper_order_id(order.intent_id) and report.mode is ExecutionMode.PAPER
    assert harness.publisher.keys(EXECUTION_REPORTS) == [WALLET_ID]
    assert harness.journal.states == {order.intent_id: "delivered"}
    assert harness.broker.committed["executor"] == {(INTENTS, 0): 1}
    assert executor.handled == 1
    assert harness.metrics.reports.labels("fill")._value.get() == 1


def test_an_intent_delivered_twice_is_executed_once_even_across_restarts() -> None:
    harness = Harness()
    order = intent()
    harness.send(order, order)
    first = harness.run()
    harness.send(order)
    harness.broker.committed.clear()  # a new consumer group reading the topic from the start
    second = harness.run()

    assert (first.handled, second.handled) == (1, 0)
    assert [report.kind for report in harness.reports()] == [ReportKind.FILL]
    assert harness.metrics.duplicate_intents._value.get() == 4


def test_a_paper_intent_claimed_but_never_sent_is_executed_again() -> None:
    harness = Harness()
    order = intent()
    harness.journal.states[order.intent_id] = "claimed"  # the last run died between the claim and the send
    harness.send(order)

    assert harness.run().handled == 1
    assert [report.kind for report in harness.reports()] == [ReportKind.FILL]


def test_a_live_intent_claimed_by_a_run_that_stored_nothing_is_refused_again_not_counted_a_duplicate() -> (
    None
):
    # In a paper deployment a live intent is refused and nothing reaches a venue: refusing it again is the
    # resolution (a live deployment looks the order up: tests/unit/test_live_orders.py).
    harness = Harness()
    order = intent(mode=ExecutionMode.LIVE)
    harness.journal.states[order.intent_id] = "claimed"
    harness.send(order)

    assert harness.run().handled == 1
    assert [report.kind for report in harness.reports()] == [ReportKind.REJECTED]
    assert harness.metrics.duplicate_intents._value.get() == 0


def test_a_live_intent_in_a_paper_deployment_is_refused_with_the_switch_it_needs() -> None:
    harness = Harness()
    harness.send(intent(mode=ExecutionMode.LIVE))

    harness.run()

    [report] = harness.reports()
    assert (report.kind, report.mode) == (ReportKind.REJECTED, ExecutionMode.LIVE)
    assert report.detail == "not sent: the deployment is not live (POLYCOPY_EXECUTION_MODE=live)"


def test_an_intent_decided_without_a_book_rejects_the_paper_order() -> None:
    harness = Harness()
    harness.send(build_intent())  # no book levels: the gate had no book

    harness.run()

    assert [(r.kind, r.detail) for r in harness.reports()] == [
        (ReportKind.REJECTED, "no order book for this token")
    ]


def test_a_gtc_remainder_rests_and_a_fok_that_cannot_fill_is_cancelled() -> None:
    harness = Harness()
    resting = intent(order_type=OrderType.GTC, limit_price=Decimal("0.01"), dedup_key="e" * 32)
    killed = intent(order_type=OrderType.FOK, size=Decimal("100"), dedup_key="f" * 32)
    harness.send(resting, killed)

    harness.run()

    kinds = {report.intent_id: report.kind for report in harness.reports()}
    assert kinds == {resting.intent_id: ReportKind.ACCEPTED, killed.intent_id: ReportKind.CANCELLED}


def test_reports_not_delivered_commit_nothing_so_the_intents_are_read_again() -> None:
    harness = Harness()
    harness.publisher.undelivered = 1
    harness.send(intent())

    with pytest.raises(SinkFlushError, match="reports not delivered"):
        harness.run()

    assert "executor" not in harness.broker.committed
    assert harness.journal.closed  # resources are released even when the run fails


def test_a_malformed_intent_is_dead_lettered_and_the_next_one_executes() -> None:
    harness = Harness()
    harness.broker.append(INTENTS, b"{broken", key=b"w1")
    harness.send(intent())

    harness.run()

    [letter] = harness.publisher.on(DEAD_LETTERS)
    assert (letter.stage, letter.source_topic, letter.source_offset) == ("executor", INTENTS, 0)
    assert [report.kind for report in harness.reports()] == [ReportKind.FILL]
    assert harness.metrics.dead_letters.labels("executor")._value.get() == 1
    assert harness.broker.committed["executor"] == {(INTENTS, 0): 2}


def test_the_executor_connects_its_journal_before_consuming_and_releases_it_at_the_end() -> None:
    harness = Harness()
    harness.send(intent())

    executor = harness.run()

    assert executor.topics() == [INTENTS]
    assert harness.journal.connected and harness.journal.closed
    assert harness.consumers[0].closed  # type: ignore[attr-defined]


# --- the outbox: claimed -> sent (reports stored) -> delivered (issue 8, defect 1) -------------------------
def test_a_paper_orders_reports_are_stored_with_its_claim_before_they_are_published_then_delivered() -> None:
    harness = Harness()
    order = intent()
    harness.send(order)

    harness.run()

    # Paper: the claim stores the reports in the same call, one journal round trip per order (issue 11);
    # before, a claim and then a transaction storing the reports: two round trips (four statements).
    assert harness.journal.calls == ["claim_sent", "mark_delivered"]
    assert [ExecutionReport.model_validate(r) for r in harness.journal.reports[order.intent_id]] == (
        harness.reports()
    )


def test_reports_the_broker_never_acknowledged_are_published_again_at_a_restart_not_executed_again() -> None:
    # Before the fix the intent was marked `sent` as soon as its reports were queued: a run that died (or a
    # broker down past the flushes) lost them, and the restart skipped the intent as a harmless duplicate.
    harness = Harness()
    order = intent()
    harness.send(order)
    harness.publisher.undelivered = 1  # the broker is down: the flush times out
    with pytest.raises(SinkFlushError, match="reports not delivered"):
        harness.run()
    first = harness.reports()
    assert harness.journal.states[order.intent_id] == "sent"  # never marked delivered
    assert "executor" not in harness.broker.committed

    harness.publisher.undelivered = 0  # the broker is back; the restarted executor reads the intent again
    harness.now_ms += 60_000  # much later: a re-execution would report other times (and the age limit)
    second = harness.run()

    assert second.handled == 0 and second.republished == 1
    assert harness.reports() == first + first  # the very same reports, not a new execution
    assert harness.journal.states[order.intent_id] == "delivered"
    assert harness.broker.committed["executor"] == {(INTENTS, 0): 1}
    assert harness.metrics.duplicate_intents._value.get() == 0


def test_a_report_the_broker_refused_is_not_delivered_even_when_the_queue_drained() -> None:
    harness = Harness()
    harness.send(intent())
    harness.publisher.delivery_failures = 0

    class Refusing(FakePublisher):
        def flush(self, timeout: float = 30.0) -> int:
            self.delivery_failures += 1  # the message timed out: librdkafka drops it and calls back an error
            return 0

    harness.publisher.__class__ = Refusing
    with pytest.raises(SinkFlushError, match="refused by the broker"):
        harness.run()
    assert set(harness.journal.states.values()) == {"sent"}


def test_an_intent_older_than_the_limit_is_rejected_with_the_reason() -> None:
    settings = PolycopySettings(topic_prefix=PREFIX, metrics_enabled=False, max_intent_age_secs=30)
    harness = Harness(settings=settings)
    harness.now_ms = NOW_MS + 30_001
    harness.send(intent())

    harness.run()

    [report] = harness.reports()
    assert (report.kind, report.detail) == (
        ReportKind.REJECTED,
        "intent 30 s old: older than the executor's limit of 30 s",
    )


def test_an_intent_that_cannot_be_executed_is_rejected_and_the_next_one_executes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A crash-looping executor (issue 8, defect 4) stops every wallet: one bad intent must not.
    import sinks.executor

    bad, good = intent(dedup_key="b" * 32), intent(dedup_key="c" * 32)
    real = sinks.executor.execute_on_paper

    def execute(order: OrderIntent, *args: object, **kwargs: object) -> list[ExecutionReport]:
        if order.intent_id == bad.intent_id:
            raise ArithmeticError("division impossible")
        return real(order, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sinks.executor, "execute_on_paper", execute)
    harness = Harness()
    harness.send(bad, good)

    harness.run()

    assert [(r.intent_id, r.kind, r.detail) for r in harness.reports()] == [
        (bad.intent_id, ReportKind.REJECTED, "could not execute: division impossible"),
        (good.intent_id, ReportKind.FILL, ""),
    ]


# --- resting paper orders (issue 8, defect 5) ------------------------------------------------------------
def book_record(book: object, token: str | None = None) -> Record:
    value = book if isinstance(book, bytes) else book.to_bytes()  # type: ignore[attr-defined]
    return Record("books", 0, 0, (token or ASSET).encode(), value, 0)


def test_a_resting_gtc_fills_as_the_books_topic_moves_across_a_restart_skipping_a_malformed_state() -> None:
    harness = Harness()
    order = intent(order_type=OrderType.GTC, limit_price=Decimal("0.50"), size=Decimal("30"))
    harness.send(order)  # 10 fill at 0.50 at once, 20 rest
    deeper = build_book(asks=[("0.49", "5"), ("0.50", "30")])
    first = harness.executor()
    first.books.on_record(book_record(b'{"asset": "broken"'))
    first.books.on_record(book_record(deeper, token="another-token"))  # no order rests there

    first.run(max_idle_secs=0)

    assert first.resting.malformed_books == 1  # skipped, and the executor went on
    assert [(r.kind, r.matched_size) for r in harness.reports()] == [(ReportKind.FILL, Decimal("10"))]
    restarted = harness.executor()  # takes the resting order up from the journal
    restarted.books.on_record(book_record(deeper))

    restarted.run(max_idle_secs=0)

    # 5 new at 0.49 and 15 of the 20 new at 0.50 (the 10 it took are gone from the book): filled
    assert [(r.kind, r.matched_size) for r in harness.reports()] == [
        (ReportKind.FILL, Decimal("10")),
        (ReportKind.FILL, Decimal("30")),
    ]
    assert restarted.resting.orders == {}
    assert harness.journal.resting[order.intent_id]["open"] is False
    assert harness.journal.resting[order.intent_id]["outbox"] == []


def test_a_resting_gtd_is_cancelled_at_its_expiry_releasing_the_rest() -> None:
    harness = Harness()
    order = intent(order_type=OrderType.GTD, expiry_secs=60, limit_price=Decimal("0.40"))
    harness.send(order)
    harness.run()
    harness.now_ms = NOW_MS + 60_000

    harness.run()

    assert [(r.kind, r.detail) for r in harness.reports()] == [
        (ReportKind.ACCEPTED, "resting"),
        (ReportKind.CANCELLED, "GTD expired"),
    ]
    assert harness.journal.open_resting() == []


def test_reports_of_a_resting_order_stored_but_not_delivered_are_published_at_the_next_start() -> None:
    harness = Harness()
    order = intent(order_type=OrderType.GTC, limit_price=Decimal("0.40"))
    harness.send(order)
    harness.run()
    stored = build_report(
        ReportKind.FILL, intent=order, matched_size=Decimal("5"), average_price=Decimal("0.4")
    )
    harness.journal.resting[order.intent_id]["outbox"] = [stored.model_dump(mode="json")]

    harness.run()

    assert harness.reports()[-1] == stored
    assert harness.journal.resting[order.intent_id]["outbox"] == []


def test_a_paper_intent_already_claimed_is_not_published_again_from_the_discarded_execution() -> None:
    # Paper executes before it claims: an execution whose claim finds an earlier one must leave no trace.
    harness = Harness()
    order = intent(order_type=OrderType.GTC, limit_price=Decimal("0.49"))  # would rest on the book
    harness.journal.states[order.intent_id] = "delivered"
    harness.send(order)

    executor = harness.run()

    assert (executor.handled, harness.reports(), executor.resting.orders) == (0, [], {})
    assert harness.journal.resting == {} and harness.metrics.duplicate_intents._value.get() == 1
    assert harness.metrics.stage_latency.labels("order")._sum.get() == 0  # no order was sent
