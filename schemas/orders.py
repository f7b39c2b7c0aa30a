"""Order intents, the executor's reports, and the order lifecycle events derived from them."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from schemas.base import Amount, Message, Side
from schemas.books import Level


class OrderType(StrEnum):
    """Venue time-in-force."""

    GTC = "GTC"
    GTD = "GTD"
    FOK = "FOK"
    FAK = "FAK"


class ExecutionMode(StrEnum):
    """Paper simulates fills against the book; live sends to the venue."""

    PAPER = "paper"
    LIVE = "live"


class OrderIntent(Message):
    """A decision to place one order. `intent_id` is derived from (wallet, trade), so it is unique per trade.

    Key: `wallet_id`.
    """

    intent_id: str
    wallet_id: str
    mode: ExecutionMode = ExecutionMode.PAPER
    dedup_key: str
    asset: str
    condition_id: str
    side: Side
    size: Amount = Field(gt=0)
    limit_price: Amount = Field(gt=0, lt=1)
    order_type: OrderType = OrderType.FAK
    expiry_secs: int | None = None
    tick_size: Amount
    neg_risk: bool = False
    received_at_ms: int
    created_at_ms: int
    # The levels the order can take at its limit, best first, as the liquidity gate saw them: paper
    # execution fills against these, so a replay fills exactly as the live run did.
    book_levels: tuple[Level, ...] | None = None


class ReportKind(StrEnum):
    """What the executor learned about an order from the venue (or the paper simulator)."""

    ACCEPTED = "accepted"  # resting on the book (live / delayed)
    FILL = "fill"  # cumulative matched size changed
    CANCELLED = "cancelled"  # killed remainder, user or venue cancel
    REJECTED = "rejected"  # refused at placement
    NOT_FOUND = "not_found"  # a status poll could not find the order (information only: see LOST)
    LOST = "lost"  # live: not found 3 times in a row and absent from the account's trades
    UNKNOWN = "unknown"  # ambiguous submit (timeout, 503): reconcile later, never resubmit
    FILL_CONFIRMED = "fill_confirmed"  # live: `matched_size` of the fills reached CONFIRMED (final)
    FILL_REVERSED = (
        "fill_reversed"  # live: a fill FAILED on chain; `matched_size` is the new, lower total and
    )
    # `average_price` the price of the shares that failed


class ExecutionReport(Message):
    """One observation of one order by the executor. Key: `wallet_id`."""

    report_id: str
    intent_id: str
    wallet_id: str
    order_id: str
    mode: ExecutionMode
    kind: ReportKind
    side: Side
    asset: str
    size: Amount
    limit_price: Amount
    matched_size: Amount = Decimal("0")
    average_price: Amount | None = None
    detail: str = ""
    received_at_ms: int  # when the signal that caused the order was received
    sent_at_ms: int  # when the order left us (or was simulated)
    reported_at_ms: int
    condition_id: str = ""  # the order's market (live reports): a fill after LOST books its position again
    fee_usdc: Amount | None = None  # fees the venue charged on this order so far (cumulative), where it does
    dedup_key: str = ""  # the copied trade's dedup key, so one trade can be followed through every stage


class OrderStatus(StrEnum):
    """Lifecycle state of one order (see processors.core.order_state)."""

    PENDING = "pending"
    PLACED = "placed"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    LOST = "lost"


class OrderEventType(StrEnum):
    """The order events data engineers and the Postgres sink consume."""

    ORDER_PLACED = "OrderPlaced"
    ORDER_PARTIAL_FILL = "OrderPartialFill"
    ORDER_FILLED = "OrderFilled"
    ORDER_CANCELLED = "OrderCancelled"
    ORDER_LOST = "OrderLost"
    ORDER_REJECTED = "OrderRejected"
    ORDER_FILL_REVERSED = "OrderFillReversed"  # a fill failed on chain: matched size down, capital given back


class OrderEvent(Message):
    """A state change of one order. `event_id` is unique and deterministic. Key: `wallet_id`."""

    event_id: str
    event_type: OrderEventType
    sequence: int = Field(ge=1)
    order_id: str
    intent_id: str
    wallet_id: str
    mode: ExecutionMode
    status: OrderStatus
    side: Side
    asset: str
    size: Amount
    limit_price: Amount
    matched_size: Amount
    average_price: Amount | None = None
    released_usdc: Amount | None = None  # reserved capital given back on a terminal state
    detail: str = ""
    received_at_ms: int
    sent_at_ms: int
    occurred_at_ms: int
