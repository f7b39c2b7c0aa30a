"""The worker's tables on local disk (issue 8, `processors/worker/local_state.py`): a stop lets the events in
the agents' lanes finish before the tables close, and opening the tables at an assignment costs no garbage
collection per table (Faust's store collected garbage per table at every assignment: 2.5 s of every start
in the chaos run, and per table at every stop: 3 s of every SIGTERM)."""

from __future__ import annotations

import asyncio
import gc
import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from faust.tables import TableManager
from faust.types import TP

from processors.core.books import stamp_book
from processors.core.engine import StaticReference
from processors.worker.local_state import LocalRocksDB, drop_local_keys_below
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


@pytest.mark.parametrize("store", ["rocksdb", "memory"])
async def test_the_buckets_no_longer_kept_leave_the_workers_store_and_nothing_else_does(
    worker_factory, store: str
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE, with_settings={"worker_state_store": store})
    table = worker.app.tables["recent-decisions"]
    old, kept = ["0000000998|a", "0000000999|b"], ["0000001000|c", "0000001001|d"]
    if store == "rocksdb":
        assert isinstance(table.data, LocalRocksDB)
        db = table.data._db_for_partition(0)
        for key in old + kept:
            db.put(table.data._encode_key(key), b"1")
        table.data.set_persisted_offset(TP(table.changelog_topic.get_topic_name(), 0), 41)

        def stored() -> list[str]:
            return sorted(json.loads(key) for key, _ in db.items() if key != table.data.offset_key)
    else:
        for key in old + kept:
            table.data.data[key] = 1

        def stored() -> list[str]:
            return sorted(table.data.data)

    drop_local_keys_below(table, "0000001000|")

    assert stored() == kept
    if store == "rocksdb":  # the changelog offset the rows are written up to stays
        assert table.data.persisted_offset(TP(table.changelog_topic.get_topic_name(), 0)) == 41


async def test_rows_survive_the_store_closed_and_opened_again_and_compacted(worker_factory) -> None:  # type: ignore[no-untyped-def]
    """What a restart does to a partition's database. With RocksDB's TTL (rocksdict 0.3), a database opened
    again dropped every row at its next compaction: a chaos run's restarted worker found its recent keys and
    their changelog offsets gone, and read those changelogs from their start."""
    worker = worker_factory(REFERENCE)
    store = worker.app.tables["recent-fills"].data
    for restart in range(5):
        db = store._db_for_partition(0)
        db.put(store._encode_key(f"0000001000|fill-{restart}"), b"1")
        db.flush()
        await store.stop()
    db = store._db_for_partition(0)
    db.compact_range(None, None)
    assert sorted(json.loads(key) for key, _ in db.items()) == [f"0000001000|fill-{n}" for n in range(5)]


async def test_values_are_decoded_once_and_what_the_changelog_brings_back_replaces_them(
    worker_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Reads are served from the values this process wrote or read (Faust's store decoded every read: 16 %
    more CPU per decision than in memory); a changelog record applied behind them (recovery, a standby's
    update) replaces the kept value."""
    worker = worker_factory(REFERENCE)
    store = worker.app.tables["wallet-state"].data
    decodes: list[Any] = []
    decode = LocalRocksDB._decode_value
    monkeypatch.setattr(
        LocalRocksDB, "_decode_value", lambda self, raw: decodes.append(raw) or decode(self, raw)
    )
    db = store._db_for_partition(0)
    db.put(store._encode_key("w1"), store._encode_value({"version": 1}))

    first = store["w1"]
    assert store["w1"] is first and len(decodes) == 1 and "w1" in store

    changelog = SimpleNamespace(
        message=SimpleNamespace(
            key=store._encode_key("w1"),
            value=store._encode_value({"version": 2}),
            partition=0,
            offset=7,
            tp=TP(worker.app.tables["wallet-state"].changelog_topic.get_topic_name(), 0),
        )
    )
    store.apply_changelog_batch([changelog], lambda key: key, lambda value: value)
    assert store["w1"] == {"version": 2} and len(decodes) == 2


async def test_a_partitions_changelog_offset_goes_to_disk_at_most_once_a_second_and_at_the_stop(
    worker_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Faust's store wrote the offset to disk for every changelog record acknowledged (3 % of the worker):
    the latest is answered from memory, and written at most once a second per partition and at the stop."""
    from processors.worker import local_state

    worker = worker_factory(REFERENCE)
    table = worker.app.tables["wallet-state"]
    store, tp = table.data, TP(table.changelog_topic.get_topic_name(), 0)
    clock = [100.0]
    monkeypatch.setattr(local_state.time, "monotonic", lambda: clock[0])

    def on_disk() -> int:
        return int(store._db_for_partition(0).get(store.offset_key))

    for offset in range(1, 1001):
        store.set_persisted_offset(tp, offset)
    assert (on_disk(), store.persisted_offset(tp)) == (1, 1000)
    clock[0] += local_state.OFFSET_WRITE_SECS
    store.set_persisted_offset(tp, 1001)
    assert on_disk() == 1001
    store.set_persisted_offset(tp, 1002)
    await store.stop()
    assert on_disk() == 1002  # the database opened again, as at the next start


async def test_the_values_kept_decoded_are_bounded_and_the_rest_are_read_from_disk(
    worker_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The recent keys' tables take a key per fill or decision for a day: kept decoded without a bound, a
    day at 100 decisions/s would hold millions of them in memory."""
    from processors.worker import local_state

    monkeypatch.setattr(local_state, "VALUES_KEPT", 3)
    worker = worker_factory(REFERENCE)
    store = worker.app.tables["wallet-state"].data
    db = store._db_for_partition(0)
    for number in range(7):
        key = f"w{number}"
        db.put(store._encode_key(key), store._encode_value({"n": number}))
        assert store[key] == {"n": number}

    assert len(store._values) <= 3
    assert [store[f"w{number}"]["n"] for number in range(7)] == list(range(7))
