"""The worker's wallet store keeps each event's value small: followed positions and closed order ids live in
their own per-key tables, loaded only for the event that needs them (a busy wallet's single value grew past
300 KB with them inside, and cost ~9 ms per event to decode and write)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import engine
from processors.core.ids import build_paper_order_id
from processors.core.paper import execute_on_paper
from processors.core.wallet_state import WalletState
from processors.worker.state import WalletStateStore
from schemas.orders import ExecutionMode
from schemas.trades import RawTrade, Side
from tests.builders import (
    ASSET,
    NOW_MS,
    TRADER,
    WALLET_ID,
    build_book,
    build_resolution,
    build_trade,
    build_wallet,
)

WALLET = build_wallet(sides=(Side.BUY, Side.SELL))
BOOK = build_book(asks=[("0.50", "500")], bids=[("0.49", "500")])


class Keys(set[str]):
    """RecentKeys as a plain set (the worker uses a windowed table)."""


def build_store(tables: dict[str, Any]) -> WalletStateStore:
    return WalletStateStore(
        tables.setdefault("state", {}),
        tables.setdefault("leaders", {}),
        tables.setdefault("decided", Keys()),
        tables.setdefault("followed", {}),
        tables.setdefault("closed", Keys()),
    )


def copy_and_fill(store: WalletStateStore, trade: RawTrade | None = None) -> list[str]:
    """One trade (a BUY) copied and filled on paper through the store, as the agents do; the order ids."""
    trade = trade or build_trade(side=Side.BUY)
    state = store.load_for_trade(WALLET_ID, WALLET.capital_usdc, trade)
    result = engine.evaluate(trade, WALLET, state, engine.StaticReference.build([WALLET]), BOOK, NOW_MS)
    store.save_for_trade(WALLET_ID, state, trade)
    assert result.intent is not None
    order_id = build_paper_order_id(result.intent.intent_id)
    for report in execute_on_paper(result.intent, order_id, sent_at_ms=NOW_MS, reported_at_ms=NOW_MS):
        state = store.load_for_report(WALLET_ID, WALLET.capital_usdc, report)
        engine.apply_report(state, report, NOW_MS)
        store.save(WALLET_ID, state)
    return [order_id]


def test_followed_positions_and_closed_orders_are_kept_out_of_the_wallets_value() -> None:
    tables: dict[str, Any] = {}
    store = build_store(tables)

    [order_id] = copy_and_fill(store)

    value = tables["state"][WALLET_ID]
    assert value["closed"] == [] and value["ledger"]["followed_positions"] == {}
    assert order_id in tables["closed"]
    [(key, shares)] = tables["followed"].items()
    assert key == f"{WALLET_ID}|{TRADER}|{ASSET}" and Decimal(shares) > 0
    assert WalletState.load(value, WALLET.capital_usdc).ledger.positions[ASSET].shares == Decimal(shares)


def test_a_value_saved_with_them_inside_moves_them_to_their_tables_on_its_next_save() -> None:
    tables: dict[str, Any] = {}
    state = WalletState.new(WALLET.capital_usdc)
    state.ledger.followed_positions[f"{TRADER}|{ASSET}"] = Decimal("12")
    state.closed.append("old-order")
    tables["state"] = {WALLET_ID: state.dump()}  # as the worker saved it before these tables existed
    store = build_store(tables)

    store.save(WALLET_ID, store.load(WALLET_ID, WALLET.capital_usdc))

    assert tables["followed"] == {f"{WALLET_ID}|{TRADER}|{ASSET}": "12"}
    assert "old-order" in tables["closed"]
    assert tables["state"][WALLET_ID]["closed"] == []


def test_a_followed_position_sold_down_to_nothing_is_deleted_from_its_table() -> None:
    tables: dict[str, Any] = {}
    store = build_store(tables)
    bought = build_trade(side=Side.BUY)
    copy_and_fill(store, bought)
    assert tables["followed"]

    copy_and_fill(store, build_trade(side=Side.SELL, size=bought.size, transaction_hash="0x" + "55" * 32))

    assert tables["followed"] == {}
    assert ASSET not in tables["state"][WALLET_ID]["ledger"]["positions"]


def test_a_trade_decided_again_after_a_crash_finds_its_pair_decided_by_the_reports_of_its_intent() -> None:
    """The worker sent the decision and the intent, then died before its state write; the executor filled
    the intent and the lifecycle booked the reports. Read again, the trade must not be decided (and its
    intent reserved) a second time: the executor never reports an intent twice, so that reservation would
    be held forever."""
    tables: dict[str, Any] = {}
    store = build_store(tables)
    trade = build_trade(side=Side.BUY)
    state = store.load_for_trade(WALLET_ID, WALLET.capital_usdc, trade)
    result = engine.evaluate(trade, WALLET, state, engine.StaticReference.build([WALLET]), BOOK, NOW_MS)
    assert result.intent is not None  # sent; the state write never happened
    order_id = build_paper_order_id(result.intent.intent_id)
    for report in execute_on_paper(result.intent, order_id, sent_at_ms=NOW_MS, reported_at_ms=NOW_MS):
        state = store.load_for_report(WALLET_ID, WALLET.capital_usdc, report)
        engine.apply_report(state, report, NOW_MS)
        store.save_for_report(WALLET_ID, state, report)

    assert store.is_decided(WALLET_ID, trade)


# --- the state kept between events -------------------------------------------------------------------------
class RecoveredTable(dict[str, Any]):
    """A table whose every read gives a new object, as after the changelog's recovery: the store never finds
    the value its save wrote, so it decodes every event's state (the reference for the state it keeps)."""

    def get(self, key: str, default: Any = None) -> Any:
        value = super().get(key, default)
        return None if value is None else json.loads(json.dumps(value))


