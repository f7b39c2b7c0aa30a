"""The safety-net poller's shell with fakes (tables, Data API client, publisher): what a run publishes, when
watermarks move, and what a failure leaves untouched."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.http import VenueHttpError
from producers.poller import PollerError, PollerTables, SafetyNetPoller
from schemas.reference import PollerWatermark, TraderReference
from schemas.topics import DEAD_LETTERS, POLLER_WATERMARKS, RAW_TRADES
from schemas.trades import TradeSource
from tests.builders import OTHER_TRADER, TRADER, build_trade_payload, build_wallet
from tests.fakes import FakePublisher, FakeTable

NOW_SECS = 1_790_000_000
SYNCED = "0x" + "ef" * 20
IGNORED = "0x" + "99" * 20


class FakeDataApi:
    """Each wallet's fills, newest first; `failing` wallets answer with a venue error."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]], failing: frozenset[str] = frozenset()) -> None:
        self.rows, self.failing = rows, failing
        self.requests: list[tuple[str, int | None]] = []

    def fetch_user_trades(
        self, wallet: str, *, start_secs: int | None = None, limit: int = 500, offset: int = 0
    ) -> list[dict[str, Any]]:
        self.requests.append((wallet, start_secs))
        if wallet in self.failing:
            raise VenueHttpError("503 from the Data API", 503)
        return self.rows.get(wallet, [])[offset : offset + limit]


def fill(wallet: str, seconds_ago: int, number: int) -> dict[str, Any]:
    return build_trade_payload(
        proxyWallet=wallet, timestamp=NOW_SECS - seconds_ago, transactionHash="0x" + f"{number:064x}"
    )


def build_tables(watermarks: dict[str, int] | None = None) -> PollerTables:
    return PollerTables(
        wallets=FakeTable(
            {
                "follows-trader": build_wallet(id="follows-trader", targets=(TRADER,)),
                "follows-synced": build_wallet(id="follows-synced", targets=()),
                "switched-off": build_wallet(id="switched-off", targets=(IGNORED,), enabled=False),
            }
        ),
        traders=FakeTable({SYNCED: TraderReference(wallet=SYNCED, updated_at_ms=1)}),
        watermarks=FakeTable(
            {
                wallet: PollerWatermark(wallet=wallet, last_trade_timestamp=mark, updated_at_ms=1)
                for wallet, mark in (watermarks or {}).items()
            }
        ),
    )


def build_poller(
    client: FakeDataApi,
    publisher: FakePublisher,
    tables: PollerTables,
    metrics: PipelineMetrics | None = None,
) -> SafetyNetPoller:
    settings = PolycopySettings(poll_interval_secs=300, poll_overlap_secs=120, metrics_enabled=False)
    return SafetyNetPoller(
        settings, client, publisher, metrics or PipelineMetrics(), tables, clock_ms=lambda: NOW_SECS * 1000
    ).start()


def test_a_run_publishes_the_followed_wallets_fills_and_then_their_watermarks() -> None:
    client = FakeDataApi(
        {TRADER: [fill(TRADER, 10, 1), fill(TRADER, 30, 2)], SYNCED: [fill(SYNCED, 50, 3)], IGNORED: []}
    )
    publisher = FakePublisher()

    summary = build_poller(client, publisher, build_tables()).run_once()

    assert sorted(wallet for wallet, _ in client.requests) == sorted([TRADER, SYNCED])  # not the disabled one
    trades = publisher.on(RAW_TRADES)
    assert sorted(publisher.keys(RAW_TRADES)) == sorted([TRADER, TRADER, SYNCED])
    assert all(trade.source is TradeSource.POLL for trade in trades)
    marks = {mark.wallet: mark.last_trade_timestamp for mark in publisher.on(POLLER_WATERMARKS)}
    assert marks == {TRADER: NOW_SECS - 10, SYNCED: NOW_SECS - 50}
    assert (summary.wallets, summary.fetched, summary.published, summary.failed_wallets) == (2, 3, 3, 0)


def test_a_wallet_with_a_watermark_is_read_from_the_overlap_before_it() -> None:
    client = FakeDataApi({})
    build_poller(client, FakePublisher(), build_tables({TRADER: NOW_SECS - 60})).run_once()

    starts = dict(client.requests)
    assert starts[TRADER] == NOW_SECS - 60 - 120  # watermark minus overlap
    assert starts[SYNCED] == NOW_SECS - 300 - 120  # never polled: one interval plus the overlap


