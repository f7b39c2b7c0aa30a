"""`polycopy whatif`: re-read the raw-trade log from a time through a wallet file on the copy engine, into
sandbox topics that no executor reads, settle the markets that resolved within the window, and print a
per-wallet report (optionally a PnL-over-time chart per wallet)."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from polycopy.infra.kafka import create_topics, read_topic
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.whatif_replay import ReplayInput, replay
from polycopy.wiring import read_table
from processors.core.book_log import ReplayBooks, ReplayedTrade
from processors.core.engine import StaticReference
from processors.core.whatif import WalletReport
from schemas.books import OrderBook
from schemas.decisions import Decision
from schemas.portfolio import MarketResolution
from schemas.reference import MarketReference, TraderReference
from schemas.topics import BOOKS, DECISIONS, MARKETS, ORDER_INTENTS, RAW_TRADES, RESOLUTIONS, TRADERS
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_time_ms(text: str, now_ms: int) -> int:
    """Epoch ms from ISO 8601 (`2026-11-20T12:00:00Z`), epoch seconds or ms, or an age (`90m`, `2h`, `1d`)."""
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        return now_ms - int(relative.group(1)) * _UNIT_MS[relative.group(2)]
    if text.isdigit():
        number = int(text)
        return number if number > 10**11 else number * 1000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use ISO 8601, epoch seconds/ms, or an age like 2h"
        ) from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


class WhatIfTooLargeError(ValueError):
    """The window holds more logged trades than the caller allows (`max_trades`)."""


@dataclass(frozen=True)
class BookCoverage:
    """Where the books of a what-if run came from."""

    pinned: int = 0  # trades decided live, with the state their decisions recorded
    rebuilt: int = 0  # other trades, with the state the live target filter would have chosen
    missing: int = 0  # trades with no book (the live run had none, or the log holds none fresh)
    pinned_missing: int = 0  # trades decided live whose pinned state is no longer in the log


@dataclass(frozen=True)
class WhatIfResult:
    """What a what-if run read, wrote and concluded."""

    trades: int
    sandbox_prefix: str
    reports: list[WalletReport]
    books: BookCoverage = BookCoverage()
    decisions: tuple[Decision, ...] = ()
    settled_markets: int = 0  # markets that resolved within the window and were settled
    charts: tuple[Path, ...] = ()


def run_whatif(
    settings: PolycopySettings,
    wallets: list[WalletConfig],
    *,
    from_ms: int,
    to_ms: int | None = None,
    sandbox: str | None = None,
    out: Callable[[str], None] = print,
    chart_dir: Path | None = None,
    now_ms: int | None = None,
    max_trades: int | None = None,
    publish: bool = True,
    progress: TextIO | None = None,
    keep_decisions: bool = True,
    workers: int = 1,
) -> WhatIfResult:
    """Replay the raw-trade log in [from_ms, to_ms] through `wallets` on the copy engine, with the current
    market and trader reference data and the books rebuilt from the books topic (README, "What if");
    decisions and intents go to sandbox topics (`whatif-<run>.` + the usual names), never to the live ones,
    or nowhere (`publish=False`: the MCP server writes nothing). A window of more than `max_trades` logged
    trades raises `WhatIfTooLargeError` before anything is replayed. A progress bar goes to `progress` (the
    command gives stderr); `keep_decisions=False` leaves the result's decisions empty, so a run over millions
    of trades holds none of them in memory. `workers` > 1 replays shares of the wallets in that many forked
    processes (`whatif_replay`: the same decisions, in the same order)."""
    sandbox_prefix = f"{sandbox or 'whatif-' + str(int(time.time()))}.{settings.topic_prefix}"
    sandbox_settings = settings.model_copy(update={"topic_prefix": sandbox_prefix})
    logged: list[tuple[int, int, int, RawTrade]] = []  # decoded as read: a million raw values are not kept
    for record in read_topic(settings, RAW_TRADES, since_ms=from_ms):
        if record.value and (to_ms is None or record.timestamp_ms <= to_ms):
            trade = RawTrade.model_validate_json(record.value)
            logged.append((record.timestamp_ms, record.partition, record.offset, trade))
            if max_trades is not None and len(logged) > max_trades:  # stop reading: the run is refused
                raise WhatIfTooLargeError(
                    f"the window holds more than the {max_trades} logged trades allowed: "
                    "choose a shorter window"
                )
    if publish:
        create_topics(sandbox_settings, (DECISIONS, ORDER_INTENTS))
    logged.sort(key=lambda entry: entry[:3])  # one log order across partitions
    trades = [trade for *_, trade in logged]
    del logged
    out(
        f"whatif: {len(trades)} logged trades from {_iso(from_ms)} to {_iso(to_ms) if to_ms else 'now'}, "
        f"{len(wallets)} wallets; sandbox topics {sandbox_prefix}*"
    )
    markets = read_table(settings, MARKETS, MarketReference.model_validate_json)
    traders = read_table(settings, TRADERS, TraderReference.model_validate_json)
    reference = StaticReference.build(wallets, markets.values(), traders.values())
    end_ms = to_ms if to_ms is not None else (now_ms if now_ms is not None else time.time_ns() // 1_000_000)
    # The window is in log time, the trades keep their receive times (a replayed capture logs old trades
    # now): a resolution among the trades' receive times is within the window too.
    first_ms = min([from_ms, *(trade.received_at_ms for trade in trades)])
    resolutions = [
        resolution
        for resolution in read_table(settings, RESOLUTIONS, MarketResolution.model_validate_json).values()
        if first_ms <= resolution.resolved_at_ms <= end_ms
    ]
    out(
        f"  reference data: {len(reference.markets_by_token)} market tokens, "
        f"{len(reference.traders)} synced traders, {len(resolutions)} markets resolved within the window"
    )
    live = _read_live_pins(settings, from_ms)
    replayed = {trade.dedup_key: _replayed(trade, live) for trade in trades}
    books = _rebuild_books(settings, list(replayed.values()), from_ms, out)
    out(f"  {sum(t.decided_live for t in replayed.values())} of the trades were decided live")
    coverage = Counter[str]()
    trade_books = []
    for trade in trades:
        book = books.book_for(replayed[trade.dedup_key])
        trade_books.append(book)
        if book is None:
            coverage["missing"] += 1
        else:
            coverage["pinned" if replayed[trade.dedup_key].decided_live else "rebuilt"] += 1
    data = ReplayInput(
        trades,
        trade_books,
        reference,
        resolutions,
        sandbox_settings if publish else None,
        end_ms,
        keep_decisions,
    )
    output = replay(data, workers, progress)
    reports = output.reports
    summary = BookCoverage(coverage["pinned"], coverage["rebuilt"], coverage["missing"], books.pinned_missing)
    out(
        f"  books: {summary.pinned} pinned by the live run, {summary.rebuilt} rebuilt from the books topic, "
        f"{summary.missing} trades without a book"
        + (
            f" ({summary.pinned_missing} pinned states no longer in the log)"
            if summary.pinned_missing
            else ""
        )
    )
    out(render_reports(reports))
    charts: list[Path] = []
    if chart_dir is not None:
        from polycopy.tools.chart import write_pnl_charts

        charts = write_pnl_charts(reports, chart_dir)
        out(f"  PnL charts: {', '.join(str(path) for path in charts)}")
    return WhatIfResult(
        len(trades), sandbox_prefix, reports, summary, tuple(output.decisions), output.settled, tuple(charts)
    )


def _read_live_pins(settings: PolycopySettings, from_ms: int) -> dict[str, str | None]:
    """Dedup key -> the book id the live decisions about that fill recorded (None: the live run had none)."""
    live: dict[str, str | None] = {}
    for record in read_topic(settings, DECISIONS, since_ms=from_ms):
        if record.value:
            decision = Decision.model_validate_json(record.value)
            live[decision.dedup_key] = live.get(decision.dedup_key) or decision.book_id
    return live


def _replayed(trade: RawTrade, live: dict[str, str | None]) -> ReplayedTrade:
    return ReplayedTrade(
        trade.dedup_key,
        trade.asset,
        trade.received_at_ms,
        decided_live=trade.dedup_key in live,
        pinned_book_id=live.get(trade.dedup_key),
    )


def _rebuild_books(
    settings: PolycopySettings, trades: list[ReplayedTrade], from_ms: int, out: Callable[[str], None]
) -> ReplayBooks:
    """The books topic, from a maximum book age before the first trade, fed through the replay rule."""
    replay = ReplayBooks(
        trades,
        channel_max_age_ms=settings.market_book_max_age_ms,
        rest_max_age_ms=settings.book_max_age_ms,
    )
    earliest = min([from_ms, *(trade.received_at_ms for trade in trades)])
    records = 0
    for record in read_topic(settings, BOOKS, since_ms=earliest - settings.market_book_max_age_ms):
        if record.key is None:
            continue
        book = OrderBook.model_validate_json(record.value) if record.value else None
        replay.add(record.key.decode(), book.received_at_ms if book else record.timestamp_ms, book)
        records += 1
    out(f"  {records} book records read from the books topic")
    return replay


def render_reports(reports: list[WalletReport]) -> str:
    """The per-wallet tables: decisions, then the figures `polycopy wallets show` gives for a live wallet."""
    lines = [
        f"{'wallet':20} {'considered':>10} {'copied':>7} {'capital used':>13} {'realised':>10} "
        f"{'mark-to-mkt':>12}  skipped by reason"
    ]
    for r in reports:
        skipped = ", ".join(f"{reason} {count}" for reason, count in r.skipped.most_common()) or "-"
        lines.append(
            f"{r.wallet_id:20} {r.considered:>10} {r.copied:>7} {r.capital_used_usdc:>13.2f} "
            f"{r.realised_pnl_usdc:>10.2f} {r.unrealised_pnl_usdc:>12.2f}  {skipped}"
        )
    lines.append(
        f"{'wallet':20} {'capital':>10} {'available':>10} {'reserved':>9} {'deployed':>9} {'realised':>9} "
        f"{'unrealised':>10} {'fees':>6} {'settled':>7} {'won':>4} {'win rate':>8} {'open':>5}"
    )
    for r in reports:
        s = r.snapshot
        if s is None:
            continue
        win_rate = f"{s.win_rate * 100:.1f}%" if s.win_rate is not None else "-"
        lines.append(
            f"{r.wallet_id:20} {s.capital_usdc:>10.2f} {s.available_usdc:>10.2f} {s.reserved_usdc:>9.2f} "
            f"{s.deployed_usdc:>9.2f} {s.realised_pnl_usdc:>9.2f} {s.unrealised_pnl_usdc:>10.2f} "
            f"{s.fees_usdc:>6.2f} {s.settled_positions:>7} {s.winning_positions:>4} {win_rate:>8} "
            f"{len(s.open_positions):>5}"
        )
    return "\n".join(lines)


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
