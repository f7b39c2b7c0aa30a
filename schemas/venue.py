"""What a live venue tells the executor about its orders, venue-neutral: placements, look-ups, fills, calls.

The venue adapter (`polycopy.polymarket`) parses the wire into these; the pure core (breaker, lost-order rule,
reconciliation) reasons on them; the executor turns them into execution reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from schemas.base import Side


class VenueOrderStatus(StrEnum):
    """An order's status at the venue (upper-case; REST sometimes prefixes `ORDER_STATUS_`)."""

    LIVE = "LIVE"  # resting on the book
    MATCHED = "MATCHED"  # fully matched
    DELAYED = "DELAYED"  # marketable but held by a matching delay: matches (or not) seconds later
    UNMATCHED = "UNMATCHED"  # delayed, then failed to match: terminal, no fill
    CANCELED = "CANCELED"
    CANCELED_MARKET_RESOLVED = "CANCELED_MARKET_RESOLVED"
    INVALID = "INVALID"  # refused or cancelled by the venue


FINISHED_ORDER_STATUSES = frozenset(
    {
        VenueOrderStatus.MATCHED,
        VenueOrderStatus.UNMATCHED,
        VenueOrderStatus.CANCELED,
        VenueOrderStatus.CANCELED_MARKET_RESOLVED,
        VenueOrderStatus.INVALID,
    }
)


class FillStatus(StrEnum):
    """A fill's settlement status: MATCHED -> MINED -> CONFIRMED, or RETRYING -> FAILED."""

    MATCHED = "MATCHED"
    MINED = "MINED"
    CONFIRMED = "CONFIRMED"  # economic finality
    RETRYING = "RETRYING"
    FAILED = "FAILED"  # the fill did not settle: it never happened


class CallResult(StrEnum):
    """How one venue call ended, as the circuit breaker counts it."""

    ANSWERED = "answered"  # a 2xx, or a definitive 4xx business answer: the venue works
    FAILED = "failed"  # a 5xx (other than 503), a time-out, a connection error
    ENGINE_RESTARTING = "engine_restarting"  # 425: the matching engine restarts (about 90 s, weekly)
    CANCEL_ONLY = "cancel_only"  # 503: trading disabled, cancels only
    THROTTLED = "throttled"  # 429: wait Retry-After


@dataclass(frozen=True)
class CallOutcome:
    """One call's result for the breaker, with what the venue said about waiting."""

    result: CallResult
    status_code: int | None = None
    retry_after_secs: float | None = None


class PlacementKind(StrEnum):
    """What placing one order came to."""

    ACCEPTED = "accepted"  # live, matched or delayed (never resubmit a delayed order)
    REJECTED = "rejected"  # a definitive refusal: nothing rests, nothing filled
    DUPLICATE = "duplicate"  # the venue already has this very order (same hash): ours, look it up
    UNKNOWN = "unknown"  # ambiguous (time-out, 5xx, reset): only reconciliation resolves it
    DEFERRED = "deferred"  # not taken now (breaker open, 425, 503, 429): the same order may go later


class RejectReason(StrEnum):
    """Why the venue refused an order, from its message."""

    NO_MATCH = "no_match"  # FAK found nothing to match, FOK could not fill entirely
    BALANCE = "balance"  # not enough balance or allowance
    POST_ONLY_CROSSES = "post_only_crosses"
    MARKET_NOT_READY = "market_not_ready"
    INVALID = "invalid"  # any other definitive 4xx


@dataclass(frozen=True)
class Placement:
    """The outcome of placing one order; `order_id` is known before sending (the order's hash)."""

    order_id: str
    kind: PlacementKind
    venue_status: VenueOrderStatus | None = None
    matched_size: Decimal = Decimal(0)  # shares matched at placement
    average_price: Decimal | None = None
    trade_ids: tuple[str, ...] = ()
    reject_reason: RejectReason | None = None
    detail: str = ""
    status_code: int | None = None
    retry_after_secs: float | None = None


@dataclass(frozen=True)
class VenueOrder:
    """One order as the venue reports it."""

    order_id: str
    status: VenueOrderStatus
    side: Side
    asset: str
    original_size: Decimal
    size_matched: Decimal
    price: Decimal
    order_type: str = ""
    created_at_ms: int = 0


class LookupKind(StrEnum):
    """What looking an order up said."""

    FOUND = "found"
    NOT_FOUND = "not_found"  # definitive: 404 or the venue's empty answer
    UNAVAILABLE = "unavailable"  # says nothing: 5xx, 425, 429, time-out, breaker open


@dataclass(frozen=True)
class OrderLookup:
    """The answer to looking one order up."""

    kind: LookupKind
    order: VenueOrder | None = None
    detail: str = ""


@dataclass(frozen=True)
class OrderFill:
    """One of our orders' share of one venue trade (the venue has no fill id: trade id + order id)."""

    trade_id: str
    order_id: str
    status: FillStatus
    side: Side
    asset: str
    size: Decimal
    price: Decimal
    match_time_ms: int
    taker: bool


@dataclass(frozen=True)
class CancelResult:
    """What a cancel request achieved: the ids cancelled, and the rest with the venue's reason."""

    cancelled: tuple[str, ...] = ()
    not_cancelled: tuple[tuple[str, str], ...] = ()
    ok: bool = True  # False: the request itself failed (the orders' state is unknown)
    detail: str = ""
