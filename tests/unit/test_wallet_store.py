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
    OTHER_ASSET,
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


def build_store(
    tables: dict[str, Any], store_type: type[WalletStateStore] = WalletStateStore
) -> WalletStateStore:
    return store_type(
        tables.setdefault("state", {}),
        tables.setdefault("leaders", {}),
        tables.setdefault("decided", Keys()),
        tables.setdefault("followed", {}),
        tables.setdefault("closed", Keys()),
        tables.setdefault("tokens", {}),
    )


def copy_and_fill(store: WalletStateStore, trade: RawTrade | None = None) -> list[str]:
    """One trade (a BUY) copied and filled on paper through the store, as the agents do; the order ids."""
    trade = trade or build_trade(side=Side.BUY)
    state = store.load_for_trade(WALLET_ID, WALLET.capital_usdc, trade)
    result = engine.evaluate(trade, WALLET, state, engine.StaticReference.build([WALLET]), BOOK, NOW_MS)
    store.save_for_trades(WALLET_ID, state, [trade])
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
    assert build_store(tables).load(WALLET_ID, WALLET.capital_usdc).ledger.positions[ASSET].shares == Decimal(
        shares
    )


def test_each_token_is_a_row_of_its_own_and_an_event_writes_only_the_rows_it_changed() -> None:
    """The wallet's positions, marks and realised PnL by token left its value (a busy wallet's value was
    50 KB, written whole with every event: most of what the worker sent in the bench, issue 11)."""
    writes: list[str] = []

    class Recording(dict[str, Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            writes.append(key)
            super().__setitem__(key, value)

    tables: dict[str, Any] = {"tokens": Recording()}
    store = build_store(tables)
    other = "9" * 77
    copy_and_fill(store)
    copy_and_fill(store, build_trade(side=Side.BUY, asset=other, transaction_hash="0x" + "66" * 32))
    value = tables["state"][WALLET_ID]
    assert value["ledger"]["positions"] == value["portfolio"]["marks"] == {}
    assert set(tables["tokens"]) == {f"{WALLET_ID}|{ASSET}", f"{WALLET_ID}|{other}"}
    writes.clear()

    copy_and_fill(store, build_trade(side=Side.BUY, asset=other, transaction_hash="0x" + "77" * 32))

    assert set(writes) == {f"{WALLET_ID}|{other}"}  # the first token's row was not written again
    again = build_store(tables).load(WALLET_ID, WALLET.capital_usdc)
    kept = store.load_saved(WALLET_ID)
    assert kept is not None and json.dumps(again.dump()) == json.dumps(kept.dump())


def test_a_value_saved_with_its_tokens_inside_loads_and_moves_them_to_their_rows_on_its_next_save() -> None:
    tables: dict[str, Any] = {}
    copy_and_fill(build_store(tables))
    old = build_store(tables).load(WALLET_ID, WALLET.capital_usdc)
    tables["state"], tables["tokens"] = {WALLET_ID: old.dump()}, {}  # as saved before the split
    store = build_store(tables)

    state = store.load(WALLET_ID, WALLET.capital_usdc)
    assert json.dumps(state.dump()) == json.dumps(old.dump())
    store.save(WALLET_ID, state)

    assert set(tables["tokens"]) == {f"{WALLET_ID}|{ASSET}"}
    assert json.dumps(build_store(tables).load(WALLET_ID, WALLET.capital_usdc).dump()) == json.dumps(
        old.dump()
    )


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
    assert ASSET not in build_store(tables).load(WALLET_ID, WALLET.capital_usdc).ledger.positions


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
        store.save_for_reports(WALLET_ID, state, [report])

    assert store.is_decided(WALLET_ID, trade)


# --- the state kept between events -------------------------------------------------------------------------
class DecodingStore(WalletStateStore):
    """A store that forgets what it kept before every load, as after a rebalance: it decodes every event's
    state from its tables (the reference for the state a store keeps)."""

    def load(self, wallet_id: str, capital: Decimal) -> WalletState:
        self.forget_kept()
        return super().load(wallet_id, capital)


THIRD_ASSET = "3" * 77  # a token of another market: a wallet holds, marks and realises several


def run_event(store: WalletStateStore, op: tuple[str, int, int, int], n: int) -> list[Any]:
    """One trade on day `day` in token `which` (copied, then each of its reports as its own event) or one
    resolution, through the store as the agents do; what the engine returned."""
    kind, day, size, which = op
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
        asset=(ASSET, OTHER_ASSET, THIRD_ASSET)[which],
        **({"condition_id": "0x" + "6e" * 32} if which == 2 else {}),
        timestamp=(now_ms - 2_050) // 1000,
        received_at_ms=now_ms - 50,
    )
    state = store.load_for_trade(WALLET_ID, WALLET.capital_usdc, trade)
    result = engine.evaluate(trade, WALLET, state, engine.StaticReference.build([WALLET]), BOOK, now_ms)
    store.save_for_trades(WALLET_ID, state, [trade])
    out: list[Any] = [result.decision, result.intent]
    if result.intent is None or result.decision.reason != "copy":
        return out
    order_id = build_paper_order_id(result.intent.intent_id)
    reports = execute_on_paper(result.intent, order_id, sent_at_ms=now_ms, reported_at_ms=now_ms)
    for report in [*reports, reports[-1]]:  # the last again: late
        state = store.load_for_report(WALLET_ID, WALLET.capital_usdc, report)
        out += engine.apply_report(state, report, now_ms)
        store.save_for_reports(WALLET_ID, state, [report])
    return out


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["buy", "buy", "sell", "resolve"]),
        st.integers(0, 12),
        st.integers(5, 300),
        st.integers(0, 2),
    ),
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
    decoded_tables: dict[str, Any] = {}
    kept, decoded = build_store(kept_tables), build_store(decoded_tables, DecodingStore)
    for n, op in enumerate(ops):
        assert run_event(kept, op, n) == run_event(decoded, op, n), op
        assert kept_tables == decoded_tables
        # Read back from its tables (the value and its token rows), the state is the one kept, in the same
        # order, digit for digit.
        state = kept.load_saved(WALLET_ID)
        assert state is not None
        read_back = build_store(kept_tables).load(WALLET_ID, WALLET.capital_usdc)
        assert json.dumps(read_back.dump()) == json.dumps(state.dump())


