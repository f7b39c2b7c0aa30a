"""Deterministic identifiers: the fill dedup key, and ids derived from it, so replays give the same ids."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal


def _digest(*parts: str, length: int = 32) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:length]


def canonical_decimal(value: Decimal | str | float | int) -> str:
    """A number's canonical text: `5`, `5.0` and `5.00` all give `5`; no exponent."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    text = format(number.normalize(), "f")
    return text if text != "-0" else "0"


def build_dedup_key(
    *,
    transaction_hash: str,
    asset: str,
    side: str,
    price: Decimal | str | float,
    size: Decimal | str | float,
    proxy_wallet: str,
) -> str:
    """The venue has no fill id and one transaction holds several fills, so key on the whole fill."""
    return _digest(
        transaction_hash.lower(),
        asset,
        side.upper(),
        canonical_decimal(price),
        canonical_decimal(size),
        proxy_wallet.lower(),
    )


def build_intent_id(wallet_id: str, dedup_key: str) -> str:
    """One intent (and one decision) per (copy wallet, fill): a replay or re-delivery yields the same id."""
    return _digest("intent", wallet_id, dedup_key)


def build_paper_order_id(intent_id: str) -> str:
    """A paper order's id, derived from its intent so the executor can never place it twice."""
    return "paper-" + _digest("order", intent_id, length=40)


def build_event_id(order_id: str, sequence: int) -> str:
    """An order event's id: the order and its position in the order's history."""
    return _digest("event", order_id, str(sequence))


def build_report_id(order_id: str, kind: str, matched_size: Decimal, detail: str = "") -> str:
    """A report's id, stable across re-observations of the same order state."""
    return _digest("report", order_id, kind, canonical_decimal(matched_size), detail)


def build_book_id(
    *,
    asset: str,
    source: str,
    received_at_ms: int,
    timestamp_ms: int,
    venue_hash: str | None,
    tick_size: Decimal,
    min_order_size: Decimal,
    neg_risk: bool,
    bids: Iterable[tuple[Decimal, Decimal]],
    asks: Iterable[tuple[Decimal, Decimal]],
) -> str:
    """A book state's id: where and when we received it and its whole content, so every reader of the books
    topic (another worker, a replay) finds the very state a trade was pinned to."""

    def side(levels: Iterable[tuple[Decimal, Decimal]]) -> str:
        return ",".join(f"{canonical_decimal(price)}:{canonical_decimal(size)}" for price, size in levels)

    return _digest(
        "book",
        asset,
        source,
        str(received_at_ms),
        str(timestamp_ms),
        venue_hash or "",
        canonical_decimal(tick_size),
        canonical_decimal(min_order_size),
        str(neg_risk),
        side(bids),
        side(asks),
    )
