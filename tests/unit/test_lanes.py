"""Keyed lanes (processors/worker/lanes.py): in order within a key, side by side across keys, bounded."""

from __future__ import annotations

import asyncio

from processors.worker.lanes import KeyedLanes


async def test_one_keys_work_runs_in_submission_order_even_when_an_earlier_item_is_slower() -> None:
    lanes, done = KeyedLanes("test"), []

    async def work(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        done.append(name)

    await lanes.submit(b"w", lambda: work("first", 0.05))
    await lanes.submit(b"w", lambda: work("second", 0))
    await lanes.submit(b"w", lambda: work("third", 0.01))
    assert await lanes.drain()
    assert done == ["first", "second", "third"]


async def test_a_key_waiting_does_not_hold_up_another_key() -> None:
    lanes, release, done = KeyedLanes("test"), asyncio.Event(), []

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


async def test_a_failed_item_does_not_stop_its_key_and_the_next_item_runs() -> None:
    lanes, done = KeyedLanes("test"), []

    async def fail() -> None:
        raise RuntimeError("boom")

    async def work() -> None:
        done.append("next")

    await lanes.submit(b"w", fail)
    await lanes.submit(b"w", work)
    assert await lanes.drain()
    assert done == ["next"]


async def test_submit_waits_while_the_in_flight_bound_is_reached() -> None:
    lanes, release = KeyedLanes("test", max_in_flight=2), asyncio.Event()
    await lanes.submit(b"a", release.wait)
    await lanes.submit(b"b", release.wait)
    third = asyncio.create_task(lanes.submit(b"c", release.wait))
    await asyncio.sleep(0.01)
    assert not third.done() and len(lanes) == 2
    release.set()
    await third
    assert await lanes.drain()


async def test_stop_cancels_what_did_not_finish_in_time() -> None:
    lanes, finished = KeyedLanes("test"), []

    async def forever() -> None:
        await asyncio.Event().wait()
        finished.append("never")

    async def quick() -> None:
        finished.append("quick")

    await lanes.submit(b"a", forever)
    await lanes.submit(b"b", quick)
    assert not await lanes.drain(timeout=0.05)
    await lanes.stop(timeout=0.05)
    assert finished == ["quick"] and len(lanes) == 0
