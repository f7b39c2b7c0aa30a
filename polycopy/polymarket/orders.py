"""The CLOB order API's answers as values: small pure predicates that classify each answer (the venue's
statuses, messages and traps, reference sections 3.7, 3.8 and 6), and parsers of orders and account trades.

Classification follows the venue, not HTTP folklore: a FAK that matched nothing is a 400 carrying an order id;
a duplicate is a 400 that proves the order is already there; 425 (engine restart), 429 (throttled) and the
venue's own 503 (cancel-only) are definitive "not now" answers; any other 5xx, a time-out or a reset on a POST
leaves the order's fate unknown. "Not found" counts only for a 404 or the venue's empty answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from polycopy.polymarket.http import HttpAnswer
from schemas.base import Side
from schemas.venue import (
    CallOutcome,
    CallResult,
    CancelResult,
    FillStatus,
    LookupKind,
    OrderFill,
    OrderLookup,
    Placement,
    PlacementKind,
    RejectReason,
    VenueOrder,
    VenueOrderStatus,
)

ZERO = Decimal(0)
END_CURSOR = "LTE="
FIRST_CURSOR = "MA=="
_ACCEPTED_STATUSES = {"live": VenueOrderStatus.LIVE, "matched": VenueOrderStatus.MATCHED}
_ACCEPTED_STATUSES["delayed"] = VenueOrderStatus.DELAYED
# The venue's rejection texts (reference 3.7), most specific first.
_REJECT_MESSAGES: tuple[tuple[str, RejectReason], ...] = (
    ("no orders found to match", RejectReason.NO_MATCH),
    ("couldn't be fully filled", RejectReason.NO_MATCH),
    ("could not be fully filled", RejectReason.NO_MATCH),
    ("not enough balance", RejectReason.BALANCE),
    ("allowance", RejectReason.BALANCE),
    ("crosses book", RejectReason.POST_ONLY_CROSSES),
    ("not yet ready", RejectReason.MARKET_NOT_READY),
)
_CANCEL_ONLY_MESSAGES = ("trading is disabled", "cancel-only", "cancel only")


def error_message(body: Any) -> str:
    """The venue's error text from a body (`{"error": ...}`, `{"errorMsg": ...}`, or plain text)."""
    if isinstance(body, Mapping):
        for field in ("error", "errorMsg", "message"):
            if body.get(field):
                return str(body[field])
        return ""
    return str(body or "")


def is_duplicate(message: str) -> bool:
    """The venue already holds an order with this hash ("order 0x... is invalid. Duplicated.")."""
    return "duplicated" in message.lower()


def classify_reject_reason(message: str) -> RejectReason:
    """The reason behind a definitive refusal, from the venue's message."""
    lowered = message.lower()
    return next((reason for text, reason in _REJECT_MESSAGES if text in lowered), RejectReason.INVALID)


def is_venue_cancel_only(answer: HttpAnswer) -> bool:
    """A 503 in the venue's own words (trading disabled / cancel-only), not a proxy's outage page."""
    return answer.status == 503 and any(
        text in error_message(answer.body).lower() for text in _CANCEL_ONLY_MESSAGES
    )


def classify_call(answer: HttpAnswer) -> CallOutcome:
    """What one answer means to the circuit breaker of its endpoint group."""
    status = answer.status
    if status is None:
        result = CallResult.FAILED
    elif status == 425:
        result = CallResult.ENGINE_RESTARTING
    elif status == 429:
        result = CallResult.THROTTLED
    elif status == 503:
        result = CallResult.CANCEL_ONLY if is_venue_cancel_only(answer) else CallResult.FAILED
    elif status >= 500:
        result = CallResult.FAILED
    else:
        result = CallResult.ANSWERED
    return CallOutcome(result, status, answer.retry_after_secs)


