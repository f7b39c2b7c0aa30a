"""The paper executor over the real broker and the real PostgreSQL journal: intents carry the levels of a
simulated venue book the gate saw, and paper fills take them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from polycopy.infra.kafka import now_ms
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import query
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.books import parse_book
from polycopy.wiring import build_executor
from schemas.base import Side
from schemas.deadletter import DeadLetter
from schemas.orders import ExecutionReport, OrderType, ReportKind
from schemas.topics import DEAD_LETTERS, EXECUTION_REPORTS, ORDER_INTENTS
from sinks.executor import Executor
from tests.builders import build_intent
from tests.integration.helpers import publish, read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def venue(simulator_factory):  # type: ignore[no-untyped-def]
    return simulator_factory(seed=5, auto_trades=False)


def intent_for_best_ask(venue, **overrides):  # type: ignore[no-untyped-def]
    """An intent on a simulated token, with a limit two ticks through the best ask and the book's levels at
    that limit (as the evaluation attaches them)."""
    market = venue.simulator.markets[0]
    token = market.token_ids[0]
    book = parse_book(venue.simulator.book(token))
    limit = overrides.pop("limit_price", book.asks[0].price + 2 * market.tick_size)
    values = {
        "asset": token,
        "condition_id": market.condition_id,
        "limit_price": limit,
        "tick_size": market.tick_size,
        "size": Decimal("5"),
        "book_levels": book.levels_within(Side.BUY, limit),
        "received_at_ms": now_ms(),
        "created_at_ms": now_ms(),  # decided just now: the executor rejects old intents
    } | overrides
    return build_intent(**values)


def run_executor(settings: PolycopySettings) -> Executor:
    executor = build_executor(settings, PipelineMetrics())
    executor.run(max_idle_secs=3)
    return executor


def test_paper_fak_order_fills_against_the_simulated_book(settings_factory, venue) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(clob_url=venue.server.clob_url)
    intent = intent_for_best_ask(venue)
    publish(settings, ORDER_INTENTS, [(intent.wallet_id, intent)])
    run_executor(settings)
    reports = read_all(settings, EXECUTION_REPORTS, ExecutionReport)
    assert [r.kind for r in reports] == [ReportKind.FILL]
    assert reports[0].matched_size == Decimal("5")
    assert reports[0].average_price <= intent.limit_price


def test_an_intent_delivered_twice_is_executed_once(settings_factory, venue) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(clob_url=venue.server.clob_url)
    intent = intent_for_best_ask(venue)
    publish(settings, ORDER_INTENTS, [(intent.wallet_id, intent), (intent.wallet_id, intent)])
    first = run_executor(settings)
    # And once more after a restart that re-reads the topic from the beginning (new consumer group).
    publish(settings, ORDER_INTENTS, [(intent.wallet_id, intent)])
    second = run_executor(settings)
    reports = read_all(settings, EXECUTION_REPORTS, ExecutionReport)
    assert (first.handled, second.handled) == (1, 0)
    assert len({r.order_id for r in reports}) == 1
    assert [r.kind for r in reports] == [ReportKind.FILL]


def test_an_intent_without_a_book_is_rejected_and_a_gtc_remainder_rests(settings_factory, venue) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(clob_url=venue.server.clob_url)
    unknown = intent_for_best_ask(
        venue, asset="1" * 77, dedup_key="f" * 32, intent_id="i-unknown", book_levels=None
    )
    resting = intent_for_best_ask(
        venue,
        limit_price=Decimal("0.01"),
        order_type=OrderType.GTC,
        dedup_key="e" * 32,
        intent_id="i-resting",
    )
    publish(settings, ORDER_INTENTS, [("w1", unknown), ("w1", resting)])
    run_executor(settings)
    kinds = {r.intent_id: r.kind for r in read_all(settings, EXECUTION_REPORTS, ExecutionReport)}
    assert kinds == {"i-unknown": ReportKind.REJECTED, "i-resting": ReportKind.ACCEPTED}


def test_a_malformed_intent_is_dead_lettered_and_the_next_one_executes(settings_factory, venue) -> None:  # type: ignore[no-untyped-def]
    from polycopy.infra.kafka import MessagePublisher

    settings = settings_factory(clob_url=venue.server.clob_url)
    publisher = MessagePublisher(settings)
    publisher._producer.produce(settings.topic_name(ORDER_INTENTS), key=b"w1", value=b"{broken")
    publisher.flush()
    intent = intent_for_best_ask(venue)
    publish(settings, ORDER_INTENTS, [(intent.wallet_id, intent)])
    run_executor(settings)
    assert [letter.stage for letter in read_all(settings, DEAD_LETTERS, DeadLetter)] == ["executor"]
    assert len(read_all(settings, EXECUTION_REPORTS, ExecutionReport)) == 1


def test_the_executor_reconnects_when_its_database_connection_is_killed(settings_factory, venue) -> None:  # type: ignore[no-untyped-def]
    # Issue 8, defect 8: one connection and no reconnect, so a database restart killed the executor.
    import threading

    from tests.integration.helpers import kill_database_connections, wait_until

    settings = settings_factory(clob_url=venue.server.clob_url)
    executor = build_executor(settings, PipelineMetrics())
    failures: list[BaseException] = []

    def run() -> None:
        try:
            executor.run()
        except BaseException as error:  # noqa: BLE001 - the test reports it
            failures.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        first = intent_for_best_ask(venue, dedup_key="a" * 32)
        publish(settings, ORDER_INTENTS, [(first.wallet_id, first)])
        wait_until(lambda: executor.handled == 1 or bool(failures), 60, "the first intent")
        assert kill_database_connections(settings) >= 1
        second = intent_for_best_ask(venue, dedup_key="b" * 32)
        publish(settings, ORDER_INTENTS, [(second.wallet_id, second)])
        wait_until(lambda: executor.handled == 2 or bool(failures), 60, "the second intent")
    finally:
        executor.stop()
        thread.join(60)
    assert failures == []
    assert {r.intent_id for r in read_all(settings, EXECUTION_REPORTS, ExecutionReport)} == {
        first.intent_id,
        second.intent_id,
    }
    assert query(settings.database_url, "SELECT DISTINCT state FROM executor_journal") == [("delivered",)]


# --- the journal's round trips per paper order (issue 11) --------------------------------------------------
def count_statements(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """Every statement the journal's connection sends from now on (each one a round trip)."""
    import psycopg

    sent: list[str] = []
    execute = psycopg.Connection.execute

    def counting(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(str(query))
        return execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counting)
    return sent


