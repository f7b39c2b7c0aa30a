"""Order lifecycle: the transition table over every pair, and executor reports turned into order events."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core.ids import build_event_id
from processors.core.ledger import WalletLedger
from processors.core.orders import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransitionError,
    OrderRecord,
    OrderTransition,
    apply_report,
    transition,
)
from processors.core.paper import execute_on_paper
from processors.core.policy import day_of
from schemas.base import Side
from schemas.orders import ExecutionReport, OrderEvent, OrderIntent, OrderStatus, OrderType, ReportKind
from tests.builders import (
    ASSET,
    CONDITION_ID,
    NOW_MS,
    build_book,
    build_intent,
    build_intent_on_book,
    build_report,
)

D = Decimal
S, T = OrderStatus, OrderTransition

# The lifecycle as specified, written out independently of the implementation's table.
EXPECTED_EDGES = {
    (S.PENDING, T.ACCEPT): S.PLACED,
    (S.PENDING, T.REJECT): S.REJECTED,
    (S.PENDING, T.LOSE): S.LOST,
    (S.PLACED, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PLACED, T.FILL): S.FILLED,
    (S.PLACED, T.CANCEL): S.CANCELLED,
    (S.PLACED, T.LOSE): S.LOST,
    (S.PARTIALLY_FILLED, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, T.CANCEL): S.CANCELLED,
    (S.PARTIALLY_FILLED, T.LOSE): S.LOST,
    (S.LOST, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.LOST, T.FILL): S.FILLED,
}
ALL_PAIRS = list(itertools.product(OrderStatus, OrderTransition))


@pytest.mark.parametrize(("status", "move"), ALL_PAIRS, ids=lambda v: v.value)
def test_every_status_and_transition_pair_follows_the_table_or_raises(
    status: OrderStatus, move: OrderTransition
) -> None:
    if (status, move) in EXPECTED_EDGES:
        assert transition(status, move) is EXPECTED_EDGES[(status, move)] is TRANSITIONS[(status, move)]
    else:
        assert (status, move) not in TRANSITIONS
        with pytest.raises(IllegalTransitionError, match=f"{move.value} is not allowed from {status.value}"):
            transition(status, move)


def test_the_table_has_exactly_the_specified_edges_and_terminal_states_have_none() -> None:
    assert TRANSITIONS == EXPECTED_EDGES
    assert {S.FILLED, S.CANCELLED, S.REJECTED, S.LOST} == TERMINAL
    # Only LOST has ways out, and only by fills: the venue's index can report a fill hours late.
    assert {pair for pair in TRANSITIONS if pair[0] in TERMINAL} == {
        (S.LOST, T.PARTIAL_FILL),
        (S.LOST, T.FILL),
    }


# --- apply_report ---------------------------------------------------------------------------------------
def reserve(intent: OrderIntent, capital: str = "1000") -> WalletLedger:
    ledger = WalletLedger(D(capital))
    if intent.side is Side.SELL:
        ledger.reserve(
            "setup",
            asset=intent.asset,
            condition_id=CONDITION_ID,
            side=Side.BUY,
            size=D("100"),
            limit_price=D("0.40"),
        )
        ledger.apply_fill("setup", D("100"), D("0.40"), day_of(NOW_MS))
    ledger.reserve(
        intent.intent_id,
        asset=intent.asset,
        condition_id=intent.condition_id,
        side=intent.side,
        size=intent.size,
        limit_price=intent.limit_price,
    )
    return ledger


def apply_all(
    ledger: WalletLedger, reports: list[ExecutionReport], record: OrderRecord | None = None
) -> tuple[OrderRecord | None, list[OrderEvent]]:
    events: list[OrderEvent] = []
    for number, report in enumerate(reports):
        record, new = apply_report(ledger, record, report, NOW_MS + 10 + number)
        events.extend(new)
    return record, events


def types_of(events: list[OrderEvent]) -> list[str]:
    return [event.event_type.value for event in events]


def test_fak_partial_fill_then_cancel_places_fills_and_cancels_releasing_the_rest() -> None:
    intent = build_intent_on_book(build_book(asks=[("0.50", "8")]), size=D("20"), limit_price=D("0.52"))
    ledger = reserve(intent)
    reports = execute_on_paper(intent, "paper-1", sent_at_ms=NOW_MS, reported_at_ms=NOW_MS + 1)

    record, events = apply_all(ledger, reports)

    assert types_of(events) == ["OrderPlaced", "OrderPartialFill", "OrderCancelled"]
    assert [e.status for e in events] == [S.PLACED, S.PARTIALLY_FILLED, S.CANCELLED]
    assert [e.matched_size for e in events] == [D(0), D("8"), D("8")]
    assert [e.released_usdc for e in events] == [None, None, D("12") * D("0.52")]
    assert record is not None and record.status is S.CANCELLED
    assert ledger.reserved == 0
    assert ledger.positions[ASSET].shares == D("8")
    assert ledger.deployed == D("4.00")
    assert ledger.available == D("996")


def test_full_fill_places_and_fills_with_nothing_to_release() -> None:
    intent = build_intent()
    ledger = reserve(intent)

    record, events = apply_all(
        ledger, [build_report(ReportKind.FILL, intent=intent, matched_size=D("20"), average_price=D("0.51"))]
    )

    assert types_of(events) == ["OrderPlaced", "OrderFilled"]
    assert events[-1].average_price == D("0.51")
    assert events[-1].released_usdc is None
    assert record is not None and record.status is S.FILLED
    assert ledger.open_orders == 0
    assert ledger.deployed == D("10.20")
    assert ledger.available == D("989.80")


def test_two_partial_fills_then_the_rest_ends_filled() -> None:
    intent = build_intent()
    ledger = reserve(intent)
    reports = [build_report(ReportKind.ACCEPTED, intent=intent)] + [
        build_report(ReportKind.FILL, intent=intent, matched_size=D(m), average_price=D("0.52"))
        for m in ("5", "12.5", "20")
    ]

    record, events = apply_all(ledger, reports)

    assert types_of(events) == ["OrderPlaced", "OrderPartialFill", "OrderPartialFill", "OrderFilled"]
    assert [e.matched_size for e in events] == [D(0), D("5"), D("12.5"), D("20")]
    assert record is not None and record.matched == D("20")
    assert ledger.positions[ASSET].shares == D("20")


def test_reject_releases_the_reserved_capital() -> None:
    intent = build_intent()
    ledger = reserve(intent)

    record, events = apply_all(
        ledger, [build_report(ReportKind.REJECTED, intent=intent, detail="not enough balance")]
    )

    assert types_of(events) == ["OrderRejected"]
    assert events[0].released_usdc == D("10.40")
    assert events[0].detail == "not enough balance"
    assert record is not None and record.status is S.REJECTED
    assert ledger.available == D("1000")


def test_a_lost_report_loses_the_order_and_releases_its_capital() -> None:
    intent = build_intent()
    ledger = reserve(intent)
    accepted = build_report(ReportKind.ACCEPTED, intent=intent)
    not_found = build_report(ReportKind.NOT_FOUND, intent=intent)

    record, events = apply_all(ledger, [accepted, not_found, not_found])
    assert types_of(events) == ["OrderPlaced"]
    assert ledger.reserved == D("10.40")

    lost = build_report(
        ReportKind.LOST, intent=intent, detail="not found 3 times in a row; not in the trades"
    )
    record, events = apply_all(ledger, [lost], record)

    assert types_of(events) == ["OrderLost"]
    assert events[0].released_usdc == D("10.40")
    assert events[0].detail == "not found 3 times in a row; not in the trades"
    assert record is not None and record.status is S.LOST
    assert ledger.reserved == 0 and ledger.available == D("1000")


def test_not_found_reports_alone_never_lose_an_order_they_only_count() -> None:
    # The executor decides LOST (three definitive not-founds AND the account's trades checked first): a
    # filled FAK can be "not found" for hours, so the lifecycle must not conclude on its own.
    intent = build_intent()
    ledger = reserve(intent)
    not_found = build_report(ReportKind.NOT_FOUND, intent=intent)

    record, events = apply_all(ledger, [build_report(ReportKind.ACCEPTED, intent=intent)] + [not_found] * 5)

    assert types_of(events) == ["OrderPlaced"]
    assert record is not None and record.status is S.PLACED and record.not_found_count == 5
    assert ledger.reserved == D("10.40")


@pytest.mark.parametrize("between", [ReportKind.ACCEPTED, ReportKind.UNKNOWN, ReportKind.FILL])
def test_a_found_report_between_not_founds_resets_the_count(between: ReportKind) -> None:
    intent = build_intent()
    ledger = reserve(intent)
    not_found = build_report(ReportKind.NOT_FOUND, intent=intent)
    found = build_report(between, intent=intent, matched_size=D("5") if between is ReportKind.FILL else D(0))

    record, _ = apply_all(
        ledger,
        [build_report(ReportKind.ACCEPTED, intent=intent), not_found, not_found, found, not_found, not_found],
    )

    assert record is not None and record.not_found_count == 2


def test_a_pending_order_never_seen_by_the_venue_can_be_lost() -> None:
    intent = build_intent()
    ledger = reserve(intent)

    record, events = apply_all(ledger, [build_report(ReportKind.LOST, intent=intent)])

    assert types_of(events) == ["OrderLost"]
    assert record is not None and record.status is S.LOST


def test_a_lost_order_filled_later_is_booked_and_its_capital_held_again() -> None:
    intent = build_intent()  # BUY 20 @ 0.52
    ledger = reserve(intent)
    record, _ = apply_all(
        ledger,
        [build_report(ReportKind.ACCEPTED, intent=intent), build_report(ReportKind.LOST, intent=intent)],
    )
    assert ledger.reserved == 0

    late_fill = build_report(
        ReportKind.FILL,
        intent=intent,
        matched_size=D("20"),
        average_price=D("0.50"),
        condition_id=CONDITION_ID,
    )
    record, events = apply_all(ledger, [late_fill], record)

    assert types_of(events) == ["OrderFilled"]
    assert record is not None and record.status is S.FILLED and record.matched == D("20")
    assert ledger.positions[ASSET].shares == D("20") and ledger.positions[ASSET].condition_id == CONDITION_ID
    assert ledger.positions[ASSET].cost_usdc == D("10.00")
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl


def test_a_lost_order_partly_filled_later_holds_capital_for_the_rest_again() -> None:
    intent = build_intent()
    ledger = reserve(intent)
    record, _ = apply_all(
        ledger,
        [build_report(ReportKind.ACCEPTED, intent=intent), build_report(ReportKind.LOST, intent=intent)],
    )

    late = build_report(ReportKind.FILL, intent=intent, matched_size=D("5"), average_price=D("0.52"))
    record, events = apply_all(ledger, [late], record)

    assert types_of(events) == ["OrderPartialFill"]
    assert record is not None and record.status is S.PARTIALLY_FILLED
    assert ledger.reserved == D("15") * D("0.52")


def test_an_ambiguous_submit_keeps_the_capital_reserved_and_emits_nothing() -> None:
    intent = build_intent()
    ledger = reserve(intent)

    record, events = apply_all(ledger, [build_report(ReportKind.UNKNOWN, intent=intent, detail="timeout")])

    assert events == []
    assert record is not None and record.status is S.PENDING
    assert ledger.reserved == D("10.40")


def test_a_sell_cancel_frees_the_shares_and_releases_no_usdc() -> None:
    intent = build_intent(side=Side.SELL, size=D("50"), limit_price=D("0.48"))
    ledger = reserve(intent)

    _, events = apply_all(
        ledger,
        [
            build_report(ReportKind.FILL, intent=intent, matched_size=D("20"), average_price=D("0.50")),
            build_report(ReportKind.CANCELLED, intent=intent, matched_size=D("20")),
        ],
    )

    assert types_of(events) == ["OrderPlaced", "OrderPartialFill", "OrderCancelled"]
    assert events[-1].released_usdc == D(0)
    assert ledger.sellable_shares(ASSET) == D("80")
    assert ledger.realised_pnl == D("20") * (D("0.50") - D("0.40"))


PAPER_SCENARIOS = {
    "fak-partial": (OrderType.FAK, [("0.50", "8")]),
    "fak-full": (OrderType.FAK, [("0.50", "100")]),
    "fak-none": (OrderType.FAK, [("0.60", "100")]),
    "fok-partial": (OrderType.FOK, [("0.50", "8")]),
    "gtc-partial": (OrderType.GTC, [("0.50", "8")]),
    "gtc-none": (OrderType.GTC, []),
    "no-book": (OrderType.FAK, None),
}


def paper_reports(order_type: OrderType, asks: list[tuple[str, str]] | None) -> tuple[OrderIntent, list]:
    book = None if asks is None else build_book(asks=asks)
    intent = build_intent_on_book(book, order_type=order_type)
    return intent, execute_on_paper(intent, "paper-x", sent_at_ms=NOW_MS, reported_at_ms=NOW_MS + 1)


@pytest.mark.parametrize("scenario", PAPER_SCENARIOS)
def test_reapplying_the_same_reports_yields_no_new_events_and_no_ledger_change(scenario: str) -> None:
    intent, reports = paper_reports(*PAPER_SCENARIOS[scenario])
    ledger = reserve(intent)
    record, events = apply_all(ledger, reports)
    assert events
    state, record_state = ledger.to_state(), record.to_state() if record else None

    record, again = apply_all(ledger, reports + list(reversed(reports)), record)

    assert again == []
    assert ledger.to_state() == state
    assert record is not None and record.to_state() == record_state


@pytest.mark.parametrize("scenario", PAPER_SCENARIOS)
def test_event_ids_are_deterministic_and_follow_the_order_and_sequence(scenario: str) -> None:
    runs = []
    for _ in range(2):
        intent, reports = paper_reports(*PAPER_SCENARIOS[scenario])
        runs.append(apply_all(reserve(intent), reports)[1])

    first, second = runs
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert [e.sequence for e in first] == list(range(1, len(first) + 1))
    assert [e.event_id for e in first] == [build_event_id("paper-x", e.sequence) for e in first]
    assert len({e.event_id for e in first}) == len(first)
    assert first == second


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("fak-partial", ["OrderPlaced", "OrderPartialFill", "OrderCancelled"]),
        ("fak-full", ["OrderPlaced", "OrderFilled"]),
        ("fak-none", ["OrderPlaced", "OrderCancelled"]),
        ("fok-partial", ["OrderPlaced", "OrderCancelled"]),
        ("gtc-partial", ["OrderPlaced", "OrderPartialFill"]),
        ("gtc-none", ["OrderPlaced"]),
        ("no-book", ["OrderRejected"]),
    ],
)
def test_paper_reports_drive_the_expected_lifecycle(scenario: str, expected: list[str]) -> None:
    intent, reports = paper_reports(*PAPER_SCENARIOS[scenario])
    ledger = reserve(intent)

    record, events = apply_all(ledger, reports)

    assert types_of(events) == expected
    assert record is not None
    if record.status in TERMINAL:
        assert ledger.open_orders == 0  # nothing stays reserved once an order is over
    else:
        assert ledger.reserved == (intent.size - record.matched) * intent.limit_price


def test_a_terminal_order_ignores_later_reports() -> None:
    intent = build_intent()
    ledger = reserve(intent)
    record, _ = apply_all(ledger, [build_report(ReportKind.REJECTED, intent=intent)])

    record, events = apply_all(
        ledger,
        [
            build_report(ReportKind.FILL, intent=intent, matched_size=D("20")),
            build_report(ReportKind.NOT_FOUND, intent=intent),
        ]
        * 3,
        record,
    )

    assert events == []
    assert record is not None and record.status is S.REJECTED
    assert ledger.deployed == 0


def test_event_carries_the_report_times_and_the_processing_time() -> None:
    intent = build_intent()
    report = build_report(ReportKind.ACCEPTED, intent=intent, sent_at_ms=NOW_MS + 5)

    _, events = apply_report(reserve(intent), None, report, 123_456)

    assert (events[0].received_at_ms, events[0].sent_at_ms, events[0].occurred_at_ms) == (
        intent.received_at_ms,
        NOW_MS + 5,
        123_456,
    )
    assert (events[0].order_id, events[0].intent_id, events[0].wallet_id) == (
        report.order_id,
        intent.intent_id,
        intent.wallet_id,
    )


def test_order_record_state_round_trips() -> None:
    record = OrderRecord("paper-1", S.PARTIALLY_FILLED, D("12.5"), 2, 1)

    assert OrderRecord.from_state(record.to_state()) == record


# --- property: any report sequence is handled without an illegal move -----------------------------------
REPORTS = st.lists(
    st.tuples(st.sampled_from(ReportKind), st.sampled_from(["0", "3", "7.5", "12", "20", "25"])),
    min_size=1,
    max_size=15,
)


@settings(max_examples=200, deadline=None)
@given(REPORTS)
def test_any_report_sequence_moves_legally_and_keeps_the_ledger_whole(
    steps: list[tuple[ReportKind, str]],
) -> None:
    intent = build_intent()
    ledger = reserve(intent)
    record: OrderRecord | None = None
    events: list[OrderEvent] = []
    matched = D(0)
    for number, (kind, size) in enumerate(steps):
        matched = max(matched, D(size))  # venue reports cumulative fills
        report = build_report(kind, intent=intent, matched_size=matched, average_price=D("0.50"))
        record, new = apply_report(ledger, record, report, NOW_MS + number)
        events.extend(new)

    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    statuses = [S.PENDING] + [e.status for e in events]
    for before, after in zip(statuses, statuses[1:], strict=False):
        assert after in {target for (source, _), target in TRANSITIONS.items() if source is before}
    # One ending at most, except that a LOST order may still be filled (by fills only) afterwards.
    assert sum(1 for e in events if e.status in TERMINAL and e.status is not S.LOST) <= 1
    for before, after in zip(events, events[1:], strict=False):
        if before.status is S.LOST:
            assert after.status in (S.PARTIALLY_FILLED, S.FILLED)
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl
    assert ledger.available >= 0 and ledger.reserved >= 0
    assert record is not None
    held = ledger.positions[ASSET].shares if ASSET in ledger.positions else D(0)
    assert held == record.matched <= intent.size
    if record.status in TERMINAL:
        assert ledger.reserved == 0


# --- a fill that failed on chain --------------------------------------------------------------------------
def test_a_fill_that_failed_on_chain_is_reversed_and_its_capital_given_back() -> None:
    intent = build_intent()  # BUY 20 @ 0.52
    ledger = reserve(intent)
    filled = build_report(ReportKind.FILL, intent=intent, matched_size=D("20"), average_price=D("0.50"))
    failed = build_report(
        ReportKind.FILL_REVERSED,
        intent=intent,
        matched_size=D("0"),
        average_price=D("0.50"),
        detail="trade t1 FAILED",
    )

    record, events = apply_all(ledger, [filled, failed])

    assert types_of(events) == ["OrderPlaced", "OrderFilled", "OrderFillReversed"]
    assert events[-1].matched_size == 0 and events[-1].detail == "20 shares failed on chain: trade t1 FAILED"
    assert record is not None and record.matched == 0
    assert ASSET not in ledger.positions and ledger.available == D("1000") and ledger.reserved == 0


def test_part_of_the_fills_failing_keeps_the_rest_of_the_position() -> None:
    intent = build_intent()
    ledger = reserve(intent)
    filled = build_report(ReportKind.FILL, intent=intent, matched_size=D("20"), average_price=D("0.50"))
    failed = build_report(
        ReportKind.FILL_REVERSED, intent=intent, matched_size=D("12"), average_price=D("0.50")
    )

    apply_all(ledger, [filled, failed])

    assert ledger.positions[ASSET].shares == D("12") and ledger.positions[ASSET].cost_usdc == D("6.00")
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl


def test_a_failed_sale_gives_the_shares_back_and_takes_its_profit_back() -> None:
    intent = build_intent(side=Side.SELL, limit_price=D("0.60"), size=D("20"))
    ledger = reserve(intent)  # holds 100 shares bought at 0.40
    sold = build_report(ReportKind.FILL, intent=intent, matched_size=D("20"), average_price=D("0.60"))
    failed = build_report(
        ReportKind.FILL_REVERSED, intent=intent, matched_size=D("0"), average_price=D("0.60")
    )

    record, _ = apply_all(ledger, [sold])
    assert ledger.realised_pnl == D("4.00")
    apply_all(ledger, [failed], record)

    assert ledger.realised_pnl == 0
    assert ledger.positions[ASSET].shares == D("100") and ledger.positions[ASSET].cost_usdc == D("40.00")
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl


def test_a_reversal_report_that_lowers_nothing_changes_nothing() -> None:
    intent = build_intent()
    ledger = reserve(intent)
    filled = build_report(ReportKind.FILL, intent=intent, matched_size=D("20"), average_price=D("0.50"))
    record, _ = apply_all(ledger, [filled])

    again = build_report(
        ReportKind.FILL_REVERSED, intent=intent, matched_size=D("20"), average_price=D("0.50")
    )
    record, events = apply_all(ledger, [again], record)

    assert events == [] and ledger.positions[ASSET].shares == D("20")


# --- a re-computed evaluation that differs from what was first sent (a crash, then a changed wallet) --------
def test_a_fill_for_an_order_the_ledger_never_reserved_books_its_position_and_keeps_the_identity() -> None:
    # The intent was sent, the worker died before saving its reservation, and the re-computed evaluation
    # skipped (the wallet's configuration changed meanwhile): the reports still book the position.
    intent = build_intent_on_book(build_book(asks=[("0.50", "8")]), size=D("20"), limit_price=D("0.52"))
    ledger = WalletLedger(D("1000"))
    reports = execute_on_paper(intent, "paper-1", sent_at_ms=NOW_MS, reported_at_ms=NOW_MS + 1)

    record, events = apply_all(ledger, reports)

    assert types_of(events) == ["OrderPlaced", "OrderPartialFill", "OrderCancelled"]
    assert record is not None and record.status is S.CANCELLED
    assert ledger.positions[ASSET].shares == D("8") and ledger.positions[ASSET].condition_id == CONDITION_ID
    assert ledger.reservations == {} and ledger.reserved == 0
    assert events[-1].released_usdc == D("12") * D("0.52")
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl


def test_a_resting_order_the_ledger_never_reserved_holds_its_capital_until_it_ends() -> None:
    intent = build_intent(order_type=OrderType.GTC, size=D("10"), limit_price=D("0.40"))
    ledger = WalletLedger(D("1000"))

    apply_all(ledger, [build_report(ReportKind.ACCEPTED, intent=intent)])

    assert ledger.reserved == D("4.00") and ledger.available == D("996")


@pytest.mark.parametrize("reserved_size", ["30", "12"])
def test_a_reservation_sized_for_another_order_follows_the_placed_order_and_nothing_stays_reserved(
    reserved_size: str,
) -> None:
    intent = build_intent(size=D("20"), limit_price=D("0.50"))
    ledger = WalletLedger(D("1000"))
    ledger.reserve(
        intent.intent_id,
        asset=intent.asset,
        condition_id=intent.condition_id,
        side=intent.side,
        size=D(reserved_size),
        limit_price=D("0.55"),
    )
    fill = build_report(ReportKind.FILL, intent=intent, matched_size=D("20"), average_price=D("0.50"))

    record, events = apply_all(ledger, [fill])

    assert record is not None and record.status is S.FILLED
    assert ledger.reservations == {}
    assert ledger.positions[ASSET].shares == D("20") and ledger.deployed == D("10.00")
    assert ledger.available == D("990")


def test_a_rejection_for_an_order_the_ledger_never_reserved_changes_nothing() -> None:
    intent = build_intent()
    ledger = WalletLedger(D("1000"))

    _, events = apply_all(ledger, [build_report(ReportKind.REJECTED, intent=intent, detail="no")])

    assert types_of(events) == ["OrderRejected"] and ledger.reservations == {}
    assert ledger.available == D("1000")
