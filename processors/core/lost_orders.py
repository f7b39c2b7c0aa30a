"""The lost-order rule: an order is LOST only after 3 definitive not-founds in a row and a look at the
account's trades that does not find it either.

The venue can answer 404 for hours about a FAK that matched at once (its index lags), so a not-found alone
proves nothing: only a 404 or the venue's empty answer counts, anything else (5xx, 425, 429, a time-out) says
nothing and changes nothing, a successful look-up starts the count again, and before LOST the account's trades
are searched for the order id (as taker or maker). A LOST order stays fillable: a later fill is still booked.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from schemas.venue import LookupKind, OrderFill

LOST_AFTER_NOT_FOUND = 3


class LookupVerdict(StrEnum):
    """What one look-up means for an order's not-found count."""

    FOUND = "found"  # the count starts again
    NO_INFORMATION = "no_information"  # the venue did not answer usefully: nothing counted
    COUNTED = "counted"  # one more definitive not-found, below the threshold
    CHECK_TRADES = "check_trades"  # the threshold is reached: search the account's trades before LOST


class LostVerdict(StrEnum):
    """The decision once the account's trades were searched."""

    FILLED = "filled"  # the trades show the order: not lost, book its fills
    LOST = "lost"
    UNDECIDED = "undecided"  # the trades could not be read: decide on a later pass


def observe_lookup(not_found_count: int, lookup: LookupKind) -> tuple[int, LookupVerdict]:
    """The order's new not-found count after one look-up, and what to do next."""
    if lookup is LookupKind.FOUND:
        return 0, LookupVerdict.FOUND
    if lookup is LookupKind.UNAVAILABLE:
        return not_found_count, LookupVerdict.NO_INFORMATION
    count = not_found_count + 1
    return count, LookupVerdict.CHECK_TRADES if count >= LOST_AFTER_NOT_FOUND else LookupVerdict.COUNTED


def decide_lost(order_id: str, fills: Sequence[OrderFill] | None) -> LostVerdict:
    """LOST only when the account's trades were read and none of them is this order's."""
    if fills is None:
        return LostVerdict.UNDECIDED
    if any(fill.order_id == order_id for fill in fills):
        return LostVerdict.FILLED
    return LostVerdict.LOST
