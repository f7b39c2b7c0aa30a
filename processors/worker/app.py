"""The Faust worker: target filter -> per-wallet evaluation (with liquidity gate) -> intents; order lifecycle.

Agents are thin edges: decode (bad input -> dead-letter topic + counter, continue), call one core function,
map the result to messages, send with an explicit key, observe metrics. Faust acks a message whose agent
raised and never redelivers it, so every agent catches per event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal

import faust
from mode import Service
from pydantic import ValidationError

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.market_channel import MarketBookFeed
from processors.core.orders import apply_report
from processors.core.policy import MarketInfo, evaluate_trade
from processors.core.targeting import select_followers
from processors.worker.book_cache import BookCache
from processors.worker.reference import ReferenceView
from processors.worker.state import RECENT_EXPIRY, RECENT_WINDOW, WalletStateStore, WindowedKeys
from schemas.deadletter import build_dead_letter
from schemas.decisions import DecisionAction
from schemas.orders import ExecutionReport
from schemas.topics import (
    DEAD_LETTERS,
    DECISIONS,
    EXECUTION_REPORTS,
    ORDER_EVENTS,
    ORDER_INTENTS,
    RAW_TRADES,
    TARGETED_TRADES,
    TopicSpec,
)
from schemas.trades import RawTrade, TargetedTrade, TradeSource

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def create_app(
    settings: PolycopySettings,
    *,
    reference: ReferenceView,
    books: BookCache,
    metrics: PipelineMetrics,
    book_feed: MarketBookFeed | None = None,
    app_id: str | None = None,
    clock_ms: Callable[[], int] = _now_ms,
) -> faust.App:
    """Build the Faust app. `reference` gives the current wallet configs, markets and followed traders;
    `book_feed` (the market channel behind `books`) runs on the worker's loop, started and stopped with it."""
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

    def topic(spec: TopicSpec) -> faust.TopicT:
        return app.topic(
            settings.topic_name(spec),
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions,
            internal=False,
        )

    raw_trades, targeted, decisions = topic(RAW_TRADES), topic(TARGETED_TRADES), topic(DECISIONS)
    intents, reports, events, dead_letters = (
        topic(ORDER_INTENTS),
        topic(EXECUTION_REPORTS),
        topic(ORDER_EVENTS),
        topic(DEAD_LETTERS),
    )

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

    if book_feed is not None:
        app.service(_book_feed_service(book_feed))

    prefetches: set[asyncio.Future[object]] = set()

    def _forget(task: asyncio.Future[object]) -> None:
        prefetches.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, not counted: the evaluation that needs the book counts its failure

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
        await dead_letters.send(key=stage.encode(), value=letter.to_bytes())

    @app.agent(raw_trades, name="target-filter")
    async def filter_targets(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                trade = RawTrade.model_validate_json(event.value)
            except ValidationError as error:
                metrics.parse_errors.labels("target-filter").inc()
                await dead_letter("target-filter", error, event)
                continue
            try:
                if trade.dedup_key in seen_fills:
                    metrics.duplicates_dropped.labels(trade.source.value).inc()
                    continue
                seen_fills.add(trade.dedup_key)
                metrics.first_seen.labels(trade.source.value).inc()
                if trade.source is TradeSource.POLL:
                    log.info(
                        "the feed missed a fill of %s in tx %s; the safety net found it",
                        trade.proxy_wallet,
                        trade.transaction_hash,
                    )
                followers = select_followers(
                    trade, reference.wallets().values(), reference.followed_traders()
                )
                if followers:
                    # Warm the book cache now, so evaluation (one hop later) does not wait for the venue.
                    prefetches.add(task := asyncio.ensure_future(books.get(trade.asset)))
                    task.add_done_callback(_forget)
                for wallet_id in followers:
                    out = TargetedTrade(wallet_id=wallet_id, trade=trade)
                    await targeted.send(key=wallet_id.encode(), value=out.to_bytes())
                    metrics.targeted.inc()
            except Exception as error:  # noqa: BLE001 - Faust would ack and drop it; keep it instead
                log.exception("target filter failed")
                await dead_letter("target-filter", error, event)

    @app.agent(targeted, name="evaluate")
    async def evaluate(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                item = TargetedTrade.model_validate_json(event.value)
            except ValidationError as error:
                metrics.parse_errors.labels("evaluate").inc()
                await dead_letter("evaluate", error, event)
                continue
            try:
                await _evaluate_one(item)
            except Exception as error:  # noqa: BLE001
                log.exception("evaluation failed")
                await dead_letter("evaluate", error, event)

    async def _evaluate_one(item: TargetedTrade) -> None:
        wallet = reference.wallets().get(item.wallet_id)
        if wallet is None:
            log.info("wallet %s no longer configured; trade ignored", item.wallet_id)
            return
        trade = item.trade
        started = time.perf_counter()
        try:
            book = await books.get(trade.asset)
        except Exception:  # noqa: BLE001 - a venue hiccup is a recorded skip, not a crash
            metrics.book_errors.inc()
            book = None
        metrics.book_fetch.observe(time.perf_counter() - started)
        # Read-modify-write of the wallet state with no await in between: the lifecycle agent shares it.
        key = wallet.id.encode()
        state = store.load_for_trade(wallet.id, wallet.capital_usdc, trade)
        market = MarketInfo.combine(reference.market_for_token(trade.asset), book)
        result = evaluate_trade(
            trade,
            wallet,
            state.ledger,
            market=market,
            book=book,
            trader_stats=reference.trader_stats(trade.proxy_wallet),
            followed=reference.followed_traders(),
            now_ms=clock_ms(),
        )
        store.save_for_trade(wallet.id, state, trade)
        decision = result.decision
        metrics.decisions.labels(decision.action.value, decision.reason).inc()
        await decisions.send(key=key, value=decision.to_bytes())
        if result.intent is not None and decision.action is DecisionAction.COPY:
            metrics.intents.labels(result.intent.side.value).inc()
            await intents.send(key=key, value=result.intent.to_bytes())

    @app.agent(reports, name="order-lifecycle")
    async def track_orders(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                report = ExecutionReport.model_validate_json(event.value)
            except ValidationError as error:
                metrics.parse_errors.labels("order-lifecycle").inc()
                await dead_letter("order-lifecycle", error, event)
                continue
            try:
                key = report.wallet_id.encode()
                wallet = reference.wallets().get(report.wallet_id)
                state = store.load(report.wallet_id, wallet.capital_usdc if wallet else Decimal(0))
                if report.order_id in state.closed:
                    continue
                record, new_events = apply_report(
                    state.ledger, state.orders.get(report.order_id), report, clock_ms()
                )
                state.record_order(record)
                store.save(report.wallet_id, state)
                for order_event in new_events:
                    metrics.order_events.labels(order_event.event_type.value).inc()
                    await events.send(key=key, value=order_event.to_bytes())
            except Exception as error:  # noqa: BLE001
                log.exception("order lifecycle failed")
                await dead_letter("order-lifecycle", error, event)

    return app


def run_app(app: faust.App, log_level: str) -> None:
    """Run the app as a Faust worker in this process until SIGTERM/SIGINT."""
    worker = faust.Worker(
        app, loglevel=log_level.lower().replace("warning", "warn"), quiet=True, redirect_stdouts=False
    )
    worker.execute_from_commandline()


def _book_feed_service(feed: MarketBookFeed) -> type[Service]:
    """A Faust-managed service running the market channel: it starts with the app and closes its socket first
    on shutdown, rather than being cancelled mid-frame."""

    class MarketChannelService(Service):
        _task: asyncio.Task[None] | None = None

        async def on_start(self) -> None:
            self._task = asyncio.ensure_future(feed.run())
            self._task.add_done_callback(_log_failure)

        async def on_stop(self) -> None:
            feed.stop()
            if self._task is not None:
                try:
                    await asyncio.wait_for(self._task, timeout=15)
                except Exception:  # noqa: BLE001 - shutting down: a feed that fails to close is only logged
                    log.exception("market channel did not stop cleanly")

    return MarketChannelService


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("market channel stopped; books now come from GET /book only", exc_info=task.exception())
