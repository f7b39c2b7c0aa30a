"""What the worker's agents tell while they work: one trade followed through the target filter, the
evaluation and the lifecycle by its dedup key in their log lines (with the intent and order ids once known),
the decision stage's latency, a failure logged with the ids of the event that failed, and Faust's own sensor
recording into the worker's registry when asked (it is off by default)."""

from __future__ import annotations

from decimal import Decimal

from faust.sensors.prometheus import PrometheusMonitor

from processors.core.books import stamp_book
from processors.core.engine import StaticReference
from processors.core.ids import build_paper_order_id
from processors.core.paper import execute_on_paper
from schemas.books import BookSource
from schemas.topics import ORDER_INTENTS, TARGETED_TRADES
from schemas.trades import TargetedTrade
from tests.builders import (
    ASSET,
    NOW_MS,
    RECEIVED_AT_MS,
    TRADER,
    WALLET_ID,
    build_book,
    build_trade,
    build_wallet,
)
from tests.log_capture import capture_json_lines

WALLET = build_wallet(targets=(TRADER,), liquidity_min_fill_ratio=Decimal("0.1"))
REFERENCE = StaticReference.build([WALLET])
BOOK = stamp_book(build_book(asks=[("0.50", "100")]), BookSource.CHANNEL, NOW_MS)


async def test_one_trade_is_followed_through_every_agent_by_its_dedup_key(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, BOOK)
    trade = build_trade()

    with capture_json_lines("worker") as lines:
        await worker.put("target-filter", trade)
        [(_, targeted)] = worker.outbox.messages(TARGETED_TRADES)
        await worker.put("evaluate", targeted)
        [(_, intent)] = worker.outbox.messages(ORDER_INTENTS)
        order_id = build_paper_order_id(intent.intent_id)
        reports = execute_on_paper(intent, order_id, sent_at_ms=NOW_MS, reported_at_ms=NOW_MS)
        await worker.put("order-lifecycle", *reports)

    trail = [r for r in lines.records() if r.get("dedup_key") == trade.dedup_key]
    assert {r["component"] for r in trail} == {"worker"}
    by_stage = {stage: [r for r in trail if r["stage"] == stage] for stage in ("target-filter", "evaluate")}
    assert by_stage["target-filter"] and all("intent_id" not in r for r in by_stage["target-filter"])
    [decided] = [r for r in trail if r["message"].startswith("decided")]
    assert decided["message"] == "decided copy: copy"
    assert (decided["stage"], decided["wallet_id"], decided["intent_id"]) == (
        "evaluate",
        WALLET_ID,
        intent.intent_id,
    )
    lifecycle = [r for r in trail if r["stage"] == "order-lifecycle"]
    assert lifecycle and {(r["intent_id"], r["order_id"]) for r in lifecycle} == {
        (intent.intent_id, order_id)
    }
    assert any(r["message"].startswith("OrderFilled") for r in lifecycle)


async def test_the_decision_stage_is_receive_to_decision(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE, clock_ms=lambda: RECEIVED_AT_MS + 35)
    worker.books.books.apply(ASSET, BOOK)
    await worker.put(
        "evaluate", TargetedTrade(wallet_id=WALLET_ID, trade=build_trade(), book_id=BOOK.book_id)
    )

    labels = {"stage": "decision"}
    registry = worker.metrics.registry
    assert registry.get_sample_value("polycopy_stage_latency_seconds_count", labels) == 1
    assert registry.get_sample_value("polycopy_stage_latency_seconds_sum", labels) == 0.035


async def test_a_failing_event_is_logged_with_its_ids(worker_factory) -> None:  # type: ignore[no-untyped-def]
    class BrokenReference(StaticReference):
        def wallets(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("reference data unavailable")

    worker = worker_factory(BrokenReference.build([WALLET]))
    trade = build_trade()
    with capture_json_lines("worker") as lines:
        await worker.put("evaluate", TargetedTrade(wallet_id=WALLET_ID, trade=trade, book_id=None))

    [failed] = [r for r in lines.records() if r["level"] == "ERROR"]
    assert failed["message"] == "evaluate failed" and "reference data unavailable" in failed["exc_info"]
    assert (failed["stage"], failed["dedup_key"], failed["wallet_id"]) == (
        "evaluate",
        trade.dedup_key,
        WALLET_ID,
    )


async def test_fausts_own_sensor_is_off_unless_asked(worker_factory) -> None:  # type: ignore[no-untyped-def]
    """It runs on every event, send and table write (a tenth of the worker's CPU in the bench's profile), and
    no dashboard or alert rule reads it."""
    worker = worker_factory(REFERENCE)
    assert not isinstance(worker.app.monitor, PrometheusMonitor)
    names = {family.name for family in worker.metrics.registry.collect()}
    assert not any(name.startswith("faust_") for name in names) and "polycopy_decisions" in names


async def test_fausts_own_sensor_records_into_the_workers_registry(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE, with_settings={"faust_metrics": True})
    assert isinstance(worker.app.monitor, PrometheusMonitor)
    names = {family.name for family in worker.metrics.registry.collect()}
    assert {"faust_messages_received", "faust_events_runtime_ms", "faust_consumer_commit_latency"} <= names
    assert "polycopy_decisions" in names  # beside our own, on the one /metrics page the worker serves
