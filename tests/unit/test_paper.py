"""Paper execution: what FAK, FOK, GTC and GTD orders get against the book levels their intent carries (those
the liquidity gate saw), as executor reports."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polycopy.polymarket.books import parse_book
from processors.core.ids import build_report_id
from processors.core.paper import RestingOrder, execute_on_paper, expire_resting, fill_resting, rest_on_paper
from schemas.base import Side
from schemas.orders import ExecutionMode, OrderIntent, OrderType, ReportKind
from tests.builders import NOW_MS, build_book, build_intent_on_book, load_fixture_json

D = Decimal
ORDER_ID = "paper-test-order"
THIN = [("0.50", "8")]  # 8 of the intent's 20 shares at or under its 0.52 limit
DEEP = [("0.50", "12"), ("0.51", "100")]
NONE_CROSSING = [("0.53", "100")]


def run(order_type: OrderType, asks: list[tuple[str, str]] | None, **intent_fields: object) -> list:
    book = None if asks is None else build_book(asks=asks)
    intent = build_intent_on_book(
        book, order_type=order_type, expiry_secs=60 if order_type is OrderType.GTD else None, **intent_fields
    )
    return execute_on_paper(intent, ORDER_ID, sent_at_ms=NOW_MS + 1, reported_at_ms=NOW_MS + 2)


def outcome(reports: list) -> list[tuple[str, Decimal, Decimal | None, str]]:
    return [(r.kind.value, r.matched_size, r.average_price, r.detail) for r in reports]


@pytest.mark.parametrize(
    ("order_type", "asks", "expected"),
    [
        (OrderType.FAK, DEEP, [("fill", D("20"), D("0.504"), "")]),
        (
            OrderType.FAK,
            THIN,
            [("fill", D("8"), D("0.5"), ""), ("cancelled", D("8"), D("0.5"), "FAK remainder killed")],
        ),
        (OrderType.FAK, NONE_CROSSING, [("cancelled", D(0), None, "FAK remainder killed")]),
        (OrderType.FOK, DEEP, [("fill", D("20"), D("0.504"), "")]),
        (OrderType.FOK, THIN, [("cancelled", D(0), None, "FOK could not be fully filled")]),
        (OrderType.FOK, NONE_CROSSING, [("cancelled", D(0), None, "FOK could not be fully filled")]),
        (OrderType.GTC, DEEP, [("fill", D("20"), D("0.504"), "")]),
        (OrderType.GTC, THIN, [("fill", D("8"), D("0.5"), "")]),  # the rest rests on the book
        (OrderType.GTC, NONE_CROSSING, [("accepted", D(0), None, "resting")]),
        (OrderType.GTD, THIN, [("fill", D("8"), D("0.5"), "")]),
        (OrderType.GTD, NONE_CROSSING, [("accepted", D(0), None, "resting")]),
    ],
    ids=lambda v: v.value if isinstance(v, OrderType) else None,
)
def test_each_time_in_force_gets_its_outcome_against_the_book(
    order_type: OrderType,
    asks: list[tuple[str, str]],
    expected: list[tuple[str, Decimal, Decimal | None, str]],
) -> None:
    assert outcome(run(order_type, asks)) == expected


@pytest.mark.parametrize("order_type", list(OrderType))
def test_an_intent_decided_without_a_book_is_what_the_venue_would_reject(order_type: OrderType) -> None:
    assert outcome(run(order_type, None)) == [("rejected", D(0), None, "no order book for this token")]


def test_a_sell_takes_the_bids_down_to_its_limit() -> None:
    book = build_book(asks=[("0.10", "1000")], bids=[("0.49", "10"), ("0.48", "10"), ("0.47", "1000")])
    intent = build_intent_on_book(book, side=Side.SELL, size=D("30"), limit_price=D("0.48"))

    reports = execute_on_paper(intent, ORDER_ID, sent_at_ms=1, reported_at_ms=2)

    assert outcome(reports) == [
        ("fill", D("20"), D("0.485"), ""),
        ("cancelled", D("20"), D("0.485"), "FAK remainder killed"),
    ]


def test_a_buy_on_the_real_book_fills_at_its_cheapest_ask() -> None:
    book = parse_book(load_fixture_json("ra1nty__polymarket-cli/book.json"))
    intent = build_intent_on_book(
        book, asset=book.asset, size=D("100"), limit_price=D("0.5"), tick_size=D("0.001")
    )

    reports = execute_on_paper(intent, ORDER_ID, sent_at_ms=1, reported_at_ms=2)

    assert outcome(reports) == [("fill", D("100"), D("0.001"), "")]


def test_reports_describe_the_intent_and_carry_both_times() -> None:
    intent = build_intent_on_book(build_book(asks=THIN), order_type=OrderType.FAK)

    reports = execute_on_paper(intent, ORDER_ID, sent_at_ms=111, reported_at_ms=222)

    for report in reports:
        assert (report.intent_id, report.wallet_id, report.order_id, report.mode) == (
            intent.intent_id,
            intent.wallet_id,
            ORDER_ID,
            ExecutionMode.PAPER,
        )
        assert (report.side, report.asset, report.size, report.limit_price) == (
            intent.side,
            intent.asset,
            intent.size,
            intent.limit_price,
        )
        assert (report.received_at_ms, report.sent_at_ms, report.reported_at_ms) == (
            intent.received_at_ms,
            111,
            222,
        )
        assert report.report_id == build_report_id(
            ORDER_ID, report.kind.value, report.matched_size, report.detail
        )
    assert len({report.report_id for report in reports}) == len(reports)


def test_the_same_intent_and_book_give_identical_reports() -> None:
    assert run(OrderType.FAK, THIN) == run(OrderType.FAK, THIN)


@given(
    order_type=st.sampled_from(OrderType),
    depth=st.decimals("0", "40", places=2),
    size=st.decimals("0.01", "30", places=2),
)
def test_paper_never_fills_more_than_ordered_or_than_the_book_holds_at_the_limit(
    order_type: OrderType, depth: Decimal, size: Decimal
) -> None:
    reports = run(order_type, [("0.51", str(depth)), ("0.60", "1000")], size=size)

    fills = [r for r in reports if r.kind is ReportKind.FILL]
    matched = fills[-1].matched_size if fills else D(0)
    assert matched == (min(size, depth) if order_type is not OrderType.FOK or depth >= size else D(0))
    if order_type in (OrderType.FAK, OrderType.FOK):
        assert (reports[-1].kind is ReportKind.CANCELLED) is (matched < size)
    else:
        assert all(r.kind is not ReportKind.CANCELLED for r in reports)
    assert all(r.average_price in (None, D("0.51")) for r in reports)


def test_the_fill_takes_the_levels_the_gate_saw_not_the_book_of_the_moment() -> None:
    """The gate saw 8 shares at 0.50; whatever the book holds when the order is sent, paper fills those."""
    seen_by_gate = build_book(asks=THIN)
    intent = build_intent_on_book(seen_by_gate, size=D("20"), limit_price=D("0.52"))

    assert intent.book_levels == seen_by_gate.levels_within(Side.BUY, D("0.52"))
    assert outcome(execute_on_paper(intent, ORDER_ID, sent_at_ms=1, reported_at_ms=2)) == [
        ("fill", D("8"), D("0.5"), ""),
        ("cancelled", D("8"), D("0.5"), "FAK remainder killed"),
    ]


def test_the_levels_survive_the_intents_trip_through_the_topic() -> None:
    intent = build_intent_on_book(build_book(asks=DEEP), order_type=OrderType.FAK)

    again = OrderIntent.model_validate_json(intent.to_bytes())

    assert again == intent and again.book_levels is not None
    assert execute_on_paper(again, ORDER_ID, sent_at_ms=1, reported_at_ms=2) == execute_on_paper(
        intent, ORDER_ID, sent_at_ms=1, reported_at_ms=2
    )


# --- resting orders: fills as the book moves, expiry, and the paper limit of a GTC (issue 8, defect 5) -----
def resting(order_type: OrderType, asks: list[tuple[str, str]], **fields: object):  # type: ignore[no-untyped-def]
    intent = build_intent_on_book(
        build_book(asks=asks),
        order_type=order_type,
        expiry_secs=60 if order_type is OrderType.GTD else None,
        **fields,
    )
    reports = execute_on_paper(intent, ORDER_ID, sent_at_ms=NOW_MS + 1, reported_at_ms=NOW_MS + 2)
    return rest_on_paper(intent, ORDER_ID, reports, gtc_max_secs=3600)


def test_a_gtc_remainder_fills_when_new_liquidity_reaches_its_limit_and_only_new_liquidity() -> None:
    order = resting(OrderType.GTC, THIN)  # 8 of 20 filled at 0.50, 12 rest at 0.52
    assert order is not None and (order.matched, order.remaining) == (D("8"), D("12"))

    same, none = fill_resting(order, build_book(asks=THIN), now_ms=NOW_MS + 10)
    assert none == [] and same.matched == D("8")  # the 8 at 0.50 are still the ones it took
    away, none = fill_resting(same, build_book(asks=[("0.55", "100")]), now_ms=NOW_MS + 20)
    assert none == [] and away.matched == D("8")
    filled, [report] = fill_resting(
        away, build_book(asks=[("0.50", "5"), ("0.52", "100")]), now_ms=NOW_MS + 30
    )

    # 5 at 0.50 (the earlier ones left the book) and 7 at 0.52: the whole 20, cumulative average
    assert (report.kind, report.matched_size, report.average_price) == (ReportKind.FILL, D("20"), D("0.507"))
    assert (filled.remaining, report.order_id, report.reported_at_ms) == (D(0), ORDER_ID, NOW_MS + 30)
    assert report.report_id == build_report_id(ORDER_ID, "fill", D("20"))


def test_a_resting_sell_fills_against_new_bids_at_or_above_its_limit() -> None:
    intent = build_intent_on_book(
        build_book(bids=[("0.40", "100")]), side=Side.SELL, limit_price=D("0.45"), order_type=OrderType.GTC
    )
    reports = execute_on_paper(intent, ORDER_ID, sent_at_ms=NOW_MS, reported_at_ms=NOW_MS)
    order = rest_on_paper(intent, ORDER_ID, reports, gtc_max_secs=3600)
    assert order is not None and [r.kind for r in reports] == [ReportKind.ACCEPTED]

    _, [report] = fill_resting(order, build_book(bids=[("0.46", "6"), ("0.44", "100")]), now_ms=NOW_MS + 5)

    assert (report.matched_size, report.average_price) == (D("6"), D("0.46"))


@pytest.mark.parametrize(
    ("order_type", "lifetime_ms", "detail"),
    [
        (OrderType.GTD, 60_000, "GTD expired"),
        (OrderType.GTC, 3_600_000, "GTC paper order ended at the paper limit"),
    ],
)
def test_a_resting_order_ends_when_its_time_is_up_with_what_it_filled(
    order_type: OrderType, lifetime_ms: int, detail: str
) -> None:
    order = resting(order_type, THIN)
    assert order is not None

    assert expire_resting(order, now_ms=NOW_MS + lifetime_ms - 1) is None
    report = expire_resting(order, now_ms=NOW_MS + lifetime_ms)

    assert report is not None
    assert (report.kind, report.matched_size, report.average_price, report.detail) == (
        ReportKind.CANCELLED,
        D("8"),
        D("0.5"),
        detail,
    )


def test_only_a_gtc_or_gtd_remainder_rests() -> None:
    assert resting(OrderType.FAK, THIN) is None
    assert resting(OrderType.GTC, DEEP) is None  # filled at once
    assert resting(OrderType.GTC, NONE_CROSSING) is not None
    intent = build_intent_on_book(None, order_type=OrderType.GTC)  # no book: rejected, never rests
    reports = execute_on_paper(intent, ORDER_ID, sent_at_ms=NOW_MS, reported_at_ms=NOW_MS)
    assert rest_on_paper(intent, ORDER_ID, reports, gtc_max_secs=3600) is None


def test_a_resting_order_round_trips_through_its_stored_state() -> None:
    order = resting(OrderType.GTD, THIN)
    assert order is not None
    assert RestingOrder.from_state(json.loads(json.dumps(order.to_state()))) == order
