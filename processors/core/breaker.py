"""Circuit breaker per venue endpoint group: one transition table, an injected clock, changes as values.

Five consecutive failures (5xx, time-outs) open it for 60 s; then one probe goes out and closes it or opens it
again. The venue's "not now" answers pause without counting as failures: 425 (matching engine restarting)
until the venue answers again (a probe every few seconds), 429 for its Retry-After, 503 (cancel-only) like
425 but slower. While open or paused nothing is sent, and the caller keeps what it did not send.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from schemas.venue import CallOutcome, CallResult


class BreakerState(StrEnum):
    """Whether calls of an endpoint group may go out."""

    CLOSED = "closed"  # calls go out
    OPEN = "open"  # failing: nothing goes out until the wait ends
    HALF_OPEN = "half_open"  # one probe is out; its answer closes or re-opens
    PAUSED = "paused"  # the venue said "not now" (425, 429, 503): wait, then probe, no failure counted


class BreakerEvent(StrEnum):
    """What can happen to a breaker."""

    SUCCESS = "success"  # a call was answered
    FAILURE = "failure"  # a call failed, below the threshold
    TRIP = "trip"  # the failure that reaches the threshold
    PAUSE = "pause"  # 425, 429 or the venue's 503
    PROBE = "probe"  # the wait is over: let one call through


S, E = BreakerState, BreakerEvent
TRANSITIONS: dict[tuple[BreakerState, BreakerEvent], BreakerState] = {
    (S.CLOSED, E.SUCCESS): S.CLOSED,
    (S.CLOSED, E.FAILURE): S.CLOSED,
    (S.CLOSED, E.TRIP): S.OPEN,
    (S.CLOSED, E.PAUSE): S.PAUSED,
    # Answers to calls sent before the breaker opened change nothing; the probe decides.
    (S.OPEN, E.SUCCESS): S.OPEN,
    (S.OPEN, E.FAILURE): S.OPEN,
    (S.OPEN, E.TRIP): S.OPEN,
    (S.OPEN, E.PAUSE): S.OPEN,
    (S.OPEN, E.PROBE): S.HALF_OPEN,
    (S.HALF_OPEN, E.SUCCESS): S.CLOSED,
    (S.HALF_OPEN, E.FAILURE): S.OPEN,
    (S.HALF_OPEN, E.TRIP): S.OPEN,
    (S.HALF_OPEN, E.PAUSE): S.PAUSED,
    (S.PAUSED, E.SUCCESS): S.CLOSED,
    (S.PAUSED, E.FAILURE): S.PAUSED,
    (S.PAUSED, E.TRIP): S.PAUSED,
    (S.PAUSED, E.PAUSE): S.PAUSED,
    (S.PAUSED, E.PROBE): S.HALF_OPEN,
}


class IllegalBreakerMoveError(ValueError):
    """A breaker was asked to make a move its state does not allow."""


def transition(state: BreakerState, event: BreakerEvent) -> BreakerState:
    """The next state; raises IllegalBreakerMoveError on an edge the table does not have."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalBreakerMoveError(f"{event.value} is not allowed when {state.value}") from None


@dataclass(frozen=True)
class BreakerPolicy:
    """Thresholds and waits (seconds)."""

    failure_threshold: int = 5
    open_secs: float = 60.0
    restart_probe_secs: float = 2.0  # 425: the venue asks to back off 1-2 s during a ~90 s restart
    cancel_only_probe_secs: float = 10.0  # 503: trading disabled, usually for longer
    throttle_default_secs: float = 2.0  # 429 without Retry-After
    max_retry_after_secs: float = 120.0


@dataclass(frozen=True)
class Breaker:
    """One endpoint group's breaker state (a value: every change returns a new one)."""

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # consecutive
    until: float = 0.0  # OPEN / PAUSED: no call before this time (clock seconds)
    reason: str = ""


