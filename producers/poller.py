"""The safety-net poller: every few minutes, each followed wallet's recent fills, from the Data API to Kafka.

The RTDS feed is undocumented and has gone silent before; this catches what it missed. Per wallet it reads the
fills since its watermark minus an overlap (the per-user feed lags the chain by seconds and fills can be
indexed out of order), publishes them with source `poll`, and persists the newest fill time as the new
watermark. What the socket already delivered is dropped downstream by the target filter's dedup key.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from polycopy.infra.kafka import now_ms
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.http import VenueHttpError
from producers.parsing import TradeParseError, build_raw_trade
from producers.publisher import Publisher, TradePublisher
from schemas.deadletter import build_dead_letter
from schemas.reference import PollerWatermark
from schemas.topics import POLLER_WATERMARKS
from schemas.trades import RawTrade, TradeSource
from schemas.wallets import WalletConfig

log = logging.getLogger(__name__)

PARSE_STAGE = "poll-parse"


class PollerError(RuntimeError):
    """A poll run could not complete: its messages were not delivered to Kafka (watermarks stay put)."""


class TopicTable(Protocol):
    """The latest value per key of a compacted topic (`infra.kafka.CompactedTopicReader`, or a fake)."""

    def start(self) -> TopicTable: ...

    def stop(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


class UserTradesClient(Protocol):
    """Where the poller reads a wallet's fills (the adapter's VenueHttpClient, or a fake in tests)."""

    def fetch_user_trades(
        self, wallet: str, *, start_secs: int | None = None, limit: int = 500, offset: int = 0
    ) -> list[dict[str, Any]]: ...


# --- pure core ----------------------------------------------------------------------------------------------
def select_wallets(wallets: Iterable[WalletConfig], synced_traders: Iterable[str]) -> tuple[str, ...]:
    """The trader wallets to poll: those some copy wallet follows (`WalletConfig.follows`: an enabled
    wallet's targets, or the synced traders for an enabled wallet without targets). Lower-case, sorted."""
    configs = list(wallets)
    synced = frozenset(trader.lower() for trader in synced_traders)
    candidates = synced.union(*(wallet.targets for wallet in configs))
    return tuple(sorted(trader for trader in candidates if any(w.follows(trader, synced) for w in configs)))


def plan_poll(watermark_secs: int | None, now_secs: int, overlap_secs: int, first_lookback_secs: int) -> int:
    """The start (epoch seconds, inclusive) of a wallet's poll window.

    With a watermark: `overlap_secs` before it, so fills indexed late or out of order are read again. Without
    one (a wallet never polled): `first_lookback_secs` before now, so a new target's whole history is not
    replayed as fresh signals.
    """
    if watermark_secs is None:
        return max(0, now_secs - first_lookback_secs)
    return max(0, watermark_secs - overlap_secs)


def is_last_page(rows: Sequence[Mapping[str, Any]], page_size: int, start_secs: int) -> bool:
    """True when no older page can hold fills of the window: a short page, or one reaching past its start."""
    if len(rows) < page_size:
        return True
    return any(_is_older(row, start_secs) for row in rows)


def advance_watermark(watermark_secs: int | None, trades: Iterable[RawTrade]) -> int | None:
    """The newest fill time seen: the previous watermark or the newest of `trades`, whichever is later."""
    newest = max((trade.timestamp for trade in trades), default=None)
    if newest is None:
        return watermark_secs
    return newest if watermark_secs is None else max(watermark_secs, newest)


def _is_older(row: Mapping[str, Any], start_secs: int) -> bool:
    # An unreadable time is not "older": the row goes on to parsing, which sends it to the dead-letter topic.
    try:
        stamp = int(row["timestamp"])
    except (KeyError, TypeError, ValueError):
        return False
    return (stamp // 1000 if stamp > 10**11 else stamp) < start_secs


# --- shell --------------------------------------------------------------------------------------------------
@dataclass
class WalletPoll:
    """One wallet's poll: the fills of its window (unique), the rows refused, whether pages ran out."""

    wallet: str
    start_secs: int
    trades: list[RawTrade] = field(default_factory=list)
    fetched: int = 0
    refused: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    truncated: bool = False


def read_window(
    client: UserTradesClient,
    wallet: str,
    start_secs: int,
    *,
    received_at_ms: int,
    page_size: int = 500,
    max_pages: int = 3,
) -> WalletPoll:
    """Read one wallet's fills at or after `start_secs`, newest first, page by page (at most `max_pages`).

    Rows older than the window are dropped even when the venue ignores `start`; offset pages shift when fills
    arrive mid-read, so a row may come twice and only the first is kept (by dedup key).
    """
    poll = WalletPoll(wallet, start_secs)
    seen: set[str] = set()
    for page in range(max_pages):
        rows = client.fetch_user_trades(
            wallet, start_secs=start_secs, limit=page_size, offset=page * page_size
        )
        for row in rows:
            if _is_older(row, start_secs):
                continue
            poll.fetched += 1
            try:
                trade = build_raw_trade(dict(row), source=TradeSource.POLL, received_at_ms=received_at_ms)
            except TradeParseError as error:
                poll.refused.append((str(error), row))
                continue
            if trade.dedup_key not in seen:
                seen.add(trade.dedup_key)
                poll.trades.append(trade)
        if is_last_page(rows, page_size, start_secs):
            return poll
    poll.truncated = True
    log.warning(
        "wallet %s has more than %d fills since %d; the oldest were not read",
        wallet,
        max_pages * page_size,
        start_secs,
    )
    return poll


@dataclass(frozen=True)
class PollSummary:
    """One run, for the log line and tests."""

    wallets: int
    fetched: int
    published: int
    failed_wallets: int
    truncated_wallets: int
    watermarks: dict[str, int]


@dataclass(frozen=True)
class PollerTables:
    """The compacted topics the poller reads: wallet configs and synced traders (followed while it runs),
    and its own watermarks (read once at start)."""

    wallets: TopicTable  # WALLET_CONFIG -> WalletConfig
    traders: TopicTable  # TRADERS -> TraderReference
    watermarks: TopicTable  # POLLER_WATERMARKS -> PollerWatermark


class SafetyNetPoller:
    """Polls the followed wallets; `start()` loads wallet configs, traders and watermarks from Kafka."""

    def __init__(
        self,
        settings: PolycopySettings,
        client: UserTradesClient,
        publisher: Publisher,
        metrics: PipelineMetrics,
        tables: PollerTables,
        *,
        page_size: int = 500,
        max_pages: int = 3,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        # 3 pages of 500 keep `offset` <= 1000, the strictest bound a Data API revision documents.
        self._client, self._publisher, self._metrics, self._tables = client, publisher, metrics, tables
        self._trades = TradePublisher(publisher, metrics, stage=PARSE_STAGE)
        self._page_size, self._max_pages, self._clock_ms = page_size, max_pages, clock_ms
        self._overlap_secs = settings.poll_overlap_secs
        self._first_lookback_secs = int(settings.poll_interval_secs) + settings.poll_overlap_secs
        self._watermarks: dict[str, int] = {}

    def start(self) -> SafetyNetPoller:
        """Load the watermarks; start following the wallet configuration and the synced traders."""
        watermark_reader = self._tables.watermarks.start()
        try:
            self._watermarks = {
                wallet: mark.last_trade_timestamp for wallet, mark in watermark_reader.snapshot().items()
            }
        finally:
            watermark_reader.stop()
        self._tables.wallets.start()
        self._tables.traders.start()
        return self

    def stop(self) -> None:
        self._tables.wallets.stop()
        self._tables.traders.stop()

    def watermarks(self) -> dict[str, int]:
        return dict(self._watermarks)

    def run_once(self, stop: threading.Event | None = None) -> PollSummary:
        """Poll every followed wallet once; publish its fills, then (once delivered) its new watermark.

        A `stop` set mid-run (SIGTERM) ends the reading at the next wallet: what was read is still published
        and its watermarks advanced, the unread wallets keep theirs, so a shutdown never waits out a run."""
        now = self._clock_ms()
        failures_before = self._publisher.delivery_failures
        wallets = select_wallets(self._tables.wallets.snapshot().values(), self._tables.traders.snapshot())
        polls: list[WalletPoll] = []
        failed = 0
        for wallet in wallets:
            if stop is not None and stop.is_set():
                log.info("poll run stopped: %d of %d wallets read", len(polls) + failed, len(wallets))
                break
            start = plan_poll(
                self._watermarks.get(wallet), now // 1000, self._overlap_secs, self._first_lookback_secs
            )
            try:
                polls.append(
                    read_window(
                        self._client,
                        wallet,
                        start,
                        received_at_ms=now,
                        page_size=self._page_size,
                        max_pages=self._max_pages,
                    )
                )
            except VenueHttpError as error:
                failed += 1
                log.warning("poll of wallet %s failed, its watermark stays: %s", wallet, error)
        for poll in polls:
            self._publish_refused(poll, now)
            for trade in poll.trades:
                self._trades.publish_trade(trade)
        undelivered = self._publisher.flush(30)
        if undelivered or self._publisher.delivery_failures > failures_before:
            # Watermarks advance only past delivered fills, so the next run reads these fills again.
            raise PollerError("poll run not delivered to Kafka; watermarks not advanced")
        advanced = self._advance_watermarks(polls, now)
        fetched = sum(poll.fetched for poll in polls)
        published = sum(len(poll.trades) for poll in polls)
        truncated = sum(poll.truncated for poll in polls)
        self._metrics.poller_runs.inc()
        self._metrics.poller_trades_fetched.inc(fetched)
        log.info(
            "poll run: %d wallets polled, %d trades fetched, %d published, %d wallets failed, "
            "%d wallets truncated",
            len(wallets),
            fetched,
            published,
            failed,
            truncated,
        )
        return PollSummary(
            wallets=len(wallets),
            fetched=fetched,
            published=published,
            failed_wallets=failed,
            truncated_wallets=truncated,
            watermarks=advanced,
        )

    def run_forever(self, interval_secs: float, stop: threading.Event) -> int:
        """Run every `interval_secs` until `stop` is set; returns how many runs. Failed runs are logged."""
        runs = 0
        while not stop.is_set():
            try:
                self.run_once(stop)
            except PollerError as error:
                log.error("poll run failed: %s", error)
            runs += 1
            stop.wait(interval_secs)
        return runs

    def _publish_refused(self, poll: WalletPoll, now: int) -> None:
        for reason, row in poll.refused:
            self._metrics.parse_errors.labels(PARSE_STAGE).inc()
            self._metrics.dead_letters.labels(PARSE_STAGE).inc()
            self._publisher.publish_dead_letter(
                build_dead_letter(PARSE_STAGE, reason, json.dumps(row, default=str), occurred_at_ms=now)
            )
            log.warning(
                "unreadable Data API row of wallet %s sent to the dead-letter topic: %s", poll.wallet, reason
            )

    def _advance_watermarks(self, polls: Iterable[WalletPoll], now: int) -> dict[str, int]:
        advanced: dict[str, int] = {}
        for poll in polls:
            previous = self._watermarks.get(poll.wallet)
            mark = advance_watermark(previous, poll.trades)
            if mark is None or mark == previous:
                continue
            self._publisher.publish(
                POLLER_WATERMARKS,
                poll.wallet,
                PollerWatermark(wallet=poll.wallet, last_trade_timestamp=mark, updated_at_ms=now),
            )
            advanced[poll.wallet] = mark
        if self._publisher.flush(30):
            raise PollerError("poller watermarks not delivered to Kafka")
        self._watermarks.update(advanced)
        return advanced
