"""Unit-test fixtures: no shared data folder for any test; simulator servers on free ports and a client.

Unit tests must pass in a clone with no `../shared` beside it, so every one of them runs with the shared-data
path of tests/builders pointing at a folder that does not exist: a loader called anyway fails loudly.
test_no_shared_data.py checks that no unit test module reaches the folder some other way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from polycopy.simulator.market import MarketSimulator
from polycopy.simulator.server import SimulatorServer
from tests import builders

ServerFactory = Callable[..., Awaitable[SimulatorServer]]
NO_SHARED_DATA = Path("/nonexistent/unit-tests-never-read-shared-data")


@pytest.fixture(autouse=True)
def no_shared_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the shared-data folder nowhere: a unit test loading from it fails whatever the machine holds."""
    monkeypatch.setattr(builders, "SHARED_DATA", NO_SHARED_DATA)


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    """Start simulator servers: no generated trades, and books that drift only at start-up unless a test
    asks otherwise, so they can be compared across calls."""
    servers: list[SimulatorServer] = []

    async def start(seed: int = 7, market_count: int = 8, **options: Any) -> SimulatorServer:
        simulator = MarketSimulator(seed, market_count=market_count, wallet_count=40)
        server = SimulatorServer(
            simulator,
            rtds_port=0,
            clob_port=0,
            **{"auto_trades": False, "drift_interval_secs": 3600.0, **options},
        )
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session
