"""`make bench`: stage latency over the real broker at the platform's rate, the rate sweep and its knee, the
same decisions in-process and the Kafka tax, producer throughput, PostgreSQL sink rows/s, whatif trades/s."""

from __future__ import annotations

import shutil
import socket
import time

from polycopy.infra.kafka import delete_topics
from polycopy.infra.postgres import create_database, drop_database, migrate
from polycopy.infra.settings import PolycopySettings
from polycopy.simulator.market import MarketSimulator
from polycopy.tools.bench_figures import (
    BENCH_PARTS,
    STAGES,
    BenchOptions,
    BenchResult,
    Out,
    StepFigures,
    build_bench_wallets,
    cell,
    describe_load,
    describe_machine,
    format_ms,
    load_average,
    ratio,
)
from polycopy.tools.bench_live import run_live
from polycopy.tools.bench_local import run_in_process, run_producer
from polycopy.tools.bench_offline import run_sink_bench, run_whatif_bench
from polycopy.tools.bench_pipeline import BenchPipeline
from polycopy.tools.profiles import print_profile
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig
from sinks import MIGRATIONS

__all__ = ["BenchOptions", "BenchResult", "bench_settings", "run_bench"]

WARM_UP_SECS = 10.0
PROFILE_TOP = 15


def bench_settings(
    settings: PolycopySettings, options: BenchOptions, name: str
) -> tuple[PolycopySettings, str]:
    """Settings of a bench or soak run: its own topic prefix, groups, database and simulator ports."""
    stamp = int(time.time())
    rtds_port, clob_port = (_free_port(port) for port in options.ports)
    database = f"polycopy_{name}{stamp}"
    bench = settings.model_copy(
        update={
            "topic_prefix": f"{name}{stamp}.",
            "consumer_group_prefix": f"{name}{stamp}",
            "metrics_enabled": False,
            "database_url": create_database(settings.database_url, database),
            "data_dir": settings.data_dir / name,
            "rtds_url": f"ws://127.0.0.1:{rtds_port}",
            "clob_url": f"http://127.0.0.1:{clob_port}",
            "clob_market_ws_url": f"ws://127.0.0.1:{clob_port}/ws/market",
        }
    )
    migrate(bench.database_url, MIGRATIONS)
    return bench, database


def clean_up_run(
    settings: PolycopySettings, run: PolycopySettings, database: str, *, keep_topics: bool = False
) -> str:
    """Drop a bench or soak run's database, its worker state and, unless kept, its topics (a broker keeps
    files open per partition: runs left there pile up until it runs out). Says what became of the topics."""
    drop_database(settings.database_url, database)
    shutil.rmtree(run.data_dir / "faust" / run.consumer_group("processor"), ignore_errors=True)
    if keep_topics:
        return f"topics kept on the broker under the prefix {run.topic_prefix!r}"
    group_prefix = run.consumer_group_prefix + "-"  # the worker's changelogs
    deleted = delete_topics(run, lambda name: name.startswith((run.topic_prefix, group_prefix)))
    return f"{len(deleted)} topics deleted"


def bench_wallets(options: BenchOptions) -> list[WalletConfig]:
    simulator = MarketSimulator(options.seed, wallet_count=options.simulator_wallets)
    return build_bench_wallets(simulator.top_wallets(options.traders), options.wallets)


