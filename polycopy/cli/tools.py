"""`polycopy simulate`, `demo`, `whatif` and `bench`: the fake venue and the tools built on the pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path

from polycopy.cli.common import UsageError, load_wallet_file
from polycopy.cli.parser import CommandGroup
from polycopy.infra.settings import PolycopySettings


def cmd_simulate(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.simulator.__main__ import main as simulate

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return int(simulate(rest) or 0)


def cmd_demo(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.tools.demo import DemoOptions, run_demo

    options = DemoOptions(
        duration_secs=args.duration_secs,
        capture=Path(args.capture) if args.capture else None,
        seed=args.seed,
        trades_per_sec=args.trades_per_sec,
        wallets=Path(args.wallets) if args.wallets else None,
        live_fake=args.live_fake,
    )
    if options.wallets is not None:
        load_wallet_file(options.wallets)  # refuse a bad file before anything starts
    run_demo(settings, options)
    return 0


def cmd_whatif(args: argparse.Namespace, settings: PolycopySettings) -> int:
    import time

    from polycopy.tools.whatif import parse_time_ms, run_whatif

    config = load_wallet_file(Path(args.wallets))
    now_ms = time.time_ns() // 1_000_000
    try:
        from_ms = parse_time_ms(args.from_time, now_ms)
        to_ms = parse_time_ms(args.to_time, now_ms) if args.to_time else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    from polycopy.tools.chart import ChartUnavailableError

    try:
        run_whatif(
            settings,
            list(config.wallets),
            from_ms=from_ms,
            to_ms=to_ms,
            sandbox=args.sandbox,
            chart_dir=Path(args.chart) if args.chart else None,
            now_ms=now_ms,
        )
    except ChartUnavailableError as error:
        raise UsageError(str(error)) from None
    return 0


def cmd_bench(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.tools.bench import BenchOptions, run_bench

    run_bench(settings, BenchOptions(rate=args.rate, duration_secs=args.duration_secs, seed=args.seed))
    return 0


def register(commands: CommandGroup) -> None:
    simulate = commands.command(
        "simulate", cmd_simulate, "run the market simulator (fake RTDS + CLOB); see --help after --"
    )
    simulate.add_argument("rest", nargs=argparse.REMAINDER, help="the simulator's own arguments")

    demo = commands.command(
        "demo", cmd_demo, "run simulator + pipeline for a bounded demo and print a summary"
    )
    demo.add_argument("--duration-secs", type=float, default=60, help="how long trades flow")
    demo.add_argument("--capture", help="replay this capture file instead of the simulated feed")
    demo.add_argument("--seed", type=int, default=7, help="simulator seed")
    demo.add_argument("--trades-per-sec", type=float, default=20, help="simulated feed rate")
    demo.add_argument(
        "--wallets", help="wallet YAML file (default: three demo wallets following the top traders)"
    )
    demo.add_argument(
        "--live-fake",
        action="store_true",
        help="add a live wallet: the executor runs live with a throwaway key and sends real signed orders "
        "to the simulator's fake CLOB",
    )
    whatif = commands.command(
        "whatif",
        cmd_whatif,
        "replay the raw-trade log from a time through a wallet file, into sandbox "
        "topics no executor reads, settle the markets that resolved meanwhile, and print a per-wallet report",
    )
    whatif.add_argument(
        "--from",
        dest="from_time",
        required=True,
        help="start: ISO 8601, epoch seconds/ms, or an age such as 2h",
    )
    whatif.add_argument("--to", dest="to_time", help="end (default: now)")
    whatif.add_argument("--wallets", required=True, help="wallet YAML file to try")
    whatif.add_argument("--sandbox", help="sandbox topic namespace (default whatif-<unix time>)")
    whatif.add_argument("--chart", metavar="DIR", help="write a PnL-over-time PNG per wallet into DIR")
    bench = commands.command(
        "bench", cmd_bench, "benchmark the pipeline over the real broker and print figures"
    )
    bench.add_argument("--rate", type=float, default=50, help="trades per second fed in")
    bench.add_argument("--duration-secs", type=float, default=30, help="how long trades are fed in")
    bench.add_argument("--seed", type=int, default=11, help="simulator seed")
