"""Command line: `python -m polycopy.simulator --seed 7` runs the fake venue until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

from polycopy.simulator.market import MarketSimulator
from polycopy.simulator.server import SimulatorServer

_PROGRESS_SECS = 10.0
logger = logging.getLogger("polycopy.simulator")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the simulator's command-line options."""
    parser = argparse.ArgumentParser(prog="python -m polycopy.simulator", description=__doc__)
    parser.add_argument("--seed", type=int, default=7, help="seed for markets, wallets and trade flow")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--rtds-port", type=int, default=18765, help="port of the RTDS WebSocket")
    parser.add_argument(
        "--clob-port", type=int, default=18080, help="port of the CLOB, Data API and Gamma routes"
    )
    parser.add_argument("--trades-per-sec", type=float, default=20.0, help="mean rate of generated fills")
    parser.add_argument("--markets", type=int, default=40, help="number of generated markets")
    parser.add_argument("--wallets", type=int, default=300, help="number of generated wallets")
    parser.add_argument(
        "--duration-secs", type=float, default=None, help="stop after this long (default: never)"
    )
    parser.add_argument(
        "--capture",
        type=Path,
        default=None,
        help="capture file (JSON lines of RTDS frames): serve deep books for its markets, generate no trades",
    )
    return parser.parse_args(argv)


def load_capture_payloads(path: Path) -> list[dict[str, Any]]:
    """Trade payloads of a capture file's frames; pongs and malformed lines are skipped, as a replay does."""
    payloads = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                payload = json.loads(json.loads(line)["frame"]).get("payload")
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if isinstance(payload, dict):
                payloads.append(payload)
    return payloads


async def run_simulator(args: argparse.Namespace) -> None:
    """Serve the simulator until a stop signal or the optional duration elapses."""
    simulator = MarketSimulator(
        args.seed,
        market_count=args.markets,
        wallet_count=args.wallets,
        now_ms=lambda: int(time.time() * 1000),
    )
    if args.capture is not None:
        markets = simulator.register_from_trades(load_capture_payloads(args.capture))
        logger.info(
            "registered %d markets from %s; the replay is the trade source", len(markets), args.capture
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if args.duration_secs is not None:
        loop.call_later(args.duration_secs, stop.set)
    async with SimulatorServer(
        simulator,
        args.host,
        args.rtds_port,
        args.clob_port,
        args.trades_per_sec,
        auto_trades=args.capture is None,
        # A replay must see the same books every time, so a capture's books never drift.
        drift_interval_secs=math.inf if args.capture is not None else 1.0,
    ) as server:
        print(
            f"simulator seed={args.seed} rtds={server.rtds_url} clob={server.clob_url} "
            f"top_wallets={','.join(simulator.top_wallets(5))}",
            flush=True,
        )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _PROGRESS_SECS)
            stats = server.stats
            logger.info(
                "progress trades_generated=%d frames_sent=%d frames_dropped=%d clients=%d books_served=%d",
                stats.trades_generated,
                stats.frames_sent,
                stats.frames_dropped,
                stats.clients,
                stats.books_served,
            )
    logger.info("simulator stopped")


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m polycopy.simulator`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_simulator(parse_args(argv)))


if __name__ == "__main__":
    main()
