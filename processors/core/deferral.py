"""What to do with an order the venue did not take now (breaker open, 425, 429, cancel-only): wait and send
the same order again, bounded by the intent's maximum age, or give up with a recorded reason. None is lost."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.orders import OrderIntent
from schemas.venue import Placement

DEFAULT_RETRY_SECS = 1.0


@dataclass(frozen=True)
class Deferral:
    """Retry at `retry_at_ms`, or (when `skip_reason` is set) report the intent as not placed."""

    retry_at_ms: int | None
    skip_reason: str | None = None


def decide_deferral(intent: OrderIntent, placement: Placement, now_ms: int, max_age_secs: float) -> Deferral:
    """Wait as the venue asked (Retry-After, the breaker's wait, else a second) while the intent is younger
    than `max_age_secs` at the retry; past that, skip it naming why."""
    wait_secs = placement.retry_after_secs if placement.retry_after_secs else DEFAULT_RETRY_SECS
    retry_at = now_ms + int(wait_secs * 1000)
    deadline = intent.received_at_ms + int(max_age_secs * 1000)
    if retry_at > deadline:
        reason = (
            f"not placed within {max_age_secs:g} s of the signal: {placement.detail or 'venue unavailable'}"
        )
        return Deferral(None, reason)
    return Deferral(retry_at)
