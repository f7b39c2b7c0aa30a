"""The worker's speed-only choices: its event loops run on uvloop, Faust encodes table changelogs with
orjson (both dependencies), with values that decode to what stdlib JSON gives, and the garbage collector
leaves start-up's objects alone and runs less often."""

from __future__ import annotations

import asyncio
import gc
import json
from decimal import Decimal

import uvloop
from faust.utils import json as faust_json

from processors.core.wallet_state import WalletState
from processors.worker import runtime
from processors.worker.runtime import GC_THRESHOLDS, use_uvloop


def test_use_uvloop_makes_new_event_loops_uvloop_ones() -> None:
    previous = asyncio.get_event_loop_policy()
    try:
        assert use_uvloop()
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, uvloop.Loop)
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(previous)


def test_faust_encodes_a_wallet_state_with_orjson_and_it_decodes_unchanged() -> None:
    state = WalletState.new(Decimal("1000")).dump()
    state["closed"] = [f"paper-{n:060d}" for n in range(3)]

    encoded = faust_json.dumps(state)

    assert faust_json.orjson is not None and isinstance(encoded, bytes)
    assert json.loads(encoded) == state == faust_json.loads(encoded)


def test_the_worker_runs_with_start_ups_objects_frozen_and_the_collector_tuned(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A full collection at the defaults paused the worker 104-182 ms, twice per bench run (its p99)."""
    import faust

    seen: list[tuple[tuple[int, ...], int]] = []

    class Worker:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def execute_from_commandline(self) -> None:
            seen.append((gc.get_threshold(), gc.get_freeze_count()))

    monkeypatch.setattr(faust, "Worker", Worker)
    thresholds = gc.get_threshold()
    try:
        runtime.run_app(object(), "info")  # type: ignore[arg-type]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)

    [(running_with, frozen)] = seen
    assert running_with == GC_THRESHOLDS and frozen > 0
