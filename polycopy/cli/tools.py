"""`polycopy simulate`, `demo`, `whatif` and `bench`: the fake venue and the tools built on the pipeline."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from polycopy.cli.common import UsageError, load_wallet_file
from polycopy.cli.parser import CommandGroup
from polycopy.infra.settings import PolycopySettings

DEFAULT_WHATIF_WORKERS = min(os.cpu_count() or 1, 4)  # whatif splits the wallets over this many processes


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
            progress=sys.stderr,
            workers=args.workers,
        )
    except ChartUnavailableError as error:
        raise UsageError(str(error)) from None
    return 0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _bench_parts(text: str) -> frozenset[str]:
    from polycopy.tools.bench_figures import parse_parts

    try:
        return parse_parts(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of rates: {text!r}") from None
    if any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("every rate must be > 0")
    return tuple(sorted(rates))


def cmd_bench(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.tools.bench import BenchOptions, run_bench

    if args.profile and Path(args.profile).exists() and not Path(args.profile).is_dir():
        raise UsageError(f"--profile {args.profile}: a file is there; give a directory")
    options = BenchOptions(
        rate=args.rate,
        duration_secs=args.duration_secs,
        seed=args.seed,
        sweep=args.sweep,
        step_secs=args.step_secs,
        wallets=args.wallets,
        traders=args.traders,
        whatif_trades=args.whatif_trades,
        whatif_workers=args.whatif_workers,
        sink_rows=args.sink_rows,
        profile_dir=Path(args.profile) if args.profile else None,
        only=args.only,
        keep_topics=args.keep_topics,
    )
    run_bench(settings, options)
    return 0


def cmd_soak(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.tools.soak import SoakOptions, run_soak

    run_soak(
        settings,
        SoakOptions(rate=args.rate, duration_secs=args.duration_secs, warm_up_secs=args.warm_up_secs),
    )
    return 0


def cmd_chaos(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.tools.chaos import ChaosOptions, run_chaos

    options = ChaosOptions(
        faults=args.faults,
        seed=args.seed,
        trades_per_sec=args.trades_per_sec,
        postgres_outage_secs=args.postgres_outage_secs,
        data_dir=settings.data_dir / "chaos",
        live_fake=args.live_fake,
    )
    return 0 if run_chaos(options).passed else 1


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
    whatif.add_argument(
        "--workers",
        type=_positive_int,
        default=DEFAULT_WHATIF_WORKERS,
        help="processes replaying shares of the wallets, same decisions (default: %(default)s: the cores, "
        "at most 4)",
    )
    bench = commands.command(
        "bench", cmd_bench, "benchmark the pipeline over the real broker and print figures"
    )
    bench.add_argument("--rate", type=float, default=50, help="trades per second fed in")
    bench.add_argument("--duration-secs", type=float, default=30, help="how long trades are fed in")
    bench.add_argument("--seed", type=int, default=11, help="simulator seed")
    bench.add_argument(
        "--sweep",
        type=_rates,
        default=(10.0, 20.0, 35.0, 50.0, 100.0, 200.0, 400.0, 700.0, 1000.0, 1500.0, 2000.0),
        help="rates of the sweep, ascending (comma-separated trades/s); it stops at the first not kept up",
    )
    bench.add_argument("--step-secs", type=float, default=15, help="how long each sweep rate is fed")
    bench.add_argument("--wallets", type=int, default=20, help="copy wallets")
    bench.add_argument("--traders", type=int, default=1000, help="traders the wallets follow between them")
    bench.add_argument(
        "--whatif-trades", type=int, default=200_000, help="synthesised raw trades for whatif (0: skip)"
    )
    bench.add_argument(
        "--whatif-workers",
        type=_positive_int,
        default=DEFAULT_WHATIF_WORKERS,
        help="whatif's worker processes (default: %(default)s: the cores, at most 4)",
    )
    bench.add_argument(
        "--sink-rows", type=int, default=100_000, help="rows for the PostgreSQL sink (0: skip)"
    )
    bench.add_argument(
        "--profile", help="directory: py-spy profiles of the worker and executor (needs py-spy)"
    )
    bench.add_argument(
        "--only",
        type=_bench_parts,
        default="stages,sweep,producer,sink,whatif,live",
        metavar="PARTS",
        help="comma-separated parts to run, from: stages (latency at --rate, in-process baseline, Kafka "
        "tax), sweep, producer, sink, whatif, live",
    )
    bench.add_argument(
        "--keep-topics",
        action="store_true",
        help="leave the run's topics on the broker to read them back (default: deleted at the end)",
    )
    soak = commands.command(
        "soak", cmd_soak, "feed the pipeline for minutes and print the worker's RSS growth after warm-up"
    )
    soak.add_argument("--rate", type=float, default=200, help="trades per second fed in")
    soak.add_argument("--duration-secs", type=float, default=600, help="how long trades are fed in")
    soak.add_argument("--warm-up-secs", type=float, default=120, help="RSS growth counts from here on")

    chaos = commands.command(
        "chaos",
        cmd_chaos,
        "the pipeline on its own Kafka and PostgreSQL under seeded faults; the invariants (exit 1: broken)",
    )
    chaos.add_argument("--faults", type=int, default=50, help="how many faults to inject")
    chaos.add_argument("--seed", type=int, default=8, help="seed of the fault schedule and the simulator")
    chaos.add_argument("--trades-per-sec", type=float, default=5, help="simulated feed rate")
    chaos.add_argument(
        "--postgres-outage-secs", type=float, default=30, help="how long PostgreSQL stays down"
    )
    chaos.add_argument(
        "--live-fake",
        action="store_true",
        help="add a live wallet: the executor runs live with a throwaway key against the simulator's fake "
        "CLOB, and POST /order faults join the schedule",
    )
