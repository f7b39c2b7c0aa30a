"""The Faust worker: target filter (pins a book) -> per-wallet evaluation (with liquidity gate) -> intents;
order lifecycle. Every step is the copy engine's (`processors.core.engine`).

Agents are thin edges: decode (bad input -> dead-letter topic + counter, continue), call one engine
function, map the result to messages, send with an explicit key, observe metrics. Faust acks a message whose
agent raised and never redelivers it, so every agent catches per event (`consume_each`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import faust
from mode.utils.times import want_seconds
from pydantic import ValidationError

from polycopy.infra.kafka import TopicLayout
from polycopy.infra.logs import bind_log_context, correlation_ids, log_context
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from processors.core import engine
from processors.worker.book_cache import BookCache
from processors.worker.observability import install_prometheus_sensor, watch_consumer_lag
from processors.worker.portfolio import PortfolioAgents, WalletPublisher
from processors.worker.state import RECENT_EXPIRY, RECENT_WINDOW, WalletStateStore, WindowedKeys
from schemas.base import Message
from schemas.books import OrderBook
from schemas.deadletter import build_dead_letter
from schemas.decisions import DecisionAction
from schemas.orders import ExecutionReport
from schemas.portfolio import MarketResolution, WalletResolution
from schemas.topics import (
    BOOKS,
    DEAD_LETTERS,
    DECISIONS,
    EXECUTION_REPORTS,
    ORDER_EVENTS,
    ORDER_INTENTS,
    POSITIONS,
    RAW_TRADES,
    RESOLUTIONS,
    TARGETED_TRADES,
    WALLET_RESOLUTIONS,
    WALLET_SNAPSHOTS,
    TopicSpec,
)
from schemas.trades import RawTrade, TargetedTrade, TradeSource

log = logging.getLogger(__name__)

PIN_WAIT_SECS = 5.0  # how long an evaluation waits for the book its trade was pinned to
M = TypeVar("M", bound=Message)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Outbox(Protocol):
    """Where the agents send their messages: the app's topics, or a recorder in tests."""

    async def send(self, spec: TopicSpec, key: str, value: bytes) -> None: ...


class TopicOutbox:
    """Sends to the app's topics (raw bytes, explicit keys)."""

    def __init__(self, topics: dict[str, faust.TopicT]) -> None:
        self._topics = topics

    async def send(self, spec: TopicSpec, key: str, value: bytes) -> None:
        await self._topics[spec.name].send(key=key.encode(), value=value)


