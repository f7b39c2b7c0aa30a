"""Circuit breaker: the transition table over every pair, and the venue's scenarios on an injected clock."""

from __future__ import annotations

import itertools

import pytest

from processors.core.breaker import (
    TRANSITIONS,
    Breaker,
    BreakerBoard,
    BreakerEvent,
    BreakerPolicy,
    BreakerState,
    IllegalBreakerMoveError,
    admit,
    record,
    transition,
)
from schemas.venue import CallOutcome, CallResult

S, E = BreakerState, BreakerEvent
POLICY = BreakerPolicy()
OK, FAIL = CallOutcome(CallResult.ANSWERED, 200), CallOutcome(CallResult.FAILED, 500)
RESTART, CANCEL_ONLY = (
    CallOutcome(CallResult.ENGINE_RESTARTING, 425),
    CallOutcome(CallResult.CANCEL_ONLY, 503),
)

# Written out independently of the implementation's table.
EXPECTED = {
    (S.CLOSED, E.SUCCESS): S.CLOSED,
    (S.CLOSED, E.FAILURE): S.CLOSED,
    (S.CLOSED, E.TRIP): S.OPEN,
    (S.CLOSED, E.PAUSE): S.PAUSED,
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


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)), ids=lambda v: v.value)
def test_every_state_and_event_pair_follows_the_table_or_raises(
    state: BreakerState, event: BreakerEvent
) -> None:
    if (state, event) in EXPECTED:
        assert transition(state, event) is EXPECTED[(state, event)] is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalBreakerMoveError):
            transition(state, event)


def test_the_table_has_exactly_the_specified_edges() -> None:
    assert TRANSITIONS == EXPECTED


def run(outcomes: list[CallOutcome], start: Breaker | None = None, now: float = 0.0) -> Breaker:
    breaker = start or Breaker()
    for outcome in outcomes:
        breaker = record(breaker, outcome, now, POLICY)
    return breaker


def test_five_consecutive_failures_open_it_for_sixty_seconds() -> None:
    breaker = run([FAIL] * 5, now=100.0)

    assert breaker.state is S.OPEN and breaker.until == 160.0 and "5 consecutive failures" in breaker.reason
    assert admit(breaker, 159.9)[1].allowed is False
    assert admit(breaker, 159.9)[1].wait_secs == pytest.approx(0.1)


def test_four_failures_then_an_answer_start_the_count_again() -> None:
    breaker = run([FAIL] * 4 + [OK] + [FAIL] * 4)

    assert breaker.state is S.CLOSED and breaker.failures == 4


def test_after_the_wait_exactly_one_probe_goes_out_and_its_answer_closes_it() -> None:
    breaker = run([FAIL] * 5)
    breaker, first = admit(breaker, 61.0)
    _, second = admit(breaker, 61.0)

    assert first.allowed and first.probe and breaker.state is S.HALF_OPEN
    assert not second.allowed  # only one probe in flight
    assert record(breaker, OK, 61.5, POLICY).state is S.CLOSED


def test_a_failed_probe_opens_it_for_another_sixty_seconds() -> None:
    breaker, _ = admit(run([FAIL] * 5), 61.0)

    reopened = record(breaker, FAIL, 61.5, POLICY)

    assert reopened.state is S.OPEN and reopened.until == 121.5 and reopened.reason == "probe failed"


def test_425_pauses_without_counting_a_failure_and_probes_every_few_seconds() -> None:
    breaker = run([FAIL] * 4 + [RESTART], now=10.0)

    assert breaker.state is S.PAUSED and breaker.failures == 4 and "425" in breaker.reason
    assert not admit(breaker, 11.0)[1].allowed
    probing, admission = admit(breaker, 12.0)
    assert admission.allowed and admission.probe
    still_restarting = record(probing, RESTART, 12.1, POLICY)
    assert still_restarting.state is S.PAUSED  # a 425 probe pauses again, it never opens the breaker
    assert record(probing, OK, 12.1, POLICY).state is S.CLOSED


def test_429_waits_exactly_the_retry_after() -> None:
    breaker = record(Breaker(), CallOutcome(CallResult.THROTTLED, 429, 7.0), 50.0, POLICY)

    assert breaker.state is S.PAUSED and breaker.until == 57.0
    assert admit(breaker, 56.9)[1].wait_secs == pytest.approx(0.1)
    assert admit(breaker, 57.0)[1].allowed


def test_429_without_retry_after_waits_the_default_and_a_huge_one_is_capped() -> None:
    default = record(Breaker(), CallOutcome(CallResult.THROTTLED, 429), 0.0, POLICY)
    huge = record(Breaker(), CallOutcome(CallResult.THROTTLED, 429, 10_000.0), 0.0, POLICY)

    assert default.until == POLICY.throttle_default_secs
    assert huge.until == POLICY.max_retry_after_secs


def test_cancel_only_pauses_placement_longer_than_a_restart() -> None:
    breaker = record(Breaker(), CANCEL_ONLY, 0.0, POLICY)

    assert breaker.state is S.PAUSED and breaker.until == POLICY.cancel_only_probe_secs
    assert "cancel-only" in breaker.reason


def test_the_board_keeps_groups_apart_and_reports_changes_as_values() -> None:
    board = BreakerBoard()
    changes = [board.record("orders.place", FAIL, 1.0) for _ in range(5)]

    assert [c for c in changes if c is not None][0].current is S.OPEN
    assert board.state("orders.read").state is S.CLOSED
    assert board.admit("orders.read", 2.0) == (board.admit("orders.read", 2.0)[0], None)
    admission, change = board.admit("orders.place", 100.0)
    assert (
        admission.probe and change is not None and (change.previous, change.current) == (S.OPEN, S.HALF_OPEN)
    )
