"""Reconciliation: what the venue says about one order (its status, and its fills in the account's trades)
turned into the observations the executor reports. Pure; the executor maps each one to an execution report.

Fill statuses go MATCHED -> MINED -> CONFIRMED, or RETRYING -> FAILED. A MATCHED fill counts as filled for the
ledger (capital is committed at once); economic finality is CONFIRMED; a FAILED fill never happened, so the
matched size falls back and a FILL_REVERSED observation tells the ledger to give the capital back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from schemas.orders import ReportKind
from schemas.venue import FINISHED_ORDER_STATUSES, FillStatus, OrderFill, Placement, PlacementKind, VenueOrder
from schemas.venue import VenueOrderStatus as V

ZERO = Decimal(0)
CANCELLED_STATUSES = frozenset({V.CANCELED, V.CANCELED_MARKET_RESOLVED, V.INVALID, V.UNMATCHED})


@dataclass(frozen=True)
class KnownOrder:
    """What we have already reported about one order."""

    order_id: str
    size: Decimal
    matched: Decimal = ZERO  # cumulative matched size reported (failed fills excluded)
    confirmed: Decimal = ZERO  # of which CONFIRMED
    accepted: bool = False
    finished: bool = False  # a cancel (or full fill) was reported


@dataclass(frozen=True)
class Observation:
    """One thing to report about an order: a report kind with the cumulative matched size."""

    kind: ReportKind
    matched: Decimal
    average_price: Decimal | None = None
    detail: str = ""


@dataclass(frozen=True)
class FillSummary:
    """An order's fills, each trade counted once at its latest status."""

    matched: Decimal
    confirmed: Decimal
    failed: Decimal
    average_price: Decimal | None
    failed_trades: tuple[str, ...]
    failed_average_price: Decimal | None = None


def summarise_fills(order_id: str, fills: Iterable[OrderFill]) -> FillSummary:
    """The order's matched, confirmed and failed shares; a trade seen several times counts at its latest
    status (FAILED and CONFIRMED are final and win over the statuses before them)."""
    latest: dict[str, OrderFill] = {}
    rank = {FillStatus.MATCHED: 0, FillStatus.MINED: 1, FillStatus.RETRYING: 1}
    rank |= {FillStatus.CONFIRMED: 2, FillStatus.FAILED: 2}
    for fill in fills:
        if fill.order_id != order_id:
            continue
        seen = latest.get(fill.trade_id)
        if seen is None or rank[fill.status] >= rank[seen.status]:
            latest[fill.trade_id] = fill
    good = [fill for fill in latest.values() if fill.status is not FillStatus.FAILED]
    bad = [fill for fill in latest.values() if fill.status is FillStatus.FAILED]
    failed = sum((fill.size for fill in bad), ZERO)
    matched = sum((fill.size for fill in good), ZERO)
    value = sum((fill.size * fill.price for fill in good), ZERO)
    return FillSummary(
        matched=matched,
        confirmed=sum((fill.size for fill in good if fill.status is FillStatus.CONFIRMED), ZERO),
        failed=failed,
        average_price=value / matched if matched > 0 else None,
        failed_trades=tuple(sorted(fill.trade_id for fill in bad)),
        failed_average_price=sum((f.size * f.price for f in bad), ZERO) / failed if failed > 0 else None,
    )


def placement_from_order(order: VenueOrder, detail: str) -> Placement:
    """An accepted placement as the venue's order shows it (after a duplicate answer or a restart)."""
    return Placement(
        order.order_id,
        PlacementKind.ACCEPTED,
        venue_status=order.status,
        matched_size=order.size_matched,
        average_price=order.price if order.size_matched > 0 else None,
        detail=detail,
    )


def placement_from_fills(order_id: str, fills: Sequence[OrderFill], detail: str) -> Placement:
    """An accepted (matched) placement as the account's trades show it, failed fills left out."""
    summary = summarise_fills(order_id, fills)
    return Placement(
        order_id,
        PlacementKind.ACCEPTED,
        venue_status=V.MATCHED,
        matched_size=summary.matched,
        average_price=summary.average_price,
        trade_ids=tuple(sorted({fill.trade_id for fill in fills})),
        detail=detail,
    )