def create_app(
    settings: PolycopySettings,
    *,
    reference: engine.ReferenceView,
    books: BookCache,
    metrics: PipelineMetrics,
    app_id: str | None = None,
    clock_ms: Callable[[], int] = _now_ms,
    outbox: Outbox | None = None,
    pin_wait_secs: float = PIN_WAIT_SECS,
) -> faust.App:
    """Build the Faust app. `reference` gives the current wallet configs, markets and followed traders;
    `books` the books topic's states and the REST fallback; `outbox` (default: the app's topics) takes what
    the agents send."""
    app_id = app_id or settings.consumer_group("processor")
    datadir = settings.data_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=0,
        stream_wait_empty=False,
        broker_commit_livelock_soft_timeout=60,
    )

    topics = {
        spec.name: app.topic(
            settings.topic_name(spec),
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions,
            internal=False,
        )
        for spec in (
            RAW_TRADES,
            TARGETED_TRADES,
            DECISIONS,
            ORDER_INTENTS,
            EXECUTION_REPORTS,
            ORDER_EVENTS,
            BOOKS,
            DEAD_LETTERS,
            RESOLUTIONS,
            WALLET_RESOLUTIONS,
            POSITIONS,
            WALLET_SNAPSHOTS,
        )
    }
    out: Outbox = outbox or TopicOutbox(topics)
    install_prometheus_sensor(app, metrics)
    sources = (RAW_TRADES, TARGETED_TRADES, EXECUTION_REPORTS)
    watch_consumer_lag(app, metrics, app_id, {settings.topic_name(spec) for spec in sources})

    # Tables: str keys, plain-JSON values (JSON on both sides of the changelog, so recovery decodes them).
    def recent_keys(name: str, partitions: int) -> WindowedKeys:
        table = app.Table(name, default=int, partitions=partitions, key_type=str)
        return WindowedKeys(table.tumbling(RECENT_WINDOW, expires=RECENT_EXPIRY).relative_to_stream())

    seen_fills = recent_keys("recent-fills", RAW_TRADES.partitions)
    store = WalletStateStore(
        app.Table("wallet-state", partitions=TARGETED_TRADES.partitions, key_type=str),
        app.Table("leader-positions", partitions=TARGETED_TRADES.partitions, key_type=str),
        recent_keys("recent-decisions", TARGETED_TRADES.partitions),
    )
    publisher = WalletPublisher(
        metrics,
        lambda wallet_id: wallet.mode.value if (wallet := reference.wallets().get(wallet_id)) else "paper",
        interval_secs=settings.wallet_snapshot_interval_secs,
        clock_ms=clock_ms,
    )
    portfolio = PortfolioAgents(
        reference=reference,
        store=store,
        publisher=publisher,
        send=out.send,
        metrics=metrics,
        clock_ms=clock_ms,
    )

    async def dead_letter(stage: str, error: Exception, event: faust.EventT) -> None:
        metrics.dead_letters.labels(stage).inc()
        message = event.message
        letter = build_dead_letter(
            stage,
            str(error),
            event.value,
            error_type=type(error).__name__,
            occurred_at_ms=clock_ms(),
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )
        await out.send(DEAD_LETTERS, stage, letter.to_bytes())

    async def consume_each(
        stream: faust.StreamT, model: type[M], stage: str, handle: Callable[[M], Awaitable[None]]
    ) -> None:
        """Decode each event (bad input: counted and dead-lettered) and handle it; a failure while handling
        is logged and dead-lettered too, and the stream goes on."""
        async for event in stream.events():
            if event.value is None:
                continue  # a tombstone on a compacted topic: nothing to handle
            try:
                item = model.model_validate_json(event.value)
            except ValidationError as error:
                metrics.parse_errors.labels(stage).inc()
                await dead_letter(stage, error, event)
                continue
            with log_context(stage=stage, **correlation_ids(item)):
                where = event.message
                log.debug("%s: %s[%d]@%d", model.__name__, where.topic, where.partition, where.offset)
                try:
                    await handle(item)
                except Exception as error:  # noqa: BLE001 - Faust would ack and drop it; keep it instead
                    log.exception("%s failed", stage)
                    await dead_letter(stage, error, event)

    async def choose_book(token_id: str) -> OrderBook | None:
        started = time.perf_counter()
        try:
            choice = await books.choose(token_id)
        except Exception:  # noqa: BLE001 - a venue hiccup is a recorded skip, not a crash
            metrics.book_errors.inc()
            return None
        finally:
            metrics.book_fetch.observe(time.perf_counter() - started)
        if choice.fetched and choice.book is not None:
            # Every book a gate sees is in the log: other workers find the pin, and replays rebuild it.
            metrics.books_published.labels("rest").inc()
            await out.send(BOOKS, token_id, choice.book.to_bytes())
        return choice.book

    async def target_one(trade: RawTrade) -> None:
        targeting = engine.target(trade, seen_fills, reference)
        if not targeting.first_seen:
            metrics.duplicates_dropped.labels(trade.source.value).inc()
            return
        metrics.first_seen.labels(trade.source.value).inc()
        if trade.source is TradeSource.POLL:
            log.info(
                "the feed missed a fill of %s in tx %s; the safety net found it",
                trade.proxy_wallet,
                trade.transaction_hash,
            )
        if not targeting.followers:
            return
        book = await choose_book(trade.asset)  # once per trade: every follower gates on this state
        for wallet_id in targeting.followers:
            item = TargetedTrade(wallet_id=wallet_id, trade=trade, book_id=book.book_id if book else None)
            await out.send(TARGETED_TRADES, wallet_id, item.to_bytes())
            metrics.targeted.inc()

    async def evaluate_one(item: TargetedTrade) -> None:
        wallet = reference.wallets().get(item.wallet_id)
        if wallet is None:
            log.info("wallet %s no longer configured; trade ignored", item.wallet_id)
            return
        trade, book, missing = item.trade, None, ""
        if item.book_id is not None:
            book = await books.pinned(trade.asset, item.book_id, pin_wait_secs)
            metrics.pinned_book_waits.labels("found" if book is not None else "missing").inc()
            if book is None:
                missing = f"pinned book {item.book_id} not received within {pin_wait_secs:g} s"
        # Read-modify-write of the wallet state with no await in between: the lifecycle agent shares it.
        key = wallet.id
        state = store.load_for_trade(wallet.id, wallet.capital_usdc, trade)
        before = publisher.before(wallet.id, state)
        result = engine.evaluate(
            trade, wallet, state, reference, book, clock_ms(), missing_book_detail=missing
        )
        change = publisher.after(wallet.id, state, before)
        store.save_for_trade(wallet.id, state, trade)
        decision = result.decision
        metrics.observe_stage("decision", trade.received_at_ms, decision.decided_at_ms)
        bind_log_context(intent_id=result.intent.intent_id if result.intent else None)
        log.debug("decided %s: %s", decision.action.value, decision.reason)
        metrics.decisions.labels(decision.action.value, decision.reason).inc()
        metrics.wallet_decisions.labels(wallet.id, decision.action.value).inc()
        await out.send(DECISIONS, key, decision.to_bytes())
        if result.intent is not None and decision.action is DecisionAction.COPY:
            metrics.intents.labels(result.intent.side.value).inc()
            await out.send(ORDER_INTENTS, key, result.intent.to_bytes())
        await portfolio.send(change)

    async def track_one(report: ExecutionReport) -> None:
        wallet = reference.wallets().get(report.wallet_id)
        state = store.load(report.wallet_id, wallet.capital_usdc if wallet else Decimal(0))
        before = publisher.before(report.wallet_id, state)
        new_events = engine.apply_report(state, report, clock_ms())
        change = publisher.after(report.wallet_id, state, before)
        store.save(report.wallet_id, state)
        for order_event in new_events:
            log.debug("%s: order %s", order_event.event_type.value, order_event.status.value)
            metrics.order_events.labels(order_event.event_type.value).inc()
            await out.send(ORDER_EVENTS, report.wallet_id, order_event.to_bytes())
        await portfolio.send(change)

    @app.agent(topics[RAW_TRADES.name], name="target-filter")
    async def filter_targets(stream: faust.StreamT) -> None:
        await consume_each(stream, RawTrade, "target-filter", target_one)

    @app.agent(topics[TARGETED_TRADES.name], name="evaluate")
    async def evaluate(stream: faust.StreamT) -> None:
        await consume_each(stream, TargetedTrade, "evaluate", evaluate_one)

    @app.agent(topics[EXECUTION_REPORTS.name], name="order-lifecycle")
    async def track_orders(stream: faust.StreamT) -> None:
        await consume_each(stream, ExecutionReport, "order-lifecycle", track_one)

    @app.agent(topics[RESOLUTIONS.name], name="resolution-fanout")
    async def fan_out_resolutions(stream: faust.StreamT) -> None:
        await consume_each(stream, MarketResolution, "resolution-fanout", portfolio.fan_out)

    @app.agent(topics[WALLET_RESOLUTIONS.name], name="settlement")
    async def settle_resolutions(stream: faust.StreamT) -> None:
        await consume_each(stream, WalletResolution, "settlement", portfolio.settle)

    @app.timer(interval=settings.wallet_snapshot_interval_secs)
    async def publish_due_snapshots() -> None:
        try:
            await portfolio.publish_due()
        except Exception:  # noqa: BLE001 - a failed round is retried with the next tick
            log.exception("publishing due wallet snapshots failed")

    return app


