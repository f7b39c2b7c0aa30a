"""Ack before state (issue 8, defect 2): each agent sends its outputs and waits for the broker's
acknowledgement before it writes the state that says an event is done. A send that fails, or a process that
dies between the send and the state write, leaves the event to be processed again, and processing it again
sends the same ids (never a second intent id), while an event whose state was saved sends nothing new."""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal
from typing import Any

import pytest

from processors.core.books import stamp_book
from processors.core.engine import StaticReference
from processors.core.ids import build_paper_order_id
from processors.core.paper import execute_on_paper
from processors.core.wallet_state import WalletState
from processors.worker.state import PendingKeys, WalletStateStore
from schemas.books import BookSource
from schemas.topics import DECISIONS, EXECUTION_REPORTS, ORDER_EVENTS, ORDER_INTENTS, TARGETED_TRADES
from schemas.trades import TargetedTrade
from tests.builders import ASSET, NOW_MS, WALLET_ID, build_book, build_trade, build_wallet

WALLET = build_wallet(liquidity_min_fill_ratio=Decimal("0.1"))
REFERENCE = StaticReference.build([WALLET])
THIN = stamp_book(build_book(asks=[("0.50", "8")]), BookSource.CHANNEL, NOW_MS)


def pinned(**trade: object) -> TargetedTrade:
    return TargetedTrade(wallet_id=WALLET_ID, trade=build_trade(**trade), book_id=THIN.book_id)


def intent_ids(worker) -> list[str]:  # type: ignore[no-untyped-def]
    return [intent.intent_id for _, intent in worker.outbox.messages(ORDER_INTENTS)]


def wallet_state(worker) -> WalletState:  # type: ignore[no-untyped-def]
    state = worker.app.wallet_store.load_saved(WALLET_ID)
    return state if state is not None else WalletState.new(WALLET.capital_usdc)


@pytest.mark.parametrize("failure", ["refuse", "lose"])
@pytest.mark.parametrize("topic", [DECISIONS.name, ORDER_INTENTS.name])
async def test_an_evaluation_whose_outputs_failed_is_decided_again_with_the_same_intent_id(
    worker_factory, monkeypatch, failure: str, topic: str
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)
    getattr(worker.outbox, failure).add(topic)
    acknowledged_at_save: list[set[str]] = []
    save = WalletStateStore.save_for_trades

    def recording_save(self: WalletStateStore, *args: Any) -> None:
        acknowledged_at_save.append({name for name, _, _ in worker.outbox.sent})
        save(self, *args)

    monkeypatch.setattr(WalletStateStore, "save_for_trades", recording_save)

    await worker.put("evaluate", pinned())  # the send fails and is retried: the state waits for it
    assert len(acknowledged_at_save) == 1 and topic in acknowledged_at_save[0]
    await worker.put("evaluate", pinned())  # the re-delivery after the restart

    [intent_id] = set(intent_ids(worker))
    assert [d.reason for _, d in worker.outbox.messages(DECISIONS)][-1] == "copy"
    assert list(wallet_state(worker).ledger.reservations) == [intent_id]  # reserved once


async def test_a_crash_between_the_sends_and_the_state_write_resends_the_same_intent_and_reserves_once(
    worker_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)
    save = WalletStateStore.save_for_trades
    crashes = [RuntimeError("killed before the state write")]

    def save_or_crash(self: WalletStateStore, *args: Any) -> None:
        if crashes:
            raise crashes.pop()
        save(self, *args)

    monkeypatch.setattr(WalletStateStore, "save_for_trades", save_or_crash)

    await worker.put("evaluate", pinned())
    assert len(intent_ids(worker)) == 1  # the intent is in the log before any state says "decided"
    await worker.put("evaluate", pinned())  # read again: nothing was saved
    await worker.put("evaluate", pinned())  # read again after the state was saved: nothing new

    [intent_id] = set(intent_ids(worker))
    assert len(intent_ids(worker)) == 2  # the same intent twice; the executor's journal dedups it
    assert list(wallet_state(worker).ledger.reservations) == [intent_id]
    assert worker.metrics.redelivered.labels("evaluate")._value.get() == 1


async def test_a_decided_pair_read_again_sends_nothing_and_is_counted(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)

    await worker.put("evaluate", pinned(), pinned())

    assert [d.reason for _, d in worker.outbox.messages(DECISIONS)] == ["copy"]
    assert len(intent_ids(worker)) == 1
    assert worker.metrics.redelivered.labels("evaluate")._value.get() == 1