def test_an_undelivered_run_raises_and_moves_no_watermark() -> None:
    client = FakeDataApi({TRADER: [fill(TRADER, 10, 1)]})
    publisher = FakePublisher(undelivered=1)
    poller = build_poller(client, publisher, build_tables())

    with pytest.raises(PollerError, match="watermarks not advanced"):
        poller.run_once()

    assert publisher.on(POLLER_WATERMARKS) == [] and poller.watermarks() == {}


def test_a_failing_wallet_keeps_its_watermark_and_the_others_are_published() -> None:
    client = FakeDataApi({SYNCED: [fill(SYNCED, 5, 1)]}, failing=frozenset({TRADER}))
    publisher = FakePublisher()
    poller = build_poller(client, publisher, build_tables({TRADER: NOW_SECS - 600}))

    summary = poller.run_once()

    assert summary.failed_wallets == 1 and publisher.keys(RAW_TRADES) == [SYNCED]
    assert poller.watermarks() == {TRADER: NOW_SECS - 600, SYNCED: NOW_SECS - 5}


def test_an_unreadable_row_is_dead_lettered_and_counted() -> None:
    broken = fill(TRADER, 10, 1) | {"price": "not a number"}
    client = FakeDataApi({TRADER: [broken, fill(TRADER, 20, 2)]})
    publisher, metrics = FakePublisher(), PipelineMetrics()

    build_poller(client, publisher, build_tables(), metrics).run_once()

    [letter] = publisher.on(DEAD_LETTERS)
    assert letter.stage == "poll-parse" and "not a number" in letter.payload
    assert len(publisher.on(RAW_TRADES)) == 1
    assert metrics.dead_letters.labels("poll-parse")._value.get() == 1


def test_start_reads_the_watermarks_once_and_stop_stops_following_the_tables() -> None:
    tables = build_tables({OTHER_TRADER: NOW_SECS})
    poller = build_poller(FakeDataApi({}), FakePublisher(), tables)

    assert poller.watermarks() == {OTHER_TRADER: NOW_SECS}
    assert (tables.watermarks.started, tables.watermarks.stopped) == (1, 1)  # type: ignore[attr-defined]
    assert (tables.wallets.started, tables.traders.started) == (1, 1)  # type: ignore[attr-defined]
    poller.stop()
    assert (tables.wallets.stopped, tables.traders.stopped) == (1, 1)  # type: ignore[attr-defined]


def test_the_loop_runs_until_its_stop_event_is_set() -> None:
    client = FakeDataApi({})
    poller = build_poller(client, FakePublisher(), build_tables())
    stop = threading.Event()
    original = client.fetch_user_trades

    def fetch_then_stop(wallet: str, **options: Any) -> list[dict[str, Any]]:
        if len(client.requests) == 2:  # the second run's first request (each run asks for two wallets)
            stop.set()
        return original(wallet, **options)

    client.fetch_user_trades = fetch_then_stop  # type: ignore[method-assign]

    assert poller.run_forever(0, stop) == 2
    assert len(client.requests) == 3  # a stop mid-run ends the reading at the next wallet


def test_a_stop_mid_run_publishes_what_was_read_and_leaves_the_unread_wallets_watermarks() -> None:
    client = FakeDataApi({TRADER: [fill(TRADER, 10, 1)], SYNCED: [fill(SYNCED, 5, 2)]})
    publisher = FakePublisher()
    poller = build_poller(client, publisher, build_tables({TRADER: NOW_SECS - 600, SYNCED: NOW_SECS - 600}))
    stop = threading.Event()
    original = client.fetch_user_trades

    def fetch_then_stop(wallet: str, **options: Any) -> list[dict[str, Any]]:
        stop.set()  # SIGTERM arrives while the first wallet is being read
        return original(wallet, **options)

    client.fetch_user_trades = fetch_then_stop  # type: ignore[method-assign]
    summary = poller.run_once(stop)

    [(read, _)] = client.requests
    unread = SYNCED if read == TRADER else TRADER
    assert publisher.keys(RAW_TRADES) == [read] and summary.published == 1
    assert poller.watermarks()[unread] == NOW_SECS - 600
