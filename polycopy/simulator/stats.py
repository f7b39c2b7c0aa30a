"""Counters the fake services keep, for the simulator's progress lines and for tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SimulatorStats:
    """Counters for progress lines and tests."""

    frames_sent: int = 0
    frames_dropped: int = 0
    clients: int = 0
    connections_total: int = 0
    books_served: int = 0
    trades_generated: int = 0
    market_connections_total: int = 0
    market_frames_sent: int = 0
