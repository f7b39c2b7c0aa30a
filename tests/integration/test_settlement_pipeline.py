"""Settlement end to end on the real broker and database: a paper wallet buys into a market through the worker
and the executor, the market resolves, and the position is settled, its PnL realised and its capital available
again in the positions and snapshots topics, the PostgreSQL tables, `polycopy wallets show` and /metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import query
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.chaos_servers import free_port
from polycopy.wiring import build_executor, build_postgres_sink
from schemas.orders import ExecutionReport, OrderIntent, ReportKind
from schemas.portfolio import MarketResolution, PositionView, ResolutionSource, WalletSnapshot
from schemas.topics import (
    EXECUTION_REPORTS,
    ORDER_INTENTS,
    POSITIONS,
    RAW_TRADES,
    RESOLUTIONS,
    WALLET_CONFIG,
    WALLET_SNAPSHOTS,
)
from tests.builders import build_trade
from tests.integration.helpers import WorkerProcess, build_buying_wallet, publish, read_all, wait_until

pytestmark = pytest.mark.integration

LEADER = "0x" + "3c" * 20


def scrape(port: int, wallet_id: str) -> dict[str, float]:
    """The worker's per-wallet samples for `wallet_id` and the resolution counter, by name and labels."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith(("polycopy_wallet_", "polycopy_market_resolutions_total{")) and (
            f'wallet="{wallet_id}"' in line or "resolutions" in line
        ):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def latest_snapshot(settings: PolycopySettings, wallet_id: str) -> WalletSnapshot | None:
    snapshots = [s for s in read_all(settings, WALLET_SNAPSHOTS, WalletSnapshot) if s.wallet_id == wallet_id]
    return max(snapshots, key=lambda s: s.version) if snapshots else None


def latest_position(settings: PolycopySettings, wallet_id: str, asset: str) -> PositionView | None:
    views = [
        v for v in read_all(settings, POSITIONS, PositionView) if (v.wallet_id, v.asset) == (wallet_id, asset)
    ]
    return max(views, key=lambda v: v.version) if views else None


def polycopy(settings: PolycopySettings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polycopy.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ | settings.to_env(),
        timeout=120,
        check=True,
    )


