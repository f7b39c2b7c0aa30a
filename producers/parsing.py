"""Venue fills as RawTrade messages: the adapter's typed fills with our dedup key, source and receive time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from polycopy.polymarket.trades import TradeParseError, VenueFill, parse_activity_frame, parse_trade_payload
from processors.core.ids import build_dedup_key
from schemas.trades import RawTrade, TradeSource

__all__ = ["ParsedFrame", "TradeParseError", "build_raw_trade", "parse_rtds_frame", "raw_trade_from_fill"]


@dataclass(frozen=True)
class ParsedFrame:
    """What one frame held: trades, nothing of interest (control frame, other topic), or an error."""

    trades: list[RawTrade] = field(default_factory=list)
    error: str | None = None


def parse_rtds_frame(
    text: str | bytes, received_at_ms: int, source: TradeSource = TradeSource.RTDS
) -> ParsedFrame:
    """Parse one RTDS text frame into RawTrades; one bad trade makes the whole frame an error."""
    frame = parse_activity_frame(text)
    if frame.error is not None:
        return ParsedFrame(error=frame.error)
    try:
        return ParsedFrame(trades=[raw_trade_from_fill(f, source, received_at_ms) for f in frame.fills])
    except TradeParseError as error:
        return ParsedFrame(error=str(error))


def build_raw_trade(
    payload: Mapping[str, Any], *, source: TradeSource, received_at_ms: int, feed_type: str | None = None
) -> RawTrade:
    """A RawTrade from a venue trade payload (RTDS payload or Data API row); raises TradeParseError."""
    return raw_trade_from_fill(parse_trade_payload(payload, feed_type=feed_type), source, received_at_ms)


def raw_trade_from_fill(fill: VenueFill, source: TradeSource, received_at_ms: int) -> RawTrade:
    """The fill with its dedup key, source and our receive time; raises TradeParseError on invalid fields."""
    try:
        return RawTrade(
            dedup_key=build_dedup_key(
                transaction_hash=fill.transaction_hash,
                asset=fill.asset,
                side=fill.side,
                price=fill.price,
                size=fill.size,
                proxy_wallet=fill.proxy_wallet,
            ),
            source=source,
            feed_type=fill.feed_type,
            received_at_ms=received_at_ms,
            proxy_wallet=fill.proxy_wallet,
            side=fill.side,
            asset=fill.asset,
            condition_id=fill.condition_id,
            size=fill.size,
            price=fill.price,
            timestamp=fill.timestamp,
            transaction_hash=fill.transaction_hash,
            outcome=fill.outcome,
            outcome_index=fill.outcome_index,
            slug=fill.slug,
            event_slug=fill.event_slug,
            title=fill.title,
            name=fill.name,
            pseudonym=fill.pseudonym,
            fee=fill.fee,
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise TradeParseError(f"invalid trade field {where}: {first['msg']}") from error
    except (TypeError, ValueError, ArithmeticError) as error:
        raise TradeParseError(f"invalid trade payload: {error}") from error
