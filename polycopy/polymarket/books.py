"""The CLOB's book wire formats: `GET /book` payloads and market-channel frames (snapshots, level changes,
tick size changes, market resolutions), parsed into typed events, and the rules that apply those events to a
book."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

from polycopy.polymarket.text import clean_json, parse_events
from schemas.base import Side
from schemas.books import Level, OrderBook
from schemas.portfolio import MarketResolution, ResolutionSource


class BookFormatError(ValueError):
    """The book payload did not have the venue's shape."""


def parse_book(payload: dict[str, Any]) -> OrderBook:
    """Parse a CLOB `GET /book` (or market-channel `book`) payload into a best-first book."""
    payload = clean_json(payload)  # a REST book comes decoded by the reference client
    try:
        bids = sorted((_level(item) for item in payload.get("bids") or ()), key=lambda lvl: -lvl.price)
        asks = sorted((_level(item) for item in payload.get("asks") or ()), key=lambda lvl: lvl.price)
        return OrderBook(
            asset=str(payload["asset_id"]),
            market=str(payload.get("market", "")),
            bids=tuple(lvl for lvl in bids if lvl.size > 0),
            asks=tuple(lvl for lvl in asks if lvl.size > 0),
            tick_size=Decimal(str(payload.get("tick_size", "0.01"))),
            min_order_size=Decimal(str(payload.get("min_order_size", "0"))),
            neg_risk=bool(payload.get("neg_risk", False)),
            timestamp_ms=int(payload.get("timestamp") or 0),
            venue_hash=str(payload["hash"]) if payload.get("hash") else None,
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise BookFormatError(f"bad book payload: {error}") from error


def _level(item: dict[str, Any]) -> Level:
    return Level(price=Decimal(str(item["price"])), size=Decimal(str(item["size"])))


# --- the market channel: snapshots, level changes, tick size changes ----------------------------------------
@dataclass(frozen=True)
class PriceChange:
    """One level's new size on one side of a token's book; size 0 means the level is gone."""

    asset: str
    side: Side  # BUY changes a bid level, SELL an ask level
    price: Decimal
    size: Decimal
    venue_hash: str | None = None  # the venue's hash of the token's book after this change


@dataclass(frozen=True)
class BookSnapshot:
    """A whole book, sent on (re)subscription. Channel snapshots may omit the trading parameters."""

    book: OrderBook
    has_trading_parameters: bool


@dataclass(frozen=True)
class PriceChanges:
    """Level changes of one market (its tokens), applied in order."""

    market: str
    timestamp_ms: int
    changes: tuple[PriceChange, ...]


@dataclass(frozen=True)
class TickSizeChange:
    """The venue changed a token's tick size (prices near 0 or 1 get a finer tick)."""

    asset: str
    market: str
    tick_size: Decimal
    timestamp_ms: int


@dataclass(frozen=True)
class MarketResolved:
    """The market channel's `market_resolved` event (sent only with `custom_feature_enabled`)."""

    market: str  # condition id
    winning_asset: str
    winning_outcome: str
    assets: tuple[str, ...]  # the market's tokens, when the event lists them
    question: str
    timestamp_ms: int

    def to_resolution(self, received_at_ms: int) -> MarketResolution:
        """The winning token pays 1 and the market's other tokens 0 (a token not listed pays 0 as well)."""
        payouts = {asset: Decimal(0) for asset in self.assets} | {self.winning_asset: Decimal(1)}
        return MarketResolution(
            condition_id=self.market,
            payouts=payouts,
            winning_token_id=self.winning_asset,
            winning_outcome=self.winning_outcome or None,
            question=self.question,
            resolved_at_ms=self.timestamp_ms or received_at_ms,
            source=ResolutionSource.MARKET_CHANNEL,
        )


MarketEvent: TypeAlias = BookSnapshot | PriceChanges | TickSizeChange | MarketResolved


@dataclass(frozen=True)
class MarketMessage:
    """What one market-channel frame held: the events we use, the ones we skip, and the malformed ones."""

    events: tuple[MarketEvent, ...] = ()
    skipped: int = 0
    errors: tuple[str, ...] = ()


def apply_price_changes(book: OrderBook, changes: Iterable[PriceChange], timestamp_ms: int) -> OrderBook:
    """The book after `changes` (other tokens' ignored): levels best-first, zero-size levels removed."""
    relevant = [change for change in changes if change.asset == book.asset]
    if not relevant:
        return book
    bids = {level.price: level.size for level in book.bids}
    asks = {level.price: level.size for level in book.asks}
    for change in relevant:
        levels = bids if change.side is Side.BUY else asks
        if change.size > 0:
            levels[change.price] = change.size
        else:
            levels.pop(change.price, None)
    # model_copy does not validate again: the levels are built here, typed and sorted.
    return book.model_copy(
        update={
            "bids": build_levels(bids, best_first_high=True),
            "asks": build_levels(asks, best_first_high=False),
            "timestamp_ms": timestamp_ms,
            "venue_hash": relevant[-1].venue_hash,
        }
    )


def apply_tick_size_change(book: OrderBook, change: TickSizeChange) -> OrderBook:
    """The book with the new tick size, when the change is for its token."""
    if change.asset != book.asset:
        return book
    return book.model_copy(update={"tick_size": change.tick_size})


def build_levels(levels: Mapping[Decimal, Decimal], *, best_first_high: bool) -> tuple[Level, ...]:
    """Levels from a price -> size map, best first (highest first for bids), sizes <= 0 dropped."""
    ordered = sorted(levels.items(), reverse=best_first_high)
    return tuple(Level(price, size) for price, size in ordered if size > 0)


def parse_market_message(frame: str | bytes) -> MarketMessage:
    """Parse one market-channel frame (an event or a JSON array of events) into typed events.

    Unknown event types (`last_trade_price`, `best_bid_ask`, ...) are counted as skipped; a malformed event is
    reported in `errors` and does not spoil the other events of the frame.
    """
    return MarketMessage(*parse_events(frame, parse_market_event, BookFormatError))


def parse_market_event(item: Any) -> MarketEvent | None:
    """One decoded market-channel event, or None for an event type we do not use. Raises BookFormatError."""
    if not isinstance(item, dict):
        raise BookFormatError(f"market event is not an object: {str(item)[:80]}")
    event_type = item.get("event_type")
    if event_type == "book":
        payload = item
        if "bids" not in item and "asks" not in item:  # older frames name the sides buys/sells
            payload = item | {"bids": item.get("buys"), "asks": item.get("sells")}
        return BookSnapshot(parse_book(payload), has_trading_parameters="tick_size" in item)
    if event_type == "price_change":
        return _parse_price_changes(item)
    if event_type == "tick_size_change":
        try:
            return TickSizeChange(
                asset=str(item["asset_id"]),
                market=str(item.get("market", "")),
                tick_size=_positive(item["new_tick_size"], "new_tick_size"),
                timestamp_ms=int(item.get("timestamp") or 0),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            raise BookFormatError(f"bad tick_size_change: {error}") from error
    if event_type == "market_resolved":
        return _parse_market_resolved(item)
    return None


def _parse_market_resolved(item: dict[str, Any]) -> MarketResolved:
    try:
        market, winner = str(item["market"]).lower(), str(item["winning_asset_id"])
        if not market or not winner:
            raise ValueError("no market or winning asset")
        assets = item.get("assets_ids") or item.get("asset_ids") or ()  # both spellings are seen
        return MarketResolved(
            market=market,
            winning_asset=winner,
            winning_outcome=str(item.get("winning_outcome") or ""),
            assets=tuple(str(asset) for asset in assets),
            question=str(item.get("question") or ""),
            timestamp_ms=int(item.get("timestamp") or 0),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BookFormatError(f"bad market_resolved: {error!r}") from error


def _parse_price_changes(item: dict[str, Any]) -> PriceChanges:
    try:
        rows = item.get("price_changes")
        if rows is None:  # before Sep 2025: one asset per event, its changes under `changes`
            rows = [row | {"asset_id": item["asset_id"]} for row in item["changes"]]
        changes = tuple(_price_change(row) for row in rows)
        return PriceChanges(
            market=str(item.get("market", "")), timestamp_ms=int(item.get("timestamp") or 0), changes=changes
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise BookFormatError(f"bad price_change: {error!r}") from error


def _price_change(row: dict[str, Any]) -> PriceChange:
    size = Decimal(str(row["size"]))
    if not size.is_finite() or size < 0:
        raise ValueError(f"size {row['size']!r}")
    return PriceChange(
        asset=str(row["asset_id"]),
        side=Side(str(row["side"]).upper()),
        price=_positive(row["price"], "price"),
        size=size,
        venue_hash=str(row["hash"]) if row.get("hash") else None,
    )


def _positive(value: Any, name: str) -> Decimal:
    number = Decimal(str(value))
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{name} {value!r}")
    return number
