"""Seeded fake of Polymarket's services (RTDS activity, CLOB, Data API, Gamma) for demo, bench and tests.

The model has no I/O: `market.MarketSimulator` composes the catalog of markets and wallets (`catalog`), the
order books (`books`) and the trade flow (`flow`). Each fake service serves it over the venue's wire format in
its own module (`rtds`, `clob`, `market_channel`, `data_api`, `gamma`), and `server.SimulatorServer` composes
them on two ports with the trade stream and book drift.
"""

from polycopy.simulator.market import MarketSimulator, SimulatedFill, SimulatedMarket, format_decimal
from polycopy.simulator.server import SimulatorServer, SimulatorStats

__all__ = [
    "MarketSimulator",
    "SimulatedFill",
    "SimulatedMarket",
    "SimulatorServer",
    "SimulatorStats",
    "format_decimal",
]
