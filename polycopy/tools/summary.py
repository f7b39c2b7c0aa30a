"""The end-of-run summary: what the pipeline saw, decided and did, computed from the topics' messages."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from schemas.decisions import Decision
from schemas.orders import OrderEvent, OrderEventType
from schemas.trades import RawTrade, TradeSource


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    # ceil(fraction * n) - 1, in decimal: as floats 0.07 * 100 is 7.000000000000001, one rank too high
    rank = max(math.ceil(Decimal(str(fraction)) * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


@dataclass
class RunSummary:
    """Counts per stage; latency is trade received -> order sent, for live-received trades."""

    trades_seen: int = 0
    duplicate_trades: int = 0
    targeted_trades: int = 0
    decisions_by_reason: Counter[str] = field(default_factory=Counter)
    orders_by_status: Counter[str] = field(default_factory=Counter)
    filled_usdc: Decimal = Decimal(0)
    latencies_ms: list[float] = field(default_factory=list)
    dead_letters: int = 0

    @property
    def decisions(self) -> int:
        return sum(self.decisions_by_reason.values())

    @property
    def orders(self) -> int:
        return sum(self.orders_by_status.values())

    @classmethod
    def build(
        cls,
        trades: Iterable[RawTrade],
        decisions: Iterable[Decision],
        events: Iterable[OrderEvent],
        dead_letters: int = 0,
    ) -> RunSummary:
        summary = cls(dead_letters=dead_letters)
        seen: set[str] = set()
        for trade in trades:
            if trade.dedup_key in seen:
                summary.duplicate_trades += 1
                continue
            seen.add(trade.dedup_key)
            summary.trades_seen += 1
        decided: dict[str, Decision] = {}
        for decision in decisions:
            decided.setdefault(decision.decision_id, decision)
        summary.targeted_trades = len({d.dedup_key for d in decided.values()})
        summary.decisions_by_reason.update(d.reason for d in decided.values())
        latest: dict[str, OrderEvent] = {}
        event_ids: set[str] = set()
        for event in events:
            if event.event_id in event_ids:
                continue  # re-delivered (at-least-once): count each event once
            event_ids.add(event.event_id)
            if event.order_id not in latest or latest[event.order_id].sequence < event.sequence:
                latest[event.order_id] = event
            if event.event_type is OrderEventType.ORDER_PLACED and event.received_at_ms > 0:
                summary.latencies_ms.append(float(event.sent_at_ms - event.received_at_ms))
        summary.orders_by_status.update(event.status.value for event in latest.values())
        summary.filled_usdc = sum(
            (e.matched_size * (e.average_price or e.limit_price) for e in latest.values()), Decimal(0)
        )
        return summary

    def render(self, replayed: bool = False) -> str:
        lines = [
            f"trades seen              {self.trades_seen}"
            + (f"  (+{self.duplicate_trades} duplicates dropped)" if self.duplicate_trades else ""),
            f"trades from targets      {self.targeted_trades}",
            f"decisions                {self.decisions}",
        ]
        lines += [f"  {reason:<23}{count}" for reason, count in self.decisions_by_reason.most_common()]
        lines.append(f"orders                   {self.orders}  (filled {self.filled_usdc:.2f} USDC)")
        lines += [f"  {status:<23}{count}" for status, count in self.orders_by_status.most_common()]
        if replayed:
            lines.append("signal -> order latency  n/a (replayed trades keep their recorded receive times)")
        else:
            p50, p99 = percentile(self.latencies_ms, 0.5), percentile(self.latencies_ms, 0.99)
            lines.append(
                "signal -> order latency  "
                + (
                    f"p50 {p50:.0f} ms, p99 {p99:.0f} ms over {len(self.latencies_ms)} orders"
                    if p50 is not None and p99 is not None
                    else "no orders placed"
                )
            )
        lines.append(f"dead letters             {self.dead_letters}")
        return "\n".join(lines)


def is_replayed(trades: Iterable[RawTrade]) -> bool:
    return any(trade.source is TradeSource.REPLAY for trade in trades)
