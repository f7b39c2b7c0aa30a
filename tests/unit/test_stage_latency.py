"""Per-stage latency and the lines each stage logs, with fakes: the producer's feed stage and its line per
trade, the executor's order, ack and signal stages and its lines with the intent's and the order's ids, and
the consume loop's line per record. Every stage series exists at 0 from the start."""

from __future__ import annotations

from polycopy.infra.metrics import LATENCY_STAGES, PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from producers.publisher import TradePublisher
from schemas.orders import ExecutionReport
from schemas.topics import EXECUTION_REPORTS, ORDER_INTENTS
from schemas.trades import TradeSource
from sinks.base import ConsumeLoop, LoopPolicy
from sinks.executor import Executor
from tests.builders import (
    RECEIVED_AT_MS,
    TRADE_TIMESTAMP,
    build_book,
    build_intent_on_book,
    build_trade,
)
from tests.fakes import FakeBroker, FakeJournal, FakePublisher
from tests.log_capture import capture_json_lines


def stage(metrics: PipelineMetrics, name: str) -> tuple[float | None, float | None]:
    """(observations, sum of seconds) of one stage."""
    labels = {"stage": name}
    return (
        metrics.registry.get_sample_value("polycopy_stage_latency_seconds_count", labels),
        metrics.registry.get_sample_value("polycopy_stage_latency_seconds_sum", labels),
    )


def test_every_stage_is_exported_at_zero_before_its_first_observation() -> None:
    metrics = PipelineMetrics()
    assert {name: stage(metrics, name) for name in LATENCY_STAGES} == {
        name: (0.0, 0.0) for name in ("feed", "decision", "order", "ack", "signal")
    }


def test_the_feed_stage_is_venue_time_to_receive_for_socket_trades_only_and_each_trade_logs_its_key() -> None:
    metrics, publisher = PipelineMetrics(), FakePublisher()
    trades = TradePublisher(publisher, metrics)
    socket_trade = build_trade()  # received 2 s after the venue's match
    polled = build_trade(transaction_hash="0x" + "2" * 64, source=TradeSource.POLL)

    with capture_json_lines("producer") as lines:
        trades.publish_trade(socket_trade)
        trades.publish_trade(polled)

    assert RECEIVED_AT_MS - TRADE_TIMESTAMP * 1000 == 2_000
    assert stage(metrics, "feed") == (1.0, 2.0)  # the poller finds trades late by design: not feed latency
    published = lines.with_message("rtds trade published") + lines.with_message("poll trade published")
    assert [(r["stage"], r["dedup_key"], r["component"]) for r in published] == [
        ("publish", socket_trade.dedup_key, "producer"),
        ("publish", polled.dedup_key, "producer"),
    ]


def test_the_executor_observes_order_ack_and_signal_and_logs_with_the_intent_and_order_ids() -> None:
    settings = PolycopySettings(topic_prefix="unit.", metrics_enabled=False)
    broker, publisher, metrics = FakeBroker(), FakePublisher(), PipelineMetrics()
    intent = build_intent_on_book(build_book(asks=[("0.50", "100")]))
    broker.append_message(settings.topic_name(ORDER_INTENTS), intent, key=intent.wallet_id)
    executor = Executor(
        settings,
        loop=ConsumeLoop(broker.consumer("executor"), publisher, metrics, LoopPolicy()),
        publisher=publisher,
        journal=FakeJournal(),
        metrics=metrics,
        clock_ms=lambda: intent.created_at_ms + 40,  # within the executor's intent age limit
    )

    with capture_json_lines("executor") as lines:
        executor.run(max_idle_secs=0)

    [report] = publisher.on(EXECUTION_REPORTS)
    assert isinstance(report, ExecutionReport) and report.dedup_key == intent.dedup_key
    assert stage(metrics, "order") == (1.0, (report.sent_at_ms - intent.created_at_ms) / 1000)
    assert stage(metrics, "signal") == (1.0, (report.sent_at_ms - intent.received_at_ms) / 1000)
    assert stage(metrics, "ack") == (1.0, (report.reported_at_ms - report.sent_at_ms) / 1000)
    assert stage(metrics, "decision") == (0.0, 0.0)  # the worker's stage, not the executor's
    received, filled = lines.with_message("OrderIntent"), lines.with_message("order fill")
    assert [r["stage"] for r in received + filled] == ["executor", "executor"]
    assert received[0]["intent_id"] == filled[0]["intent_id"] == intent.intent_id
    assert received[0]["dedup_key"] == filled[0]["dedup_key"] == intent.dedup_key
    assert filled[0]["order_id"] == report.order_id and "order_id" not in received[0]
