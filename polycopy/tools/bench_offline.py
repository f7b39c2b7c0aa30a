"""The bench's offline parts over a synthesised log: raw trades (and channel books) made by the simulator and
published to their own topics, then `polycopy whatif` over them (trades/s) and the PostgreSQL sink writing
them (rows/s)."""

from __future__ import annotations

import os
import resource
import sys
import time

from polycopy.infra.kafka import MessagePublisher, create_topics
from polycopy.infra.postgres import query
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.books import parse_book
from polycopy.simulator.market import MarketSimulator
from polycopy.tools.bench_figures import BenchOptions, BenchResult, Out, ratio
from polycopy.tools.demo import Processes
from polycopy.tools.progress import ProgressBar
from polycopy.tools.whatif import run_whatif
from processors.core.books import stamp_book
from producers.parsing import parse_rtds_frame
from producers.replay import wrap_as_rtds_frame
from schemas.books import BookSource
from schemas.topics import ALL_TOPICS, BOOKS, RAW_TRADES
from schemas.trades import TradeSource
from schemas.wallets import WalletConfig

SYNTH_TRADES_PER_SEC = 1000  # the synthesised log's pace (receive times), the knee target's rate
CHUNK = 100  # trades per synthesised 100 ms
BOOK_EVERY_MS = 20_000  # every token's book on the log this often (the channel's books count for 30 s)
SINK_WAIT_SECS = 600.0


def synthesise_log(
    settings: PolycopySettings, options: BenchOptions, count: int, out: Out, *, with_books: bool = True
) -> tuple[int, int]:
    """Publish `count` raw trades (parsed from simulator frames, as the RTDS producer would) at
    SYNTH_TRADES_PER_SEC of receive time ending now, with every token's book every BOOK_EVERY_MS. Returns the
    first receive time and the number of books."""
    create_topics(settings, ALL_TOPICS)
    simulator = MarketSimulator(options.seed, wallet_count=options.simulator_wallets)
    publisher = MessagePublisher(settings, client_id="polycopy-bench-synth", **{"linger.ms": 50})
    start_ms = time.time_ns() // 1_000_000 - count * 1000 // SYNTH_TRADES_PER_SEC - 60_000
    now_ms, made, books, next_books_ms = start_ms, 0, 0, start_ms
    bar = ProgressBar(count, unit="trades synthesised")
    while made < count:
        if with_books and now_ms >= next_books_ms:
            books += _publish_books(publisher, simulator, now_ms)
            next_books_ms = now_ms + BOOK_EVERY_MS
        fills = simulator.next_trades(min(CHUNK, count - made), now_ms)
        for number, fill in enumerate(fills):
            received = now_ms + number * 1000 // SYNTH_TRADES_PER_SEC
            frame = wrap_as_rtds_frame(fill.payload, fill.feed_types[0])
            for trade in parse_rtds_frame(frame, received, TradeSource.REPLAY).trades:
                publisher.publish(RAW_TRADES, trade.proxy_wallet, trade, timestamp_ms=received)
        made += len(fills)
        now_ms += CHUNK * 1000 // SYNTH_TRADES_PER_SEC
        bar.update(made)
    bar.close()
    if publisher.flush(120):
        raise RuntimeError("the synthesised log was not delivered")
    out(f"  {made:,} raw trades and {books:,} books published to {settings.topic_name(RAW_TRADES)} / books")
    return start_ms, books


def _publish_books(publisher: MessagePublisher, simulator: MarketSimulator, at_ms: int) -> int:
    published = 0
    for market in simulator.markets:
        for token in market.token_ids:
            payload = simulator.book(token)
            if payload is None:
                continue
            book = stamp_book(parse_book(payload), BookSource.CHANNEL, at_ms)
            publisher.publish(BOOKS, token, book, timestamp_ms=at_ms)
            published += 1
    return published


def run_whatif_bench(
    settings: PolycopySettings,
    options: BenchOptions,
    wallets: list[WalletConfig],
    result: BenchResult,
    out: Out,
) -> None:
    out(f"\n== 6. whatif over {options.whatif_trades:,} synthesised raw trades " + "=" * 30)
    log = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}whatif."})
    start_ms, _ = synthesise_log(log, options, options.whatif_trades, out)
    lines: list[str] = []
    started, cpu_before = time.monotonic(), _cpu_secs()
    whatif = run_whatif(
        log,
        wallets,
        from_ms=start_ms,
        sandbox="bench",
        out=lines.append,
        progress=sys.stderr,
        keep_decisions=False,
        workers=options.whatif_workers,
    )
    elapsed, cpu = time.monotonic() - started, _cpu_secs() - cpu_before
    result.whatif_trades, result.whatif_trades_per_sec = whatif.trades, ratio(whatif.trades, elapsed)
    for line in lines[:4]:
        out("  " + line.strip())
    considered = sum(report.considered for report in whatif.reports)
    out(
        f"  whatif: {whatif.trades:,} trades ({considered:,} decisions) in {elapsed:.1f} s = "
        f"{result.whatif_trades_per_sec:,.0f} trades/s with {options.whatif_workers} worker processes; "
        f"1 M trades would take {ratio(1_000_000, result.whatif_trades_per_sec) / 60:.1f} min "
        "(target <= 5 min)"
    )
    out(
        f"  CPU time {cpu:.1f} s (this process and its workers: {ratio(whatif.trades, cpu):,.0f} trades per "
        f"CPU second); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


def _cpu_secs() -> float:
    """CPU seconds of this process and of its children that ended (whatif's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_sink_bench(settings: PolycopySettings, options: BenchOptions, result: BenchResult, out: Out) -> None:
    out(f"\n== 5. PostgreSQL sink over {options.sink_rows:,} synthesised raw trades " + "=" * 24)
    log = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}sink."})
    synthesise_log(log, options, options.sink_rows, out, with_books=False)
    processes = Processes(settings.data_dir / "logs")
    started = time.monotonic()
    processes.start("sink", "-m", "polycopy.cli", "sink", env=log.to_env())
    first_at: float | None = None
    rows = first_rows = 0
    bar = ProgressBar(options.sink_rows, unit="rows")
    try:
        while rows < options.sink_rows and time.monotonic() - started < SINK_WAIT_SECS:
            time.sleep(0.5)
            processes.check()
            rows = int(query(log.database_url, "SELECT count(*) FROM trades")[0][0])
            if rows and first_at is None:
                first_at, first_rows = time.monotonic(), rows
            bar.update(rows)
        bar.close()
    finally:
        processes.stop_all()
    if first_at is None or rows <= first_rows:
        out(f"  the sink wrote {rows} rows in {SINK_WAIT_SECS:.0f} s: no rate measured")
        return
    result.sink_rows_per_sec = ratio(rows - first_rows, time.monotonic() - first_at)
    out(
        f"  {rows:,} trade rows written; {result.sink_rows_per_sec:,.0f} rows/s from the first row on "
        f"({time.monotonic() - started:.1f} s including start-up; target >= 20,000 rows/s)"
    )
