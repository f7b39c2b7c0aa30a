"""The worker's speed-only choices: its event loops run on uvloop, and Faust encodes table changelogs with
orjson (both dependencies), with values that decode to what stdlib JSON gives."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import uvloop
from faust.utils import json as faust_json

from processors.core.wallet_state import WalletState
from processors.worker.runtime import use_uvloop


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
