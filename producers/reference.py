"""Reference data onto compacted topics: Gamma markets (MARKETS), their resolutions (RESOLUTIONS) and
leaderboard traders (TRADERS).

Sync functions page through the venue (the adapter maps its JSON) and publish one message per key; leaderboard
files exported elsewhere are read here too. The market sync also reads the markets the copy wallets hold (a
closed market leaves the active listing) and publishes each new resolution it finds.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from polycopy.infra.kafka import MessagePublisher, now_ms
from polycopy.polymarket.reference import (
    LEADERBOARD_MAX_OFFSET,
    LEADERBOARD_PAGE,
    ReferenceParseError,
    build_market_reference,
    build_market_resolution,
    build_trader_reference,
    rows_of_document,
)
from schemas.portfolio import MarketResolution
from schemas.reference import TraderReference
from schemas.topics import MARKETS, RESOLUTIONS, TRADERS

log = logging.getLogger(__name__)

CONDITION_IDS_PER_REQUEST = 50  # keeps the query string well under URL length limits


class ReferenceClient(Protocol):
    """The venue reads the syncs need (polycopy.polymarket.http.VenueHttpClient, or a fake in tests)."""

    def fetch_markets(
        self,
        condition_ids: Sequence[str] = (),
        *,
        active_only: bool = False,
        closed: bool | None = None,
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


# --- leaderboard files -------------------------------------------------------------------------------------
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


# --- shell --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncSummary:
    """What a sync published and what it refused."""

    published: int
    refused: int
    pages: int
    resolutions: int = 0  # new resolutions published (markets sync)


@dataclass
class MarketPublisher:
    """Publishes Gamma markets keyed by condition id, and the resolution of each resolved one that the
    resolutions topic does not already hold with the same payouts (`known`, kept current as it goes)."""

    publisher: MessagePublisher
    known: dict[str, MarketResolution] = field(default_factory=dict)
    published: int = 0
    refused: int = 0
    resolutions: int = 0

    def publish(self, markets: Iterable[Mapping[str, Any]], updated_at_ms: int) -> None:
        for market in markets:
            try:
                reference = build_market_reference(market, updated_at_ms)
            except ReferenceParseError as error:
                self.refused += 1
                log.warning("market skipped: %s", error)
                continue
            self.publisher.publish(MARKETS, reference.condition_id, reference)
            self.published += 1
            resolution = build_market_resolution(market, updated_at_ms)
            known = self.known.get(reference.condition_id)
            if resolution is not None and (known is None or known.payouts != resolution.payouts):
                self.publisher.publish(RESOLUTIONS, resolution.condition_id, resolution)
                self.known[resolution.condition_id] = resolution
                self.resolutions += 1


def publish_markets(
    markets: Iterable[Mapping[str, Any]], publisher: MessagePublisher, updated_at_ms: int
) -> tuple[int, int]:
    """Publish Gamma markets keyed by condition id (and new resolutions); returns (published, refused)."""
    target = MarketPublisher(publisher)
    target.publish(markets, updated_at_ms)
    return target.published, target.refused


def sync_markets(
    client: ReferenceClient,
    publisher: MessagePublisher,
    *,
    condition_ids: Sequence[str] = (),
    held: Iterable[str] = (),
    known: Mapping[str, MarketResolution] | None = None,
    page_size: int = 500,
    max_pages: int = 20,
    clock_ms: Callable[[], int] = now_ms,
) -> SyncSummary:
    """Gamma markets onto the markets topic, and new resolutions onto the resolutions topic: the given
    condition ids, else all active ones (bounded pages); then the `held` markets (the wallets' positions and
    orders) that closed, asked for by condition id with `closed=true`, since they leave the active listing.
    `known` is what the resolutions topic holds: a resolution is published again only when it changed."""
    target = MarketPublisher(publisher, dict(known or {}))
    pages = 0
    if condition_ids:
        for chunk in _chunks(condition_ids):
            target.publish(client.fetch_markets(chunk, limit=len(chunk)), clock_ms())
            pages += 1
    else:
        for page in range(max_pages):
            rows = client.fetch_markets(active_only=True, limit=page_size, offset=page * page_size)
            target.publish(rows, clock_ms())
            pages += 1
            if len(rows) < page_size:
                break
    asked = {condition_id.lower() for condition_id in condition_ids}
    for chunk in _chunks(sorted({c.lower() for c in held} - asked)):
        target.publish(client.fetch_markets(chunk, closed=True, limit=len(chunk)), clock_ms())
        pages += 1
    return SyncSummary(target.published, target.refused, pages, target.resolutions)


def _chunks(condition_ids: Sequence[str]) -> list[Sequence[str]]:
    return [
        condition_ids[start : start + CONDITION_IDS_PER_REQUEST]
        for start in range(0, len(condition_ids), CONDITION_IDS_PER_REQUEST)
    ]


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
