"""Operator commands as a user types them: wallet files, what-if replays, topic dumps."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from polycopy.infra.settings import PolycopySettings
from polycopy.tools.whatif import run_whatif
from processors.core.books import stamp_book
from schemas.books import BookSource
from schemas.decisions import Decision
from schemas.reference import MarketReference
from schemas.topics import BOOKS, DECISIONS, MARKETS, RAW_TRADES
from schemas.wallets import WalletConfig
from tests.builders import ASSET, CONDITION_ID, TRADER, build_book, build_trade
from tests.integration.helpers import publish, read_all

pytestmark = pytest.mark.integration

GOOD = """
wallets:
  - id: alice
    capital_usdc: "500"
    targets: ["0x{trader}"]
    sizing: {{mode: ratio, value: "0.2"}}
"""
BAD = """
wallets:
  - id: alice
    capital_usdc: "-5"
    sizing: {mode: martingale}
  - id: bob
    capital_usdc: "100"
    order_type: GTD
"""


def polycopy(settings: PolycopySettings, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "polycopy.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ | settings.to_env(),
        timeout=120,
    )


def test_a_bad_wallet_file_is_refused_whole_with_one_line_per_problem(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = polycopy(settings, "wallets", "apply", str(path))
    assert result.returncode == 2
    problems = result.stderr.strip().splitlines()
    assert any("wallets.0.capital_usdc" in line for line in problems)
    assert any("wallets.0.sizing.mode" in line for line in problems)
    assert any("wallets.1" in line and "expiry_secs" in line for line in problems)
    assert problems[-1].endswith("refused, nothing applied")
    assert "no wallet" in polycopy(settings, "wallets", "show", "bob").stderr


def test_a_good_wallet_file_is_applied_and_read_back(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "good.yaml"
    path.write_text(GOOD.format(trader=TRADER[2:].upper()))
    assert polycopy(settings, "wallets", "apply", str(path)).returncode == 0
    listed = polycopy(settings, "wallets", "list").stdout
    assert "alice" in listed and "ratio:0.2" in listed
    shown = json.loads(polycopy(settings, "wallets", "show", "alice", "--config").stdout)
    assert shown["targets"] == [TRADER] and shown["capital_usdc"] == "500"


def test_topics_dump_prints_json_lines(settings) -> None:  # type: ignore[no-untyped-def]
    trade = build_trade()
    publish(settings, RAW_TRADES, [(trade.proxy_wallet, trade)])
    lines = polycopy(settings, "topics", "dump", "trades.raw", "--from-beginning").stdout.splitlines()
    assert [json.loads(line)["value"]["dedup_key"] for line in lines] == [trade.dedup_key]


def test_whatif_replays_the_log_into_sandbox_topics_only(settings) -> None:  # type: ignore[no-untyped-def]
    trades = [
        build_trade(
            transaction_hash="0x" + f"{n:064x}",
            received_at_ms=1_790_000_000_000 + n * 1000,
            timestamp=1_790_000_000 + n,
        )
        for n in range(6)
    ]
    # The books the live gate would have seen: a channel state of the token received before each trade.
    states = [stamp_book(build_book(), BookSource.CHANNEL, trade.received_at_ms - 100) for trade in trades]
    publish(settings, BOOKS, [(state.asset, state) for state in states])
    market = MarketReference(condition_id=CONDITION_ID, token_ids=(ASSET,), updated_at_ms=1)
    publish(settings, MARKETS, [(market.condition_id, market)])
    publish(settings, RAW_TRADES, [(t.proxy_wallet, t) for t in trades[:2]])
    time.sleep(0.05)
    from_ms = time.time_ns() // 1_000_000  # the log's time: the window starts at the third trade
    time.sleep(0.05)
    publish(settings, RAW_TRADES, [(t.proxy_wallet, t) for t in trades[2:]])
    wallets = [WalletConfig(id="tryout", capital_usdc=Decimal("25"), targets=(TRADER,))]
    lines: list[str] = []
    result = run_whatif(settings, wallets, from_ms=from_ms, sandbox="wi1", out=lines.append)
    assert result.trades == 4
    assert (result.books.rebuilt, result.books.missing) == (4, 0)
    report = result.reports[0]
    # 10 USDC a copy from 25: two full copies (filled at 0.50, under their 0.52 limit), a third with what is
    # left, then nothing
    assert (report.considered, report.copied, dict(report.skipped)) == (4, 3, {"capital_exhausted": 1})
    assert report.capital_used_usdc <= Decimal("25")
    sandbox = settings.model_copy(update={"topic_prefix": result.sandbox_prefix})
    assert len(read_all(sandbox, DECISIONS, Decision)) == 4
    assert {d.book_id for d in read_all(sandbox, DECISIONS, Decision)} <= {s.book_id for s in states}
    assert read_all(settings, DECISIONS, Decision) == []  # the live topics are untouched
    assert any("tryout" in line and "capital_exhausted 1" in line for line in lines)


def test_whatif_settles_a_market_that_resolved_among_the_replayed_trades_and_charts_pnl(
    settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The trades keep their recorded receive times (a capture replayed into the log now): the resolution, at
    a receive time among them, is within the replayed window although the log was written later."""
    from schemas.orders import OrderIntent
    from schemas.portfolio import MarketResolution, ResolutionSource
    from schemas.topics import ORDER_INTENTS, RESOLUTIONS

    trades = [
        build_trade(
            transaction_hash="0x" + f"{n + 50:064x}",
            received_at_ms=1_790_000_000_000 + n * 1000,
            timestamp=1_790_000_000 + n,
        )
        for n in range(6)
    ]
    states = [stamp_book(build_book(), BookSource.CHANNEL, trade.received_at_ms - 100) for trade in trades]
    publish(settings, BOOKS, [(state.asset, state) for state in states])
    market = MarketReference(condition_id=CONDITION_ID, token_ids=(ASSET,), updated_at_ms=1, closed=True)
    resolution = MarketResolution(
        condition_id=CONDITION_ID,
        payouts={ASSET: Decimal(1)},
        winning_token_id=ASSET,
        resolved_at_ms=trades[2].received_at_ms + 500,
        source=ResolutionSource.GAMMA,
    )
    publish(settings, MARKETS, [(market.condition_id, market)])
    publish(settings, RESOLUTIONS, [(resolution.condition_id, resolution)])
    from_ms = time.time_ns() // 1_000_000
    publish(settings, RAW_TRADES, [(t.proxy_wallet, t) for t in trades])
    wallets = [WalletConfig(id="tryout", capital_usdc=Decimal("100"), targets=(TRADER,))]

    result = run_whatif(settings, wallets, from_ms=from_ms, sandbox="wi2", out=[].append)

    assert result.settled_markets == 1
    [report] = result.reports
    # Open until its resolution (whatever the markets topic says now), closed after it.
    assert (report.copied, dict(report.skipped)) == (3, {"market_closed": 3})
    sandbox = settings.model_copy(update={"topic_prefix": result.sandbox_prefix})
    shares = sum(i.size for i in read_all(sandbox, ORDER_INTENTS, OrderIntent))  # deep book: all filled
    snapshot = report.snapshot
    assert snapshot is not None
    assert snapshot.realised_pnl_usdc == shares - report.capital_used_usdc > 0  # each share paid 1
    assert (snapshot.deployed_usdc, snapshot.settled_positions, snapshot.winning_positions) == (0, 1, 1)
    assert snapshot.available_usdc == Decimal("100") + snapshot.realised_pnl_usdc

    # The command prints the same figures and draws the wallet's PnL.
    path = tmp_path / "wallets.yaml"
    path.write_text(f'wallets:\n  - id: tryout\n    capital_usdc: "100"\n    targets: ["{TRADER}"]\n')
    shown = polycopy(
        settings, "whatif", "--from", str(from_ms), "--wallets", str(path), "--sandbox", "wi3",
        "--chart", str(tmp_path / "charts"),
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "1 markets resolved within the window" in shown.stdout
    figures = [line.split() for line in shown.stdout.splitlines() if line.startswith("tryout")][-1]
    available, realised = f"{snapshot.available_usdc:.2f}", f"{snapshot.realised_pnl_usdc:.2f}"
    assert figures[1:7] == ["100.00", available, "0.00", "0.00", realised, "0.00"]
    assert (tmp_path / "charts" / "tryout-pnl.png").read_bytes().startswith(b"\x89PNG")
