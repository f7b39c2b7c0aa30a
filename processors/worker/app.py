"""The Faust worker: target filter (pins a book) -> per-wallet evaluation (with liquidity gate) -> intents;
order lifecycle. Every step is the copy engine's (`processors.core.engine`).

Agents are thin edges: decode (bad input -> dead-letter topic + counter, continue), call one engine
function, map the result to messages, send with an explicit key, observe metrics. Faust acks a message whose
agent raised and never redelivers it, so every agent catches per event (`consume_batch`).

Ack before state: per event, an agent sends its outputs and waits until the broker acknowledged them
(acks=all) before it writes the state that says the event is done (seen fill, decided pair, wallet ledger,
order record). A crash in between makes the re-read event compute and send the same outputs again (their ids
are deterministic; downstream dedups by id), so a saved state always means its outputs are in the log. The
evaluation and lifecycle agents share a wallet's state and now await between reading and writing it: each
wallet's read-modify-write holds that wallet's lock.

Lanes (`processors.worker.lanes`): the evaluation and the lifecycle handle each wallet's events in order
(their message key), and different wallets' events side by side, so one event's wait for its acknowledgement
no longer holds up the next wallet's; the target filter does the same per trader (a fill and its safety-net
copy share the trader's key, so the second still finds the first marked seen). An event stays unacked until
its lane has handled it. Trades of different traders may reach a wallet in another order than they were
read when one waits for a REST book: they had no order of their own (they come from different partitions).
A wallet's events that queued behind its running one are evaluated (or applied) together on one load of its
state, with one wait for the broker and one save (`evaluate_batch`, `track_batch`; ack before state holds
for the batch); a batch that fails is handled again one event at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import faust
from faust.tables import TableManager
from pydantic import ValidationError

from polycopy.infra.kafka.consume import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS
from polycopy.infra.logs import correlation_ids, log_context
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from processors.core import engine
from processors.core.book_log import PINNED_KEEP_MS
from processors.worker.book_cache import BookCache
from processors.worker.consumer import guarded_transport
from processors.worker.lanes import KeyedLanes
from processors.worker.local_state import choose_table_store, drop_local_keys_below
from processors.worker.observability import install_prometheus_sensor, watch_consumer_lag
from processors.worker.outbox import Outbox, Output, TopicOutbox
from processors.worker.outbox import deliver as deliver_outputs
from processors.worker.portfolio import PortfolioAgents, WalletChange, WalletPublisher
from processors.worker.state import (
    RECENT_BUCKET_MS,
    RECENT_BUCKETS_KEPT,
    BucketedKeys,
    PendingKeys,
    WalletStateStore,
)
from schemas.base import Message
from schemas.books import OrderBook
from schemas.deadletter import build_dead_letter
from schemas.decisions import DecisionAction
from schemas.orders import ExecutionReport, OrderEvent
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
RECENT_SWEEP_SECS = 600.0  # how often the recent keys' buckets no longer kept leave the worker's stores
LANES_STOP_SECS = 5.0  # at a stop or a rebalance, how long events in flight may finish before being cancelled
MAX_BATCH = 64  # a wallet's events handled together at most (what queued behind its running batch)
M = TypeVar("M", bound=Message)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PromptTableManager(TableManager):  # type: ignore[misc] - faust is untyped here
    """Faust's table manager without the second it sleeps before starting, which waits for tables defined
    late (the worker defines all of its tables when the app is built: a second of every restart, issue 8);
    and at a stop, it lets the events in the agents' lanes finish before the tables close."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    async def on_stop(self) -> None:
        # A stop (SIGTERM) stops the tables with events still in the agents' lanes (`stream_wait_empty` is
        # off): let them finish first, so that none writes a table whose store has closed.
        for lanes in getattr(self.app, "lanes", ()):
            await lanes.stop(LANES_STOP_SECS)
        await super().on_stop()


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
    tables = choose_table_store(settings, app_id)
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store=tables.url,
        datadir=str(tables.datadir),
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=0,
        stream_wait_empty=False,
        broker_commit_livelock_soft_timeout=60,
        # The changelogs are created before the app starts (runtime.changelog_topics); Faust asking the broker
        # to create each again, twice, one table after another, cost a restarted worker 1-3 s (issue 8).
        topic_allow_declare=False,
        TableManager=PromptTableManager,
        # Back in seconds (issue 8): a dead member's partitions move after the sinks' 10 s session, not
        # Faust's 60 s; with POLYCOPY_INSTANCE_ID the worker is a static member (aiokafka's
        # group_instance_id), and a restarted worker rejoins as itself with no rebalance at all.
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_MS / 1000,
        consumer_group_instance_id=f"{app_id}-{settings.instance_id}" if settings.instance_id else None,
    )
    sources = (RAW_TRADES, TARGETED_TRADES, EXECUTION_REPORTS, RESOLUTIONS, WALLET_RESOLUTIONS)
    source_names = {settings.topic_name(spec) for spec in sources if not spec.compacted}
    app.transport = guarded_transport(source_names)(app.conf.broker_consumer, app)

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
    # The evaluation and lifecycle agents both read-modify-write a wallet's state, with awaits in between.
    wallet_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def deliver(outputs: Sequence[Output]) -> None:
        """Send every output, then wait until the broker has them all (a broker outage is waited out)."""
        await deliver_outputs(out, outputs, on_retry=lambda _: metrics.send_retries.inc())

    async def send_one(spec: TopicSpec, key: str, value: bytes) -> None:
        await deliver([(spec, key, value)])

    def change_outputs(change: WalletChange) -> list[Output]:
        """What a wallet event changed (positions, a snapshot), sent with the event's own outputs."""
        return [(spec, change.wallet_id, message.to_bytes()) for spec, message in change.messages]

    if settings.faust_metrics:  # Faust's sensor runs on every event, send and table write: off unless asked
        install_prometheus_sensor(app, metrics)
    lagging = (RAW_TRADES, TARGETED_TRADES, EXECUTION_REPORTS)
    watch_consumer_lag(app, metrics, app_id, {settings.topic_name(spec) for spec in lagging})

    # Tables: str keys, plain-JSON values (JSON on both sides of the changelog, so recovery decodes them).
    app.table_store = tables  # holds the data directory's lock while the app lives
    # The recent keys' changelogs delete what is older than the buckets kept (the worker's stores: below).
    recent_retention = {
        "cleanup.policy": "compact,delete",
        "retention.ms": RECENT_BUCKET_MS * RECENT_BUCKETS_KEPT,
    }
    recent: list[tuple[faust.Table, BucketedKeys]] = []

    def recent_keys(name: str, partitions: int) -> BucketedKeys:
        table = app.Table(
            name,
            partitions=partitions,
            key_type=str,
            options=tables.table_options(),
            extra_topic_configs=recent_retention,
        )
        recent.append((table, BucketedKeys(table, clock_ms)))
        return recent[-1][1]

    def keyed(name: str) -> faust.Table:
        options = tables.table_options()
        return app.Table(name, partitions=TARGETED_TRADES.partitions, key_type=str, options=options)

    seen_fills = recent_keys("recent-fills", RAW_TRADES.partitions)
    store = WalletStateStore(
        keyed("wallet-state"),
        keyed("leader-positions"),
        recent_keys("recent-decisions", TARGETED_TRADES.partitions),
        keyed("followed-positions"),
        recent_keys("recent-closed-orders", TARGETED_TRADES.partitions),
        keyed("wallet-tokens"),
    )
    app.wallet_store = store  # tests read the wallets' states through it
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
        send=send_one,
        metrics=metrics,
        clock_ms=clock_ms,
        locks=wallet_locks,
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
        await deliver([(DEAD_LETTERS, stage, letter.to_bytes())])

    # The keyed agents' lanes (module docstring) are built with their handlers, below; a rebalance lets their
    # events in flight finish first, so a partition's new owner never races this worker's late writes to the
    # same wallet's state.
    all_lanes: list[KeyedLanes[faust.EventT]] = []
    app.lanes = all_lanes  # tests wait for them to be idle

    @app.on_partitions_revoked.connect  # type: ignore[misc] - faust is untyped here
    async def finish_lanes(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        for lanes in all_lanes:
            await lanes.stop(LANES_STOP_SECS)
        store.forget_kept()

    @app.on_partitions_assigned.connect  # type: ignore[misc] - faust is untyped here
    async def forget_kept_states(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        store.forget_kept()  # the tables are restored from the changelogs next: what they hold wins

    def keyed_lanes(
        model: type[M],
        stage: str,
        handle: Callable[[M], Awaitable[None]],
        handle_batch: Callable[[list[M]], Awaitable[None]] | None = None,
    ) -> KeyedLanes[faust.EventT]:
        """Lanes that handle a stage's events per message key, a batch at a time with `handle_batch`."""

        async def run(events: list[faust.EventT]) -> None:
            await consume_batch(events, model, stage, handle, handle_batch)
            for event in events:  # released here, long after the stream moved on: the last reference acks
                event.message.ack(app.consumer)

        lanes = KeyedLanes(stage, run, max_batch=MAX_BATCH if handle_batch else 1)
        all_lanes.append(lanes)
        return lanes

    async def consume_each(
        stream: faust.StreamT,
        model: type[M],
        stage: str,
        handle: Callable[[M], Awaitable[None]],
        lanes: KeyedLanes[faust.EventT] | None = None,
    ) -> None:
        """Decode each event (bad input: counted and dead-lettered) and handle it; a failure while handling
        is logged and dead-lettered too, and the stream goes on. With `lanes`, events are handled in the lane
        of their message key, and this loop reads on."""
        try:
            async for event in stream.events():
                if event.value is None:
                    continue  # a tombstone on a compacted topic: nothing to handle
                # A stop (SIGTERM, a rebalance) closes the stream while an agent is mid-event, and Faust acks
                # the event as its stream closes (a `finally`): the next commit would skip an event whose
                # outputs may never have been sent. Holding a reference while it is handled keeps such an
                # event unacked, so the next owner reads it again; a finished one is released and acked.
                event.message.incref()
                if lanes is None:
                    await consume_batch([event], model, stage, handle)
                    event.message.decref()
                else:
                    await lanes.submit(event.key or b"", event)
        finally:
            if lanes is not None:
                await lanes.stop(LANES_STOP_SECS)

    async def consume_batch(
        events: list[faust.EventT],
        model: type[M],
        stage: str,
        handle: Callable[[M], Awaitable[None]],
        handle_batch: Callable[[list[M]], Awaitable[None]] | None = None,
    ) -> None:
        """Decode the events and handle them: together with `handle_batch` when more than one decodes, and
        one at a time otherwise, or when the batch failed (it sends nothing before it may no longer fail but
        for its sends, and whatever went out goes out again with the same ids): a bad event alone is then
        dead-lettered."""
        decoded: list[tuple[faust.EventT, M]] = []
        for event in events:
            try:
                decoded.append((event, model.model_validate_json(event.value)))
            except ValidationError as error:
                metrics.parse_errors.labels(stage).inc()
                await dead_letter(stage, error, event)
        if handle_batch is not None and len(decoded) > 1:
            try:
                with log_context(stage=stage):
                    await handle_batch([item for _, item in decoded])
                return
            except Exception:  # noqa: BLE001 - each event is handled alone next, and a bad one dead-lettered
                log.warning(
                    "%s: a batch of %d events failed; handling them one at a time",
                    stage,
                    len(decoded),
                    exc_info=True,
                )
        for event, item in decoded:
            await handle_decoded(event, item, stage, handle)

    async def handle_decoded(
        event: faust.EventT, item: M, stage: str, handle: Callable[[M], Awaitable[None]]
    ) -> None:
        with log_context(stage=stage, **correlation_ids(item)):
            where = event.message
            log.debug("%s: %s[%d]@%d", type(item).__name__, where.topic, where.partition, where.offset)
            try:
                await handle(item)
            except Exception as error:  # noqa: BLE001 - Faust would ack and drop it; keep it instead
                log.exception("%s failed", stage)
                await dead_letter(stage, error, event)

    async def choose_book(token_id: str, outputs: list[Output]) -> OrderBook | None:
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
            outputs.append((BOOKS, token_id, choice.book.to_bytes()))
        return choice.book

    async def target_one(trade: RawTrade) -> None:
        seen = PendingKeys(seen_fills)  # the fill is marked seen only once its fan-out is in the log
        targeting = engine.target(trade, seen, reference)
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
        outputs: list[Output] = []
        if targeting.followers:
            book = await choose_book(trade.asset, outputs)  # once per trade: every follower gates on it
            for wallet_id in targeting.followers:
                item = TargetedTrade(wallet_id=wallet_id, trade=trade, book_id=book.book_id if book else None)
                outputs.append((TARGETED_TRADES, wallet_id, item.to_bytes()))
        await deliver(outputs)
        seen.commit()
        metrics.targeted.inc(len(targeting.followers))

    async def pinned_book(item: TargetedTrade) -> tuple[OrderBook | None, str]:
        """The book the trade was pinned to (waited for while it may still come), or why there is none."""
        if item.book_id is None:
            return None, ""
        # A trade older than the books kept for pinning finds its book at once or never: waiting for it
        # would only slow a backlog down until it spiralled (each such event waited the whole wait).
        age_ms = clock_ms() - item.trade.received_at_ms
        wait_secs = pin_wait_secs if age_ms <= PINNED_KEEP_MS else 0.0
        book = await books.pinned(item.trade.asset, item.book_id, wait_secs)
        metrics.pinned_book_waits.labels("found" if book is not None else "missing").inc()
        if book is None and wait_secs:
            return None, f"pinned book {item.book_id} not received within {pin_wait_secs:g} s"
        if book is None:
            return None, f"pinned book {item.book_id} no longer kept: trade received {age_ms // 1000} s ago"
        return book, ""

    async def evaluate_one(item: TargetedTrade) -> None:
        await evaluate_batch([item])

    async def evaluate_batch(items: list[TargetedTrade]) -> None:
        """Decide one wallet's trades in order on one load of its state, send every output and wait for the
        broker once, then save the state once (ack before state holds for the batch as a whole)."""
        wallet_id = items[0].wallet_id
        if any(item.wallet_id != wallet_id for item in items):
            raise ValueError("a batch holds more than one wallet's trades")  # handled one at a time instead
        wallet = reference.wallets().get(wallet_id)
        if wallet is None:
            log.info("wallet %s no longer configured; %d trades ignored", wallet_id, len(items))
            return
        key, waited = wallet.id, []
        for item in items:
            if store.is_decided(
                key, item.trade
            ):  # a re-delivery: its outputs were in the log before the mark
                metrics.redelivered.labels("evaluate").inc()
            else:
                waited.append((item.trade, await pinned_book(item)))
        if not waited:
            return
        results: list[engine.Evaluation] = []
        async with wallet_locks[key]:
            state, before, trades, outputs = None, None, list[RawTrade](), list[Output]()
            for trade, (book, missing) in waited:
                # Decided while this one waited for its book or the lock, or earlier in this batch.
                if store.is_decided(key, trade) or any(t.dedup_key == trade.dedup_key for t in trades):
                    metrics.redelivered.labels("evaluate").inc()
                    continue
                if state is None:
                    state = store.load_for_trade(key, wallet.capital_usdc, trade)
                    before = publisher.before(key, state)
                else:
                    store.add_trade(key, state, trade)
                result = engine.evaluate(
                    trade, wallet, state, reference, book, clock_ms(), missing_book_detail=missing
                )
                trades.append(trade)
                results.append(result)
                outputs.append((DECISIONS, key, result.decision.to_bytes()))
                if result.intent is not None and result.decision.action is DecisionAction.COPY:
                    outputs.append((ORDER_INTENTS, key, result.intent.to_bytes()))
            if state is None or before is None:
                return
            change = publisher.after(key, state, before, events=len(trades))
            await deliver([*outputs, *change_outputs(change)])
            store.save_for_trades(key, state, trades)
        for trade, result in zip(trades, results, strict=True):
            decision, intent = result.decision, result.intent
            metrics.observe_stage("decision", trade.received_at_ms, decision.decided_at_ms)
            if log.isEnabledFor(logging.DEBUG):
                ids = {**correlation_ids(decision), "intent_id": intent.intent_id if intent else None}
                with log_context(**ids):
                    log.debug("decided %s: %s", decision.action.value, decision.reason)
            metrics.decisions.labels(decision.action.value, decision.reason).inc()
            metrics.wallet_decisions.labels(wallet.id, decision.action.value).inc()
            if intent is not None and decision.action is DecisionAction.COPY:
                metrics.intents.labels(intent.side.value).inc()

    async def track_one(report: ExecutionReport) -> None:
        await track_batch([report])

    async def track_batch(reports: list[ExecutionReport]) -> None:
        """Apply one wallet's reports in order to one load of its state, send their order events and wait
        for the broker once, then save the state once."""
        wallet_id = reports[0].wallet_id
        if any(report.wallet_id != wallet_id for report in reports):
            raise ValueError("a batch holds more than one wallet's reports")  # handled one at a time instead
        wallet = reference.wallets().get(wallet_id)
        new_events: list[OrderEvent] = []
        async with wallet_locks[wallet_id]:
            capital = wallet.capital_usdc if wallet else Decimal(0)
            state = store.load_for_report(wallet_id, capital, reports[0])
            before = publisher.before(wallet_id, state)
            for number, report in enumerate(reports):
                if number:
                    store.add_report(wallet_id, state, report)
                new_events.extend(engine.apply_report(state, report, clock_ms()))
            change = publisher.after(wallet_id, state, before, events=len(reports))
            events = [(ORDER_EVENTS, wallet_id, event.to_bytes()) for event in new_events]
            await deliver([*events, *change_outputs(change)])
            store.save_for_reports(wallet_id, state, reports)
        for order_event in new_events:
            if log.isEnabledFor(logging.DEBUG):
                with log_context(**correlation_ids(order_event)):
                    log.debug("%s: order %s", order_event.event_type.value, order_event.status.value)
            metrics.order_events.labels(order_event.event_type.value).inc()

    async def settle_one(item: WalletResolution) -> None:
        async with wallet_locks[item.wallet_id]:  # settlement shares the wallet's state too
            await portfolio.settle(item)

    target_lanes = keyed_lanes(RawTrade, "target-filter", target_one)
    evaluate_lanes = keyed_lanes(TargetedTrade, "evaluate", evaluate_one, evaluate_batch)
    lifecycle_lanes = keyed_lanes(ExecutionReport, "order-lifecycle", track_one, track_batch)

    @app.agent(topics[RAW_TRADES.name], name="target-filter")
    async def filter_targets(stream: faust.StreamT) -> None:
        await consume_each(stream, RawTrade, "target-filter", target_one, target_lanes)

    @app.agent(topics[TARGETED_TRADES.name], name="evaluate")
    async def evaluate(stream: faust.StreamT) -> None:
        await consume_each(stream, TargetedTrade, "evaluate", evaluate_one, evaluate_lanes)

    @app.agent(topics[EXECUTION_REPORTS.name], name="order-lifecycle")
    async def track_orders(stream: faust.StreamT) -> None:
        await consume_each(stream, ExecutionReport, "order-lifecycle", track_one, lifecycle_lanes)

    @app.agent(topics[RESOLUTIONS.name], name="resolution-fanout")
    async def fan_out_resolutions(stream: faust.StreamT) -> None:
        await consume_each(stream, MarketResolution, "resolution-fanout", portfolio.fan_out)

    @app.agent(topics[WALLET_RESOLUTIONS.name], name="settlement")
    async def settle_resolutions(stream: faust.StreamT) -> None:
        await consume_each(stream, WalletResolution, "settlement", settle_one)

    @app.timer(interval=RECENT_SWEEP_SECS)
    async def drop_old_buckets() -> None:
        for table, keys in recent:
            drop_local_keys_below(table, keys.expired_below())

    @app.timer(interval=settings.wallet_snapshot_interval_secs)
    async def publish_due_snapshots() -> None:
        try:
            await portfolio.publish_due()
        except Exception:  # noqa: BLE001 - a failed round is retried with the next tick
            log.exception("publishing due wallet snapshots failed")

    return app