def changelog_topics(app: faust.App) -> list[TopicLayout]:
    """The changelog topic of every table, laid out as Faust declares it (partitions, cleanup, retention).

    Created before the app starts (`create_named_topics(..., wait=True)`), so Faust finds them served: created
    by Faust itself, a changelog can be missing from the metadata it reads next, and a table whose changelog
    has "0 partitions" fails every write it makes from then on.
    """
    layouts = []
    for table in app.tables.values():
        topic = table.changelog_topic
        policy = [flag for flag, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
        config = {"cleanup.policy": ",".join(policy)} if policy else {}
        if topic.retention:
            config["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        layouts.append(TopicLayout(topic.get_topic_name(), table.partitions or topic.partitions, config))
    return layouts


def run_app(
    app: faust.App,
    log_level: str,
    on_stop: Callable[[], None] | None = None,
    logging_config: dict[str, Any] | None = None,
) -> None:
    """Run the app as a Faust worker in this process until SIGTERM/SIGINT. Faust sets logging up again as
    it starts: `logging_config` (a dictConfig, `polycopy.infra.logs.build_logging_config`) keeps ours."""
    worker = faust.Worker(
        app,
        loglevel=log_level.lower().replace("warning", "warn"),
        quiet=True,
        redirect_stdouts=False,
        logging_config=logging_config,
    )
    try:
        worker.execute_from_commandline()
    finally:
        if on_stop is not None:
            on_stop()
