"""The Faust worker, the books producer, the executor and the PostgreSQL sink, built from settings."""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polycopy.infra.kafka import (
    MessagePublisher,
    TopicFollower,
    create_named_topics,
    now_ms,
)
from polycopy.infra.logs import build_logging_config
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.wiring.common import build_consume_loop, build_metrics, build_publisher, stop_on_signals
from schemas.orders import ExecutionMode
from schemas.topics import BOOKS, CONTROL
from sinks.base import LoopPolicy

if TYPE_CHECKING:  # imported where built: the worker needs neither psycopg nor the sinks
    from sinks.executor import Executor
    from sinks.postgres_sink import PostgresSink

log = logging.getLogger(__name__)

# The executor commits after every polled batch: its reports are delivered at once, never held for a timer.
EXECUTOR_POLICY = LoopPolicy(batch_size=100, flush_secs=0.0)


# --- the Faust worker and the books producer ----------------------------------------------------------------
@dataclass(frozen=True)
class WorkerParts:
    """The Faust worker as built: the app, the reference data it reads and the follower of the books topic
    that keeps its book cache current (both started by `run_worker`)."""

    app: Any  # a faust.App: only the worker package imports faust
    reference: Any  # processors.worker.reference.LiveReferenceData
    books: TopicFollower


def build_worker(
    settings: PolycopySettings, metrics: PipelineMetrics, *, begin_loading: bool = False
) -> WorkerParts:
    """The Faust app with live reference data, books from the books topic (kept current by `polycopy books`)
    and a REST book fallback whose books it publishes there too; nothing started, unless `begin_loading`:
    then the reference data and the recent books start loading before Faust is even imported."""
    from polycopy.polymarket.http import ClobBookReader
    from processors.core.book_log import PINNED_KEEP_MS
    from processors.worker.book_cache import BookCache, SharedBooks
    from processors.worker.reference import LiveReferenceData

    reference = LiveReferenceData(
        settings,
        on_wallet_change=lambda key, value: logging.getLogger("polycopy.wallets").info(
            "wallet %s %s", key, "removed" if value is None else "updated"
        ),
    )
    metrics.wallets.set_function(lambda: len(reference.wallets()))
    shared = SharedBooks()
    # Far enough back for every state still fresh, and for the pins of trades still waiting for evaluation.
    lookback_ms = max(settings.market_book_max_age_ms, PINNED_KEEP_MS)
    reader = TopicFollower(
        settings,
        BOOKS,
        lambda record: shared.apply_record(record.key, record.value),
        since_ms=now_ms() - lookback_ms,
    )
    if begin_loading:  # a restarted worker is back sooner: they load while Faust is imported (issue 8)
        reference.begin()
        reader.begin()
    from processors.worker.app import create_app

    books = BookCache(
        ClobBookReader(settings.clob_url).fetch_book,
        settings.book_max_age_ms,
        books=shared,
        channel_max_age_ms=settings.market_book_max_age_ms,
        metrics=metrics,
        loaded=lambda: reader.caught_up,
    )
    app = create_app(settings, reference=reference, books=books, metrics=metrics)
    return WorkerParts(app, reference, reader)


def run_worker(settings: PolycopySettings) -> None:
    """`polycopy worker`: load the reference data, then run the Faust app until SIGTERM (the recent books
    load meanwhile)."""
    from processors.worker.runtime import changelog_topics, run_app, use_uvloop

    use_uvloop()
    laps = [time.monotonic()]
    worker = build_worker(settings, build_metrics(settings, "worker"), begin_loading=True)
    laps.append(time.monotonic())
    # Existing changelogs get the layout too (compaction settings added since they were created).
    create_named_topics(settings, changelog_topics(worker.app), wait=True, update_config=True)
    laps.append(time.monotonic())
    worker.reference.wait_caught_up()
    laps.append(time.monotonic())
    # The recent books go on loading while Faust starts and restores its tables: they took 2-4 s of a
    # restart in the chaos runs. The first trades wait for them (`BookCache`), not the start.
    log.info(
        "starting Faust %.1f s after the process started: imports %.1f s, app %.1f s, changelogs %.1f s, "
        "reference data %.1f s",
        process_age_secs(),
        process_age_secs() - (laps[-1] - laps[0]),
        *(later - earlier for earlier, later in itertools.pairwise(laps)),
    )
    run_app(
        worker.app,
        settings.log_level,
        on_stop=worker.books.stop,
        logging_config=build_logging_config(settings, "worker"),
    )