def classify_placement(order_id: str, side: Side, answer: HttpAnswer) -> Placement:
    """What a `POST /order` answer says about the order whose hash is `order_id`."""
    status, message = answer.status, error_message(answer.body)
    common: dict[str, Any] = {
        "order_id": order_id,
        "status_code": status,
        "retry_after_secs": answer.retry_after_secs,
    }
    if status is None:
        if not answer.reached_venue:  # never left: the same order may be sent again
            return Placement(kind=PlacementKind.DEFERRED, detail="connection failed before sending", **common)
        return Placement(kind=PlacementKind.UNKNOWN, detail=f"no answer ({answer.transport_error})", **common)
    if status == 200 and isinstance(answer.body, Mapping):
        return _classify_accepted(order_id, side, answer.body, common)
    if status in (425, 429) or is_venue_cancel_only(answer):
        reason = {425: "matching engine restarting", 429: "throttled"}.get(status, "cancel-only")
        return Placement(kind=PlacementKind.DEFERRED, detail=f"{reason}: {message}".rstrip(": "), **common)
    if status >= 500 or status == 200:
        return Placement(kind=PlacementKind.UNKNOWN, detail=f"HTTP {status}: {message}"[:300], **common)
    if is_duplicate(message):
        return Placement(kind=PlacementKind.DUPLICATE, detail=message, **common)
    return Placement(
        kind=PlacementKind.REJECTED, reject_reason=classify_reject_reason(message), detail=message, **common
    )


def _classify_accepted(
    order_id: str, side: Side, body: Mapping[str, Any], common: dict[str, Any]
) -> Placement:
    venue_status = _ACCEPTED_STATUSES.get(str(body.get("status", "")).lower())
    message = error_message(body)
    if body.get("success") is False or venue_status is None:
        if is_duplicate(message):
            return Placement(kind=PlacementKind.DUPLICATE, detail=message, **common)
        reason = classify_reject_reason(message) if message else RejectReason.NO_MATCH
        return Placement(
            kind=PlacementKind.REJECTED, reject_reason=reason, detail=message or "unmatched", **common
        )
    making, taking = parse_decimal(body.get("makingAmount")), parse_decimal(body.get("takingAmount"))
    # BUY: making = pUSD paid, taking = shares received; SELL the other way round. Read the shares from the
    # answer, never assume the requested size (price improvement gives more shares than asked).
    shares, usdc = (taking, making) if side is Side.BUY else (making, taking)
    trade_ids = tuple(str(item) for item in body.get("tradeIDs") or () if item)
    return Placement(
        kind=PlacementKind.ACCEPTED,
        venue_status=venue_status,
        matched_size=shares,
        average_price=usdc / shares if shares > 0 else None,
        trade_ids=trade_ids,
        detail=message,
        **common,
    )


def is_empty_answer(body: Any) -> bool:
    """The venue's "nothing" (None, "", {}, "null"): what `GET /data/order` once said for a filled FAK."""
    return body is None or body in ("", "null") or (isinstance(body, Mapping | list) and not body)


def classify_lookup(answer: HttpAnswer) -> OrderLookup:
    """`GET /data/order/{id}`: found, definitively not found (404 or empty), or unavailable (says nothing)."""
    if answer.status == 404 or (answer.status == 200 and is_empty_answer(answer.body)):
        return OrderLookup(LookupKind.NOT_FOUND, detail=error_message(answer.body) or "empty answer")
    if answer.status == 200 and isinstance(answer.body, Mapping):
        order = parse_order(answer.body)
        if order is not None:
            return OrderLookup(LookupKind.FOUND, order)
        return OrderLookup(LookupKind.UNAVAILABLE, detail="unreadable order")
    detail = f"HTTP {answer.status}" if answer.status is not None else f"no answer ({answer.transport_error})"
    return OrderLookup(LookupKind.UNAVAILABLE, detail=detail)


def strip_status_prefix(value: Any, prefix: str) -> str:
    """`ORDER_STATUS_LIVE` / `live` / `Live` -> `LIVE` (REST prefixes statuses, streams do not)."""
    return str(value or "").upper().removeprefix(prefix)


def parse_order_status(value: Any) -> VenueOrderStatus | None:
    """An order status in any of the venue's spellings; None when unknown."""
    text = strip_status_prefix(value, "ORDER_STATUS_")
    text = {"CANCELLED": "CANCELED", "CANCELLED_MARKET_RESOLVED": "CANCELED_MARKET_RESOLVED"}.get(text, text)
    try:
        return VenueOrderStatus(text)
    except ValueError:
        return None


def parse_fill_status(value: Any) -> FillStatus | None:
    """A trade status in any spelling (`TRADE_STATUS_MINED`); MATCHED_NOT_BROADCASTED counts as MATCHED."""
    text = strip_status_prefix(value, "TRADE_STATUS_")
    if text == "MATCHED_NOT_BROADCASTED":
        return FillStatus.MATCHED
    try:
        return FillStatus(text)
    except ValueError:
        return None


def parse_decimal(value: Any) -> Decimal:
    """A venue number (string or number) as a Decimal; 0 when absent or unreadable."""
    if value is None or value == "":
        return ZERO
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return ZERO


