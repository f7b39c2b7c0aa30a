"""Reference data onto compacted topics: Gamma markets (MARKETS) and leaderboard traders (TRADERS).

Pure mapping from the venue's JSON (and offline leaderboard files) to MarketReference / TraderReference, and
thin sync functions that page through the venue and publish one message per key.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from polycopy.kafka import MessagePublisher, now_ms
from polycopy.venue_http import decode_json_string_fields
from schemas.reference import MarketReference, TraderReference
from schemas.topics import MARKETS, TRADERS

log = logging.getLogger(__name__)

CONDITION_IDS_PER_REQUEST = 50  # keeps the query string well under URL length limits
LEADERBOARD_PAGE = 50  # the venue's maximum `limit`
LEADERBOARD_MAX_OFFSET = 1000  # the venue's maximum `offset`


class ReferenceParseError(ValueError):
    """A venue object or file row that cannot become reference data."""


class ReferenceClient(Protocol):
    """The venue reads the syncs need (polycopy.venue_http.VenueHttpClient, or a fake in tests)."""

    def fetch_markets(
        self,
        condition_ids: Sequence[str] = (),
        *,
        active_only: bool = False,
        limit: int = 500,
        offset: int = 0,
    ) -> list[dict[str, Any]]: ...

    def fetch_leaderboard(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        time_period: str = "MONTH",
        order_by: str = "PNL",
        category: str = "OVERALL",
    ) -> list[dict[str, Any]]: ...


# --- pure mapping -------------------------------------------------------------------------------------------
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


def read_trader_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a leaderboard file: JSON (as the venue answers) or CSV with a header line."""
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                return [dict(row) for row in csv.DictReader(handle)]
        return rows_of_document(json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        raise ReferenceParseError(f"{path}: cannot read: {error}") from error


@dataclass
class TraderFile:
    """The traders of a file, the latest row per wallet winning, and the rows refused (line, reason)."""

    traders: list[TraderReference] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def build_trader_file(
    rows: Iterable[Mapping[str, Any]], updated_at_ms: int, source: str = "import"
) -> TraderFile:
    """Map file rows; a later row for the same wallet (a newer snapshot) replaces an earlier one."""
    result = TraderFile()
    latest: dict[str, TraderReference] = {}
    for number, row in enumerate(rows, 1):
        try:
            trader = build_trader_reference(row, source=source, updated_at_ms=updated_at_ms)
        except ReferenceParseError as error:
            result.refused.append((number, str(error)))
            continue
        latest.pop(trader.wallet, None)
        latest[trader.wallet] = trader
    result.traders = list(latest.values())
    return result


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


# --- shell --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncSummary:
    """What a sync published and what it refused."""

    published: int
    refused: int
    pages: int


def publish_markets(
    markets: Iterable[Mapping[str, Any]], publisher: MessagePublisher, updated_at_ms: int
) -> tuple[int, int]:
    """Publish Gamma markets keyed by condition id; returns (published, refused)."""
    published = refused = 0
    for market in markets:
        try:
            reference = build_market_reference(market, updated_at_ms)
        except ReferenceParseError as error:
            refused += 1
            log.warning("market skipped: %s", error)
            continue
        publisher.publish(MARKETS, reference.condition_id, reference)
        published += 1
    return published, refused


def sync_markets(
    client: ReferenceClient,
    publisher: MessagePublisher,
    *,
    condition_ids: Sequence[str] = (),
    page_size: int = 500,
    max_pages: int = 20,
    clock_ms: Callable[[], int] = now_ms,
) -> SyncSummary:
    """Gamma markets onto the markets topic: the given condition ids, else all active ones (bounded pages)."""
    published = refused = pages = 0
    if condition_ids:
        for start in range(0, len(condition_ids), CONDITION_IDS_PER_REQUEST):
            chunk = condition_ids[start : start + CONDITION_IDS_PER_REQUEST]
            done, bad = publish_markets(client.fetch_markets(chunk, limit=len(chunk)), publisher, clock_ms())
            published, refused, pages = published + done, refused + bad, pages + 1
        return SyncSummary(published, refused, pages)
    for page in range(max_pages):
        rows = client.fetch_markets(active_only=True, limit=page_size, offset=page * page_size)
        done, bad = publish_markets(rows, publisher, clock_ms())
        published, refused, pages = published + done, refused + bad, pages + 1
        if len(rows) < page_size:
            break
    return SyncSummary(published, refused, pages)


def sync_traders(
    client: ReferenceClient,
    publisher: MessagePublisher,
    *,
    limit: int = 50,
    time_period: str = "MONTH",
    order_by: str = "PNL",
    category: str = "OVERALL",
    clock_ms: Callable[[], int] = now_ms,
) -> SyncSummary:
    """The top `limit` leaderboard traders onto the traders topic, keyed by wallet."""
    published = refused = pages = 0
    offset = 0
    while offset < limit and offset <= LEADERBOARD_MAX_OFFSET:
        page_limit = min(LEADERBOARD_PAGE, limit - offset)
        rows = client.fetch_leaderboard(
            limit=page_limit, offset=offset, time_period=time_period, order_by=order_by, category=category
        )
        pages += 1
        updated_at_ms = clock_ms()
        for row in rows:
            try:
                trader = build_trader_reference(row, source="leaderboard", updated_at_ms=updated_at_ms)
            except ReferenceParseError as error:
                refused += 1
                log.warning("leaderboard row skipped: %s", error)
                continue
            publisher.publish(TRADERS, trader.wallet, trader)
            published += 1
        if len(rows) < page_limit:
            break
        offset += page_limit
    return SyncSummary(published, refused, pages)


def publish_traders(traders: Iterable[TraderReference], publisher: MessagePublisher) -> int:
    """Publish traders keyed by wallet; returns how many."""
    count = 0
    for trader in traders:
        publisher.publish(TRADERS, trader.wallet, trader)
        count += 1
    return count
