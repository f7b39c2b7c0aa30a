"""Fixtures for the simulator server tests: servers on free ports, stopped after the test; a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from polycopy.simulator.market import MarketSimulator
from polycopy.simulator.server import SimulatorServer

ServerFactory = Callable[..., Awaitable[SimulatorServer]]


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
