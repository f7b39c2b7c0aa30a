"""What the MCP tools answer: the pipeline's own models (wallet configs and snapshots, decisions, intents,
order events, books, what-if reports) wrapped in small answer models, so every answer is structured output."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from schemas.base import Amount, Side
from schemas.books import Level, OrderBook
from schemas.control import KillSwitch
from schemas.decisions import Decision
from schemas.orders import OrderEvent, OrderIntent
from schemas.portfolio import WalletSnapshot
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig


class ToolInputError(ValueError):
    """A tool's arguments name nothing the pipeline knows (an unknown wallet, a malformed id, a window too
    large): the caller's mistake, answered with this message instead of a result."""


class Answer(BaseModel):
    """Base of every answer: frozen, with the fields it declares only."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StrategyStatus(StrEnum):
    """Whether a copy wallet copies trades now."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    REMOVED = "removed"  # no configuration any more (a tombstone), but a snapshot of what it held remains


class SnapshotSource(StrEnum):
    """Where a wallet's snapshot was read: the compacted snapshots topic, or the table the sink writes from it
    (whichever holds the newer version)."""

    TOPIC = "topic"
    DATABASE = "database"


class StrategySummary(Answer):
    """One copy wallet in a line: status, mode, capital and PnL (None until its first snapshot)."""

    wallet_id: str
    status: StrategyStatus
    mode: str
    capital_usdc: Amount
    available_usdc: Amount | None = None
    realised_pnl_usdc: Amount | None = None
    unrealised_pnl_usdc: Amount | None = None
    total_pnl_usdc: Amount | None = None
    open_positions: int = 0
    open_orders: int = 0
    targets: int = 0  # explicit leaders followed; 0 = the synced traders
    as_of_ms: int | None = None  # the snapshot's time


class StrategyList(Answer):
    """Every copy wallet the configuration topic names (and removed ones that still have a snapshot)."""

    strategies: tuple[StrategySummary, ...]


class CapUsage(Answer):
    """One cap of a wallet and how close it is: `used` of `limit` (`used_fraction` 1 = reached)."""

    cap: str  # the wallet setting, e.g. max_total_exposure_usdc
    scope: str  # "wallet", "per order", or "market <condition id>"
    limit: Amount
    used: Amount | None = None  # None for a per-order cap (nothing accumulates)
    headroom: Amount | None = None
    used_fraction: Amount | None = None


class RiskState(Answer):
    """A wallet's money and caps now (from its latest snapshot): what copies can use and what stops them."""

    capital_usdc: Amount
    available_usdc: Amount
    reserved_usdc: Amount
    deployed_usdc: Amount
    open_orders: int
    open_positions: int
    daily_loss_usdc: Amount
    day: str
    caps: tuple[CapUsage, ...]
    kill_switch: KillSwitch | None = None  # the wallet's own, else the global one, when engaged


class StrategyDetail(Answer):
    """One copy wallet: its configuration, its latest snapshot and its risk state."""

    wallet_id: str
    status: StrategyStatus
    config: WalletConfig | None
    snapshot: WalletSnapshot | None = None
    snapshot_source: SnapshotSource | None = None
    risk: RiskState | None = None  # None until the worker published a first snapshot


class OrderView(Answer):
    """An order as the tables hold it: its intent, and the latest state the lifecycle reported (`pending`
    until the executor's first report arrived)."""

    intent_id: str
    order_id: str | None
    wallet_id: str
    mode: str
    status: str
    side: Side
    asset: str
    condition_id: str
    size: Amount
    limit_price: Amount
    matched_size: Amount = Decimal(0)
    average_price: Amount | None = None
    order_type: str
    dedup_key: str
    received_at_ms: int
    created_at_ms: int
    sent_at_ms: int | None = None
    updated_at_ms: int | None = None


class OrderList(Answer):
    """A wallet's orders, newest first."""

    wallet_id: str
    statuses: tuple[str, ...]  # the filter (empty: every status)
    orders: tuple[OrderView, ...]
    truncated: bool  # more orders matched than `limit`


class OrderStatusAnswer(Answer):
    """One order: where it is, the intent that made it, every lifecycle event, and the executor's claim."""

    order: OrderView
    intent: OrderIntent
    events: tuple[OrderEvent, ...]
    journal_state: str | None = None  # the executor's claim (claimed, sent, ...); None: not claimed yet


class RuleExplanation(Answer):
    """The copy rule a decision's reason comes from, with the wallet settings it reads (their values now)."""

    reason: str
    position: int  # 1 = the first rule evaluated (README, "The copy policy"); 0 for `copy`
    rule: str
    settings: dict[str, str | None]


class BookSeen(Answer):
    """The book state a decision's gate saw (`book_id` on the books topic), and what the intent could take."""

    book_id: str | None
    book: OrderBook | None = None  # None when no book was pinned, or it is no longer in the topic
    levels_at_limit: tuple[Level, ...] | None = None  # a copy's intent: the levels at its limit, best first
    note: str = ""


class DecisionOutcome(StrEnum):
    """What a wallet did with a trade."""

    COPIED = "copied"
    SKIPPED = "skipped"
    NOT_FOLLOWED = "not_followed"  # the wallet does not follow the trader now: no decision is recorded
    NOT_DECIDED = "not_decided"  # it follows the trader, but no decision is recorded (yet)


class DecisionExplanation(Answer):
    """Why one wallet did or did not copy one fill."""

    wallet_id: str
    dedup_key: str
    outcome: DecisionOutcome
    reason: str
    detail: str = ""
    decision: Decision | None = None
    rule: RuleExplanation | None = None
    book: BookSeen | None = None
    order: OrderView | None = None


class TradeExplanations(Answer):
    """The fills a dedup key or transaction hash names, and each wallet's decision on each."""

    trades: tuple[RawTrade, ...]
    explanations: tuple[DecisionExplanation, ...]


class WhatIfWallet(Answer):
    """One wallet's what-if outcome: decisions by reason and the money, as `polycopy whatif` prints it."""

    wallet_id: str
    considered: int
    copied: int
    skipped: dict[str, int]
    capital_used_usdc: Amount
    realised_pnl_usdc: Amount
    unrealised_pnl_usdc: Amount
    snapshot: WalletSnapshot | None = None


class WhatIfAnswer(Answer):
    """A bounded what-if replay: the window, how many trades and where their books came from, per wallet."""

    from_ms: int
    to_ms: int
    trades: int
    books_pinned: int
    books_rebuilt: int
    books_missing: int
    settled_markets: int = 0  # markets that resolved within the window, settled when the replay reached them
    wallets: tuple[WhatIfWallet, ...]