@pytest.mark.parametrize("wins", [True, False], ids=["won", "lost"])
def test_a_wallet_that_bought_into_a_market_that_resolved_is_settled_everywhere(
    settings_factory, simulator_factory, tmp_path: Path, wins: bool
) -> None:  # type: ignore[no-untyped-def]
    venue = simulator_factory(seed=41, auto_trades=False)
    port = free_port()
    settings = settings_factory(
        clob_url=venue.server.clob_url,
        metrics_enabled=True,
        metrics_port=port,
        wallet_snapshot_interval_secs=0.5,
    )
    quiet = settings.model_copy(update={"metrics_enabled": False})  # the executor and sink run in-process
    wallet = build_buying_wallet(LEADER)
    publish(settings, WALLET_CONFIG, [(wallet.id, wallet)])
    market = venue.simulator.markets[0]
    token, other = market.token_ids[0], market.token_ids[1]
    trade = build_trade(
        proxy_wallet=LEADER,
        asset=token,
        condition_id=market.condition_id,
        price=venue.simulator.midpoint(token).quantize(Decimal("0.01")),
        size=Decimal("40"),
        transaction_hash="0x" + "77" * 32,
        # matched and received now: the worker judges a signal's age at its decision time
        timestamp=int(time.time()),
        received_at_ms=int(time.time() * 1000),
    )

    with WorkerProcess(settings, tmp_path / "worker.log"):
        publish(settings, RAW_TRADES, [(trade.proxy_wallet, trade)])
        wait_until(lambda: read_all(settings, ORDER_INTENTS, OrderIntent), what="the copy's order intent")
        build_executor(quiet, PipelineMetrics()).run(max_idle_secs=3)
        [fill] = [
            r for r in read_all(settings, EXECUTION_REPORTS, ExecutionReport) if r.kind is ReportKind.FILL
        ]
        assert fill.matched_size > 0 and fill.average_price is not None
        # Independently of the ledger: what the shares cost, and what they pay when the market resolves.
        shares, cost = fill.matched_size, fill.matched_size * fill.average_price
        payout = Decimal(1) if wins else Decimal(0)
        realised = shares * payout - cost

        def holds_it() -> bool:
            position = latest_position(settings, wallet.id, token)
            return position is not None and position.status.value == "open" and position.shares == shares

        wait_until(holds_it, what="the filled position, open")
        wait_until(
            lambda: (
                scrape(port, wallet.id).get(f'polycopy_wallet_deployed_usdc{{wallet="{wallet.id}"}}')
                == float(cost)
            ),
            what="the deployed gauge",
        )

        resolution = MarketResolution(
            condition_id=market.condition_id,
            payouts={token: payout, other: 1 - payout},
            winning_token_id=token if wins else other,
            resolved_at_ms=time.time_ns() // 1_000_000,
            source=ResolutionSource.GAMMA,
        )
        publish(settings, RESOLUTIONS, [(resolution.condition_id, resolution)])

        def settled() -> bool:
            snapshot = latest_snapshot(settings, wallet.id)
            return snapshot is not None and snapshot.settled_positions == 1

        wait_until(settled, timeout_secs=90, what="a snapshot with the settled position")
        metrics = scrape(port, wallet.id)

    # The topics: the position settled at its payout, the realised PnL booked, the capital back.
    position = latest_position(settings, wallet.id, token)
    assert position is not None
    assert (position.status.value, position.payout, position.realised_pnl_usdc) == (
        "settled",
        payout,
        realised,
    )
    snapshot = latest_snapshot(settings, wallet.id)
    assert snapshot is not None
    assert (snapshot.realised_pnl_usdc, snapshot.deployed_usdc, snapshot.reserved_usdc) == (realised, 0, 0)
    assert snapshot.available_usdc == wallet.capital_usdc + realised
    assert (snapshot.open_positions, snapshot.winning_positions) == ((), int(wins))

    # The metrics.
    label = f'{{wallet="{wallet.id}"}}'
    assert metrics[f"polycopy_wallet_deployed_usdc{label}"] == 0
    assert metrics[f"polycopy_wallet_available_usdc{label}"] == pytest.approx(float(snapshot.available_usdc))
    assert metrics[f"polycopy_wallet_capital_usdc{label}"] == float(wallet.capital_usdc)
    realised_key = f'polycopy_wallet_pnl_usdc{{kind="realised",wallet="{wallet.id}"}}'
    assert metrics[realised_key] == pytest.approx(float(realised))
    assert metrics['polycopy_market_resolutions_total{source="gamma"}'] == 1
    assert metrics[f'polycopy_wallet_decisions_total{{action="copy",wallet="{wallet.id}"}}'] == 1

    # The tables, written by the PostgreSQL sink.
    build_postgres_sink(quiet, PipelineMetrics()).run(max_idle_secs=3)
    assert query(
        settings.database_url,
        "SELECT available_usdc, deployed_usdc, realised_pnl_usdc, settled_positions, open_positions "
        "FROM wallet_snapshots WHERE wallet_id = %s",
        (wallet.id,),
    ) == [(wallet.capital_usdc + realised, 0, realised, 1, 0)]
    assert query(
        settings.database_url,
        "SELECT status, payout, realised_pnl_usdc FROM positions WHERE wallet_id = %s AND asset = %s",
        (wallet.id, token),
    ) == [("settled", payout, realised)]
    assert query(settings.database_url, "SELECT winning_token_id FROM market_resolutions") == [
        (resolution.winning_token_id,)
    ]

    # `polycopy wallets show`.
    shown = polycopy(settings, "wallets", "show", wallet.id).stdout
    assert f"available       {wallet.capital_usdc + realised:>12.2f}" in shown
    assert f"realised PnL    {realised:>12.2f}" in shown
    assert "settled positions 1" in shown and "open positions (0):" in shown
    as_json = json.loads(polycopy(settings, "wallets", "show", wallet.id, "--json").stdout)
    assert WalletSnapshot.model_validate(as_json) == snapshot