def run_bench(settings: PolycopySettings, options: BenchOptions, out: Out = print) -> BenchResult:
    """Run every benchmark once and print labelled figures, ending with a table for the README."""
    bench, database = bench_settings(settings, options, "bench")
    out(f"polycopy bench: {describe_machine()}")
    out(
        f"  options: {options.rate:g} trades/s for {options.duration_secs:g} s, sweep "
        f"{', '.join(f'{r:g}' for r in options.sweep)} trades/s x {options.step_secs:g} s, "
        f"seed {options.seed}; "
        f"topics {bench.topic_prefix}*, database {database}; parts: "
        + ", ".join(part for part in BENCH_PARTS if options.runs(part))
    )
    result = BenchResult(load_average=load_average())
    try:
        wallets = bench_wallets(options)
        if options.runs("stages") or options.runs("sweep"):
            trades = _run_pipeline(bench, options, wallets, result, out)
            if options.runs("stages"):
                run_in_process(trades, wallets, options, result, out)
                print_tax(result, out)
        if options.runs("producer"):
            run_producer(bench, options, result, out)
        if options.runs("sink") and options.sink_rows:
            run_sink_bench(bench, options, result, out)
        if options.runs("whatif") and options.whatif_trades:
            run_whatif_bench(bench, options, wallets, result, out)
        if options.runs("live"):
            run_live(bench, options.seed, out)
    finally:
        kept = clean_up_run(settings, bench, database, keep_topics=options.keep_topics)
    out(f"\n  database {database} dropped; {kept}")
    print_table(result, options, out)
    return result


def _run_pipeline(
    bench: PolycopySettings, options: BenchOptions, wallets: list[WalletConfig], result: BenchResult, out: Out
) -> list[RawTrade]:
    out("\n== 1. pipeline over the real broker " + "=" * 40)
    traders = len({t for wallet in wallets for t in wallet.targets})
    out(
        f"  {len(wallets)} paper wallets (FAK, liquidity ratio 0.5) following {traders} traders (the top "
        f"of the simulator's {options.simulator_wallets}); simulator, books producer, Faust worker, "
        "executor, RTDS producer"
    )
    pipeline = BenchPipeline(
        bench, wallets, seed=options.seed, simulator_wallets=options.simulator_wallets, out=out
    )
    trades: list[RawTrade] = []
    try:
        pipeline.start()
        out(f"  warm-up: {WARM_UP_SECS:g} s at {options.rate:g} trades/s")
        pipeline.run_step(options.rate, WARM_UP_SECS)
        if options.runs("stages"):
            trades = _measure_stages(pipeline, options, result, out)
        if not options.runs("sweep"):
            return trades
        out("\n== 1b. rate sweep: the same pipeline, each rate for " + f"{options.step_secs:g} s " + "=" * 20)
        for rate in options.sweep:
            load = describe_load()
            step = pipeline.run_step(rate, options.step_secs, drain_secs=max(60.0, 2 * options.step_secs))
            result.sweep.append(step)
            decided = step.stages.get("receive -> decision")
            out(
                f"  {rate:6g} trades/s offered: {step.fed_per_sec:7.1f} fed, {step.decisions:6} of "
                f"{step.decisions_due:6} decisions due, receive -> decision {cell(decided)}, "
                f"receive -> order sent {cell(step.stages.get('receive -> order sent'))}: "
                f"{step.verdict} ({load})"
            )
            out(f"           CPU: {describe_cpu(step)}")
            if not step.kept_up:
                break
        knee = result.knee
        out(
            f"  knee: {f'{knee:g} trades/s' if knee is not None else 'below the first step'} "
            "(the highest rate kept up)"
        )
    finally:
        pipeline.stop()
    return trades


def _measure_stages(
    pipeline: BenchPipeline, options: BenchOptions, result: BenchResult, out: Out
) -> list[RawTrade]:
    """The latency per stage at `options.rate` (with profiles if asked); returns the trades fed."""
    out(f"  measured: {options.duration_secs:g} s at {options.rate:g} trades/s ({describe_load()})")
    if options.profile_dir is not None:
        for component in ("worker", "executor"):
            pipeline.profile(component, options.duration_secs, options.profile_dir)
    result.main = pipeline.run_step(options.rate, options.duration_secs)
    trades = list(pipeline.last_trades)
    pipeline.wait_for_profiles()
    print_step(result.main, out)
    if options.profile_dir is not None:
        for component in ("worker", "executor"):
            print_profile(options.profile_dir / f"{component}.folded", component, PROFILE_TOP, out)
    return trades


