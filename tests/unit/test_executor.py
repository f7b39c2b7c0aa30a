"""The executor with fakes (consumer, publisher, journal): the journal claim comes before any report, a
re-delivered intent is never executed twice, reports are delivered before the offsets commit, and paper
fills take the book levels the intent carries (no book is fetched)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from processors.core.ids import build_paper_order_id
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, OrderType, ReportKind
from schemas.topics import DEAD_LETTERS, EXECUTION_REPORTS, ORDER_INTENTS
from sinks.base import ConsumeLoop, LoopPolicy, SinkFlushError
from sinks.executor import Executor
from tests.builders import WALLET_ID, build_book, build_intent, build_intent_on_book
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

    def send(self, *intents: OrderIntent) -> None:
        for intent in intents:
            self.broker.append_message(INTENTS, intent, key=intent.wallet_id)

    def run(self) -> Executor:
        consumer = self.broker.consumer("executor")
        self.consumers.append(consumer)
        executor = Executor(
            self.settings,
            loop=ConsumeLoop(consumer, self.publisher, self.metrics, LoopPolicy(batch_size=100)),
            publisher=self.publisher,
            journal=self.journal,
            metrics=self.metrics,
        )
        executor.run(max_idle_secs=0)
        return executor

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
    assert harness.journal.states == {order.intent_id: "sent"}
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


def test_a_live_intent_with_an_earlier_claim_is_never_sent_again() -> None:
    harness = Harness()
    order = intent(mode=ExecutionMode.LIVE)
    harness.journal.states[order.intent_id] = "claimed"  # ambiguous: it may have reached the venue
    harness.send(order)

    assert harness.run().handled == 0
    assert harness.reports() == [] and harness.metrics.duplicate_intents._value.get() == 1


def test_a_live_intent_is_refused_in_this_release() -> None:
    harness = Harness()
    harness.send(intent(mode=ExecutionMode.LIVE))

    harness.run()

    [report] = harness.reports()
    assert (report.kind, report.mode) == (ReportKind.REJECTED, ExecutionMode.LIVE)
    assert "live execution is not available" in report.detail


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