def parse_side(value: Any) -> Side | None:
    text = str(value or "").upper()
    return Side(text) if text in ("BUY", "SELL") else None


def parse_time_ms(value: Any) -> int:
    """A venue time in seconds or milliseconds (both occur) as milliseconds; 0 when absent."""
    number = parse_decimal(value)
    return int(number * 1000) if 0 < number < 10**11 else int(number)


def parse_order(row: Mapping[str, Any]) -> VenueOrder | None:
    """One order from `GET /data/order/{id}` or `/data/orders`; None when the row is not an order."""
    status, side = parse_order_status(row.get("status")), parse_side(row.get("side"))
    order_id = str(row.get("id") or row.get("order_id") or "")
    if not order_id or status is None or side is None:
        return None
    return VenueOrder(
        order_id=order_id,
        status=status,
        side=side,
        asset=str(row.get("asset_id", "")),
        original_size=parse_decimal(row.get("original_size")),
        size_matched=parse_decimal(row.get("size_matched")),
        price=parse_decimal(row.get("price")),
        order_type=str(row.get("order_type", "")),
        created_at_ms=parse_time_ms(row.get("created_at")),
    )


def parse_account_fills(row: Mapping[str, Any], owner: str, address: str) -> list[OrderFill]:
    """Our orders' shares of one `GET /data/trades` row: the taker order when we were the taker, and each
    maker order that is ours (by API key owner or maker address)."""
    trade_id, status = str(row.get("id", "")), parse_fill_status(row.get("status"))
    if not trade_id or status is None:
        return []
    match_time = parse_time_ms(row.get("match_time") or row.get("matchtime") or row.get("last_update"))
    fills = []
    taker_side = parse_side(row.get("side"))
    if str(row.get("trader_side", "")).upper() == "TAKER" and row.get("taker_order_id") and taker_side:
        fills.append(
            OrderFill(
                trade_id=trade_id,
                order_id=str(row["taker_order_id"]),
                status=status,
                side=taker_side,
                asset=str(row.get("asset_id", "")),
                size=parse_decimal(row.get("size")),
                price=parse_decimal(row.get("price")),
                match_time_ms=match_time,
                taker=True,
            )
        )
    makers = row.get("maker_orders")
    for maker in makers if isinstance(makers, list) else ():
        if not isinstance(maker, Mapping):
            continue
        ours = maker.get("owner") == owner or str(maker.get("maker_address", "")).lower() == address.lower()
        maker_side = parse_side(maker.get("side"))
        if not ours or not maker.get("order_id") or maker_side is None:
            continue
        fills.append(
            OrderFill(
                trade_id=trade_id,
                order_id=str(maker["order_id"]),
                status=status,
                side=maker_side,
                asset=str(maker.get("asset_id", row.get("asset_id", ""))),
                size=parse_decimal(maker.get("matched_amount")),
                price=parse_decimal(maker.get("price")),
                match_time_ms=match_time,
                taker=False,
            )
        )
    return fills


def parse_page(body: Any) -> tuple[list[Mapping[str, Any]], str]:
    """(rows, next cursor) of a paginated CLOB answer `{data, next_cursor}`; a bare list is one last page."""
    if isinstance(body, list):
        return [row for row in body if isinstance(row, Mapping)], END_CURSOR
    if isinstance(body, Mapping):
        data = body.get("data")
        rows = [row for row in data if isinstance(row, Mapping)] if isinstance(data, list) else []
        return rows, str(body.get("next_cursor") or END_CURSOR)
    return [], END_CURSOR


def parse_cancel(answer: HttpAnswer, requested: Iterable[str]) -> CancelResult:
    """`DELETE /order(s)` -> `{"canceled": [...], "not_canceled": {id: reason}}`."""
    if answer.status != 200 or not isinstance(answer.body, Mapping):
        detail = error_message(answer.body) or (
            f"HTTP {answer.status}" if answer.status else answer.transport_error
        )
        return CancelResult(ok=False, detail=detail, not_cancelled=tuple((i, detail) for i in requested))
    listed = answer.body.get("canceled")
    cancelled = tuple(str(item) for item in listed) if isinstance(listed, list) else ()
    refused = answer.body.get("not_canceled") or {}
    not_cancelled = (
        tuple((str(k), str(v)) for k, v in refused.items()) if isinstance(refused, Mapping) else ()
    )
    return CancelResult(cancelled=cancelled, not_cancelled=not_cancelled)
