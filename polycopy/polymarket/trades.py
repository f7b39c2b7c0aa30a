"""Venue trade payloads as typed fills: the RTDS `activity` payload and the Data API `/trades` row share their
fields (brief, sections 1.5 and 4.1); RTDS frames are routed by topic and type, or by payload shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from polycopy.polymarket.text import clean_text, decode_json

ACTIVITY_TYPES = frozenset({"trades", "orders_matched"})
_CONTROL_FRAMES = frozenset({"", "pong", "ping"})
_MS_THRESHOLD = 10**11  # a trade timestamp above this is in milliseconds, not seconds


class TradeParseError(ValueError):
    """A payload that should be a trade is not one."""


@dataclass(frozen=True)
class VenueFill:
    """One wallet's fill as the venue reported it: wallet and condition id lower-case, time in epoch s."""

    proxy_wallet: str
    side: str
    asset: str
    condition_id: str
    size: Decimal
    price: Decimal
    timestamp: int
    transaction_hash: str
    outcome: str | None = None
    outcome_index: int | None = None
    slug: str | None = None
    event_slug: str | None = None
    title: str | None = None
    name: str | None = None
    pseudonym: str | None = None
    fee: Decimal | None = None
    feed_type: str | None = None  # RTDS subscription type ("trades" | "orders_matched"); None for REST rows


@dataclass(frozen=True)
class ActivityFrame:
    """What one RTDS frame held: fills, nothing of interest (control frame, other topic), or an error."""

    fills: list[VenueFill] = field(default_factory=list)
    error: str | None = None


def parse_activity_frame(text: str | bytes) -> ActivityFrame:
    """Parse one RTDS text frame. Routes by topic/type, or by payload shape when they are missing."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            return ActivityFrame(error="frame is not UTF-8")
    if text.strip().lower() in _CONTROL_FRAMES:
        return ActivityFrame()
    try:
        document = decode_json(text)
    except json.JSONDecodeError as error:
        return ActivityFrame(error=f"invalid JSON: {error.msg} at position {error.pos}")
    envelopes = document if isinstance(document, list) else [document]
    fills = []
    for envelope in envelopes:
        if not isinstance(envelope, dict):
            return ActivityFrame(error=f"frame is a JSON {type(envelope).__name__}, not an object")
        payload = envelope.get("payload", envelope if "proxyWallet" in envelope else None)
        topic, feed_type = envelope.get("topic"), envelope.get("type")
        if not isinstance(topic, str | None) or not isinstance(feed_type, str | None):
            continue  # not a routing we know (and a list or object cannot be looked up in a set)
        if not _is_trade_payload(payload):
            if topic == "activity" and feed_type in ACTIVITY_TYPES:
                missing = _describe_missing(payload)
                return ActivityFrame(error=f"activity frame without a trade payload{missing}")
            continue  # other topics, subscription acks, etc.
        if topic not in (None, "activity") or (feed_type is not None and feed_type not in ACTIVITY_TYPES):
            continue
        try:
            fills.append(parse_trade_payload(payload, feed_type=feed_type))
        except TradeParseError as error:
            return ActivityFrame(error=str(error))
    return ActivityFrame(fills=fills)


def _is_trade_payload(payload: Any) -> bool:
    return isinstance(payload, dict) and "proxyWallet" in payload and "transactionHash" in payload


def _describe_missing(payload: Any) -> str:
    if not isinstance(payload, dict):
        return f": payload is a JSON {type(payload).__name__}"
    return ": missing " + ", ".join(
        repr(key) for key in ("proxyWallet", "transactionHash") if key not in payload
    )


def parse_trade_payload(payload: Mapping[str, Any], *, feed_type: str | None = None) -> VenueFill:
    """A venue trade payload (RTDS payload or Data API row) as a VenueFill; raises TradeParseError."""
    try:
        timestamp = int(payload["timestamp"])
        if timestamp > _MS_THRESHOLD:
            timestamp //= 1000
        outcome_index = payload.get("outcomeIndex")
        return VenueFill(
            proxy_wallet=_text(payload["proxyWallet"]).lower(),
            side=_text(payload["side"]).upper(),
            asset=_text(payload["asset"]),
            condition_id=_text(payload["conditionId"]).lower(),
            size=_decimal(payload["size"]),
            price=_decimal(payload["price"]),
            timestamp=timestamp,
            transaction_hash=_text(payload.get("transactionHash") or "").lower(),
            outcome=_optional_text(payload.get("outcome")),
            outcome_index=int(outcome_index) if outcome_index not in (None, "") else None,
            slug=_optional_text(payload.get("slug")),
            event_slug=_optional_text(payload.get("eventSlug")),
            title=_optional_text(payload.get("title")),
            name=_optional_text(payload.get("name")) or None,
            pseudonym=_optional_text(payload.get("pseudonym")) or None,
            fee=_decimal(payload["fee"]) if payload.get("fee") not in (None, "") else None,
            feed_type=feed_type,
        )
    except KeyError as error:
        raise TradeParseError(f"trade payload lacks field {error.args[0]!r}") from error
    except (TypeError, ValueError, ArithmeticError) as error:  # ArithmeticError: bad decimals, int(Infinity)
        raise TradeParseError(f"invalid trade payload: {error}") from error


def _text(value: Any) -> str:
    # Documents decoded elsewhere (a Data API row from a file) may still hold a lone surrogate.
    return clean_text(str(value))


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TradeParseError(f"text field is a JSON {type(value).__name__}")
    return _text(value)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TradeParseError("boolean where a number was expected")
    return value if isinstance(value, Decimal) else Decimal(str(value))
