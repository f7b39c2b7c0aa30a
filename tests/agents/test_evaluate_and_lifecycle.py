"""The evaluate and order-lifecycle agents in process: a decision and an intent on the pinned book, a pinned
book that never comes, a re-delivered trade, bad input dead-lettered while processing goes on, and reports
turned into order events against the wallet state both agents share."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from processors.core.book_log import PINNED_KEEP_MS
from processors.core.books import stamp_book
from processors.core.engine import StaticReference
from processors.core.ids import build_paper_order_id
from processors.core.paper import execute_on_paper
from schemas.base import Side
from schemas.books import BookSource
from schemas.decisions import Decision
from schemas.orders import OrderEvent, OrderIntent
from schemas.reference import MarketReference
from schemas.topics import DEAD_LETTERS, DECISIONS, ORDER_EVENTS, ORDER_INTENTS
from schemas.trades import TargetedTrade
from tests.builders import ASSET, CONDITION_ID, NOW_MS, WALLET_ID, build_book, build_trade, build_wallet

WALLET = build_wallet(liquidity_min_fill_ratio=Decimal("0.1"))
REFERENCE = StaticReference.build([WALLET])
THIN = stamp_book(build_book(asks=[("0.50", "8")]), BookSource.CHANNEL, NOW_MS)


def pinned(book_id: str | None, **trade: object) -> TargetedTrade:
    return TargetedTrade(wallet_id=WALLET_ID, trade=build_trade(**trade), book_id=book_id)


def decisions(worker) -> list[Decision]:  # type: ignore[no-untyped-def]
    return [decision for _, decision in worker.outbox.messages(DECISIONS)]


async def test_a_pinned_trade_is_decided_on_that_state_and_the_intent_carries_its_levels(
    worker_factory,
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)
    worker.books.books.apply(ASSET, stamp_book(build_book(), BookSource.CHANNEL, NOW_MS + 5))  # newer

    await worker.put("evaluate", pinned(THIN.book_id))

    [(key, decision)] = worker.outbox.messages(DECISIONS)
    [(intent_key, intent)] = worker.outbox.messages(ORDER_INTENTS)
    assert (key, intent_key) == (WALLET_ID, WALLET_ID)
    assert (decision.reason, decision.book_id, decision.available_size) == (
        "copy",
        THIN.book_id,
        Decimal("8"),
    )
    assert isinstance(intent, OrderIntent) and intent.book_levels == THIN.levels_within(
        Side.BUY, Decimal("0.52")
    )
    assert worker.fetcher.calls == 0  # evaluation never fetches a book of its own
    assert worker.metrics.pinned_book_waits.labels("found")._value.get() == 1


async def test_a_pinned_book_that_never_comes_is_a_recorded_skip_that_says_so(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(StaticReference.build([WALLET], markets=[]), pin_wait_secs=0.05)

    await worker.put("evaluate", pinned("gone"), until=lambda: bool(decisions(worker)))

    [decision] = decisions(worker)
    # without market reference data the book was the only source of the market: it is unknown
    assert decision.reason == "market_unknown"
    assert worker.metrics.pinned_book_waits.labels("missing")._value.get() == 1


async def test_with_market_reference_data_a_missing_pinned_book_is_book_unavailable(worker_factory) -> None:  # type: ignore[no-untyped-def]
    market = MarketReference(
        condition_id=CONDITION_ID, token_ids=(ASSET,), tick_size=Decimal("0.01"), updated_at_ms=1
    )
    worker = worker_factory(StaticReference.build([WALLET], markets=[market]), pin_wait_secs=0.05)

    await worker.put("evaluate", pinned("gone"), until=lambda: bool(decisions(worker)))

    [decision] = decisions(worker)
    assert (decision.reason, decision.detail) == (
        "book_unavailable",
        "pinned book gone not received within 0.05 s",
    )


async def test_a_trade_older_than_the_books_kept_for_pinning_does_not_wait_for_its_book(
    worker_factory,
) -> None:  # type: ignore[no-untyped-def]
    """A backlog spiralled: every event whose book was forgotten waited the whole pin wait (here 600 s)."""
    market = MarketReference(
        condition_id=CONDITION_ID, token_ids=(ASSET,), tick_size=Decimal("0.01"), updated_at_ms=1
    )
    worker = worker_factory(StaticReference.build([WALLET], markets=[market]), pin_wait_secs=600)
    old = pinned("gone", received_at_ms=NOW_MS - PINNED_KEEP_MS - 1_000)

    await worker.put("evaluate", old, until=lambda: bool(decisions(worker)))

    [decision] = decisions(worker)
    assert (decision.reason, decision.detail) == (
        "book_unavailable",
        f"pinned book gone no longer kept: trade received {PINNED_KEEP_MS // 1000 + 1} s ago",
    )
    assert worker.metrics.pinned_book_waits.labels("missing")._value.get() == 1


async def test_a_redelivered_trade_is_decided_once_and_the_redelivery_sends_nothing(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)

    await worker.put("evaluate", pinned(THIN.book_id), pinned(THIN.book_id))

    assert [d.reason for d in decisions(worker)] == ["copy"]
    assert len(worker.outbox.messages(ORDER_INTENTS)) == 1


async def test_a_trade_for_a_wallet_no_longer_configured_is_ignored(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(StaticReference.build([]))

    await worker.put("evaluate", pinned(None))

    assert worker.outbox.sent == []


async def test_bad_input_is_dead_lettered_and_the_next_trade_is_decided(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)

    await worker.put("evaluate", b"{broken", pinned(THIN.book_id))

    assert [(key, letter.stage) for key, letter in worker.outbox.messages(DEAD_LETTERS)] == [
        ("evaluate", "evaluate")
    ]
    assert [d.reason for d in decisions(worker)] == ["copy"]


async def test_reports_become_events_on_the_shared_wallet_state_and_a_late_report_changes_nothing(
    worker_factory,
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)
    await worker.put("evaluate", pinned(THIN.book_id))
    [(_, intent)] = worker.outbox.messages(ORDER_INTENTS)
    order_id = build_paper_order_id(intent.intent_id)
    fill, cancel = execute_on_paper(intent, order_id, sent_at_ms=NOW_MS, reported_at_ms=NOW_MS)
    late = fill.model_copy(update={"report_id": "late", "matched_size": intent.size})

    await worker.put("order-lifecycle", fill, fill, cancel, late, b"not json")

    events = [event for _, event in worker.outbox.messages(ORDER_EVENTS)]
    assert all(isinstance(event, OrderEvent) for event in events)
    assert [(e.event_type.value, e.matched_size) for e in events] == [
        ("OrderPlaced", Decimal(0)),
        ("OrderPartialFill", Decimal("8")),
        ("OrderCancelled", Decimal("8")),
    ]
    assert events[-1].released_usdc == (intent.size - 8) * intent.limit_price
    assert [letter.stage for _, letter in worker.outbox.messages(DEAD_LETTERS)] == ["order-lifecycle"]

    # The ledger the evaluation sees next holds the 8 shares and none of the released capital is reserved.
    sell = pinned(THIN.book_id, side=Side.SELL, size=Decimal("100"), transaction_hash="0x" + "33" * 32)
    worker.books.books.apply(ASSET, THIN)
    await worker.put("evaluate", sell)
    assert decisions(worker)[-1].size == Decimal("8")  # the whole position: the leader sold all it had


async def test_a_key_marked_in_this_window_is_not_written_again(worker_factory, changelog_writes) -> None:  # type: ignore[no-untyped-def]
    """Every report of an order marks its intent decided (`save_for_reports`), and a late report marks its
    order closed again: the mark is in the window already, and writing it again only sends one more changelog
    record (a table write costs about as much as a send)."""
    writes = changelog_writes
    worker = worker_factory(REFERENCE)
    worker.books.books.apply(ASSET, THIN)
    await worker.put("evaluate", pinned(THIN.book_id))
    [(_, intent)] = worker.outbox.messages(ORDER_INTENTS)
    reports = execute_on_paper(
        intent, build_paper_order_id(intent.intent_id), sent_at_ms=NOW_MS, reported_at_ms=NOW_MS
    )
    assert len(reports) >= 2
    await worker.put("order-lifecycle", *reports, reports[-1])  # the last again: late

    assert writes.count("recent-decisions") == 1  # the decision's; its reports find it marked
    assert writes.count("recent-closed-orders") == 1  # the order's end; the late report finds it marked
    # The wallet's state is saved once per batch of a wallet's events: the decision, then the reports.
    assert 2 <= writes.count("wallet-state") <= 2 + len(reports)


async def test_a_wallet_waiting_for_its_acknowledgement_does_not_hold_up_another_wallets_decision(
    worker_factory,
) -> None:  # type: ignore[no-untyped-def]
    """Lanes (issue 11): one wallet's events wait for its outputs' acknowledgement, in order; another wallet's
    event is decided meanwhile. Handled one at a time, the second waited behind the first's round trip."""
    other = build_wallet(id="copy-2", liquidity_min_fill_ratio=Decimal("0.1"))
    worker = worker_factory(StaticReference.build([WALLET, other]))
    worker.books.books.apply(ASSET, THIN)
    worker.outbox.hold, worker.outbox.hold_keys = asyncio.Event(), {WALLET.id}
    first = pinned(THIN.book_id)
    second = pinned(THIN.book_id, transaction_hash="0x" + "55" * 32)
    later = TargetedTrade(wallet_id=other.id, trade=first.trade, book_id=THIN.book_id)

    async with worker.agent("evaluate").test_context() as agent:
        for item in (first, second, later):
            await agent.put(item.to_bytes(), key=item.wallet_id.encode())
        for _ in range(500):
            if decisions(worker):
                break
            await asyncio.sleep(0.01)
        assert [d.wallet_id for d in decisions(worker)] == [other.id]
        worker.outbox.hold.set()
        for lanes in worker.app.lanes:
            await lanes.drain()

    made = [(d.wallet_id, d.dedup_key) for d in decisions(worker)]
    assert made == [(other.id, first.trade.dedup_key), (WALLET.id, first.trade.dedup_key),
                    (WALLET.id, second.trade.dedup_key)]  # fmt: skip
