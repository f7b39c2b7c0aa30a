"""The resolution fan-out and settlement agents in process, and what wallet events publish: a wallet that
bought into a market that resolved sees the position settled, realised PnL booked and its capital available
again, in its positions, its snapshot and its gauges; snapshots are rate-limited, the timer sends the rest."""

from __future__ import annotations

import inspect
from decimal import Decimal

from polycopy.infra.metrics import PipelineMetrics
from processors.core.books import stamp_book
from processors.core.engine import StaticReference
from processors.core.ids import build_paper_order_id
from processors.core.paper import execute_on_paper
from processors.core.wallet_state import WalletState
from processors.worker.portfolio import WalletPublisher
from schemas.books import BookSource
from schemas.portfolio import PositionStatus, WalletResolution
from schemas.topics import ORDER_INTENTS, POSITIONS, RESOLUTIONS, WALLET_RESOLUTIONS, WALLET_SNAPSHOTS
from schemas.trades import TargetedTrade
from tests.builders import (
    ASSET,
    NOW_MS,
    OTHER_ASSET,
    WALLET_ID,
    build_book,
    build_resolution,
    build_trade,
    build_wallet,
)

WALLET = build_wallet(
    liquidity_min_fill_ratio=Decimal("0.1"), capital_usdc=Decimal("100"), max_slippage=Decimal(0)
)
OTHER_WALLET = build_wallet(id="copy-2", targets=())
REFERENCE = StaticReference.build([WALLET, OTHER_WALLET])
BOOK = stamp_book(build_book(asks=[("0.50", "100")]), BookSource.CHANNEL, NOW_MS)
D = Decimal


def gauge(metric, *labels: str) -> float:  # type: ignore[no-untyped-def]
    return float(metric.labels(*labels)._value.get())


async def run_snapshot_timer(worker) -> None:  # type: ignore[no-untyped-def]
    """One tick of the worker's timer that publishes the snapshots the rate limit held back."""
    [tick] = [
        inspect.unwrap(task)
        for task in worker.app._app_tasks
        if inspect.unwrap(task).__name__ == "publish_due_snapshots"
    ]
    await tick()


def latest_snapshot(worker, wallet_id: str = WALLET_ID):  # type: ignore[no-untyped-def]
    return [snapshot for key, snapshot in worker.outbox.messages(WALLET_SNAPSHOTS) if key == wallet_id][-1]


async def bought(worker) -> None:  # type: ignore[no-untyped-def]
    """The wallet copies a BUY on BOOK (20 shares at 0.50) and the paper fill is reported."""
    worker.books.books.apply(ASSET, BOOK)
    await worker.put(
        "evaluate", TargetedTrade(wallet_id=WALLET_ID, trade=build_trade(), book_id=BOOK.book_id)
    )
    [(_, intent)] = worker.outbox.messages(ORDER_INTENTS)
    reports = execute_on_paper(
        intent, build_paper_order_id(intent.intent_id), sent_at_ms=NOW_MS, reported_at_ms=NOW_MS
    )
    await worker.put("order-lifecycle", *reports)


