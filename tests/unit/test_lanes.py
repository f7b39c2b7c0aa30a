"""Keyed lanes (processors/worker/lanes.py): in order within a key, side by side across keys, bounded; what
queued behind a key's running batch runs as its next batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from processors.worker.lanes import KeyedLanes

Work = Callable[[], Awaitable[None]]


async def run_each(items: list[Work]) -> None:
    for item in items:
        await item()


async def test_one_keys_work_runs_in_submission_order_even_when_an_earlier_item_is_slower() -> None:
    lanes, done = KeyedLanes[Work]("test", run_each), []

    async def work(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        done.append(name)

    await lanes.submit(b"w", lambda: work("first", 0.05))
    await lanes.submit(b"w", lambda: work("second", 0))
    await lanes.submit(b"w", lambda: work("third", 0.01))
    assert await lanes.drain()
    assert done == ["first", "second", "third"]


async def test_a_key_waiting_does_not_hold_up_another_key() -> None:
    lanes, release, done = KeyedLanes[Work]("test", run_each), asyncio.Event(), []

    async def held() -> None:
        await release.wait()
        done.append("held")

    async def quick() -> None:
        done.append("quick")

    await lanes.submit(b"a", held)
    await lanes.submit(b"b", quick)
    await asyncio.sleep(0.01)
    assert done == ["quick"]
    release.set()
    assert await lanes.drain()
    assert done == ["quick", "held"]


async def test_a_failed_batch_does_not_stop_its_key_and_the_next_batch_runs() -> None:
    lanes, done = KeyedLanes[Work]("test", run_each), []

    async def fail() -> None:
        raise RuntimeError("boom")

    async def work() -> None:
        done.append("next")

    await lanes.submit(b"w", fail)
    await lanes.submit(b"w", work)
    assert await lanes.drain()
    assert done == ["next"] and len(lanes) == 0


async def test_what_queued_behind_a_running_batch_runs_together_up_to_the_batch_size() -> None:
    release, batches = asyncio.Event(), list[list[str]]()

    async def handle(items: list[str]) -> None:
        batches.append(items)
        if items == ["first"]:
            await release.wait()

    lanes = KeyedLanes[str]("test", handle, max_batch=3)
    for name in ("first", "a", "b", "c", "d"):
        await lanes.submit(b"w", name)
    await lanes.submit(b"other", "x")
    await asyncio.sleep(0.01)
    assert batches == [["first"], ["x"]] and len(lanes) == 5  # "first" and four queued behind it
    release.set()
    assert await lanes.drain()
    assert batches == [["first"], ["x"], ["a", "b", "c"], ["d"]]


async def test_submit_waits_while_the_in_flight_bound_is_reached() -> None:
    lanes, release = KeyedLanes[Work]("test", run_each, max_in_flight=2), asyncio.Event()
    await lanes.submit(b"a", release.wait)
    await lanes.submit(b"a", release.wait)  # queued behind the first: in flight too
    third = asyncio.create_task(lanes.submit(b"c", release.wait))
    await asyncio.sleep(0.01)
    assert not third.done() and len(lanes) == 2
    release.set()
    await third
    assert await lanes.drain()


async def test_stop_cancels_what_did_not_finish_in_time_and_drops_what_queued_behind_it() -> None:
    lanes, finished = KeyedLanes[Work]("test", run_each, max_in_flight=3), []

    async def forever() -> None:
        await asyncio.Event().wait()
        finished.append("never")

    async def quick() -> None:
        finished.append("quick")

    await lanes.submit(b"a", forever)
    await lanes.submit(b"a", quick)  # behind the one that never ends: dropped, its event read again later
    await lanes.submit(b"b", quick)
    assert not await lanes.drain(timeout=0.05)
    await lanes.stop(timeout=0.05)
    assert finished == ["quick"] and len(lanes) == 0
    await lanes.submit(b"a", quick)  # the lanes go on after a stop (a rebalance), with every slot back
    await lanes.submit(b"a", quick)
    await lanes.submit(b"a", quick)
    assert await lanes.drain()
    assert finished == ["quick"] * 4