def test_a_kept_state_is_used_only_until_a_rebalance(monkeypatch) -> None:  # type: ignore[no-untyped-def]
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

    # Partitions move (a rebalance): another worker may write the value meanwhile, or the changelog's
    # recovery replace it. The kept state is forgotten, and the table's value decoded.
    tables["state"][WALLET_ID] = json.loads(json.dumps(tables["state"][WALLET_ID]))
    tables["state"][WALLET_ID]["ledger"]["capital_usdc"] = "7"
    store.forget_kept()
    saved = store.load_saved(WALLET_ID)
    assert saved is not None and saved.ledger.capital_usdc == Decimal(7)
    assert store.load(WALLET_ID, WALLET.capital_usdc).ledger.capital_usdc == Decimal(7)
    assert len(decodes) == 4


def test_a_token_moved_to_the_end_of_a_part_reads_back_in_the_order_saved() -> None:
    """The realised PnL by token is kept newest last (the oldest closed tokens are forgotten first): a token
    that realises again moves to the end, and must read back there, or a restart forgets another token."""
    tables: dict[str, Any] = {}
    store = build_store(tables)
    state = store.load(WALLET_ID, WALLET.capital_usdc)
    for asset in (ASSET, OTHER_ASSET, THIRD_ASSET):
        state.portfolio.attribute_realised(asset, Decimal("1.5"))
    store.save(WALLET_ID, state)
    state = store.load(WALLET_ID, WALLET.capital_usdc)
    state.portfolio.attribute_realised(ASSET, Decimal("-0.5"))
    store.save(WALLET_ID, state)

    read_back = build_store(tables).load(WALLET_ID, WALLET.capital_usdc).portfolio.realised_by_token
    assert list(read_back.items()) == [(OTHER_ASSET, Decimal("1.5")), (THIRD_ASSET, Decimal("1.5")),
                                       (ASSET, Decimal("1.0"))]  # fmt: skip
