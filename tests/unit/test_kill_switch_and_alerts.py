"""The kill switch and live-order gate, and alerts built from events with deterministic ids."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processors.core.alerts import (
    alert_for_breaker,
    alert_for_feed_silence,
    alert_for_kill_switch,
    alert_for_order_event,
)
from processors.core.kill_switch import KillSwitchBoard, apply_switch, refuse_live_order, wallets_to_cancel
from schemas.alerts import AlertKind, Severity
from schemas.control import ALL_WALLETS, KillSwitch
from schemas.orders import ExecutionMode, OrderEvent, OrderEventType, OrderStatus
from tests.builders import build_intent

LIVE, PAPER = ExecutionMode.LIVE, ExecutionMode.PAPER


def switch(wallet: str, engaged: bool, at: int = 1) -> KillSwitch:
    return KillSwitch(wallet_id=wallet, engaged=engaged, reason="drill", set_by="ops", set_at_ms=at)


def test_engaging_and_releasing_per_wallet_and_for_all() -> None:
    board = apply_switch(KillSwitchBoard(), "alice", switch("alice", True))
    assert board.is_halted("alice") and not board.is_halted("bob")

    everyone = apply_switch(board, ALL_WALLETS, switch(ALL_WALLETS, True))
    assert everyone.is_halted("bob")

    released = apply_switch(apply_switch(everyone, ALL_WALLETS, None), "alice", switch("alice", False))
    assert released.engaged == frozenset()


def test_only_newly_halted_wallets_have_their_open_orders_cancelled() -> None:
    before = KillSwitchBoard(frozenset({"alice"}))
    after = apply_switch(before, ALL_WALLETS, switch(ALL_WALLETS, True))

    assert wallets_to_cancel(before, after, ["alice", "bob", "carol", "bob"]) == ["bob", "carol"]


@pytest.mark.parametrize(
    ("wallet_mode", "deployment", "key", "board", "expected"),
    [
        (LIVE, LIVE, True, KillSwitchBoard(), None),
        (
            PAPER,
            LIVE,
            True,
            KillSwitchBoard(),
            "wallet w is not in live mode (mode: live in its configuration)",
        ),
        (LIVE, PAPER, True, KillSwitchBoard(), "the deployment is not live (POLYCOPY_EXECUTION_MODE=live)"),
        (LIVE, LIVE, False, KillSwitchBoard(), "no signer key (POLYCOPY_PRIVATE_KEY)"),
        (LIVE, LIVE, True, KillSwitchBoard(frozenset({"w"})), "kill switch engaged"),
        (LIVE, LIVE, True, KillSwitchBoard(frozenset({"*"})), "kill switch engaged for every wallet"),
    ],
)
def test_a_live_order_needs_both_switches_a_key_and_no_kill_switch(
    wallet_mode: ExecutionMode,
    deployment: ExecutionMode,
    key: bool,
    board: KillSwitchBoard,
    expected: str | None,
) -> None:
    refusal = refuse_live_order(
        wallet_id="w", wallet_mode=wallet_mode, deployment_mode=deployment, has_key=key, board=board
    )
    assert refusal == expected


def lost_event(event_id: str = "e1") -> OrderEvent:
    intent = build_intent()
    return OrderEvent(
        event_id=event_id,
        event_type=OrderEventType.ORDER_LOST,
        sequence=2,
        order_id="0xabc",
        intent_id=intent.intent_id,
        wallet_id=intent.wallet_id,
        mode=LIVE,
        status=OrderStatus.LOST,
        side=intent.side,
        asset=intent.asset,
        size=intent.size,
        limit_price=intent.limit_price,
        matched_size=Decimal(0),
        released_usdc=Decimal("10.40"),
        detail="not found 3 times in a row and not in the account's trades",
        received_at_ms=1,
        sent_at_ms=2,
        occurred_at_ms=3,
    )


def test_an_order_lost_event_raises_one_critical_alert_with_a_stable_id() -> None:
    alert = alert_for_order_event(lost_event())

    assert alert is not None and alert.kind is AlertKind.ORDER_LOST and alert.severity is Severity.CRITICAL
    assert "10.40 USDC released" in alert.detail
    assert alert == alert_for_order_event(lost_event())  # re-delivery gives the same alert (same id)
    assert alert_for_order_event(lost_event("e2")).alert_id != alert.alert_id  # type: ignore[union-attr]
    assert (
        alert_for_order_event(lost_event().model_copy(update={"event_type": OrderEventType.ORDER_FILLED}))
        is None
    )


@pytest.mark.parametrize(
    ("previous", "current", "kind"),
    [
        ("closed", "open", AlertKind.BREAKER_OPEN),
        ("closed", "paused", AlertKind.BREAKER_OPEN),
        ("half_open", "open", None),  # a failed probe: already alerted when it first opened
        ("open", "half_open", None),
        ("half_open", "closed", AlertKind.BREAKER_CLOSED),
        ("paused", "closed", AlertKind.BREAKER_CLOSED),
    ],
)
def test_breaker_alerts_when_calls_stop_and_when_they_resume(
    previous: str, current: str, kind: AlertKind | None
) -> None:
    alert = alert_for_breaker("orders.place", previous, current, "5 consecutive failures", 1000)
    assert (alert.kind if alert else None) is kind


def test_kill_switch_and_feed_silence_alerts() -> None:
    engaged = alert_for_kill_switch(switch(ALL_WALLETS, True))
    silent = alert_for_feed_silence("rtds", 20.0, since_ms=5, at_ms=25_005)

    assert (
        engaged.severity is Severity.CRITICAL
        and "every wallet" in engaged.summary
        and engaged.wallet_id is None
    )
    assert alert_for_kill_switch(switch("alice", False)).severity is Severity.INFO
    assert (
        silent.kind is AlertKind.FEED_SILENT
        and silent.alert_id == alert_for_feed_silence("rtds", 40.0, 5, 45_005).alert_id
    )


def test_a_silent_feed_alerts_once_per_silence() -> None:
    from processors.core.alerts import SilenceWatch

    watch = SilenceWatch("rtds", 20, started_at_ms=0)
    assert watch.check(19_999) is None
    first = watch.check(20_000)
    assert first is not None and first.kind is AlertKind.FEED_SILENT and watch.check(60_000) is None

    watch.saw_trade(61_000)
    assert watch.check(80_000) is None
    second = watch.check(81_000)
    assert second is not None and second.alert_id != first.alert_id


@pytest.mark.parametrize(
    ("retry_after", "now", "expected"),
    [
        (7.0, 1_000, (8_000, None)),
        (None, 1_000, (2_000, None)),  # no wait named: a second
        (7.0, 55_000, (None, "not placed within 60 s of the signal: matching engine restarting")),
    ],
)
def test_a_deferred_order_waits_within_the_intents_age_or_is_skipped_with_a_reason(
    retry_after: float | None, now: int, expected: tuple[int | None, str | None]
) -> None:
    from processors.core.deferral import decide_deferral
    from schemas.venue import Placement, PlacementKind

    intent = build_intent(received_at_ms=0, created_at_ms=1)
    placement = Placement(
        "0x1", PlacementKind.DEFERRED, detail="matching engine restarting", retry_after_secs=retry_after
    )

    deferral = decide_deferral(intent, placement, now, max_age_secs=60)

    assert (deferral.retry_at_ms, deferral.skip_reason) == expected
