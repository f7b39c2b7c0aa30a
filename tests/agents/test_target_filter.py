"""The target-filter agent in process: dedup, fan-out to the followers, one book pinned per trade (a fresh
channel state from the books topic, else GET /book, published to the books topic), dead letters."""

from __future__ import annotations

from decimal import Decimal

from processors.core.books import stamp_book
from processors.core.engine import StaticReference
from schemas.books import BookSource, OrderBook
from schemas.deadletter import DeadLetter
from schemas.reference import TraderReference
from schemas.topics import BOOKS, DEAD_LETTERS, TARGETED_TRADES
from schemas.trades import TargetedTrade
from tests.agents.conftest import CountingFetcher
from tests.builders import (
    ASSET,
    NOW_MS,
    OTHER_TRADER,
    TRADER,
    build_book,
    build_trade,
    build_wallet,
)

FOLLOWERS = StaticReference.build(
    [
        build_wallet(id="zeta", targets=(TRADER,)),
        build_wallet(id="alpha", targets=()),  # follows the synced traders
        build_wallet(id="other", targets=(OTHER_TRADER,)),
        build_wallet(id="off", targets=(TRADER,), enabled=False),
    ],
    traders=[TraderReference(wallet=TRADER, win_rate=Decimal("0.6"), updated_at_ms=1)],
)


def targeted(worker) -> list[tuple[str, TargetedTrade]]:  # type: ignore[no-untyped-def]
    return worker.outbox.messages(TARGETED_TRADES)


async def test_a_trade_goes_to_each_follower_in_wallet_id_order_pinned_to_one_rest_book(
    worker_factory,
) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(FOLLOWERS)
    trade = build_trade()

    await worker.put("target-filter", trade, until=lambda: len(targeted(worker)) == 2)

    out = targeted(worker)
    assert [(key, item.wallet_id, item.trade) for key, item in out] == [
        ("alpha", "alpha", trade),
        ("zeta", "zeta", trade),
    ]
    [(key, book)] = worker.outbox.messages(BOOKS)  # the REST book is in the log, keyed by token
    assert key == ASSET and isinstance(book, OrderBook)
    assert book.source is BookSource.REST and book.received_at_ms == NOW_MS
    assert {item.book_id for _, item in out} == {book.book_id} and worker.fetcher.calls == 1
    assert worker.metrics.targeted._value.get() == 2


async def test_the_same_fill_twice_is_fanned_out_once(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(FOLLOWERS)
    trade = build_trade()

    duplicate = trade.model_copy(update={"feed_type": "orders_matched"})
    await worker.put(
        "target-filter",
        trade,
        duplicate,
        until=lambda: worker.metrics.duplicates_dropped.labels("rtds")._value.get() == 1,
    )

    assert len(targeted(worker)) == 2
    assert worker.metrics.duplicates_dropped.labels("rtds")._value.get() == 1
    assert worker.metrics.first_seen.labels("rtds")._value.get() == 1


async def test_a_trade_nobody_follows_is_not_sent_and_needs_no_book(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(FOLLOWERS)

    await worker.put("target-filter", build_trade(proxy_wallet="0x" + "77" * 20))

    assert worker.outbox.sent == [] and worker.fetcher.calls == 0


async def test_a_fresh_channel_state_is_pinned_without_a_request_or_a_publish(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(FOLLOWERS)
    streamed = stamp_book(build_book(asks=[("0.40", "7")]), BookSource.CHANNEL, NOW_MS - 1_000)
    worker.books.books.apply(ASSET, streamed)

    await worker.put("target-filter", build_trade())

    assert {item.book_id for _, item in targeted(worker)} == {streamed.book_id}
    assert worker.fetcher.calls == 0 and worker.outbox.messages(BOOKS) == []
    assert worker.metrics.book_source.labels("channel")._value.get() == 1


async def test_a_venue_without_a_book_or_failing_pins_no_book_and_the_failure_is_counted(
    worker_factory,
) -> None:  # type: ignore[no-untyped-def]
    failing = worker_factory(FOLLOWERS, fetcher=CountingFetcher(error=RuntimeError("503")))
    await failing.put("target-filter", build_trade(), until=lambda: len(targeted(failing)) == 2)
    assert {item.book_id for _, item in targeted(failing)} == {None}
    assert failing.metrics.book_errors._value.get() == 1

    no_book = worker_factory(FOLLOWERS, fetcher=CountingFetcher(None))
    await no_book.put("target-filter", build_trade(), until=lambda: len(targeted(no_book)) == 2)
    assert {item.book_id for _, item in targeted(no_book)} == {None}
    assert no_book.outbox.messages(BOOKS) == []


async def test_bad_input_is_dead_lettered_and_the_next_trade_flows(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(FOLLOWERS)

    await worker.put(
        "target-filter", b'{"price": "x"}', build_trade(), until=lambda: len(targeted(worker)) == 2
    )

    [(stage, letter)] = worker.outbox.messages(DEAD_LETTERS)
    assert isinstance(letter, DeadLetter)
    assert (stage, letter.stage, letter.payload) == ("target-filter", "target-filter", '{"price": "x"}')
    assert worker.metrics.parse_errors.labels("target-filter")._value.get() == 1
    assert len(targeted(worker)) == 2


async def test_a_failure_while_handling_is_dead_lettered_and_the_stream_goes_on(worker_factory) -> None:  # type: ignore[no-untyped-def]
    class FailingOnce(StaticReference):
        """Reference data whose reader fails on the first lookup."""

        failures = [RuntimeError("reference reader died")]

        def followed_traders(self) -> frozenset[str]:
            if self.failures:
                raise self.failures.pop()
            return super().followed_traders()

    worker = worker_factory(FailingOnce(FOLLOWERS.wallet_configs, {}, FOLLOWERS.traders))
    first, second = build_trade(), build_trade(transaction_hash="0x" + "22" * 32)

    await worker.put("target-filter", first, second, until=lambda: len(targeted(worker)) == 2)

    [(_, letter)] = worker.outbox.messages(DEAD_LETTERS)
    assert (letter.stage, letter.error_type, letter.reason) == (
        "target-filter",
        "RuntimeError",
        "reference reader died",
    )
    assert letter.payload == first.to_bytes().decode()
    assert {item.trade.dedup_key for _, item in targeted(worker)} == {second.dedup_key}
