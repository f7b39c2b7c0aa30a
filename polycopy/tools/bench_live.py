"""`make bench`, live orders: build + sign per order, and intent -> POST sent through the real executor in a
live deployment against the fake CLOB (real signatures and L2 headers, the real broker and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from polycopy.infra.kafka import MessagePublisher, now_ms, read_topic
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.simulator.market import MarketSimulator
from polycopy.simulator.server import SimulatorServer
from polycopy.tools.bench_figures import LatencyStats, format_ms
from polycopy.tools.signing_bench import measure_signing
from polycopy.wiring.pipeline import build_executor
from processors.core.ids import build_intent_id
from schemas.base import Side
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, OrderType
from schemas.topics import EXECUTION_REPORTS, ORDER_INTENTS

Out = Callable[[str], None]


@dataclass
class LiveBenchFigures:
    """What the live part of the bench measured (milliseconds)."""

    sign_p50_ms: float = 0.0
    sign_p99_ms: float = 0.0
    intent_to_post: LatencyStats | None = None
    post_to_answer: LatencyStats | None = None
    orders_at_venue: int = 0


class _FakeVenue:
    """The simulator's fake CLOB on a free port, on an event loop of its own."""

    def __init__(self, seed: int) -> None:
        self.simulator = MarketSimulator(seed)
        self.server = SimulatorServer(self.simulator, rtds_port=0, clob_port=0, auto_trades=False)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def __enter__(self) -> _FakeVenue:
        self._thread.start()
        self._call(self.server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self.server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def _intent(venue: _FakeVenue, number: int, run: str) -> OrderIntent:
    """A live GTC BUY five ticks under the best bid (it rests: each intent is one POST and one order)."""
    market = venue.simulator.markets[number % len(venue.simulator.markets)]
    token = market.token_ids[0]
    bids, _ = venue.simulator.book_levels(token)
    tick = market.tick_size
    price = min(max(max(bids) - 5 * tick, tick), 1 - tick)
    now = now_ms()
    dedup_key = f"bench-live-{run}-{number}"
    return OrderIntent(
        intent_id=build_intent_id("bench-live", dedup_key),
        wallet_id="bench-live",
        mode=ExecutionMode.LIVE,
        dedup_key=dedup_key,
        asset=token,
        condition_id=market.condition_id,
        side=Side.BUY,
        size=Decimal("5"),
        limit_price=price,
        order_type=OrderType.GTC,
        tick_size=tick,
        neg_risk=market.neg_risk,
        received_at_ms=now,
        created_at_ms=now,
    )


def run_live(
    bench: PolycopySettings, seed: int, out: Out, *, orders: int = 100, rate: float = 20.0
) -> LiveBenchFigures:
    """Sign `orders` orders, then send as many live intents at `rate` per second through the executor."""
    figures = LiveBenchFigures()
    out("\n== live orders: build + sign, intent -> POST sent (fake CLOB) " + "=" * 13)
    fast = measure_signing(500)[0]
    figures.sign_p50_ms, figures.sign_p99_ms = fast.p50_ms, fast.p99_ms
    out(f"  build + sign (coincurve)  p50 {fast.p50_ms:.2f} ms, p99 {fast.p99_ms:.2f} ms (n={fast.orders})")
    with _FakeVenue(seed) as venue:
        live = bench.model_copy(
            update={
                "execution_mode": ExecutionMode.LIVE,
                # A throwaway key for this run only: never printed.
                "private_key": SecretStr("0x" + secrets.token_hex(32)),
                "clob_url": venue.server.clob_url,
                "consumer_group_prefix": bench.consumer_group_prefix + "-live",
            }
        )
        # The executor logs every order it places and reconciles: the bench prints figures, not 100 lines.
        quieted = logging.getLogger("sinks")
        level = quieted.level
        quieted.setLevel(logging.WARNING)
        executor = build_executor(live, PipelineMetrics())
        thread = threading.Thread(target=executor.run, daemon=True)
        thread.start()
        publisher = MessagePublisher(live, client_id="polycopy-bench-live", **{"linger.ms": 0})
        run = str(time.time_ns())
        intents = []
        try:
            # One intent first, not measured: the figures start once the executor has its partitions (it
            # joins its group as the bench starts; the first intents otherwise waited for that, ~1 s p50).
            warm_up = _intent(venue, orders, f"{run}-warm-up")
            publisher.publish(ORDER_INTENTS, warm_up.wallet_id, warm_up)
            publisher.flush(10)
            _first_reports(live, {warm_up.intent_id})
            for number in range(orders):
                intent = _intent(venue, number, run)
                intents.append(intent)
                publisher.publish(ORDER_INTENTS, intent.wallet_id, intent)
                publisher.flush(10)
                time.sleep(1 / rate)
            first = _first_reports(live, {intent.intent_id for intent in intents})
        finally:
            executor.stop()
            thread.join(timeout=60)
            quieted.setLevel(level)
        created = {intent.intent_id: intent.created_at_ms for intent in intents}
        reports = list(first.values())
        figures.intent_to_post = LatencyStats.of(
            [float(r.sent_at_ms - created[r.intent_id]) for r in reports]
        )
        figures.post_to_answer = LatencyStats.of([float(r.reported_at_ms - r.sent_at_ms) for r in reports])
        figures.orders_at_venue = len(venue.server.clob_orders.exchange.orders) - 1  # not the warm-up's
    out(f"  intent -> POST sent       {format_ms(figures.intent_to_post)}")
    out(f"  POST -> venue's answer    {format_ms(figures.post_to_answer)}")
    out(f"  {len(reports)} of {orders} intents answered; {figures.orders_at_venue} orders at the fake venue")
    return figures


def _first_reports(
    settings: PolycopySettings, wanted: set[str], timeout_secs: float = 60
) -> dict[str, ExecutionReport]:
    """The first execution report of each wanted intent, read back until all came or `timeout_secs` passed."""
    first: dict[str, ExecutionReport] = {}
    deadline = time.monotonic() + timeout_secs
    while len(first) < len(wanted) and time.monotonic() < deadline:
        for record in read_topic(settings, EXECUTION_REPORTS):
            report = ExecutionReport.model_validate_json(record.value or b"")
            if report.intent_id in wanted:
                first.setdefault(report.intent_id, report)
        time.sleep(0.5)
    return first
