"""Market resolutions, and what each copy wallet holds and made: positions and the per-wallet snapshot."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from schemas.base import Amount, Message, Side


class ResolutionSource(StrEnum):
    """Where a resolution was learnt."""

    GAMMA = "gamma"  # `polycopy markets sync`: a closed market whose UMA resolution is final
    MARKET_CHANNEL = "market_channel"  # the CLOB market channel's `market_resolved` event
    IMPORT = "import"  # a file or a test


class MarketResolution(Message):
    """How one market resolved. Key on the compacted resolutions topic: `condition_id`.

    `payouts` maps outcome token ids to what one share pays out (1 for the winner, 0 for a loser, 0.5 each in
    a 50-50 resolution); a token of the market that `payouts` does not name pays 0. A Protocol-V2 position id
    may be listed beside the CLOB token id of the same outcome. Each market of a neg-risk event resolves
    Yes/No on its own, so it has a resolution of its own.
    """

    condition_id: str
    payouts: dict[str, Amount]
    winning_token_id: str | None = None
    winning_outcome: str | None = None
    question: str = ""
    neg_risk: bool = False
    resolved_at_ms: int = Field(gt=0)
    source: ResolutionSource

    @model_validator(mode="after")
    def _check_payouts(self) -> Self:
        if not self.payouts:
            raise ValueError("a resolution names the payout of at least one token")
        if any(not Decimal(0) <= payout <= Decimal(1) for payout in self.payouts.values()):
            raise ValueError("payouts are between 0 and 1 per share")
        return self

    def payout_of(self, token_id: str) -> Decimal:
        """What one share of `token_id` (a token of this market) pays out."""
        return self.payouts.get(token_id, Decimal(0))


class WalletResolution(Message):
    """A resolution addressed to one copy wallet (the worker fans each resolution out). Key: `wallet_id`."""

    wallet_id: str
    resolution: MarketResolution


class PositionStatus(StrEnum):
    """Where a position is in its life."""

    OPEN = "open"  # shares held, marked to the latest price the wallet saw
    REDEEMABLE = "redeemable"  # live: the market resolved; the shares wait to be redeemed
    SETTLED = "settled"  # the market resolved and the shares paid out (paper: at once)
    CLOSED = "closed"  # every share sold (or a failed fill reversed it)


class PositionView(Message):
    """One (wallet, token) position as of a wallet state `version`. Key on the positions topic: `wallet_id`.

    A settled position keeps the shares that paid out and their cost, a closed one has none left, and
    `realised_pnl_usdc` holds everything it made: sales plus the payout, fees included.
    """

    wallet_id: str
    asset: str
    condition_id: str
    status: PositionStatus
    shares: Amount
    cost_usdc: Amount
    average_price: Amount
    mark_price: Amount | None = None  # latest trade price or book mid the wallet saw, or the payout
    marked_at_ms: int | None = None
    unrealised_pnl_usdc: Amount = Decimal(0)
    realised_pnl_usdc: Amount = Decimal(0)
    payout: Amount | None = None  # per share, once the market resolved
    version: int = Field(ge=0)
    updated_at_ms: int


class OpenOrderView(Message):
    """One open order of a wallet (an intent holding capital or shares until it fills or ends)."""

    intent_id: str
    order_id: str | None = None  # None until the executor reported on it
    status: str  # pending, placed, partially_filled
    side: Side
    asset: str
    condition_id: str
    size: Amount
    matched_size: Amount
    limit_price: Amount
    reserved_usdc: Amount


class WalletSnapshot(Message):
    """A copy wallet's money and holdings at a wallet state `version`. Key on the compacted snapshots topic:
    `wallet_id` (the latest wins).

    available + reserved + deployed = capital + realised PnL. Unrealised PnL marks open positions to the
    latest price the wallet saw. The daily figures are for the UTC `day` of the wallet's latest event.
    """

    wallet_id: str
    mode: str
    capital_usdc: Amount
    available_usdc: Amount
    reserved_usdc: Amount
    deployed_usdc: Amount
    realised_pnl_usdc: Amount
    unrealised_pnl_usdc: Amount
    fees_usdc: Amount = Decimal(0)
    redeemable_usdc: Amount = Decimal(0)  # live: what resolved positions will pay when redeemed
    day: str
    daily_realised_pnl_usdc: Amount = Decimal(0)
    daily_unrealised_pnl_usdc: Amount = Decimal(0)
    daily_loss_usdc: Amount = Decimal(0)  # what `max_daily_loss_usdc` compares with
    settled_positions: int = 0
    winning_positions: int = 0
    win_rate: Amount | None = None  # winning / settled positions; None before the first settlement
    open_positions: tuple[PositionView, ...] = ()
    open_orders: tuple[OpenOrderView, ...] = ()
    version: int = Field(ge=0)
    as_of_ms: int