@dataclass(frozen=True)
class BreakerChange:
    """A state change, for the caller to turn into a metric and an event."""

    group: str
    previous: BreakerState
    current: BreakerState
    reason: str
    at: float


@dataclass(frozen=True)
class Admission:
    """Whether one call may go out now; if not, how long to wait and why."""

    allowed: bool
    wait_secs: float = 0.0
    reason: str = ""
    probe: bool = False


def admit(breaker: Breaker, now: float) -> tuple[Breaker, Admission]:
    """May a call go out at `now`? Once an OPEN or PAUSED wait is over, exactly one probe is let through."""
    if breaker.state is S.CLOSED:
        return breaker, Admission(True)
    if breaker.state is S.HALF_OPEN:
        return breaker, Admission(False, 0.0, f"probe in flight ({breaker.reason})")
    if now < breaker.until:
        return breaker, Admission(False, breaker.until - now, breaker.reason)
    return replace(breaker, state=transition(breaker.state, E.PROBE)), Admission(
        True, reason=breaker.reason, probe=True
    )


def record(breaker: Breaker, outcome: CallOutcome, now: float, policy: BreakerPolicy) -> Breaker:
    """The breaker after one call's outcome."""
    result = outcome.result
    if result is CallResult.ANSWERED:
        return replace(breaker, state=transition(breaker.state, E.SUCCESS), failures=0, until=0.0, reason="")
    if result is CallResult.FAILED:
        failures = breaker.failures + 1
        event = E.TRIP if failures >= policy.failure_threshold else E.FAILURE
        state = transition(breaker.state, event)
        if state is S.OPEN and breaker.state is not S.OPEN:
            reason = "probe failed" if breaker.state is S.HALF_OPEN else f"{failures} consecutive failures"
            return Breaker(S.OPEN, failures, now + policy.open_secs, reason)
        return replace(breaker, state=state, failures=failures)
    wait, reason = _pause_of(outcome, policy)
    state = transition(breaker.state, E.PAUSE)
    if state is not S.PAUSED:
        return replace(breaker, state=state)
    return Breaker(
        S.PAUSED, breaker.failures, max(now + wait, breaker.until if breaker.state is S.PAUSED else 0), reason
    )


def _pause_of(outcome: CallOutcome, policy: BreakerPolicy) -> tuple[float, str]:
    if outcome.result is CallResult.ENGINE_RESTARTING:
        return policy.restart_probe_secs, "matching engine restarting (425)"
    if outcome.result is CallResult.CANCEL_ONLY:
        return policy.cancel_only_probe_secs, "cancel-only (503)"
    wait = outcome.retry_after_secs if outcome.retry_after_secs is not None else policy.throttle_default_secs
    return min(wait, policy.max_retry_after_secs), "throttled (429)"


class BreakerBoard:
    """The breakers of every endpoint group, with the clock injected; changes come back as values."""

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._breakers: dict[str, Breaker] = {}

    def state(self, group: str) -> Breaker:
        """The group's breaker (closed when never used)."""
        return self._breakers.get(group, Breaker())

    def admit(self, group: str, now: float) -> tuple[Admission, BreakerChange | None]:
        """May a call of `group` go out at `now`? (A probe starting is a change: OPEN/PAUSED -> HALF_OPEN.)"""
        before = self.state(group)
        after, admission = admit(before, now)
        self._breakers[group] = after
        return admission, _change(group, before, after, now)

    def record(self, group: str, outcome: CallOutcome, now: float) -> BreakerChange | None:
        """Count one call's outcome; the change of state, if any."""
        before = self.state(group)
        after = record(before, outcome, now, self.policy)
        self._breakers[group] = after
        return _change(group, before, after, now)


def _change(group: str, before: Breaker, after: Breaker, now: float) -> BreakerChange | None:
    if before.state is after.state:
        return None
    return BreakerChange(group, before.state, after.state, after.reason or before.reason, now)
