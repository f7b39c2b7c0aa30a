"""The CLOB order API's answers classified: placements, look-ups, calls, orders and account trades."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from polycopy.polymarket.http import HttpAnswer
from polycopy.polymarket.orders import (
    classify_call,
    classify_lookup,
    classify_placement,
    parse_account_fills,
    parse_order,
)
from schemas.base import Side
from schemas.venue import CallResult, FillStatus, LookupKind, PlacementKind, RejectReason, VenueOrderStatus

ID = "0x" + "ab" * 32
FAK_NO_MATCH = (
    "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found."
)


def answer(
    status: int | None, body: Any = None, retry_after: float | None = None, error: str = ""
) -> HttpAnswer:
    return HttpAnswer(status, body, retry_after, error)


@pytest.mark.parametrize(
    ("reply", "kind", "reason"),
    [
        (answer(200, {"success": True, "status": "live", "orderID": ID}), PlacementKind.ACCEPTED, None),
        (
            answer(200, {"success": True, "status": "delayed", "makingAmount": "", "takingAmount": ""}),
            PlacementKind.ACCEPTED,
            None,
        ),
        (answer(400, {"error": FAK_NO_MATCH, "orderID": ID}), PlacementKind.REJECTED, RejectReason.NO_MATCH),
        (
            answer(400, {"error": "order couldn't be fully filled. FOK orders are fully filled or killed."}),
            PlacementKind.REJECTED,
            RejectReason.NO_MATCH,
        ),
        (
            answer(400, {"error": "not enough balance / allowance"}),
            PlacementKind.REJECTED,
            RejectReason.BALANCE,
        ),
        (
            answer(400, {"error": "invalid post-only order: order crosses book"}),
            PlacementKind.REJECTED,
            RejectReason.POST_ONLY_CROSSES,
        ),
        (
            answer(400, {"error": "the market is not yet ready to process new orders"}),
            PlacementKind.REJECTED,
            RejectReason.MARKET_NOT_READY,
        ),
        (answer(400, {"error": "something else"}), PlacementKind.REJECTED, RejectReason.INVALID),
        (answer(400, {"error": f"order {ID} is invalid. Duplicated."}), PlacementKind.DUPLICATE, None),
        (
            answer(200, {"success": False, "errorMsg": f"order {ID} is invalid. Duplicated."}),
            PlacementKind.DUPLICATE,
            None,
        ),
        (answer(425, {"error": "too early"}), PlacementKind.DEFERRED, None),
        (answer(429, "Too Many Requests", 3.0), PlacementKind.DEFERRED, None),
        (answer(503, {"error": "trading is disabled"}), PlacementKind.DEFERRED, None),
        (
            answer(503, "<html>Service Unavailable</html>"),
            PlacementKind.UNKNOWN,
            None,
        ),  # a proxy: fate unknown
        (answer(500, {"error": "Internal Server Error"}), PlacementKind.UNKNOWN, None),
        (answer(502, "Bad Gateway"), PlacementKind.UNKNOWN, None),
        (answer(None, error="timeout"), PlacementKind.UNKNOWN, None),
        (answer(None, error="network"), PlacementKind.UNKNOWN, None),  # reset after sending
        (answer(None, error="connect"), PlacementKind.DEFERRED, None),  # never reached the venue
    ],
)
def test_each_post_order_answer_is_classified_as_the_venue_means_it(
    reply: HttpAnswer, kind: PlacementKind, reason: RejectReason | None
) -> None:
    placement = classify_placement(ID, Side.BUY, reply)

    assert placement.kind is kind and placement.reject_reason is reason and placement.order_id == ID


def test_matched_amounts_give_shares_and_price_from_the_answer_not_the_request() -> None:
    body = {
        "success": True,
        "status": "matched",
        "makingAmount": "2.75",
        "takingAmount": "5.288",
        "tradeIDs": ["t"],
    }

    buy = classify_placement(ID, Side.BUY, answer(200, body))
    sell = classify_placement(
        ID, Side.SELL, answer(200, {**body, "makingAmount": "5", "takingAmount": "2.6"})
    )

    assert buy.matched_size == Decimal("5.288") and buy.venue_status is VenueOrderStatus.MATCHED
    assert buy.average_price == Decimal("2.75") / Decimal("5.288") and buy.trade_ids == ("t",)
    assert (sell.matched_size, sell.average_price) == (Decimal(5), Decimal("0.52"))


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (answer(404, {"error": "Unable to find requested resource"}), LookupKind.NOT_FOUND),
        (answer(200, None), LookupKind.NOT_FOUND),
        (answer(200, ""), LookupKind.NOT_FOUND),
        (answer(200, {}), LookupKind.NOT_FOUND),
        (answer(200, "null"), LookupKind.NOT_FOUND),
        (answer(500), LookupKind.UNAVAILABLE),
        (answer(503, {"error": "trading is disabled"}), LookupKind.UNAVAILABLE),
        (answer(425), LookupKind.UNAVAILABLE),
        (answer(429, retry_after=1.0), LookupKind.UNAVAILABLE),
        (answer(None, error="timeout"), LookupKind.UNAVAILABLE),
        (answer(401, {"error": "Unauthorized/Invalid api key"}), LookupKind.UNAVAILABLE),
    ],
)
def test_not_found_is_definitive_only_for_404_or_the_venues_empty_answer(
    reply: HttpAnswer, kind: LookupKind
) -> None:
    assert classify_lookup(reply).kind is kind


@pytest.mark.parametrize(
    ("reply", "result"),
    [
        (answer(200, {}), CallResult.ANSWERED),
        (answer(400, {"error": "x"}), CallResult.ANSWERED),
        (answer(404), CallResult.ANSWERED),
        (answer(425), CallResult.ENGINE_RESTARTING),
        (answer(429, retry_after=2.0), CallResult.THROTTLED),
        (answer(503, {"error": "trading is disabled"}), CallResult.CANCEL_ONLY),
        (answer(503, "down"), CallResult.FAILED),
        (answer(500), CallResult.FAILED),
        (answer(None, error="timeout"), CallResult.FAILED),
    ],
)
def test_each_answer_counts_for_the_breaker_as_it_should(reply: HttpAnswer, result: CallResult) -> None:
    outcome = classify_call(reply)
    assert outcome.result is result and outcome.retry_after_secs == reply.retry_after_secs


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ORDER_STATUS_LIVE", VenueOrderStatus.LIVE),
        ("LIVE", VenueOrderStatus.LIVE),
        ("Matched", VenueOrderStatus.MATCHED),
        ("ORDER_STATUS_CANCELED_MARKET_RESOLVED", VenueOrderStatus.CANCELED_MARKET_RESOLVED),
        ("INVALID", VenueOrderStatus.INVALID),
    ],
)
def test_order_statuses_are_read_in_every_spelling(status: str, expected: VenueOrderStatus) -> None:
    row = {
        "id": ID,
        "status": status,
        "side": "BUY",
        "asset_id": "1",
        "original_size": "10",
        "size_matched": "5.28846",
        "price": "0.55",
        "created_at": 1700000000,
    }

    order = parse_order(row)

    assert order is not None and order.status is expected and order.size_matched == Decimal("5.28846")
    assert order.created_at_ms == 1_700_000_000_000


def trade_row(**overrides: Any) -> dict[str, Any]:
    row = {
        "id": "trade-1",
        "taker_order_id": ID,
        "asset_id": "1",
        "side": "BUY",
        "size": "10",
        "price": "0.5",
        "status": "TRADE_STATUS_MINED",
        "match_time": "1700000000",
        "trader_side": "TAKER",
        "owner": "our-key",
        "maker_orders": [
            {
                "order_id": "0xtheirs",
                "owner": "their-key",
                "maker_address": "0xdead",
                "matched_amount": "10",
                "price": "0.5",
                "side": "SELL",
                "asset_id": "1",
            }
        ],
    }
    return {**row, **overrides}


def test_as_taker_our_fill_is_the_taker_order_and_other_makers_are_not_ours() -> None:
    fills = parse_account_fills(trade_row(), "our-key", "0xfunder")

    assert [(f.order_id, f.size, f.status, f.taker) for f in fills] == [
        (ID, Decimal(10), FillStatus.MINED, True)
    ]
    assert fills[0].match_time_ms == 1_700_000_000_000


def test_as_maker_our_fill_is_our_maker_order_with_its_own_amount_and_side() -> None:
    ours = {
        "order_id": "0xours",
        "owner": "our-key",
        "maker_address": "0xFunder",
        "matched_amount": "3",
        "price": "0.49",
        "side": "BUY",
        "asset_id": "1",
    }
    row = trade_row(
        trader_side="MAKER", side="SELL", taker_order_id="0xtaker", maker_orders=[ours], status="FAILED"
    )

    fills = parse_account_fills(row, "our-key", "0xfunder")

    assert [(f.order_id, f.size, f.price, f.side, f.status, f.taker) for f in fills] == [
        ("0xours", Decimal(3), Decimal("0.49"), Side.BUY, FillStatus.FAILED, False)
    ]
