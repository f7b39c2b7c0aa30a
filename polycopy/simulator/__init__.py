"""Seeded fake of Polymarket's services (RTDS activity, CLOB, Data API, Gamma) for demo, bench and tests."""

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
