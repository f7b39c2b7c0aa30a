"""Reconciliation: venue order status + account fills -> observations, table-driven."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processors.core.reconcile import (
    KnownOrder,
    advance_known,
    observe_placement,
    reconcile_order,
    summarise_fills,
)
from schemas.base import Side
from schemas.orders import ReportKind
from schemas.venue import FillStatus, OrderFill, Placement, PlacementKind, RejectReason, VenueOrder
from schemas.venue import VenueOrderStatus as V

D = Decimal
F = FillStatus
ID = "0xabc"


def fill(trade: str, size: str, status: FillStatus, price: str = "0.5", order_id: str = ID) -> OrderFill:
    return OrderFill(trade, order_id, status, Side.BUY, "tok", D(size), D(price), 0, True)


def order(status: V, matched: str, size: str = "10") -> VenueOrder:
    return VenueOrder(ID, status, Side.BUY, "tok", D(size), D(matched), D("0.5"))


def test_a_trade_seen_at_several_statuses_counts_once_at_its_latest() -> None:
    summary = summarise_fills(
        ID,
        [
            fill("t1", "4", F.MATCHED),
            fill("t1", "4", F.MINED),
            fill("t1", "4", F.CONFIRMED),
            fill("t2", "6", F.MATCHED),
        ],
    )

    assert (summary.matched, summary.confirmed, summary.failed) == (D(10), D(4), D(0))


def test_a_failed_trade_wins_over_its_earlier_statuses_and_counts_nothing() -> None:
    summary = summarise_fills(
        ID,
        [
            fill("t1", "4", F.MATCHED),
            fill("t1", "4", F.FAILED),
            fill("t9", "1", F.MATCHED, order_id="0xother"),
        ],
    )

    assert (summary.matched, summary.failed, summary.failed_trades) == (D(0), D(4), ("t1",))


KNOWN = KnownOrder(ID, D(10), accepted=True)
CASES = [
    ("resting, nothing new", KNOWN, order(V.LIVE, "0"), [], []),
    ("first sight of a live order", KnownOrder(ID, D(10)), order(V.LIVE, "0"), [], [ReportKind.ACCEPTED]),
    ("partial fill", KNOWN, order(V.LIVE, "4"), [fill("t1", "4", F.MATCHED)], [ReportKind.FILL]),
    ("fill seen in the order before the trades", KNOWN, order(V.LIVE, "4"), [], [ReportKind.FILL]),
    ("full fill", KNOWN, order(V.MATCHED, "10"), [fill("t1", "10", F.MATCHED)], [ReportKind.FILL]),
    (
        "confirmed",
        KnownOrder(ID, D(10), D(10), accepted=True, finished=True),
        order(V.MATCHED, "10"),
        [fill("t1", "10", F.CONFIRMED)],
        [ReportKind.FILL_CONFIRMED],
    ),
    (
        "a fill fails after being reported",
        KnownOrder(ID, D(10), D(10), accepted=True, finished=True),
        order(V.MATCHED, "10"),
        [fill("t1", "10", F.FAILED)],
        [ReportKind.FILL_REVERSED],
    ),
    ("cancelled with nothing filled", KNOWN, order(V.CANCELED, "0"), [], [ReportKind.CANCELLED]),
    (
        "cancelled after a partial fill",
        KNOWN,
        order(V.CANCELED, "3"),
        [fill("t1", "3", F.MINED)],
        [ReportKind.FILL, ReportKind.CANCELLED],
    ),
    ("delayed then unmatched", KNOWN, order(V.UNMATCHED, "0"), [], [ReportKind.CANCELLED]),
    ("venue cancel on resolution", KNOWN, order(V.CANCELED_MARKET_RESOLVED, "0"), [], [ReportKind.CANCELLED]),
    (
        "FAK matched in part: the rest is killed",
        KNOWN,
        order(V.MATCHED, "6"),
        [fill("t1", "6", F.MATCHED)],
        [ReportKind.FILL, ReportKind.CANCELLED],
    ),
    ("not found but in the trades", KNOWN, None, [fill("t1", "10", F.MATCHED)], [ReportKind.FILL]),
    ("not found, not in the trades", KNOWN, None, [], []),
]


@pytest.mark.parametrize(
    ("known", "venue_order", "fills", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_reconcile_reports_what_changed(
    known: KnownOrder, venue_order: VenueOrder | None, fills: list[OrderFill], expected: list[ReportKind]
) -> None:
    observations = reconcile_order(known, venue_order, fills)

    assert [o.kind for o in observations] == expected
    for observation in observations:
        known = advance_known(known, observation)
    assert reconcile_order(known, venue_order, fills) == []  # reported once: the next pass is quiet


def test_a_reversed_fill_reports_the_lower_total_and_names_the_trade() -> None:
    known = KnownOrder(ID, D(10), D(10), accepted=True)
    fills = [fill("t1", "4", F.FAILED), fill("t2", "6", F.CONFIRMED, price="0.6")]

    observations = reconcile_order(known, order(V.MATCHED, "10"), fills)

    reversal = next(o for o in observations if o.kind is ReportKind.FILL_REVERSED)
    # The lower total, and the price of the shares that failed (what the ledger gives back).
    assert reversal.matched == D(6) and reversal.average_price == D("0.5") and "t1" in reversal.detail


@pytest.mark.parametrize(
    ("placement", "kills", "expected"),
    [
        (Placement(ID, PlacementKind.ACCEPTED, V.LIVE), False, [ReportKind.ACCEPTED]),
        (Placement(ID, PlacementKind.ACCEPTED, V.DELAYED), True, [ReportKind.ACCEPTED]),
        (
            Placement(ID, PlacementKind.ACCEPTED, V.MATCHED, D(10), D("0.5")),
            True,
            [ReportKind.ACCEPTED, ReportKind.FILL],
        ),
        (
            Placement(ID, PlacementKind.ACCEPTED, V.MATCHED, D(4), D("0.5")),
            True,
            [ReportKind.ACCEPTED, ReportKind.FILL, ReportKind.CANCELLED],
        ),
        (
            Placement(ID, PlacementKind.REJECTED, reject_reason=RejectReason.NO_MATCH),
            True,
            [ReportKind.REJECTED],
        ),
        (Placement(ID, PlacementKind.UNKNOWN, detail="timeout"), True, [ReportKind.UNKNOWN]),
        (Placement(ID, PlacementKind.DEFERRED), True, []),
        (Placement(ID, PlacementKind.DUPLICATE), True, []),
    ],
)
def test_a_placement_is_reported_as_the_venue_answered(
    placement: Placement, kills: bool, expected: list[ReportKind]
) -> None:
    assert [o.kind for o in observe_placement(placement, D(10), kills)] == expected
