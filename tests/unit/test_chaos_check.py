"""The chaos suite's invariants find what they exist to find: a missing or doubled decision, a lost intent, a
doubled order, a leaked reservation, an order event missing in PostgreSQL, a malformed frame that is no dead
letter, a venue order we hold no record of or two venue orders behind one intent; and its schedule."""

from __future__ import annotations

import json
from pathlib import Path

from polycopy.tools.chaos import PROCESS_FAULTS, SERVER_FAULTS, Chaos, ChaosOptions
from polycopy.tools.chaos_check import (
    ChaosFindings,
    check_decisions,
    check_events,
    check_malformed,
    check_orders,
    check_reservations,
    check_venue_orders,
    count_venue,
    decode_wallet_ledgers,
)
from polycopy.tools.chaos_venue import LIVE_VENUE_FAULTS, VENUE_FAULTS, VenueFaults
from schemas.deadletter import build_dead_letter
from schemas.decisions import DecisionAction
from schemas.orders import OrderStatus
from schemas.trades import TradeSource
from tests.builders import (
    WALLET_ID,
    build_decision,
    build_intent,
    build_order_event,
    build_report,
    build_trade,
    build_wallet,
)

COPIED = build_trade()
OTHER = build_trade(transaction_hash="0x" + "77" * 32)


def test_every_trade_follower_pair_needs_exactly_one_decision_id() -> None:
    findings = ChaosFindings()
    decisions = [
        build_decision(dedup_key=COPIED.dedup_key),
        build_decision(dedup_key=COPIED.dedup_key),  # the same id again: a re-delivery, not a double
        build_decision(dedup_key=OTHER.dedup_key, decision_id="another id for the same pair"),
        build_decision(dedup_key=OTHER.dedup_key),
    ]

    check_decisions(
        findings,
        [COPIED, COPIED, OTHER, build_trade(proxy_wallet="0x" + "99" * 20)],
        decisions,
        [build_wallet()],
    )

    assert (findings.decisions_expected, findings.decisions_found) == (2, 2)
    assert (findings.decisions_missing, findings.decisions_doubled) == (0, 1)
    check_decisions(findings, [COPIED, OTHER], decisions[:1], [build_wallet()])
    assert findings.decisions_missing == 1 and not findings.passed
    [example] = findings.missing_examples  # where in the run to look
    assert OTHER.dedup_key in example and WALLET_ID in example and f"missing: {example}" in findings.render()


def test_a_copy_without_an_intent_or_an_intent_without_a_report_is_lost_and_two_orders_are_doubled() -> None:
    intent = build_intent()
    copy = build_decision(action=DecisionAction.COPY, reason="copy")
    unsent = build_decision(action=DecisionAction.COPY, reason="copy", dedup_key=OTHER.dedup_key)
    findings = ChaosFindings()

    check_orders(findings, [copy], [intent], [build_report(intent=intent)], {intent.intent_id: 1})
    assert (findings.intents_lost, findings.orders_doubled) == (0, 0)
    check_orders(findings, [copy, unsent], [intent], [], {intent.intent_id: 2})
    assert (findings.intents_lost, findings.orders_doubled) == (2, 1)
    second = build_report(intent=intent, order_id="another order")
    check_orders(findings, [copy], [intent], [build_report(intent=intent), second], {})
    assert findings.orders_doubled == 1


def test_a_reservation_left_in_a_final_ledger_is_leaked_and_the_last_changelog_value_counts() -> None:
    key = json.dumps(WALLET_ID).encode()
    ledgers = decode_wallet_ledgers(
        [
            (key, json.dumps({"ledger": {"reservations": {}}}).encode()),
            (key, json.dumps({"ledger": {"reservations": {"i1": {}}}}).encode()),
            (json.dumps("gone").encode(), b'{"ledger": {"reservations": {"i2": {}}}}'),
            (json.dumps("gone").encode(), None),
        ]
    )
    findings = ChaosFindings()

    check_reservations(findings, ledgers)

    assert findings.reservations_leaked == 1


def test_an_order_event_missing_in_postgresql_is_counted() -> None:
    placed, filled = build_order_event(), build_order_event(OrderStatus.FILLED, 2)
    findings = ChaosFindings()

    check_events(findings, [placed, filled, filled], {placed.event_id})

    assert findings.events_missing_in_postgres == 1
    assert "events missing in PostgreSQL 1" in findings.render()


