"""The worker's wallet store keeps each event's value small: followed positions and closed order ids live in
their own per-key tables, loaded only for the event that needs them (a busy wallet's single value grew past
300 KB with them inside, and cost ~9 ms per event to decode and write)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from processors.core import engine
from processors.core.ids import build_paper_order_id
from processors.core.paper import execute_on_paper
from processors.core.wallet_state import WalletState
from processors.worker.state import WalletStateStore
from schemas.trades import RawTrade, Side
from tests.builders import ASSET, NOW_MS, TRADER, WALLET_ID, build_book, build_trade, build_wallet

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
