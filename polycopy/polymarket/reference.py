"""Reference data from the venue: Gamma market objects as MarketReference, leaderboard rows as
TraderReference. Pure mapping; `polycopy.polymarket.http` fetches the JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from schemas.portfolio import MarketResolution, ResolutionSource
from schemas.reference import MarketReference, TraderReference

# Gamma sends these as JSON text inside the JSON document: decode the document, then each of these again.
GAMMA_JSON_STRING_FIELDS = ("outcomes", "outcomePrices", "clobTokenIds")
LEADERBOARD_PAGE = 50  # the venue's maximum `limit`
LEADERBOARD_MAX_OFFSET = 1000  # the venue's maximum `offset`
# UMA states that are not final: a proposal can still be disputed; prices of 0 and 1 then mean nothing yet.
UNSETTLED_UMA_STATES = frozenset({"proposed", "disputed", "challenged"})


class ReferenceParseError(ValueError):
    """A venue object or file row that cannot become reference data."""


def decode_json_string_fields(
    market: Mapping[str, Any], fields: Sequence[str] = GAMMA_JSON_STRING_FIELDS
) -> dict[str, Any]:
    """A copy of a Gamma market with its JSON-encoded string fields decoded into lists.

    Already-decoded lists pass through; an empty or undecodable string becomes an empty list.
    """
    decoded = dict(market)
    for name in fields:
        value = decoded.get(name)
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []
            except ValueError:
                value = []
        decoded[name] = list(value) if isinstance(value, list | tuple) else []
    return decoded


def build_market_reference(market: Mapping[str, Any], updated_at_ms: int) -> MarketReference:
    """A Gamma market object as MarketReference; the JSON-encoded string fields may still be strings."""
    decoded = decode_json_string_fields(market)
    condition_id = str(decoded.get("conditionId") or "").lower()
    if not condition_id:
        raise ReferenceParseError(f"Gamma market {decoded.get('id')!r} has no conditionId")
    # Protocol-V2 markets trade position ids (a plain array) instead of clobTokenIds.
    token_ids = decoded["clobTokenIds"] or list(decoded.get("positionIds") or [])
    events = [event for event in decoded.get("events") or [] if isinstance(event, Mapping)]
    first_event: Mapping[str, Any] = events[0] if events else {}
    closed = bool(decoded.get("closed", False))
    accepting = decoded.get("acceptingOrders")
    try:
        return MarketReference(
            condition_id=condition_id,
            question=str(decoded.get("question") or ""),
            slug=decoded.get("slug") or None,
            # `category` is mostly empty on markets; the event sometimes carries it, and tags are richer.
            category=decoded.get("category") or first_event.get("category") or None,
            tags=_tag_labels(decoded.get("tags") or first_event.get("tags") or []),
            end_date_ms=_parse_time_ms(decoded.get("endDate") or decoded.get("endDateIso")),
            closed=closed,
            accepting_orders=bool(accepting)
            if accepting is not None
            else (not closed and bool(decoded.get("active", True))),
            neg_risk=bool(decoded.get("negRisk", False)),
            tick_size=_optional_decimal(decoded.get("orderPriceMinTickSize")),
            min_order_size=_optional_decimal(decoded.get("orderMinSize")),
            token_ids=tuple(str(token) for token in token_ids),
            outcomes=tuple(str(outcome) for outcome in decoded["outcomes"]),
            updated_at_ms=updated_at_ms,
        )
    except ValidationError as error:
        raise ReferenceParseError(f"Gamma market {condition_id}: {_first_error(error)}") from error
    except ReferenceParseError as error:
        raise ReferenceParseError(f"Gamma market {condition_id}: {error}") from error


def build_market_resolution(market: Mapping[str, Any], observed_at_ms: int) -> MarketResolution | None:
    """How a Gamma market resolved, or None while it has not (for sure).

    A market has resolved when it is `closed`, its `umaResolutionStatus` is final (`resolved`, or absent on
    markets older than the UMA states) and its `outcomePrices` are payouts: each 0, 1 or an equal split (a
    50-50 resolution), adding up to 1. Old AMM markets close with prices such as 0.9999997 and some closed
    markets keep their last trading prices: those are not payouts, so no resolution is made from them. Each
    market of a neg-risk event resolves Yes/No on its own. Protocol-V2 position ids, when Gamma lists them
    beside the CLOB token ids, get the payout of the outcome at the same index. The resolution time is
    `closedTime` when Gamma has it, else `observed_at_ms`.
    """
    decoded = decode_json_string_fields(market)
    condition_id = str(decoded.get("conditionId") or "").lower()
    status = str(decoded.get("umaResolutionStatus") or "").lower()
    if not condition_id or not decoded.get("closed") or status in UNSETTLED_UMA_STATES:
        return None
    if status and status != "resolved":
        return None
    try:
        prices = [Decimal(str(price)) for price in decoded["outcomePrices"]]
    except (ArithmeticError, ValueError):
        return None
    tokens = [str(token) for token in decoded["clobTokenIds"]]
    if not prices or len(prices) != len(tokens) or not _are_payouts(prices):
        return None
    payouts = dict(zip(tokens, prices, strict=True))
    positions = [str(token) for token in decoded.get("positionIds") or []]
    if len(positions) == len(prices):
        payouts |= dict(zip(positions, prices, strict=True))
    outcomes = [str(outcome) for outcome in decoded["outcomes"]]
    winner = next((i for i, price in enumerate(prices) if price == 1), None)
    return MarketResolution(
        condition_id=condition_id,
        payouts=payouts,
        winning_token_id=tokens[winner] if winner is not None else None,
        winning_outcome=outcomes[winner] if winner is not None and winner < len(outcomes) else None,
        question=str(decoded.get("question") or ""),
        neg_risk=bool(decoded.get("negRisk", False)),
        resolved_at_ms=_parse_time_ms(decoded.get("closedTime")) or observed_at_ms,
        source=ResolutionSource.GAMMA,
    )


def _are_payouts(prices: Sequence[Decimal]) -> bool:
    if sum(prices, Decimal(0)) != 1:
        return False
    exact = all(price in (0, 1) for price in prices)
    split = len(set(prices)) == 1
    return exact or split


def build_trader_reference(row: Mapping[str, Any], *, source: str, updated_at_ms: int) -> TraderReference:
    """One leaderboard row as TraderReference.

    Accepts the Data API `/v1/leaderboard` row (proxyWallet, userName, rank, pnl, vol), the older profit
    leaderboard row (proxyWallet, name/pseudonym, amount = profit) and file rows (address or wallet,
    name or username, pnl, vol, win_rate as a fraction 0..1, rank). Missing figures stay empty.
    """
    wallet = str(_first(row, "proxyWallet", "proxy_wallet", "wallet", "address") or "").strip().lower()
    if not wallet:
        raise ReferenceParseError("row has no wallet (proxyWallet, wallet or address)")
    name = _first(row, "userName", "user_name", "username", "name", "pseudonym")
    # The older profit leaderboard has no `pnl`: its `amount` is the profit over `period`.
    pnl = _first(row, "pnl", "pnl_usdc", "profit", "amount")
    try:
        return TraderReference(
            wallet=wallet,
            name=(str(name).strip() or None) if name is not None else None,
            rank=_optional_int(_first(row, "rank")),
            pnl_usdc=_optional_decimal(pnl),
            volume_usdc=_optional_decimal(_first(row, "vol", "volume", "volume_usdc")),
            win_rate=_optional_decimal(_first(row, "win_rate", "winRate")),
            source=source,
            updated_at_ms=updated_at_ms,
        )
    except ValidationError as error:
        raise ReferenceParseError(f"trader {wallet}: {_first_error(error)}") from error
    except ReferenceParseError as error:
        raise ReferenceParseError(f"trader {wallet}: {error}") from error


def rows_of_document(document: Any) -> list[dict[str, Any]]:
    """Leaderboard rows from a JSON document: a bare array, or an object with `data` or `leaderboard`."""
    if isinstance(document, Mapping):
        document = document.get("data", document.get("leaderboard"))
    if not isinstance(document, list):
        raise ReferenceParseError("expected a JSON array of leaderboard rows (or {data: [...]})")
    return [row for row in document if isinstance(row, dict)]


def _first(row: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = row.get(name)
        if value is not None and value != "":
            return value
    return None


def _optional_decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as error:
        raise ReferenceParseError(f"not a number: {value!r}") from error
    if not number.is_finite():
        raise ReferenceParseError(f"not a finite number: {value!r}")
    return number


def _optional_int(value: Any) -> int | None:
    number = _optional_decimal(value)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise ReferenceParseError(f"not a whole number: {value!r}")
    return int(number)


def _parse_time_ms(value: Any) -> int | None:
    """ISO-8601 date or date-time (Gamma: `2026-01-23T18:30:00Z`, sometimes with fractions) as epoch ms."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text[:10]), datetime.min.time())
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _tag_labels(tags: Any) -> tuple[str, ...]:
    labels: list[str] = []
    for tag in tags if isinstance(tags, list) else []:
        label = tag.get("label") or tag.get("slug") if isinstance(tag, Mapping) else tag
        if isinstance(label, str) and label and label not in labels:
            labels.append(label)
    return tuple(labels)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return ".".join(str(part) for part in first["loc"]) + f": {first['msg']}"