def test_a_malformed_frame_that_reached_the_feed_must_be_a_dead_letter_of_its_parse_stage() -> None:
    markers, frames = VenueFaults("http://unused").malformed_frames()
    letters = [build_dead_letter("rtds-parse", "bad", frame, occurred_at_ms=1) for frame in frames[:2]]
    letters.append(build_dead_letter("target-filter", "bad", frames[2], occurred_at_ms=1))  # another stage
    findings = ChaosFindings()

    check_malformed(findings, markers, letters, "rtds-parse")

    assert (findings.malformed_sent, findings.malformed_not_dead_lettered) == (3, 1)
    assert not findings.passed
    check_malformed(
        findings,
        markers,
        [*letters, build_dead_letter("rtds-parse", "x", frames[2], occurred_at_ms=1)],
        "rtds-parse",
    )
    assert findings.malformed_not_dead_lettered == 0 and findings.passed


def test_the_venue_counts_are_differences_and_poller_trades_are_those_the_feed_never_delivered() -> None:
    fed = build_trade()
    found_twice = build_trade(source=TradeSource.POLL)  # the same fill: the feed had it
    only_polled = build_trade(transaction_hash="0x" + "55" * 32, source=TradeSource.POLL)
    findings = ChaosFindings()

    count_venue(
        findings,
        [fed, found_twice, only_polled],
        {"frames_dropped": 3, "connections_total": 1, "clob_faults_injected": 0},
        {"frames_dropped": 10, "connections_total": 4, "clob_faults_injected": 5},
    )

    assert findings.trades_from_poller == 1
    assert (findings.frames_dropped_by_venue, findings.rtds_connections, findings.book_faults_answered) == (
        7,
        3,
        5,
    )
    findings.poller_exit = 1
    assert not findings.passed  # the poller failed: its trades may be missing


def test_a_venue_order_without_our_record_or_two_venue_orders_for_one_intent_fail_the_live_run() -> None:
    intent = build_intent()
    report = build_report(intent=intent, order_id="0xaa")
    venue = {"orders": [{"id": "0xaa"}, {"id": "0xbb"}], "posts_received": 3}
    findings = ChaosFindings()

    check_venue_orders(findings, {"orders": [{"id": "0xaa"}]}, [report], [(intent.intent_id, "0xaa")])
    assert (findings.venue_orders, findings.venue_orders_unrecorded) == (1, 0)
    assert findings.intents_with_two_venue_orders == 0 and findings.passed

    check_venue_orders(findings, venue, [report], [])
    assert findings.venue_orders_unrecorded == 1 and not findings.passed  # 0xbb: placed, never recorded
    check_venue_orders(findings, venue, [report], [(intent.intent_id, "0xbb")])
    assert findings.venue_orders_unrecorded == 0 and findings.intents_with_two_venue_orders == 1
    assert "intents with two 1" in findings.render()


def test_a_short_schedule_keeps_the_process_and_server_kinds_and_a_long_one_has_every_venue_kind(
    tmp_path: Path,
) -> None:
    short = Chaos(ChaosOptions(faults=10, seed=3, data_dir=tmp_path), out=lambda _: None).schedule()
    first = {"kill -9 worker", "kill -9 executor", "SIGTERM worker", *SERVER_FAULTS}
    assert len(short) == 10 and first <= set(short)
    assert set(short) <= set(PROCESS_FAULTS + SERVER_FAULTS)

    long = Chaos(ChaosOptions(faults=50, seed=8, data_dir=tmp_path), out=lambda _: None).schedule()
    assert len(long) == 50 and set(PROCESS_FAULTS + SERVER_FAULTS + VENUE_FAULTS) <= set(long)
    assert not set(LIVE_VENUE_FAULTS) & set(long)
    live = Chaos(ChaosOptions(faults=50, seed=8, data_dir=tmp_path, live_fake=True), out=lambda _: None)
    assert set(LIVE_VENUE_FAULTS) <= set(live.schedule())


def test_every_malformed_frame_of_the_chaos_run_is_a_parse_error_of_the_feed() -> None:
    from producers.parsing import parse_rtds_frame

    markers, frames = VenueFaults("http://unused").malformed_frames()

    for marker, frame in zip(markers, frames, strict=True):
        assert marker in frame and parse_rtds_frame(frame, 1).error is not None


def test_a_run_whose_input_stays_uncommitted_past_the_drain_limit_fails() -> None:
    findings = ChaosFindings(drain_secs=900.0, drained=False)

    assert not findings.passed
    assert "NOT drained" in findings.render()


def test_a_kind_that_never_came_back_is_in_the_recovery_table_and_fails_the_run() -> None:
    # A CI run failed with every invariant held and no row saying why: PostgreSQL had not come back.
    findings = ChaosFindings()
    findings.recovery_secs["sink"].append(1.5)
    findings.not_recovered["postgres"] += 1

    table = findings.render()

    assert not findings.passed
    assert "postgres             0      -      -   (1 not recovered)" in table
    assert "sink                 1    1.5    1.5" in table
