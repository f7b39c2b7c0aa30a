"""The safety-net poller and the reference-data commands against the simulated venue and the real broker.

The simulator's Data API history is filled with `publish_payloads` (no generated trades); the poller's clock
is injected, so which fills fall inside a window never depends on when the test runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest

from polycopy.cli import main
from polycopy.infra.kafka import read_topic
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.wiring import build_poller, build_postgres_sink, build_venue_client
from producers.poller import PollSummary
from schemas.reference import MarketReference, PollerWatermark, TraderReference
from schemas.topics import MARKETS, POLLER_WATERMARKS, RAW_TRADES, TRADERS, WALLET_CONFIG
from schemas.trades import RawTrade, TradeSource
from schemas.wallets import WalletConfig
from tests.builders import SHARED_DATA, build_trade_payload
from tests.integration.helpers import count_rows, publish, read_all, wait_until

pytestmark = pytest.mark.integration

T0 = 1_790_000_000  # the poller's "now" in the first run, epoch seconds
LEADER = "0x" + "1a" * 20  # an explicit target
SYNCED = "0x" + "3c" * 20  # a synced trader, followed by the wallet without targets
UNFOLLOWED = "0x" + "4d" * 20  # the target of a disabled wallet only
LEADERBOARD = SHARED_DATA / "edulabrador__polymarket-smart-money" / "leaderboard.json"


def fill(wallet: str, timestamp: int, number: int, **overrides: Any) -> dict[str, Any]:
    """A Data API trade row of `wallet`, with the wallet in mixed case as the venue sends it."""
    return build_trade_payload(
        proxyWallet="0x" + wallet[2:].upper(),
        timestamp=timestamp,
        transactionHash="0x" + f"{number:064x}",
        **overrides,
    )


@pytest.fixture
def venue_settings(settings_factory, simulator_factory):  # type: ignore[no-untyped-def]
    """A quiet simulator, settings pointing at it, three copy wallets and one synced trader."""
    venue = simulator_factory(seed=5, auto_trades=False)
    settings = settings_factory(
        data_api_url=venue.server.clob_url,
        gamma_url=venue.server.clob_url,
        poll_interval_secs=300,
        poll_overlap_secs=120,
    )
    wallets = [
        WalletConfig(id="follows-leader", capital_usdc=Decimal("100"), targets=(LEADER,)),
        WalletConfig(id="follows-synced", capital_usdc=Decimal("100")),
        WalletConfig(id="switched-off", capital_usdc=Decimal("100"), targets=(UNFOLLOWED,), enabled=False),
    ]
    publish(settings, WALLET_CONFIG, [(wallet.id, wallet) for wallet in wallets])
    publish(settings, TRADERS, [(SYNCED, TraderReference(wallet=SYNCED, updated_at_ms=1))])
    return venue, settings


def run_poller(settings: PolycopySettings, now_secs: int) -> tuple[PollSummary, PipelineMetrics]:
    """One poll run as `polycopy poll` does it, with the clock at `now_secs`; a fresh poller each time."""
    metrics = PipelineMetrics()
    with build_venue_client(settings, metrics) as client:
        poller = build_poller(settings, metrics, client, clock_ms=lambda: now_secs * 1000 + 500).start()
        try:
            return poller.run_once(), metrics
        finally:
            poller.stop()


def raw_trades_by_run(settings: PolycopySettings) -> dict[int, list[tuple[str, RawTrade]]]:
    """Raw-topic records (key, trade) grouped by their receive time, i.e. by poll run."""
    runs: dict[int, list[tuple[str, RawTrade]]] = {}
    for record in read_topic(settings, RAW_TRADES, idle_secs=3):
        trade = RawTrade.model_validate_json(record.value or b"")
        runs.setdefault(trade.received_at_ms, []).append(((record.key or b"").decode(), trade))
    return runs


def latest_watermarks(settings: PolycopySettings) -> dict[str, int]:
    latest: dict[str, int] = {}
    for record in read_topic(settings, POLLER_WATERMARKS, idle_secs=3):
        mark = PollerWatermark.model_validate_json(record.value or b"")
        assert (record.key or b"").decode() == mark.wallet
        latest[mark.wallet] = mark.last_trade_timestamp
    return latest


def test_poller_publishes_followed_fills_with_source_poll_and_advances_watermarks(venue_settings) -> None:  # type: ignore[no-untyped-def]
    venue, settings = venue_settings
    venue.call(
        venue.server.publish_payloads(
            [
                fill(LEADER, T0 - 1000, 1),  # older than the first window (interval + overlap = 420 s)
                fill(LEADER, T0 - 400, 2),
                fill(LEADER, T0 - 200, 3, side="SELL"),
                fill(LEADER, T0 - 100, 4),
                fill(SYNCED, T0 - 50, 5),
                fill(UNFOLLOWED, T0 - 30, 6),
            ]
        )
    )
    # a maker fill: the Data API hides it unless asked with takerOnly=false
    venue.call(venue.server.publish_payloads([fill(LEADER, T0 - 10, 7)], feed_types=("trades",)))

    summary, metrics = run_poller(settings, T0)

    runs = raw_trades_by_run(settings)
    assert list(runs) == [T0 * 1000 + 500]
    published = runs[T0 * 1000 + 500]
    assert sorted((key, trade.timestamp) for key, trade in published) == [
        (LEADER, T0 - 400),
        (LEADER, T0 - 200),
        (LEADER, T0 - 100),
        (LEADER, T0 - 10),
        (SYNCED, T0 - 50),
    ]
    assert all(trade.source is TradeSource.POLL and trade.proxy_wallet == key for key, trade in published)
    assert latest_watermarks(settings) == {LEADER: T0 - 10, SYNCED: T0 - 50}
    assert (summary.wallets, summary.fetched, summary.published, summary.failed_wallets) == (2, 5, 5, 0)
    assert metrics.poller_requests.labels("200")._value.get() == 2
    assert metrics.trades_published.labels("poll")._value.get() == 5


def test_second_run_republishes_only_the_overlap_window_and_new_fills(venue_settings) -> None:  # type: ignore[no-untyped-def]
    venue, settings = venue_settings
    venue.call(
        venue.server.publish_payloads(
            [
                fill(LEADER, T0 - 400, 1),
                fill(LEADER, T0 - 200, 2),
                fill(LEADER, T0 - 100, 3),
                fill(LEADER, T0 - 10, 4),
                fill(SYNCED, T0 - 300, 5),
                fill(SYNCED, T0 - 50, 6),
            ]
        )
    )
    run_poller(settings, T0)
    venue.call(venue.server.publish_payloads([fill(LEADER, T0 + 100, 7)]))

    summary, _ = run_poller(settings, T0 + 300)  # a new process: the watermarks come back from Kafka

    runs = raw_trades_by_run(settings)
    first, second = runs[T0 * 1000 + 500], runs[(T0 + 300) * 1000 + 500]
    # windows: LEADER from its watermark T0-10 minus 120 s, SYNCED from T0-50 minus 120 s
    assert sorted((key, trade.timestamp) for key, trade in second) == [
        (LEADER, T0 - 100),
        (LEADER, T0 - 10),
        (LEADER, T0 + 100),
        (SYNCED, T0 - 50),
    ]
    repeated = {trade.dedup_key for _, trade in second} & {trade.dedup_key for _, trade in first}
    assert len(repeated) == 3  # what the target filter drops as already seen
    assert summary.published == 4 and summary.watermarks == {LEADER: T0 + 100}
    assert latest_watermarks(settings) == {LEADER: T0 + 100, SYNCED: T0 - 50}


def test_traders_import_of_the_real_leaderboard_publishes_fifty_traders(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)

    assert main(["traders", "import", str(LEADERBOARD)]) == 0

    traders = read_all(settings, TRADERS, TraderReference)
    assert len(traders) == 50 and len({trader.wallet for trader in traders}) == 50
    assert all(trader.source == "import" and trader.win_rate is None for trader in traders)
    top = next(trader for trader in traders if trader.rank == 1)
    assert top.wallet == "0x09b428f7c2b469786286214aa5c90dd9015f7320" and top.name == "DEEDDIT"
    assert top.pnl_usdc == Decimal("8052184.542897382") and top.volume_usdc == Decimal("72132442.51951")
    build_postgres_sink(settings, PipelineMetrics()).run(max_idle_secs=3)
    assert count_rows(settings, "traders", "source = 'import'") == 50


def test_markets_and_traders_sync_from_the_simulated_venue(venue_settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    venue, settings = venue_settings
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)

    assert main(["markets", "sync"]) == 0
    assert main(["traders", "sync", "--limit", "60"]) == 0

    markets = {market.condition_id: market for market in read_all(settings, MARKETS, MarketReference)}
    simulated = {market.condition_id: market for market in venue.simulator.markets}
    assert markets.keys() == simulated.keys()
    for condition_id, market in markets.items():
        assert market.token_ids == tuple(simulated[condition_id].token_ids)
        assert market.tick_size == simulated[condition_id].tick_size and not market.closed
    ranked = sorted(
        (t for t in read_all(settings, TRADERS, TraderReference) if t.rank is not None),
        key=lambda trader: trader.rank or 0,
    )
    assert [trader.wallet for trader in ranked] == venue.simulator.top_wallets(60)  # two pages: 50 + 10
    assert all(trader.source == "leaderboard" and trader.volume_usdc for trader in ranked)


def test_poll_command_runs_once_and_the_loop_stops_on_sigterm(venue_settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    venue, settings = venue_settings
    now = int(time.time())  # the command reads the real clock; only which fills are recent depends on it
    venue.call(venue.server.publish_payloads([fill(LEADER, now - 60, 1)]))
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)

    assert main(["poll"]) == 0
    assert [trade.timestamp for trade in read_all(settings, RAW_TRADES, RawTrade)] == [now - 60]

    venue.call(venue.server.publish_payloads([fill(LEADER, now - 30, 2)]))
    command = [sys.executable, "-m", "polycopy.cli", "poll", "--loop", "--interval-secs", "600"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | settings.to_env(),
    )
    try:
        wait_until(lambda: len(read_all(settings, RAW_TRADES, RawTrade)) == 3, 30, "the loop's first run")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert "poller stopped after 1 runs" in output
