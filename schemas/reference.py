"""Reference data the policy reads: market metadata (Gamma), trader stats (leaderboard), poller watermarks."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Address, Amount, Message


class MarketReference(Message):
    """One market's metadata. Key on the compacted markets topic: `condition_id`."""

    condition_id: str
    question: str = ""
    slug: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    end_date_ms: int | None = None
    closed: bool = False
    accepting_orders: bool = True
    neg_risk: bool = False
    tick_size: Amount | None = None
    min_order_size: Amount | None = None
    token_ids: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    updated_at_ms: int = Field(gt=0)


class TraderReference(Message):
    """One trader's public record. Key on the compacted traders topic: `wallet` (lower-case)."""

    wallet: Address
    name: str | None = None
    rank: int | None = None
    pnl_usdc: Amount | None = None
    volume_usdc: Amount | None = None
    win_rate: Amount | None = Field(default=None, ge=0, le=1)
    source: str = "leaderboard"  # "leaderboard" | "import"
    updated_at_ms: int = Field(gt=0)


class PollerWatermark(Message):
    """The newest trade time the safety-net poller has seen for one wallet. Key: `wallet`."""

    wallet: Address
    last_trade_timestamp: int = Field(ge=0, description="venue trade time, epoch seconds")
    updated_at_ms: int = Field(gt=0)