async def test_a_resolution_settles_a_bought_position_and_publishes_it_settled_with_the_capital_back(
    worker_factory,
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    await bought(worker)
    [(_, opened)] = worker.outbox.messages(POSITIONS)
    assert (opened.status, opened.shares, opened.cost_usdc) == (PositionStatus.OPEN, D("20"), D("10"))

    await worker.put("resolution-fanout", build_resolution(ASSET))
    fanned = worker.outbox.messages(WALLET_RESOLUTIONS)
    assert sorted(key for key, _ in fanned) == ["copy-1", "copy-2"]  # every configured wallet
    await worker.put("settlement", *(item for _, item in fanned))

    [_, (key, settled)] = worker.outbox.messages(POSITIONS)
    assert key == WALLET_ID
    assert (settled.status, settled.shares, settled.payout, settled.realised_pnl_usdc) == (
        PositionStatus.SETTLED,
        D("20"),
        D("1"),
        D("10"),
    )
    await run_snapshot_timer(worker)
    snapshot = latest_snapshot(worker)
    assert (snapshot.wallet_id, snapshot.available_usdc, snapshot.deployed_usdc) == (WALLET_ID, D("110"), 0)
    assert (snapshot.realised_pnl_usdc, snapshot.settled_positions, snapshot.win_rate) == (D("10"), 1, D(1))
    assert snapshot.open_positions == () and snapshot.open_orders == ()
    assert settled.version == snapshot.version  # one wallet state version, on both topics
    metrics = worker.metrics
    assert gauge(metrics.wallet_available, WALLET_ID) == 110.0
    assert gauge(metrics.wallet_deployed, WALLET_ID) == 0.0
    assert gauge(metrics.wallet_pnl, WALLET_ID, "realised") == 10.0
    assert gauge(metrics.resolutions, "gamma") == 1.0
    assert gauge(metrics.wallet_decisions, WALLET_ID, "copy") == 1.0


async def test_a_losing_resolution_books_the_loss_and_a_repeated_one_changes_nothing(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    await bought(worker)
    item = WalletResolution(wallet_id=WALLET_ID, resolution=build_resolution(OTHER_ASSET))
    await worker.put("settlement", item, item)

    settled = [view for _, view in worker.outbox.messages(POSITIONS) if view.status is PositionStatus.SETTLED]
    assert [(v.payout, v.realised_pnl_usdc) for v in settled] == [(D(0), D("-10"))]
    assert gauge(worker.metrics.wallet_pnl, WALLET_ID, "realised") == -10.0


async def test_a_tombstone_on_the_resolutions_topic_is_skipped_and_bad_input_dead_lettered(
    worker_factory,
) -> None:  # type: ignore[no-untyped-def]
    from schemas.topics import DEAD_LETTERS

    worker = worker_factory(REFERENCE)
    agent = worker.agent("resolution-fanout")
    async with agent.test_context() as context:
        await context.put(None, key=b"0xgone")
        await context.put(b"{}", key=b"0xbad")
        await context.put(build_resolution(ASSET).to_bytes(), key=b"0xgood")
    assert [stage for _, stage in [(k, v.stage) for k, v in worker.outbox.messages(DEAD_LETTERS)]] == [
        "resolution-fanout"
    ]
    assert len(worker.outbox.messages(WALLET_RESOLUTIONS)) == 2
    assert RESOLUTIONS.compacted


# --- the rate limit on snapshots ---------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_snapshots_go_out_at_most_once_per_interval_and_a_held_back_wallet_is_due() -> None:
    clock = Clock()
    publisher = WalletPublisher(
        PipelineMetrics(), lambda _: "paper", interval_secs=5.0, clock_ms=lambda: NOW_MS, monotonic=clock
    )
    state = WalletState.new(D("100"))
    before = publisher.before(WALLET_ID, state)  # nothing held: no position changes

    first = publisher.after(WALLET_ID, state, before)
    second = publisher.after(WALLET_ID, state, before)
    clock.now += 5.0
    third = publisher.after(WALLET_ID, state, before)

    def snapshots(change) -> list[int]:  # type: ignore[no-untyped-def]
        return [message.version for spec, message in change.messages if spec is WALLET_SNAPSHOTS]

    assert (snapshots(first), snapshots(second), snapshots(third)) == ([1], [], [3])
    assert publisher.due == set()  # the third carried the latest state
    publisher.after(WALLET_ID, state, before)
    assert publisher.due == {WALLET_ID}
    assert publisher.snapshot(WALLET_ID, state, NOW_MS).version == 4
    assert publisher.due == set()


async def test_the_timer_publishes_the_snapshots_the_rate_limit_held_back(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    await bought(worker)  # an evaluation, then the reports: the later snapshots wait for the interval
    assert latest_snapshot(worker).deployed_usdc == 0  # the first one: before the fill
    await run_snapshot_timer(worker)
    latest = latest_snapshot(worker)
    assert (latest.deployed_usdc, latest.open_positions[0].shares) == (D("10"), D("20"))
    count = len(worker.outbox.messages(WALLET_SNAPSHOTS))
    await run_snapshot_timer(worker)  # nothing due any more
    assert len(worker.outbox.messages(WALLET_SNAPSHOTS)) == count


def test_a_wallet_forgotten_then_configured_again_has_its_gauges_back() -> None:
    metrics = PipelineMetrics()
    publisher = WalletPublisher(metrics, lambda _: "paper", interval_secs=5.0, clock_ms=lambda: NOW_MS)
    capital = {"wallet": WALLET_ID}
    publisher.observe(WALLET_ID, WalletState.new(D("100")))
    assert metrics.registry.get_sample_value("polycopy_wallet_capital_usdc", capital) == 100.0

    publisher.forget(WALLET_ID)
    assert metrics.registry.get_sample_value("polycopy_wallet_capital_usdc", capital) is None
    publisher.observe(WALLET_ID, WalletState.new(D("200")))  # the gauges it looked up before were removed
    assert metrics.registry.get_sample_value("polycopy_wallet_capital_usdc", capital) == 200.0


async def test_the_snapshot_timer_waits_for_a_wallets_event_in_flight_and_decodes_nothing(
    worker_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Issue 11: a tick that read a wallet's saved state while an event held it decoded the wallet's value and
    scanned every wallet's tokens (2 % of the worker under a backlog), and published the state before it."""
    import asyncio

    from processors.worker.state import WalletStateStore

    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, BOOK)
    first = TargetedTrade(wallet_id=WALLET_ID, trade=build_trade(), book_id=BOOK.book_id)
    await worker.put("evaluate", first)
    decodes: list[str] = []
    decode = WalletStateStore._decode

    def counted(self: WalletStateStore, wallet_id: str, *args: object) -> object:
        decodes.append(wallet_id)
        return decode(self, wallet_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(WalletStateStore, "_decode", counted)
    worker.outbox.hold = asyncio.Event()
    second = build_trade(transaction_hash="0x" + "77" * 32)

    async with worker.agent("evaluate").test_context() as agent:
        item = TargetedTrade(wallet_id=WALLET_ID, trade=second, book_id=BOOK.book_id)
        await agent.put(item.to_bytes(), key=WALLET_ID.encode())
        for _ in range(1000):
            if worker.outbox.held:
                break
            await asyncio.sleep(0.01)
        assert worker.outbox.held  # the second copy's outputs wait for the broker; its snapshot is left due
        snapshots = len(worker.outbox.messages(WALLET_SNAPSHOTS))
        tick = asyncio.ensure_future(run_snapshot_timer(worker))
        await asyncio.sleep(0.05)
        assert not tick.done()  # it waits for the event holding the wallet
        worker.outbox.hold.set()
        await tick

    assert decodes == [] and len(worker.outbox.messages(WALLET_SNAPSHOTS)) == snapshots + 1
    assert latest_snapshot(worker).reserved_usdc == 2 * D("10")  # both copies: the state the second saved
