"""`polycopy markets` and `polycopy traders`: reference data from the venue (or a file) onto its topics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from polycopy.cli.common import UsageError, deliver_or_fail
from polycopy.cli.parser import CommandGroup
from polycopy.infra.settings import PolycopySettings


def cmd_markets_sync(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import MarketsSyncOptions, run_markets_sync, run_markets_sync_loop

    options = MarketsSyncOptions(tuple(args.condition_id or ()), args.page_size, args.max_pages)

    def report(summary: Any) -> None:
        print(
            f"synced {summary.published} markets from {summary.pages} Gamma pages"
            + (f", {summary.resolutions} new resolutions" if summary.resolutions else "")
            + (f", {summary.refused} skipped (no condition id or bad fields)" if summary.refused else ""),
            flush=True,
        )

    if args.loop:
        runs = run_markets_sync_loop(settings, options, args.interval_secs, on_run=report)
        print(f"markets sync stopped after {runs} runs")
        return 0
    report(deliver_or_fail(lambda: run_markets_sync(settings, options)))
    return 0


def cmd_traders_sync(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_reference_sync
    from producers.reference import sync_traders

    summary = deliver_or_fail(
        lambda: run_reference_sync(
            settings,
            "traders",
            lambda client, publisher: sync_traders(
                client,
                publisher,
                limit=args.limit,
                time_period=args.time_period,
                order_by=args.order_by,
                category=args.category,
            ),
        )
    )
    print(
        f"synced {summary.published} traders ({args.time_period} {args.order_by} leaderboard)"
        + (f", {summary.refused} rows skipped" if summary.refused else "")
    )
    return 0


def cmd_traders_import(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.kafka import now_ms
    from polycopy.wiring import run_publish
    from producers.reference import ReferenceParseError, build_trader_file, publish_traders, read_trader_rows

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"{path} not found")
    try:
        result = build_trader_file(read_trader_rows(path), now_ms())
    except ReferenceParseError as error:
        raise UsageError(str(error)) from None
    if result.refused:
        lines = [f"{path}: row {number}: {reason}" for number, reason in result.refused]
        raise UsageError("\n".join(lines + [f"{path}: refused, nothing imported"]))
    if not result.traders:
        raise UsageError(f"{path}: no trader rows")

    def publish(publisher: Any) -> int:
        return publish_traders(result.traders, publisher)

    count = deliver_or_fail(lambda: run_publish(settings, "polycopy-reference", "traders", publish))
    print(f"imported {count} traders from {path}")
    return 0


def register(commands: CommandGroup) -> None:
    markets = commands.group("markets", "market reference data")
    markets_sync = markets.command(
        "sync",
        cmd_markets_sync,
        "publish Gamma market metadata to the markets topic, and the resolutions of the markets that closed",
    )
    markets_sync.add_argument(
        "--condition-id",
        action="append",
        metavar="ID",
        help="only this market (repeatable; default: every active market)",
    )
    markets_sync.add_argument("--max-pages", type=int, default=20, help="pages of active markets at most")
    markets_sync.add_argument("--page-size", type=int, default=500, help="markets per Gamma request")
    markets_sync.add_argument("--loop", action="store_true", help="sync again every interval until SIGTERM")
    markets_sync.add_argument(
        "--interval-secs", type=float, default=300.0, help="with --loop: time between syncs"
    )
    traders = commands.group("traders", "leaderboard traders (followed by wallets without targets)")
    traders_sync = traders.command(
        "sync", cmd_traders_sync, "publish the Data API leaderboard to the traders topic"
    )
    traders_sync.add_argument("--limit", type=int, default=50, help="top N traders")
    traders_sync.add_argument(
        "--time-period", default="MONTH", choices=["DAY", "WEEK", "MONTH", "ALL"], help="leaderboard window"
    )
    traders_sync.add_argument("--order-by", default="PNL", choices=["PNL", "VOL"], help="rank by")
    traders_sync.add_argument("--category", default="OVERALL", help="leaderboard category, e.g. POLITICS")
    traders_import = traders.command(
        "import",
        cmd_traders_import,
        "publish traders from a leaderboard JSON or a CSV (address,name,pnl,vol,win_rate)",
    )
    traders_import.add_argument("file", help="leaderboard .json or .csv file")
