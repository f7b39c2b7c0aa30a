"""The invariants of a chaos run, checked over everything that happened (the topics, the worker's wallet
ledgers, the PostgreSQL tables), and the table `polycopy chaos` prints."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from processors.core.targeting import select_followers
from schemas.deadletter import DeadLetter
from schemas.decisions import Decision
from schemas.orders import ExecutionReport, OrderEvent, OrderIntent
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig


@dataclass
class ChaosFindings:
    """What the checks found; `passed` is the issue's "done when"."""

    faults: Counter[str] = field(default_factory=Counter)
    decisions_expected: int = 0
    decisions_found: int = 0
    decisions_missing: int = 0
    decisions_doubled: int = 0
    intents_lost: int = 0
    orders_doubled: int = 0
    reservations_leaked: int = 0
    events_missing_in_postgres: int = 0
    recovery_secs: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    not_recovered: Counter[str] = field(default_factory=Counter)
    supervisor_restarts: Counter[str] = field(default_factory=Counter)  # processes that exited on their own
    drain_secs: float = 0.0  # from the end of the feed until every group had committed everything
    drained: bool = True  # False: the drain's limit passed with input still uncommitted
    # Venue side: malformed frames that reached the producer and are not dead letters (must be 0); what the
    # RTDS outages cost and what the poller brought back; the producer's reconnections.
    malformed_sent: int = 0
    malformed_not_dead_lettered: int = 0
    frames_dropped_by_venue: int = 0
    trades_from_poller: int = 0
    rtds_connections: int = 0
    book_faults_answered: int = 0
    poller_exit: int | None = None
    # Live-fake runs: what the fake CLOB received against our records.
    live: bool = False
    venue_orders: int = 0
    venue_orders_unrecorded: int = 0  # accepted by the venue, in no report and no journal row
    intents_with_two_venue_orders: int = 0
    # (wallet, fill, received at) of a few missing pairs: where in the run to look (the process logs)
    missing_examples: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (
            self.decisions_missing
            or self.decisions_doubled
            or self.intents_lost
            or self.orders_doubled
            or self.reservations_leaked
            or self.events_missing_in_postgres
            or self.malformed_not_dead_lettered
            or self.venue_orders_unrecorded
            or self.intents_with_two_venue_orders
            or self.poller_exit not in (None, 0)
            or not self.drained
            or sum(self.not_recovered.values())
        )

    def render(self) -> str:
        """The table: faults by kind, the invariants, recovery p50/max per process kind."""
        lines = ["== chaos " + "=" * 62, f"  faults injected        {sum(self.faults.values())}"]
        lines += [f"    {kind:<20} {count}" for kind, count in sorted(self.faults.items())]
        lines += [
            f"  decisions expected     {self.decisions_expected}   found {self.decisions_found}   "
            f"missing {self.decisions_missing}   doubled {self.decisions_doubled}",
            *(f"    missing: {example}" for example in self.missing_examples),
            f"  intents lost           {self.intents_lost}",
            f"  orders doubled         {self.orders_doubled}",
            f"  reservations leaked    {self.reservations_leaked}",
            f"  events missing in PostgreSQL {self.events_missing_in_postgres}",
            f"  malformed frames       {self.malformed_sent} reached the feed   "
            f"{self.malformed_not_dead_lettered} not dead-lettered",
            f"  RTDS outages           {self.frames_dropped_by_venue} frames dropped by the venue   "
            f"{self.trades_from_poller} trades brought by the poller (exit {self.poller_exit})   "
            f"{self.rtds_connections} producer connections",
            f"  CLOB faults answered   {self.book_faults_answered}",
        ]
        if self.live:
            lines += [
                f"  venue orders (fake CLOB) {self.venue_orders}   "
                f"unrecorded {self.venue_orders_unrecorded}   "
                f"intents with two {self.intents_with_two_venue_orders}",
            ]
        lines += [
            "  recovery after restart (s)   kind                n    p50    max",
        ]
        for kind in sorted(set(self.recovery_secs) | set(self.not_recovered)):
            times = self.recovery_secs.get(kind, [])
            figures = f"{statistics.median(times):6.1f} {max(times):6.1f}" if times else f"{'-':>6} {'-':>6}"
            lost = f"   ({self.not_recovered[kind]} not recovered)" if self.not_recovered[kind] else ""
            lines.append(f"                               {kind:<18} {len(times):>3} {figures}{lost}")
        restarts = ", ".join(f"{name} {n}" for name, n in sorted(self.supervisor_restarts.items()))
        lines.append(f"  exited on their own, restarted by the supervisor: {restarts or 'none'}")
        drained = "" if self.drained else " (NOT drained: input left uncommitted at the limit)"
        lines.append(f"  drained in             {self.drain_secs:.0f} s after the feed stopped{drained}")
        lines.append(f"  result                 {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def check_decisions(
    findings: ChaosFindings,
    trades: Iterable[RawTrade],
    decisions: Iterable[Decision],
    wallets: Iterable[WalletConfig],
) -> None:
    """Every (trade, follower) pair of the raw trades has exactly one decision id."""
    wallets = list(wallets)
    first_of = {trade.dedup_key: trade for trade in reversed(list(trades))}
    expected = {
        (wallet_id, trade.dedup_key)
        for trade in first_of.values()
        for wallet_id in select_followers(trade, wallets)
    }
    ids_per_pair: dict[tuple[str, str], set[str]] = defaultdict(set)
    for decision in decisions:
        ids_per_pair[(decision.wallet_id, decision.dedup_key)].add(decision.decision_id)
    findings.decisions_expected = len(expected)
    findings.decisions_found = len(ids_per_pair)
    missing = sorted(expected - set(ids_per_pair), key=lambda pair: (first_of[pair[1]].received_at_ms, pair))
    findings.decisions_missing = len(missing)
    findings.missing_examples = [
        f"wallet {wallet_id} fill {key} received {_utc(first_of[key].received_at_ms)}"
        for wallet_id, key in missing[:5]
    ]
    findings.decisions_doubled = sum(len(ids) > 1 for ids in ids_per_pair.values())


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


