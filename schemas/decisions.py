"""Per-wallet decisions: every evaluation outcome, copies and skips alike, with its reason."""

from __future__ import annotations

from enum import StrEnum

from schemas.base import Amount, Message, Side


class DecisionAction(StrEnum):
    """What the wallet does with the trade."""

    COPY = "copy"
    SKIP = "skip"


class SkipReason(StrEnum):
    """Why a wallet did not copy, in the order the rules are evaluated."""

    NOT_TARGET = "not_target"
    SIDE_DISABLED = "side_disabled"
    MARKET_UNKNOWN = "market_unknown"
    MARKET_CLOSED = "market_closed"
    CATEGORY_DENIED = "category_denied"
    SIGNAL_STALE = "signal_stale"
    LEADER_TOO_SMALL = "leader_too_small"
    PRICE_OUT_OF_BAND = "price_out_of_band"
    EDGE_BELOW_MIN = "edge_below_min"
    NO_POSITION = "no_position"
    BELOW_MIN_ORDER_SIZE = "below_min_order_size"
    EXPOSURE_CAP = "exposure_cap"
    DAILY_LOSS_CAP = "daily_loss_cap"
    OPEN_ORDERS_CAP = "open_orders_cap"
    CAPITAL_EXHAUSTED = "capital_exhausted"
    INSUFFICIENT_LIQUIDITY = "insufficient_liquidity"
    BOOK_UNAVAILABLE = "book_unavailable"
    DUPLICATE = "duplicate"


class Decision(Message):
    """The outcome of evaluating one trade for one copy wallet. Key: `wallet_id`."""

    decision_id: str
    wallet_id: str
    dedup_key: str
    trader: str
    asset: str
    condition_id: str
    side: Side
    leader_price: Amount
    leader_size: Amount
    action: DecisionAction
    reason: str  # "copy" or a SkipReason value
    detail: str = ""
    size: Amount | None = None  # shares we would order
    limit_price: Amount | None = None
    available_size: Amount | None = None  # book depth at our limit, when the gate ran
    received_at_ms: int
    decided_at_ms: int
    book_id: str | None = None  # the book state the evaluation saw (books topic), None when it had none
