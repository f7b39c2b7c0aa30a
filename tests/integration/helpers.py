"""Helpers for integration tests: publish messages, wait for conditions, count rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from polycopy.kafka import MessagePublisher, read_topic
from polycopy.postgres import query
from polycopy.settings import PolycopySettings
from schemas.base import Message
from schemas.topics import TopicSpec

T = TypeVar("T", bound=Message)


def publish(settings: PolycopySettings, spec: TopicSpec, items: list[tuple[str, Message]]) -> None:
    publisher = MessagePublisher(settings, client_id="test")
    for key, message in items:
        publisher.publish(spec, key, message)
    assert publisher.flush(30) == 0 and publisher.delivery_failures == 0


def read_all(settings: PolycopySettings, spec: TopicSpec, model: type[T]) -> list[T]:
    return [model.model_validate_json(r.value) for r in read_topic(settings, spec, idle_secs=3) if r.value]


def wait_until(condition: Callable[[], bool], timeout_secs: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_secs} s waiting for {what}")


def count_rows(settings: PolycopySettings, table: str, where: str = "TRUE") -> int:
    return int(query(settings.database_url, f"SELECT count(*) FROM {table} WHERE {where}")[0][0])


# --- message builders used until the shared tests/builders.py lands (then merged there) -------------------
from decimal import Decimal  # noqa: E402

from processors.core.ids import build_dedup_key, build_event_id, build_intent_id  # noqa: E402
from schemas.decisions import Decision, DecisionAction  # noqa: E402
from schemas.orders import ExecutionMode, OrderEvent, OrderEventType, OrderIntent, OrderStatus  # noqa: E402
from schemas.trades import RawTrade, TradeSource  # noqa: E402

LEADER = "0x" + "ab" * 20
ASSET = "7" * 76
CONDITION = "0x" + "cd" * 32


def build_trade(**overrides: object) -> RawTrade:
    values: dict[str, object] = {
        "source": TradeSource.RTDS, "feed_type": "trades", "received_at_ms": 1_790_000_000_500,
        "proxy_wallet": LEADER, "side": "BUY", "asset": ASSET, "condition_id": CONDITION, "size": Decimal("100"),
        "price": Decimal("0.50"), "timestamp": 1_790_000_000, "transaction_hash": "0x" + "11" * 32,
    } | overrides
    values.setdefault("dedup_key", build_dedup_key(
        transaction_hash=str(values["transaction_hash"]), asset=str(values["asset"]), side=str(values["side"]),
        price=values["price"], size=values["size"], proxy_wallet=str(values["proxy_wallet"])))  # type: ignore[arg-type]
    return RawTrade(**values)  # type: ignore[arg-type]


def build_decision(**overrides: object) -> Decision:
    trade = build_trade()
    values: dict[str, object] = {
        "decision_id": build_intent_id("w1", trade.dedup_key), "wallet_id": "w1", "dedup_key": trade.dedup_key,
        "trader": trade.proxy_wallet, "asset": trade.asset, "condition_id": trade.condition_id, "side": trade.side,
        "leader_price": trade.price, "leader_size": trade.size, "action": DecisionAction.COPY, "reason": "copy",
        "size": Decimal("10"), "limit_price": Decimal("0.52"), "received_at_ms": trade.received_at_ms,
        "decided_at_ms": trade.received_at_ms + 5,
    } | overrides
    return Decision(**values)  # type: ignore[arg-type]


def build_intent(**overrides: object) -> OrderIntent:
    trade = build_trade()
    values: dict[str, object] = {
        "intent_id": build_intent_id("w1", trade.dedup_key), "wallet_id": "w1", "dedup_key": trade.dedup_key,
        "asset": trade.asset, "condition_id": trade.condition_id, "side": trade.side, "size": Decimal("10"),
        "limit_price": Decimal("0.52"), "tick_size": Decimal("0.01"), "received_at_ms": trade.received_at_ms,
        "created_at_ms": trade.received_at_ms + 5,
    } | overrides
    return OrderIntent(**values)  # type: ignore[arg-type]


def build_order_event(sequence: int = 1, status: OrderStatus = OrderStatus.PLACED, **overrides: object) -> OrderEvent:
    intent = build_intent()
    event_type = {OrderStatus.PLACED: OrderEventType.ORDER_PLACED, OrderStatus.FILLED: OrderEventType.ORDER_FILLED,
                  OrderStatus.CANCELLED: OrderEventType.ORDER_CANCELLED}[status]
    values: dict[str, object] = {
        "event_id": build_event_id("paper-1", sequence), "event_type": event_type, "sequence": sequence,
        "order_id": "paper-1", "intent_id": intent.intent_id, "wallet_id": "w1", "mode": ExecutionMode.PAPER,
        "status": status, "side": intent.side, "asset": intent.asset, "size": intent.size,
        "limit_price": intent.limit_price, "matched_size": Decimal("0"), "received_at_ms": intent.received_at_ms,
        "sent_at_ms": intent.received_at_ms + 20, "occurred_at_ms": intent.received_at_ms + 25,
    } | overrides
    return OrderEvent(**values)  # type: ignore[arg-type]


class WorkerProcess:
    """`polycopy worker` as a user starts it, with the test's settings, stopped at exit."""

    def __init__(self, settings: PolycopySettings, log_path: "Path") -> None:
        self.settings, self.log_path = settings, log_path

    def __enter__(self) -> "WorkerProcess":
        import os
        import subprocess
        import sys

        from polycopy.kafka import wait_for_consumer_group

        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "polycopy.cli", "worker"], stdout=self._log,
                                        stderr=subprocess.STDOUT, env=os.environ | self.settings.to_env())
        group = self.settings.consumer_group("processor")
        for _ in range(90):
            if self.process.poll() is not None or wait_for_consumer_group(self.settings, group, 1):
                break
        if self.process.poll() is not None or not wait_for_consumer_group(self.settings, group, 1):
            self.__exit__()
            raise AssertionError(f"worker did not start:\n{self.log_path.read_text()[-3000:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except Exception:  # noqa: BLE001
            self.process.kill()
        self._log.close()


from pathlib import Path  # noqa: E402