def check_orders(
    findings: ChaosFindings,
    decisions: Iterable[Decision],
    intents: Iterable[OrderIntent],
    reports: Iterable[ExecutionReport],
    order_rows_per_intent: Mapping[str, int],
) -> None:
    """Every copy decision has its intent and every intent a report (else lost); one order per intent in the
    reports and in PostgreSQL (else doubled)."""
    intent_ids = {intent.intent_id for intent in intents}
    copied = {d.decision_id for d in decisions if d.action.value == "copy"}  # the intent's id too
    orders: dict[str, set[str]] = defaultdict(set)
    for report in reports:
        orders[report.intent_id].add(report.order_id)
    findings.intents_lost = len(copied - intent_ids) + len(intent_ids - set(orders))
    findings.orders_doubled = sum(len(ids) > 1 for ids in orders.values()) + sum(
        count > 1 for count in order_rows_per_intent.values()
    )


def check_malformed(
    findings: ChaosFindings, markers: Iterable[str], letters: Iterable[DeadLetter], stage: str
) -> None:
    """Every malformed frame that reached the producer is a dead letter of the feed's parse stage (found by
    the marker it carries): it neither stopped the producer nor vanished."""
    markers = list(markers)
    texts = [letter.payload for letter in letters if letter.stage == stage]
    findings.malformed_sent = len(markers)
    findings.malformed_not_dead_lettered = sum(not any(m in text for text in texts) for m in markers)


def count_venue(
    findings: ChaosFindings,
    trades: Iterable[RawTrade],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> None:
    """What the venue side cost: frames the simulator dropped while silent, trades only the poller brought
    (no RTDS copy of the same fill), producer connections, CLOB faults answered."""
    sources: dict[str, set[str]] = defaultdict(set)
    for trade in trades:
        sources[trade.dedup_key].add(trade.source.value)
    findings.trades_from_poller = sum(found == {"poll"} for found in sources.values())

    def grew(name: str) -> int:
        return int(after.get(name, 0)) - int(before.get(name, 0))

    findings.frames_dropped_by_venue = grew("frames_dropped")
    findings.rtds_connections = grew("connections_total")
    findings.book_faults_answered = grew("clob_faults_injected")


def check_venue_orders(
    findings: ChaosFindings,
    venue: Mapping[str, Any],
    reports: Iterable[ExecutionReport],
    journal_rows: Iterable[tuple[str, str]],
) -> None:
    """Live-fake: every order the fake CLOB accepted is ours on record (a report or a journal row names it),
    and no intent is behind two of them (an order placed again under a new id after an ambiguous answer)."""
    accepted = {str(order["id"]) for order in venue.get("orders", [])}
    intents_of: dict[str, set[str]] = defaultdict(set)
    for report in reports:
        intents_of[report.order_id].add(report.intent_id)
    for intent_id, order_id in journal_rows:
        intents_of[order_id].add(intent_id)
    orders_of: dict[str, set[str]] = defaultdict(set)
    for order_id in accepted & set(intents_of):
        for intent_id in intents_of[order_id]:
            orders_of[intent_id].add(order_id)
    findings.live = True
    findings.venue_orders = len(accepted)
    findings.venue_orders_unrecorded = len(accepted - set(intents_of))
    findings.intents_with_two_venue_orders = sum(len(ids) > 1 for ids in orders_of.values())


def check_reservations(findings: ChaosFindings, ledgers: Mapping[str, Mapping[str, object]]) -> None:
    """After the drain every order was a FAK and has ended: any reservation still held is leaked."""
    findings.reservations_leaked = sum(
        len(ledger.get("reservations") or {})  # type: ignore[arg-type]
        for ledger in ledgers.values()
    )


def check_events(findings: ChaosFindings, events: Iterable[OrderEvent], stored_ids: set[str]) -> None:
    """Every order event in the log is a row in PostgreSQL (the table's key makes it exactly once)."""
    findings.events_missing_in_postgres = len({event.event_id for event in events} - stored_ids)


def decode_wallet_ledgers(
    records: Iterable[tuple[bytes | None, bytes | None]],
) -> dict[str, dict[str, object]]:
    """The last value of each wallet in the worker's `wallet-state` changelog, as its ledger's state."""
    ledgers: dict[str, dict[str, object]] = {}
    for key, value in records:
        if key is None:
            continue
        wallet = json.loads(key)
        if value is None:
            ledgers.pop(wallet, None)
        else:
            ledgers[wallet] = json.loads(value, parse_float=Decimal).get("ledger") or {}
    return ledgers
