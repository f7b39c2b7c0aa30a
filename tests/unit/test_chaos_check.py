"""The chaos suite's invariants find what they exist to find: a missing or doubled decision, a lost intent, a
doubled order, a leaked reservation, an order event missing in PostgreSQL."""

from __future__ import annotations

import json

from polycopy.tools.chaos_check import (
    ChaosFindings,
    check_decisions,
    check_events,
    check_orders,
    check_reservations,
    decode_wallet_ledgers,
)
from schemas.decisions import DecisionAction
from schemas.orders import OrderStatus
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