def process_age_secs() -> float:
    """Seconds since this process started (Linux /proc; NaN elsewhere): a restart's whole start-up."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def run_books(settings: PolycopySettings) -> None:
    """`polycopy books`: the deployment's one market-channel connection, publishing every book state of the
    tokens that followed traders trade to the books topic, until SIGTERM/SIGINT."""
    from producers.books import run_books_producer

    publisher = MessagePublisher(settings, client_id="polycopy-books", **{"linger.ms": 0})
    run_books_producer(settings, publisher, build_metrics(settings, "books"))


# --- the sinks ----------------------------------------------------------------------------------------------
def build_executor(settings: PolycopySettings, metrics: PipelineMetrics) -> Executor:
    """The executor: intents -> journal claim -> paper fill on the intent's book levels, or (a live
    deployment) the live order gateway -> reports; resting paper orders fill from the books topic, live
    orders are reconciled with the venue (the followers of the books and control topics are started by
    `run_executor`)."""
    from polycopy.infra.postgres import LiveExecutionJournal
    from sinks.executor import Executor

    publisher = build_publisher(settings, "polycopy-executor")
    loop = build_consume_loop(settings, "executor", publisher, metrics, EXECUTOR_POLICY)
    journal = LiveExecutionJournal(settings.database_url, should_stop=loop.is_stopping)
    live = None
    if settings.execution_mode is ExecutionMode.LIVE:
        from polycopy.wiring.live import build_live_gateway
        from sinks.live_orders import LiveOrders, LivePolicy

        # Breaker changes go out as alerts through the executor's own publisher.
        gateway = build_live_gateway(settings, metrics, publisher)
        policy = LivePolicy(
            max_intent_age_secs=settings.max_intent_age_secs,
            reconcile_secs=settings.live_reconcile_secs,
            lost_watch_secs=settings.live_lost_watch_secs,
        )

        def live(executor: Executor) -> LiveOrders:
            return LiveOrders(gateway, journal, executor, metrics, policy=policy, clock_ms=now_ms)

    return Executor(settings, loop=loop, publisher=publisher, journal=journal, metrics=metrics, live=live)


def start_executor_followers(settings: PolycopySettings, executor: Executor) -> list[Any]:
    """Start what the executor follows beside its intents: the books topic from now on (resting paper
    orders fill on the states published from now), and in a live deployment every kill switch on the
    control topic from the beginning (it is compacted), read up to its end before the first intent, and the
    venue's user channel (its events hurry the reconciliation of the orders they name). Each has `stop()`."""
    topics = [TopicFollower(settings, BOOKS, executor.books.on_record, since_ms=now_ms())]
    if executor.live is not None:
        topics.append(TopicFollower(settings, CONTROL, executor.live.on_control))
    for follower in topics:
        follower.start(wait_secs=120)
    followers: list[Any] = list(topics)
    if executor.live is not None:
        from polycopy.wiring.live import start_user_channel

        channel = start_user_channel(settings, executor.metrics, executor.live.hint)
        if channel is not None:
            followers.append(channel)
    return followers


def run_executor(settings: PolycopySettings) -> None:
    """`polycopy executor`: run until SIGTERM/SIGINT, then deliver and commit the last batch."""
    executor = build_executor(settings, build_metrics(settings, "executor"))
    stop_on_signals(executor.stop)
    followers = start_executor_followers(settings, executor)
    log.info("executor running in %s mode", settings.execution_mode.value)
    try:
        executor.run()
    finally:
        for follower in followers:
            follower.stop()


def build_postgres_sink(settings: PolycopySettings, metrics: PipelineMetrics) -> PostgresSink:
    """The PostgreSQL sink, batching `POLYCOPY_SINK_BATCH_SIZE` rows or `POLYCOPY_SINK_FLUSH_SECS`."""
    from polycopy.infra.postgres import BatchWriter
    from sinks.postgres_sink import PostgresSink

    policy = LoopPolicy(batch_size=settings.sink_batch_size, flush_secs=settings.sink_flush_secs)
    publisher = build_publisher(settings, "polycopy-postgres-sink")
    loop = build_consume_loop(settings, "postgres-sink", publisher, metrics, policy)
    return PostgresSink(
        settings,
        loop=loop,
        writer=BatchWriter(settings.database_url, should_stop=loop.is_stopping),
        metrics=metrics,
    )


def run_sink(settings: PolycopySettings) -> None:
    """`polycopy sink`: run until SIGTERM/SIGINT, then write and commit the last batch."""
    sink = build_postgres_sink(settings, build_metrics(settings, "sink"))
    stop_on_signals(sink.stop)
    sink.run()


# --- the trade producers: RTDS, capture, replay -------------------------------------------------------------