def observe_placement(placement: Placement, size: Decimal, kills_remainder: bool) -> list[Observation]:
    """What a placement tells at once: accepted (with the matched part, and for FAK/FOK the killed rest),
    rejected, or unknown. A `delayed` order is only accepted: it matches (or not) later."""
    if placement.kind is PlacementKind.ACCEPTED:
        observations = [Observation(ReportKind.ACCEPTED, ZERO, None, (placement.venue_status or "").lower())]
        matched, average = placement.matched_size, placement.average_price
        if matched > 0:
            observations.append(Observation(ReportKind.FILL, matched, average))
        if kills_remainder and placement.venue_status is V.MATCHED and matched < size:
            observations.append(Observation(ReportKind.CANCELLED, matched, average, "FAK remainder killed"))
        return observations
    if placement.kind is PlacementKind.REJECTED:
        reason = placement.reject_reason.value if placement.reject_reason else "rejected"
        return [Observation(ReportKind.REJECTED, ZERO, None, f"{reason}: {placement.detail}".rstrip(": "))]
    if placement.kind is PlacementKind.UNKNOWN:
        return [Observation(ReportKind.UNKNOWN, ZERO, None, placement.detail)]
    return []  # DUPLICATE and DEFERRED are resolved by a look-up or a later attempt, not reported as such


def reconcile_order(
    known: KnownOrder, order: VenueOrder | None, fills: Sequence[OrderFill]
) -> list[Observation]:
    """Observations that bring `known` up to date with the venue's order (None: not found) and the account's
    fills of that order. Re-running with the same inputs after reporting them yields nothing."""
    summary = summarise_fills(known.order_id, fills)
    matched = summary.matched
    if order is not None and not summary.failed:
        # The order's own size_matched may run ahead of the trades list (or the trades may lag): take the
        # larger, unless a fill failed, in which case only settled-or-settling fills count.
        matched = max(matched, min(order.size_matched, known.size))
    average = summary.average_price if summary.average_price is not None else (order.price if order else None)
    observations: list[Observation] = []
    if not known.accepted and (order is not None or matched > 0):
        observations.append(Observation(ReportKind.ACCEPTED, known.matched, None, _status_text(order)))
    if matched > known.matched:
        observations.append(Observation(ReportKind.FILL, matched, average))
    elif matched < known.matched:
        trades = ", ".join(summary.failed_trades) or "a fill"
        failed_price = summary.failed_average_price or average
        observations.append(
            Observation(ReportKind.FILL_REVERSED, matched, failed_price, f"trade {trades} FAILED")
        )
    if summary.confirmed > known.confirmed:
        observations.append(Observation(ReportKind.FILL_CONFIRMED, summary.confirmed, average))
    if order is not None and not known.finished:
        if order.status in CANCELLED_STATUSES:
            observations.append(
                Observation(ReportKind.CANCELLED, matched, average, order.status.value.lower())
            )
        elif order.status is V.MATCHED and 0 < matched < known.size and order.size_matched < known.size:
            observations.append(Observation(ReportKind.CANCELLED, matched, average, "remainder killed"))
    return observations


def is_finished(order: VenueOrder) -> bool:
    """The venue will not change this order any more (its fills may still settle or fail)."""
    return order.status in FINISHED_ORDER_STATUSES


def _status_text(order: VenueOrder | None) -> str:
    return order.status.value.lower() if order is not None else "found in the account's trades"


def advance_known(known: KnownOrder, observation: Observation) -> KnownOrder:
    """`known` once `observation` has been reported."""
    kind = observation.kind
    if kind in (ReportKind.FILL, ReportKind.FILL_REVERSED):
        return replace(known, matched=observation.matched, accepted=True)
    if kind is ReportKind.FILL_CONFIRMED:
        return replace(known, confirmed=observation.matched, accepted=True)
    if kind is ReportKind.ACCEPTED:
        return replace(known, accepted=True)
    if kind in (ReportKind.CANCELLED, ReportKind.REJECTED):
        return replace(known, finished=True)
    return known


def is_settled(known: KnownOrder) -> bool:
    """Nothing more can happen to this order: it is finished (cancelled, rejected, killed) or fully matched,
    and every matched share is CONFIRMED (a MATCHED fill may still fail, so it is watched until then)."""
    done = known.finished or known.matched >= known.size
    return done and known.confirmed >= known.matched