@pytest.mark.parametrize("failure", ["refuse", "lose"])
async def test_a_fill_whose_fan_out_failed_is_marked_seen_only_once_the_fan_out_is_in(
    worker_factory, monkeypatch, failure: str
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    trade = build_trade()
    getattr(worker.outbox, failure).add(TARGETED_TRADES.name)
    acknowledged_at_mark: list[set[str]] = []
    commit = PendingKeys.commit

    def recording_commit(self: PendingKeys) -> None:
        acknowledged_at_mark.append({name for name, _, _ in worker.outbox.sent})
        commit(self)

    monkeypatch.setattr(PendingKeys, "commit", recording_commit)

    await worker.put("target-filter", trade)  # the fan-out fails and is sent again: the mark waits for it
    assert len(acknowledged_at_mark) == 1 and TARGETED_TRADES.name in acknowledged_at_mark[0]
    await worker.put("target-filter", trade)  # read again: a duplicate
    await worker.put("target-filter", trade)

    targeted = [item for _, item in worker.outbox.messages(TARGETED_TRADES)]
    assert [(item.wallet_id, item.trade.dedup_key) for item in targeted] == [(WALLET_ID, trade.dedup_key)]
    assert worker.metrics.duplicates_dropped.labels(trade.source.value)._value.get() == 2


@pytest.mark.parametrize("failure", ["refuse", "lose"])
async def test_a_report_whose_order_events_failed_yields_the_same_events_when_read_again(
    worker_factory, failure: str
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)
    await worker.put("evaluate", pinned())
    [(_, intent)] = worker.outbox.messages(ORDER_INTENTS)
    fill, cancel = execute_on_paper(
        intent, build_paper_order_id(intent.intent_id), sent_at_ms=NOW_MS, reported_at_ms=NOW_MS
    )
    getattr(worker.outbox, failure).add(ORDER_EVENTS.name)

    await worker.put("order-lifecycle", fill, fill, cancel, cancel)

    # A lost delivery may leave part of a report's events in the log: read again, the report sends them all
    # again under the same ids (PostgreSQL keeps one row per id), and no state says "done" before that.
    events = {event.event_id: event.event_type.value for _, event in worker.outbox.messages(ORDER_EVENTS)}
    assert sorted(events.values()) == ["OrderCancelled", "OrderPartialFill", "OrderPlaced"]
    ledger = wallet_state(worker).ledger
    assert (ledger.reservations, ledger.positions[ASSET].shares) == ({}, Decimal("8"))


async def test_a_report_arriving_while_an_evaluation_awaits_its_delivery_waits_for_the_wallet_lock(
    worker_factory,
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)
    await worker.put("evaluate", pinned())
    [(_, first)] = worker.outbox.messages(ORDER_INTENTS)
    fill, _ = execute_on_paper(
        first, build_paper_order_id(first.intent_id), sent_at_ms=NOW_MS, reported_at_ms=NOW_MS
    )
    second = pinned(transaction_hash="0x" + "44" * 32)
    worker.outbox.hold = asyncio.Event()  # every delivery waits: both agents are between read and write

    def both_applied() -> bool:
        ledger = wallet_state(worker).ledger
        return len(ledger.reservations) == 2 and ASSET in ledger.positions

    async with (
        worker.agent("evaluate").test_context() as evaluate,
        worker.agent("order-lifecycle").test_context() as lifecycle,
    ):
        await evaluate.put(second.to_bytes(), key=b"test")
        await lifecycle.put(fill.to_bytes(), key=b"test")
        worker.outbox.hold.set()
        for _ in range(500):
            if both_applied() and len(worker.outbox.messages(ORDER_EVENTS)) == 2:
                break
            await asyncio.sleep(0.01)

    # Neither agent's write undid the other's: the second intent's reservation and the first one's fill.
    [(_, second_intent)] = worker.outbox.messages(ORDER_INTENTS)[1:]
    ledger = wallet_state(worker).ledger
    assert set(ledger.reservations) == {first.intent_id, second_intent.intent_id}
    assert ledger.positions[ASSET].shares == Decimal("8")
    assert EXECUTION_REPORTS.name not in {name for name, _, _ in worker.outbox.sent}


@pytest.mark.parametrize("agent_name", ["target-filter", "evaluate"])
async def test_an_event_cut_short_by_a_stop_stays_unacked_so_the_next_owner_reads_it_again(
    worker_factory, agent_name: str
) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM cancels an agent mid-event; Faust acks the event as its stream closes (a `finally`), and the
    next commit would skip it: the chaos run's missing decisions. The event must stay unacked."""
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)
    worker.outbox.hold = asyncio.Event()  # never set: the event is stopped while its outputs are in flight
    value = pinned() if agent_name == "evaluate" else build_trade()

    async with worker.agent(agent_name).test_context() as agent:
        event = await agent.put(value.to_bytes(), key=b"test", wait=False)
        event.message.incref()  # the reference Faust's conductor adds for each stream reading a topic
        for _ in range(1000):
            if worker.outbox.held:
                break
            await asyncio.sleep(0.01)
        assert worker.outbox.held, "the agent never sent its outputs"
    gc.collect()  # the stream's generators close and run their `finally`
    await asyncio.sleep(0)

    assert not event.message.acked


def test_the_worker_is_a_static_group_member_with_a_short_session_when_it_has_an_instance_id(
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    from polycopy.infra.metrics import PipelineMetrics
    from polycopy.infra.settings import PolycopySettings
    from processors.worker.app import create_app
    from processors.worker.book_cache import BookCache

    def conf(**settings: Any) -> Any:
        metrics = PipelineMetrics()
        app = create_app(
            PolycopySettings(data_dir=tmp_path, metrics_enabled=False, **settings),
            reference=REFERENCE,
            books=BookCache(lambda token: None, 500, channel_max_age_ms=1, metrics=metrics),
            metrics=metrics,
            app_id="chaos-worker",
        )
        return app.conf

    static, dynamic = conf(instance_id="worker-1"), conf()
    assert static.consumer_group_instance_id == "chaos-worker-worker-1"
    assert dynamic.consumer_group_instance_id is None
    assert static.broker_session_timeout == dynamic.broker_session_timeout == 10.0  # Faust's default: 60