def run_event(store: WalletStateStore, op: tuple[str, int, int], n: int) -> list[Any]:
    """One trade on day `day` (copied, then each of its reports as its own event) or one resolution, through
    the store as the agents do; what the engine returned."""
    kind, day, size = op
    now_ms = NOW_MS + day * 86_400_000
    if kind == "resolve":
        state = store.load(WALLET_ID, WALLET.capital_usdc)
        events = engine.settle(state, WALLET_ID, build_resolution(ASSET), ExecutionMode.PAPER, now_ms)
        store.save(WALLET_ID, state)
        return list(events)
    trade = build_trade(
        side=Side.BUY if kind == "buy" else Side.SELL,
        size=Decimal(size),
        transaction_hash="0x" + f"{n:064x}",
        timestamp=(now_ms - 2_050) // 1000,
        received_at_ms=now_ms - 50,
    )
    state = store.load_for_trade(WALLET_ID, WALLET.capital_usdc, trade)
    result = engine.evaluate(trade, WALLET, state, engine.StaticReference.build([WALLET]), BOOK, now_ms)
    store.save_for_trade(WALLET_ID, state, trade)
    out: list[Any] = [result.decision, result.intent]
    if result.intent is None or result.decision.reason != "copy":
        return out
    order_id = build_paper_order_id(result.intent.intent_id)
    reports = execute_on_paper(result.intent, order_id, sent_at_ms=now_ms, reported_at_ms=now_ms)
    for report in [*reports, reports[-1]]:  # the last again: late
        state = store.load_for_report(WALLET_ID, WALLET.capital_usdc, report)
        out += engine.apply_report(state, report, now_ms)
        store.save_for_report(WALLET_ID, state, report)
    return out


EVENTS = st.lists(
    st.tuples(st.sampled_from(["buy", "buy", "sell", "resolve"]), st.integers(0, 12), st.integers(5, 300)),
    min_size=1,
    max_size=30,
).map(lambda ops: sorted(ops, key=lambda op: op[1]))  # days go forward


@settings(max_examples=60, deadline=None)
@given(EVENTS)
def test_a_state_kept_between_events_gives_what_decoding_the_saved_value_gives(
    ops: list[tuple[str, int, int]],
) -> None:
    """The store keeps each wallet's state from its save to its next event instead of decoding the value
    again: decisions, intents, order events and every table must be what decoding every event gives, over
    sequences of trades, fills, late reports, resolutions and more days of PnL than a saved state keeps."""
    kept_tables: dict[str, Any] = {}
    decoded_tables: dict[str, Any] = {"state": RecoveredTable()}
    kept, decoded = build_store(kept_tables), build_store(decoded_tables)
    for n, op in enumerate(ops):
        assert run_event(kept, op, n) == run_event(decoded, op, n), op
        assert kept_tables == decoded_tables


def test_a_kept_state_is_used_only_for_the_value_its_save_wrote(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    decodes: list[Any] = []
    load = WalletState.load
    monkeypatch.setattr(
        WalletState, "load", lambda value, capital: decodes.append(value) or load(value, capital)
    )
    tables: dict[str, Any] = {}
    store = build_store(tables)
    copy_and_fill(store)
    assert len(decodes) == 1  # the first event's (a new wallet); the reports reused the saved state

    # An event changes the state, then fails before its save: the next event must not see its change.
    state = store.load(WALLET_ID, WALLET.capital_usdc)
    state.ledger.capital_usdc += 1
    again = store.load(WALLET_ID, WALLET.capital_usdc)
    assert again is not state and again.ledger.capital_usdc == WALLET.capital_usdc and len(decodes) == 2
    store.save(WALLET_ID, again)
    assert store.load_saved(WALLET_ID) is again and len(decodes) == 2  # the snapshot timer reads it as kept

    # The value replaced underneath (the changelog's recovery after a rebalance, another worker's write).
    tables["state"][WALLET_ID] = json.loads(json.dumps(tables["state"][WALLET_ID]))
    tables["state"][WALLET_ID]["ledger"]["capital_usdc"] = "7"
    saved = store.load_saved(WALLET_ID)
    assert saved is not None and saved.ledger.capital_usdc == Decimal(7)
    assert store.load(WALLET_ID, WALLET.capital_usdc).ledger.capital_usdc == Decimal(7)
    assert len(decodes) == 4
