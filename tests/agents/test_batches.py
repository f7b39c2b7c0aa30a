"""Batches (issue 11): a wallet's trades that queued behind its running one are decided together, on one load
of its state, with one wait for the broker and one save, and come out exactly as decided one at a time; a
batch that fails is handled again one event at a time, so only the bad event is dead-lettered."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from processors.core.books import stamp_book
from processors.core.engine import StaticReference
from processors.core.ids import build_paper_order_id
from processors.core.paper import execute_on_paper
from schemas.base import Side
from schemas.books import BookSource
from schemas.topics import DEAD_LETTERS, DECISIONS, ORDER_EVENTS, ORDER_INTENTS, POSITIONS
from schemas.trades import TargetedTrade
from tests.builders import ASSET, NOW_MS, TRADER, WALLET_ID, build_book, build_trade, build_wallet

OTHER_TRADER = "0x" + "cd" * 20
WALLET = build_wallet(targets=(TRADER, OTHER_TRADER), liquidity_min_fill_ratio=Decimal("0.1"))
REFERENCE = StaticReference.build([WALLET])
BOOK = stamp_book(build_book(), BookSource.CHANNEL, NOW_MS)
THIN = stamp_book(build_book(asks=[("0.50", "8")]), BookSource.CHANNEL, NOW_MS)


def pinned(tx: str, **trade: Any) -> TargetedTrade:
    return TargetedTrade(
        wallet_id=WALLET_ID, trade=build_trade(transaction_hash="0x" + tx * 32, **trade), book_id=BOOK.book_id
    )


# The leader buys, buys again, sells, a fill read twice, another leader, the rest sold: each trade reads
# what the one before it left (the leader's position, the wallet's capital and reservations).
TRADES = [
    pinned("11", size=Decimal("100")),
    pinned("22", size=Decimal("50")),
    pinned("33", side=Side.SELL, size=Decimal("100")),
    pinned("22", size=Decimal("50")),
    pinned("44", size=Decimal("40"), proxy_wallet=OTHER_TRADER),
    pinned("55", side=Side.SELL, size=Decimal("50")),
]


def outputs(worker: Any) -> dict[str, Any]:
    """What a worker decided and the state it was left with, to compare two workers."""
    positions = {view.asset: view for _, view in worker.outbox.messages(POSITIONS)}  # the latest per token
    state = worker.app.wallet_store.load_saved(WALLET_ID)
    return {
        "decisions": [decision for _, decision in worker.outbox.messages(DECISIONS)],
        "intents": [intent for _, intent in worker.outbox.messages(ORDER_INTENTS)],
        "positions": positions,
        "events": [event for _, event in worker.outbox.messages(ORDER_EVENTS)],
        "state": state.dump(),
    }


async def feed_behind_a_held_first(worker: Any, items: list[Any], stage: str = "evaluate") -> None:
    """The first event's outputs wait for the broker while the others queue behind it, then all go."""
    worker.outbox.hold = asyncio.Event()
    [lanes] = [lanes for lanes in worker.app.lanes if lanes.name == stage]
    async with worker.agent(stage).test_context() as agent:
        for item in items:
            await agent.put(item.to_bytes(), key=item.wallet_id.encode())
        for _ in range(1000):
            if worker.outbox.held and len(lanes) == len(items):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the first event's delivery was never held with the rest queued behind it")
        worker.outbox.hold.set()
        assert await lanes.drain()
    worker.outbox.hold = None


async def test_trades_queued_behind_a_wallets_running_one_are_decided_together_as_one_at_a_time(
    worker_factory, changelog_writes
) -> None:  # type: ignore[no-untyped-def]
    writes = changelog_writes
    alone = worker_factory(REFERENCE)
    alone.books.books.apply(ASSET, BOOK)
    for item in TRADES:
        await alone.put("evaluate", item)
    writes_alone, writes[:] = list(writes), []

    together = worker_factory(REFERENCE)
    together.books.books.apply(ASSET, BOOK)
    await feed_behind_a_held_first(together, TRADES)

    expected = outputs(alone)
    assert [d.reason for d in expected["decisions"]].count("copy") >= 2  # the trades did change the state
    assert outputs(together) == expected
    # One save for the first trade and one for the five behind it, where one at a time saved five times.
    assert (writes_alone.count("wallet-state"), writes.count("wallet-state")) == (5, 2)
    assert together.metrics.redelivered.labels("evaluate")._value.get() == 1  # the fill read twice


async def test_a_batch_that_fails_is_handled_one_at_a_time_and_only_the_bad_trade_is_dead_lettered(
    worker_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from processors.core import engine

    evaluate, bad = engine.evaluate, TRADES[4].trade.transaction_hash

    def evaluate_or_fail(trade, *args, **kwargs):  # type: ignore[no-untyped-def]
        if trade.transaction_hash == bad:
            raise RuntimeError("a trade the policy cannot handle")
        return evaluate(trade, *args, **kwargs)

    good = [item for item in TRADES if item.trade.transaction_hash != bad]
    alone = worker_factory(REFERENCE)
    alone.books.books.apply(ASSET, BOOK)
    for item in good:
        await alone.put("evaluate", item)

    monkeypatch.setattr(engine, "evaluate", evaluate_or_fail)
    together = worker_factory(REFERENCE)
    together.books.books.apply(ASSET, BOOK)
    await feed_behind_a_held_first(together, TRADES)

    # The failed batch left nothing behind (no reservation, no decided mark): the good trades were decided
    # as if the bad one had never come, each once.
    assert outputs(together) == outputs(alone)
    [(_, letter)] = together.outbox.messages(DEAD_LETTERS)
    assert letter.stage == "evaluate" and "cannot handle" in letter.reason


async def test_reports_queued_behind_a_wallets_running_one_are_applied_together_as_one_at_a_time(
    worker_factory, changelog_writes
) -> None:  # type: ignore[no-untyped-def]
    writes = changelog_writes
    workers = [worker_factory(REFERENCE), worker_factory(REFERENCE)]
    for worker in workers:
        worker.books.books.apply(ASSET, THIN)
        trade = TargetedTrade(wallet_id=WALLET_ID, trade=build_trade(), book_id=THIN.book_id)
        await worker.put("evaluate", trade)
    [(_, intent)] = workers[0].outbox.messages(ORDER_INTENTS)
    order_id = build_paper_order_id(intent.intent_id)
    fill, cancel = execute_on_paper(intent, order_id, sent_at_ms=NOW_MS, reported_at_ms=NOW_MS)
    late = fill.model_copy(update={"report_id": "late", "matched_size": intent.size})
    reports = [fill, fill, cancel, late]  # a fill read twice, the rest cancelled, a late report
    writes[:] = []

    alone, together = workers
    for report in reports:
        await alone.put("order-lifecycle", report)
    writes_alone, writes[:] = list(writes), []
    await feed_behind_a_held_first(together, reports, "order-lifecycle")

    expected = outputs(alone)
    assert [e.event_type.value for e in expected["events"]] == [
        "OrderPlaced",
        "OrderPartialFill",
        "OrderCancelled",
    ]
    assert outputs(together) == expected
    assert (writes_alone.count("wallet-state"), writes.count("wallet-state")) == (4, 2)
