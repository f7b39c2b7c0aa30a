"""The worker's tables on local disk (issue 8, `processors/worker/local_state.py`): a stop lets the events in
the agents' lanes finish before the tables close, and opening the tables at an assignment costs no garbage
collection per table (Faust's store collected garbage per table at every assignment: 2.5 s of every start
in the chaos run, and per table at every stop: 3 s of every SIGTERM)."""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal
from typing import Any

from faust.tables import TableManager

from processors.core.books import stamp_book
from processors.core.engine import StaticReference
from processors.worker.local_state import LocalRocksDB
from schemas.books import BookSource
from schemas.trades import TargetedTrade
from tests.builders import ASSET, NOW_MS, WALLET_ID, build_book, build_trade, build_wallet

WALLET = build_wallet(liquidity_min_fill_ratio=Decimal("0.1"))
REFERENCE = StaticReference.build([WALLET])
BOOK = stamp_book(build_book(asks=[("0.50", "80")]), BookSource.CHANNEL, NOW_MS)


async def test_a_stop_lets_the_events_in_the_lanes_finish_before_the_tables_close(
    worker_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, BOOK)
    in_flight_at_close: list[int] = []

    async def close_tables(self: TableManager) -> None:  # Faust's: stops the fetcher, recovery and tables
        in_flight_at_close.append(sum(len(lanes) for lanes in worker.app.lanes))

    monkeypatch.setattr(TableManager, "on_stop", close_tables)
    worker.outbox.hold = asyncio.Event()  # the event waits for its delivery when the stop begins

    async with worker.agent("evaluate").test_context() as agent:
        item = TargetedTrade(wallet_id=WALLET_ID, trade=build_trade(), book_id=BOOK.book_id)
        await agent.put(item.to_bytes(), key=b"test", wait=False)
        for _ in range(1000):
            if worker.outbox.held:
                break
            await asyncio.sleep(0.01)
        assert worker.outbox.held, "the agent never sent its outputs"
        stopping = asyncio.ensure_future(worker.app.tables.on_stop())  # what a SIGTERM's stop calls
        await asyncio.sleep(0.1)
        worker.outbox.hold.set()
        await stopping

    assert in_flight_at_close == [0]
    state = worker.app.wallet_store.load_saved(WALLET_ID)
    assert state is not None and len(state.ledger.reservations) == 1  # saved before the tables closed


async def test_opening_the_tables_at_an_assignment_with_nothing_revoked_collects_no_garbage(
    worker_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    collections: list[Any] = []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 0)
    tables = list(worker.app.tables.values())
    assert len(tables) == 7 and all(isinstance(table.data, LocalRocksDB) for table in tables)

    for table in tables:
        await table.data.on_rebalance(assigned=set(), revoked=set(), newly_assigned=set())

    assert collections == []
