"""`polycopy whatif`: re-read the raw-trade log from a time through a wallet file's policy, into sandbox
topics that no executor reads, and print a per-wallet report."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from polycopy.infra.kafka import MessagePublisher, create_topics, read_topic
from polycopy.infra.settings import PolycopySettings
from processors.core.whatif import WalletReport, WhatIfRun
from schemas.topics import DECISIONS, ORDER_INTENTS, RAW_TRADES
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


@dataclass(frozen=True)
class WhatIfResult:
    """What a what-if run read, wrote and concluded."""

    trades: int
    sandbox_prefix: str
    reports: list[WalletReport]


def run_whatif(
    settings: PolycopySettings,
    wallets: list[WalletConfig],
    *,
    from_ms: int,
    to_ms: int | None = None,
    sandbox: str | None = None,
    out: Callable[[str], None] = print,
) -> WhatIfResult:
    """Replay the raw-trade log in [from_ms, to_ms] through `wallets`; decisions and intents go to sandbox
    topics (`whatif-<run>.` + the usual names), never to the live ones."""
    sandbox_prefix = f"{sandbox or 'whatif-' + str(int(time.time()))}.{settings.topic_prefix}"
    sandbox_settings = settings.model_copy(update={"topic_prefix": sandbox_prefix})
    create_topics(sandbox_settings, (DECISIONS, ORDER_INTENTS))
    records = [
        r
        for r in read_topic(settings, RAW_TRADES, since_ms=from_ms)
        if r.value and (to_ms is None or r.timestamp_ms <= to_ms)
    ]
    records.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))  # one log order across partitions
    out(
        f"whatif: {len(records)} logged trades from {_iso(from_ms)} to {_iso(to_ms) if to_ms else 'now'}, "
        f"{len(wallets)} wallets; sandbox topics {sandbox_prefix}*"
    )
    run = WhatIfRun(wallets)
    publisher = MessagePublisher(sandbox_settings, client_id="polycopy-whatif")
    for number, record in enumerate(records, 1):
        for result in run.feed(RawTrade.model_validate_json(record.value)):
            publisher.publish(DECISIONS, result.decision.wallet_id, result.decision)
            if result.intent is not None:
                publisher.publish(ORDER_INTENTS, result.intent.wallet_id, result.intent)
        if number % 10_000 == 0:
            out(f"  {number}/{len(records)} trades")
    publisher.flush(60)
    reports = run.finish()
    out(render_reports(reports))
    return WhatIfResult(len(records), sandbox_prefix, reports)


def render_reports(reports: list[WalletReport]) -> str:
    """The per-wallet table."""
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
    return "\n".join(lines)


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