def print_step(step: StepFigures, out: Out) -> None:
    out(
        f"  {step.unique_trades} unique trades in {step.secs:.1f} s ({step.fed_per_sec:.1f}/s fed), "
        f"{step.decisions} of {step.decisions_due} decisions due made, {step.orders} orders sent"
    )
    for name in STAGES:
        out(f"    {name:24}{format_ms(step.stages.get(name))}")
    if step.cpu_secs:
        out("  CPU used over the window and its drain: " + describe_cpu(step))
    if step.early_p50_ms is not None and step.late_p50_ms is not None:
        out(
            f"  receive -> decision p50: {step.early_p50_ms:.0f} ms in the first quarter of the window, "
            f"{step.late_p50_ms:.0f} ms in the last: {step.verdict}"
        )


def describe_cpu(step: StepFigures) -> str:
    """CPU seconds per component; the worker's per decision and the executor's per report logged."""
    per = {
        "worker": ("decision", step.logged.get("decisions", 0)),
        "executor": ("report", step.logged.get("reports", 0)),
    }
    parts = []
    for name, secs in sorted(step.cpu_secs.items()):
        unit, count = per.get(name, ("", 0))
        parts.append(
            f"{name} {secs:.1f} s" + (f" ({1000 * secs / count:.2f} ms per {unit})" if count else "")
        )
    return ", ".join(parts)


def print_tax(result: BenchResult, out: Out) -> None:
    out("\n== 3. Kafka tax " + "=" * 60)
    pipeline = result.main.stages.get("receive -> order sent") if result.main else None
    local = result.inprocess_followed_ms
    if pipeline is None or local is None:
        out("  n/a: no orders were sent or no trade had followers")
        return
    out("  pipeline receive -> order sent, against the decision code per followed trade in-process")
    for name in ("p50", "p99"):
        a, b = getattr(pipeline, name), getattr(local, name)
        out(f"  Kafka tax ({name}): {a:.1f} ms vs {b:.3f} ms in-process = {ratio(a, b):,.0f}x")


def print_table(result: BenchResult, options: BenchOptions, out: Out) -> None:
    main = result.main
    stages = main.stages if main else {}
    order = stages.get("receive -> order sent")
    local = result.inprocess_followed_ms
    tax = (
        "n/a"
        if order is None or local is None
        else f"{ratio(order.p50, local.p50):,.0f}x / {ratio(order.p99, local.p99):,.0f}x"
    )
    rows = [(f"{name}, p50 / p99", cell(stages.get(name), 1)) for name in STAGES]
    rows += [
        (
            f"throughput at {options.rate:g} trades/s offered",
            f"{main.fed_per_sec:.1f} trades/s fed, {main.decisions} of {main.decisions_due} decisions made"
            if main
            else "n/a",
        ),
        ("in-process decision per followed trade, p50 / p99", cell(local, 3)),
        (
            "in-process decision throughput",
            f"{result.inprocess_trades_per_sec:,.0f} trades/s" if result.inprocess_trades_per_sec else "n/a",
        ),
        ("Kafka tax (receive -> order sent / in-process), p50 / p99", tax),
        (
            "knee (receive -> decision p99 <= 250 ms, no backlog)",
            f"{result.knee:g} trades/s" if result.knee else "n/a",
        ),
        (
            "producer parse + publish",
            f"{result.publish_frames_per_sec:,.0f} frames/s" if result.publish_frames_per_sec else "n/a",
        ),
        ("PostgreSQL sink", f"{result.sink_rows_per_sec:,.0f} rows/s" if result.sink_rows_per_sec else "n/a"),
        (
            f"whatif ({result.whatif_trades:,} trades)",
            f"{result.whatif_trades_per_sec:,.0f} trades/s" if result.whatif_trades_per_sec else "n/a",
        ),
        ("load average at start (1, 5, 15 min)", "{:.2f} {:.2f} {:.2f}".format(*result.load_average)),
    ]
    width = max(len(name) for name, _ in rows)
    out("\n== table for the README " + "=" * 52)
    out(f"| {'figure':{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        out(f"| {name:{width}} | {value} |")


def _free_port(preferred: int) -> int:
    """The preferred port if nothing listens on it, else one the OS picks."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed run's TIME_WAIT is not busy
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