def test_a_paper_claim_stores_its_reports_and_resting_order_in_one_statement_and_a_second_claim_nothing(
    settings: PolycopySettings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # Before: a claim, then BEGIN, UPDATE (the reports), INSERT (the resting order), COMMIT per paper order.
    from polycopy.infra.postgres import ExecutionJournal, JournalEntry

    journal = ExecutionJournal(settings.database_url)
    journal.connect()
    reports = [{"kind": "accepted", "n": 1}]
    sent = count_statements(monkeypatch)
    try:
        first = journal.claim_sent("i1", "o1", "paper", reports, ("o1", "a1", {"remaining": "5"}))
        assert (first, len(sent)) == (None, 1)
        again = journal.claim_sent("i1", "o1", "paper", [{"kind": "fill"}], ("o1", "a1", {"remaining": "0"}))
        assert again == JournalEntry("sent", reports)  # the earlier claim; this execution stored nothing
        assert journal.claim_sent("i2", "o2", "paper", [{"kind": "fill"}]) is None
    finally:
        journal.close()
    assert query(
        settings.database_url, "SELECT intent_id, state, reports FROM executor_journal ORDER BY 1"
    ) == [
        ("i1", "sent", reports),
        ("i2", "sent", [{"kind": "fill"}]),
    ]
    assert query(
        settings.database_url, "SELECT intent_id, order_id, asset, state FROM paper_resting_orders"
    ) == [("i1", "o1", "a1", {"remaining": "5"})]


def test_storing_a_claimed_intents_reports_and_resting_order_is_one_statement(
    settings: PolycopySettings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from polycopy.infra.postgres import ExecutionJournal

    journal = ExecutionJournal(settings.database_url)
    journal.connect()
    try:
        assert journal.claim("i1", "o1", "live") is None
        sent = count_statements(monkeypatch)
        journal.record_sent("i1", [{"kind": "accepted"}], ("o1", "a1", {"remaining": "5"}))
        assert len(sent) == 1
    finally:
        journal.close()
    assert query(settings.database_url, "SELECT state, reports FROM executor_journal") == [
        ("sent", [{"kind": "accepted"}])
    ]
    assert query(settings.database_url, "SELECT intent_id FROM paper_resting_orders") == [("i1",)]
