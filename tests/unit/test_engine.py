"""The copy engine: the target filter (dedup, followers), evaluation (reference data combined with the book,
trader stats, synced traders, the pinned book), the lifecycle (late reports), and the worker's table-backed
state giving the same decisions as the in-memory state of a replay."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import engine
from processors.core.books import stamp_book
from processors.core.ids import build_paper_order_id
from processors.core.local import LocalPipeline
from processors.core.paper import execute_on_paper
from processors.core.wallet_state import WalletState
from processors.worker.state import WalletStateStore
from schemas.base import Side
from schemas.books import BookSource, OrderBook
from schemas.orders import ReportKind
from schemas.reference import MarketReference, TraderReference
from tests.builders import (
    ASSET,
    CONDITION_ID,
    NOW_MS,
    OTHER_ASSET,
    OTHER_TRADER,
    TRADER,
    build_book,
    build_trade,
    build_wallet,
)

D = Decimal
BOOK = stamp_book(build_book(), BookSource.CHANNEL, NOW_MS)


def reference(*wallets: Any, markets: Any = (), traders: Any = ()) -> engine.StaticReference:
    return engine.StaticReference.build(wallets or [build_wallet()], markets, traders)


def market(**fields: Any) -> MarketReference:
    values = {"condition_id": CONDITION_ID, "token_ids": (ASSET,), "updated_at_ms": 1} | fields
    return MarketReference(**values)


def evaluate(ref: engine.StaticReference, book: OrderBook | None = BOOK, **trade: Any) -> Any:
    wallet = next(iter(ref.wallets().values()))
    state = WalletState.new(wallet.capital_usdc)
    return engine.evaluate(build_trade(**trade), wallet, state, ref, book, NOW_MS)


# --- target -------------------------------------------------------------------------------------------------
def test_a_new_fill_is_remembered_and_fanned_out_in_wallet_id_order_and_a_seen_one_is_dropped() -> None:
    ref = reference(build_wallet(id="b"), build_wallet(id="a"), build_wallet(id="c", targets=(OTHER_TRADER,)))
    seen: set[str] = set()
    trade = build_trade()

    assert engine.target(trade, seen, ref) == engine.Targeting(first_seen=True, followers=("a", "b"))
    assert trade.dedup_key in seen
    assert engine.target(trade, seen, ref) == engine.Targeting(first_seen=False)


def test_a_trade_of_a_synced_trader_reaches_the_wallets_without_targets() -> None:
    ref = reference(
        build_wallet(id="synced", targets=()),
        traders=[TraderReference(wallet=TRADER, updated_at_ms=1)],
    )
    assert engine.target(build_trade(), set(), ref).followers == ("synced",)
    assert engine.target(build_trade(proxy_wallet=OTHER_TRADER), set(), ref).followers == ()


def test_a_replay_finds_each_traders_followers_once_and_fans_out_as_without_the_memo() -> None:
    ref = reference(build_wallet(id="b"), build_wallet(id="a"), build_wallet(id="c", targets=(OTHER_TRADER,)))
    known: dict[str, tuple[str, ...]] = {}
    first, second = (
        build_trade(transaction_hash="0x" + "1" * 64),
        build_trade(transaction_hash="0x" + "2" * 64),
    )

    assert engine.target(first, set(), ref, known).followers == engine.target(first, set(), ref).followers
    assert known == {TRADER: ("a", "b")}
    known[TRADER] = ("remembered",)  # the second trade of the trader is answered from the memo
    assert engine.target(second, set(), ref, known).followers == ("remembered",)
    assert engine.target(build_trade(proxy_wallet=OTHER_TRADER), set(), ref, known).followers == ("c",)


# --- evaluate -----------------------------------------------------------------------------------------------
def test_the_markets_reference_data_wins_over_the_books_trading_parameters() -> None:
    ref = reference(
        build_wallet(max_slippage=D("0.015")), markets=[market(tick_size=D("0.001"), min_order_size=D("5"))]
    )
    assert evaluate(ref).decision.limit_price == D("0.515")  # the book says 0.01
    assert evaluate(reference(build_wallet(max_slippage=D("0.015")))).decision.limit_price == D("0.51")


def test_without_reference_data_or_a_book_the_market_is_unknown() -> None:
    assert evaluate(reference(), book=None).decision.reason == "market_unknown"


def test_a_known_market_without_a_book_is_a_book_unavailable_skip_that_says_why() -> None:
    ref = reference(markets=[market(tick_size=D("0.01"), min_order_size=D("5"))])
    wallet = build_wallet()
    result = engine.evaluate(
        build_trade(), wallet, WalletState.new(wallet.capital_usdc), ref, None, NOW_MS,
        missing_book_detail="pinned book b1 not received within 5 s",
    )  # fmt: skip
    assert (result.decision.reason, result.decision.detail) == (
        "book_unavailable",
        "pinned book b1 not received within 5 s",
    )


def test_min_edge_reads_the_traders_stats_from_the_reference_data() -> None:
    wallet = build_wallet(min_edge=D("0.1"))
    good = [TraderReference(wallet=TRADER, win_rate=D("0.7"), updated_at_ms=1)]
    assert evaluate(reference(wallet, traders=good)).decision.reason == "copy"
    assert evaluate(reference(wallet)).decision.detail == "no trader stats"


def test_a_decision_records_the_book_it_saw_and_a_copy_carries_the_levels_at_its_limit() -> None:
    result = evaluate(reference())
    assert result.decision.book_id == BOOK.book_id
    assert result.intent is not None
    assert result.intent.book_levels == BOOK.levels_within(Side.BUY, result.intent.limit_price)
    assert evaluate(reference(), book=None).decision.book_id is None


# --- apply_report -------------------------------------------------------------------------------------------
def test_a_late_report_about_a_closed_order_changes_nothing() -> None:
    wallet = build_wallet(liquidity_min_fill_ratio=D("0.1"))
    state = WalletState.new(wallet.capital_usdc)
    thin = stamp_book(build_book(asks=[("0.50", "8")]), BookSource.CHANNEL, NOW_MS)
    result = engine.evaluate(build_trade(), wallet, state, reference(wallet), thin, NOW_MS)
    assert result.intent is not None
    order_id = build_paper_order_id(result.intent.intent_id)
    fill, cancel = execute_on_paper(result.intent, order_id, sent_at_ms=NOW_MS, reported_at_ms=NOW_MS)
    assert (fill.kind, cancel.kind) == (ReportKind.FILL, ReportKind.CANCELLED)
    events = engine.apply_report(state, fill, NOW_MS) + engine.apply_report(state, cancel, NOW_MS)
    assert [e.event_type.value for e in events] == ["OrderPlaced", "OrderPartialFill", "OrderCancelled"]
    before = state.dump()

    late = fill.model_copy(update={"matched_size": D("20"), "report_id": "late"})
    assert engine.apply_report(state, late, NOW_MS) == []
    assert state.dump() == before and state.is_closed(order_id)


def test_an_intent_decided_again_after_its_order_ended_has_its_reservation_released_by_the_late_reports() -> (
    None
):
    """A worker killed after sending an intent, before saving the state, decides the trade again from the
    older state and reserves the same intent once more (the worker now marks the pair decided when the reports
    come, `save_for_reports`; a window boundary can still miss it). When the ended order's reports come again
    (the executor re-publishes those it had not confirmed delivered), they are late, and must release that
    reservation, or it is held forever (the chaos run's leaked reservations)."""
    wallet = build_wallet()
    state = WalletState.new(wallet.capital_usdc)
    saved = state.dump()  # the state a crash after the sends leaves behind
    result = engine.evaluate(build_trade(), wallet, state, reference(wallet), BOOK, NOW_MS)
    assert result.intent is not None
    reports = execute_on_paper(
        result.intent, build_paper_order_id(result.intent.intent_id), sent_at_ms=NOW_MS, reported_at_ms=NOW_MS
    )
    for report in reports:  # the lifecycle books the order with no reservation (re-created from the report)
        engine.apply_report(again := WalletState.load(saved, wallet.capital_usdc), report, NOW_MS)
        saved = again.dump()
    state = WalletState.load(saved, wallet.capital_usdc)
    engine.evaluate(build_trade(), wallet, state, reference(wallet), BOOK, NOW_MS)  # the trade read again
    assert result.intent.intent_id in state.ledger.reservations
    position = state.ledger.positions[ASSET].shares

    assert all(engine.apply_report(state, report, NOW_MS) == [] for report in reports)  # re-published: late
    assert state.ledger.reservations == {} and state.ledger.positions[ASSET].shares == position


# --- the worker's tables and a replay's memory give the same decisions --------------------------------------
class SetKeys(set[str]):
    """RecentKeys as a plain set (the worker uses a windowed table)."""


TRADES = st.lists(
    st.tuples(
        st.sampled_from([TRADER, OTHER_TRADER]),
        st.sampled_from([ASSET, OTHER_ASSET]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(40, 60).map(lambda cents: D(cents) / 100),
        st.integers(5, 400).map(D),
        st.sampled_from(["deep", "thin", "none"]),
    ),
    min_size=1,
    max_size=25,
)
BOOKS = {
    "deep": build_book(asks=[("0.45", "300"), ("0.62", "1000")], bids=[("0.60", "300"), ("0.38", "1000")]),
    "thin": build_book(asks=[("0.50", "9")], bids=[("0.50", "9")]),
    "none": None,
}


@settings(max_examples=60, deadline=None)
@given(TRADES)
def test_the_workers_table_backed_state_decides_exactly_as_a_replays_memory(trades: list[Any]) -> None:
    wallets = [
        build_wallet(id="fixed", capital_usdc=D("60"), max_market_exposure_usdc=D("40")),
        build_wallet(id="ratio", sizing={"mode": "ratio", "value": "0.3"}, max_order_usdc=D("25")),
        build_wallet(id="only-one", targets=(OTHER_TRADER,), liquidity_min_fill_ratio=D("0.9")),
    ]
    ref = reference(*wallets)
    tables: dict[str, Any] = {}
    store = WalletStateStore(
        tables.setdefault("state", {}),
        tables.setdefault("leaders", {}),
        SetKeys(),
        tables.setdefault("followed", {}),
        SetKeys(),
        tables.setdefault("tokens", {}),
    )
    replay = LocalPipeline(ref)
    worker_seen = SetKeys()
    for n, (trader, asset, side, price, size, book_name) in enumerate(trades):
        trade = build_trade(
            proxy_wallet=trader,
            asset=asset,
            side=side,
            price=price,
            size=size,
            transaction_hash="0x" + f"{n:064x}",
        )
        book = BOOKS[book_name]
        if book is not None:
            book = stamp_book(book.model_copy(update={"asset": asset}), BookSource.CHANNEL, NOW_MS)
        # the worker: target filter, then each follower's evaluation with the state loaded from its tables
        live = []
        for wallet_id in engine.target(trade, worker_seen, ref).followers:
            wallet = ref.wallets()[wallet_id]
            state = store.load_for_trade(wallet_id, wallet.capital_usdc, trade)
            live.append(engine.evaluate(trade, wallet, state, ref, book, NOW_MS))
            store.save_for_trades(wallet_id, state, [trade])
        # ... the executor and the lifecycle agent, each report against the state loaded again
        for result in live:
            if result.intent is None or result.decision.reason != "copy":
                continue
            order_id = build_paper_order_id(result.intent.intent_id)
            reports = execute_on_paper(result.intent, order_id, sent_at_ms=NOW_MS, reported_at_ms=NOW_MS)
            for report in [*reports, *reports]:  # each report again, late: an ended order changes nothing
                wallet = ref.wallets()[report.wallet_id]
                state = store.load_for_report(report.wallet_id, wallet.capital_usdc, report)
                engine.apply_report(state, report, NOW_MS)
                store.save_for_reports(report.wallet_id, state, [report])
        replayed = replay.decide(trade, book, NOW_MS)
        replay.settle(replayed, NOW_MS)

        assert [r.decision for r in live] == [r.decision for r in replayed]
        assert [r.intent for r in live] == [r.intent for r in replayed]
