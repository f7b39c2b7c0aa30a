"""Trades as the venue reported them, and their fan-out to the copy wallets that follow the trader."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from schemas.base import Address, Amount, Message, Side


class TradeSource(StrEnum):
    """How a trade reached us."""

    RTDS = "rtds"
    POLL = "poll"
    REPLAY = "replay"


class RawTrade(Message):
    """One fill of one trader, as seen on the venue's feed, with our receive time and dedup key.

    The venue has no unique fill id, so `dedup_key` is derived from the fill's own fields
    (see processors.core.dedup.build_dedup_key). Key on the topic: `proxy_wallet`.
    """

    dedup_key: str = Field(min_length=16)
    source: TradeSource
    feed_type: str | None = None  # "trades" | "orders_matched" for RTDS, None otherwise
    received_at_ms: int = Field(gt=0)
    proxy_wallet: Address
    side: Side
    asset: str = Field(min_length=1)
    condition_id: str = Field(min_length=1)
    size: Amount = Field(gt=0)
    price: Amount = Field(gt=0, lt=1)
    timestamp: int = Field(gt=0, description="venue trade time, epoch seconds")
    transaction_hash: str
    outcome: str | None = None
    outcome_index: int | None = None
    slug: str | None = None
    event_slug: str | None = None
    title: str | None = None
    name: str | None = None
    pseudonym: str | None = None
    fee: Amount | None = None


class TargetedTrade(Message):
    """A raw trade addressed to one copy wallet that follows its trader. Key: `wallet_id`.

    `book_id` pins the book state the target filter chose for the trade (on the books topic), so every
    follower's evaluation, and any replay, gates on the same liquidity; None when no book could be had.
    """

    wallet_id: str
    trade: RawTrade
    book_id: str | None = None
