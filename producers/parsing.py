"""Pure parsing of venue trade payloads (RTDS activity frames, Data API rows) into RawTrade messages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from processors.core.ids import build_dedup_key
from schemas.trades import RawTrade, TradeSource

ACTIVITY_TYPES = frozenset({"trades", "orders_matched"})
_CONTROL_FRAMES = frozenset({"", "pong", "ping"})
_MS_THRESHOLD = 10**11  # a trade timestamp above this is in milliseconds, not seconds


class TradeParseError(ValueError):
    """A payload that should be a trade is not one."""


@dataclass(frozen=True)
class ParsedFrame:
    """What one frame held: trades, nothing of interest (control frame, other topic), or an error."""

    trades: list[RawTrade] = field(default_factory=list)
    error: str | None = None


def parse_rtds_frame(
    text: str | bytes, received_at_ms: int, source: TradeSource = TradeSource.RTDS
) -> ParsedFrame:
    """Parse one RTDS text frame. Routes by topic/type, or by payload shape when they are missing."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            return ParsedFrame(error="frame is not UTF-8")
    if text.strip().lower() in _CONTROL_FRAMES:
        return ParsedFrame()
    try:
        document = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        return ParsedFrame(error=f"invalid JSON: {error.msg} at position {error.pos}")
    envelopes = document if isinstance(document, list) else [document]
    trades = []
    for envelope in envelopes:
        if not isinstance(envelope, dict):
            return ParsedFrame(error=f"frame is a JSON {type(envelope).__name__}, not an object")
        payload = envelope.get("payload", envelope if "proxyWallet" in envelope else None)
        topic, feed_type = envelope.get("topic"), envelope.get("type")
        if not isinstance(topic, str | None) or not isinstance(feed_type, str | None):
            continue  # not a routing we know (and a list or object cannot be looked up in a set)
        if not _is_trade_payload(payload):
            if topic == "activity" and feed_type in ACTIVITY_TYPES:
                missing = _describe_missing(payload)
                return ParsedFrame(error=f"activity frame without a trade payload{missing}")
            continue  # other topics, subscription acks, etc.
        if topic not in (None, "activity") or (feed_type is not None and feed_type not in ACTIVITY_TYPES):
            continue
        try:
            trades.append(
                build_raw_trade(payload, source=source, received_at_ms=received_at_ms, feed_type=feed_type)
            )
        except TradeParseError as error:
            return ParsedFrame(error=str(error))
    return ParsedFrame(trades=trades)


def _is_trade_payload(payload: Any) -> bool:
    return isinstance(payload, dict) and "proxyWallet" in payload and "transactionHash" in payload


def _describe_missing(payload: Any) -> str:
    if not isinstance(payload, dict):
        return f": payload is a JSON {type(payload).__name__}"
    return ": missing " + ", ".join(
        repr(key) for key in ("proxyWallet", "transactionHash") if key not in payload
    )


def build_raw_trade(
    payload: dict[str, Any], *, source: TradeSource, received_at_ms: int, feed_type: str | None = None
) -> RawTrade:
    """Build a RawTrade from a venue trade payload (RTDS payload or Data API row share the field names)."""
    try:
        wallet = str(payload["proxyWallet"]).lower()
        side = str(payload["side"]).upper()
        price, size = _decimal(payload["price"]), _decimal(payload["size"])
        timestamp = int(payload["timestamp"])
        if timestamp > _MS_THRESHOLD:
            timestamp //= 1000
        tx_hash = str(payload.get("transactionHash") or "").lower()
        asset = str(payload["asset"])
        outcome_index = payload.get("outcomeIndex")
        return RawTrade(
            dedup_key=build_dedup_key(
                transaction_hash=tx_hash, asset=asset, side=side, price=price, size=size, proxy_wallet=wallet
            ),
            source=source,
            feed_type=feed_type,
            received_at_ms=received_at_ms,
            proxy_wallet=wallet,
            side=side,
            asset=asset,
            condition_id=str(payload["conditionId"]).lower(),
            size=size,
            price=price,
            timestamp=timestamp,
            transaction_hash=tx_hash,
            outcome=payload.get("outcome"),
            outcome_index=int(outcome_index) if outcome_index not in (None, "") else None,
            slug=payload.get("slug"),
            event_slug=payload.get("eventSlug"),
            title=payload.get("title"),
            name=payload.get("name") or None,
            pseudonym=payload.get("pseudonym") or None,
            fee=_decimal(payload["fee"]) if payload.get("fee") not in (None, "") else None,
        )
    except KeyError as error:
        raise TradeParseError(f"trade payload lacks field {error.args[0]!r}") from error
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise TradeParseError(f"invalid trade field {where}: {first['msg']}") from error
    except (TypeError, ValueError, ArithmeticError) as error:  # ArithmeticError: bad decimals, int(Infinity)
        raise TradeParseError(f"invalid trade payload: {error}") from error


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TradeParseError("boolean where a number was expected")
    return value if isinstance(value, Decimal) else Decimal(str(value))
