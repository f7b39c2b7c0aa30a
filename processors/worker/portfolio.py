"""The worker's positions, PnL and settlement edge: resolutions fanned out to every wallet, settled on the
wallet's own partition, and what each wallet event changed published as positions, snapshots and gauges.

Snapshots are rate-limited per wallet: one goes out with an event when the wallet's last one is at least
`POLYCOPY_WALLET_SNAPSHOT_INTERVAL_SECS` old; otherwise the wallet is due, and a timer publishes the snapshots
of due wallets from their saved state (a read; only the agents change a wallet's state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from polycopy.infra.metrics import PipelineMetrics
from processors.core import engine
from processors.core.snapshots import (
    PositionsBefore,
    build_position_changes,
    build_snapshot,
    capture_positions,
)
from processors.core.wallet_state import WalletState
from processors.worker.state import WalletStateStore
from schemas.base import Message
from schemas.portfolio import MarketResolution, WalletResolution, WalletSnapshot
from schemas.topics import ORDER_EVENTS, POSITIONS, WALLET_RESOLUTIONS, WALLET_SNAPSHOTS, TopicSpec

log = logging.getLogger(__name__)


@dataclass
class WalletChange:
    """What one event changed in a wallet, ready to send once its state is saved."""

    wallet_id: str
    messages: list[tuple[TopicSpec, Message]] = field(default_factory=list)


class WalletPublisher:
    """Builds what a wallet event publishes (positions at once, the snapshot rate-limited) and keeps the
    per-wallet gauges. `before` runs before the engine changes the state, `after` after it and before the
    state is saved (it bumps the state's version), and the agent sends `after`'s messages once it saved."""

    def __init__(
        self,
        metrics: PipelineMetrics,
        modes: Callable[[str], str],
        *,
        interval_secs: float,
        clock_ms: Callable[[], int],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics, self._modes = metrics, modes
        self._interval, self._clock_ms, self._monotonic = interval_secs, clock_ms, monotonic
        self._last_published: dict[str, float] = {}
        self.due: set[str] = set()
        # Each wallet's gauges, looked up by label once (`labels()` per gauge per event: 1 % of the worker).
        self._gauges: dict[str, tuple[Any, ...]] = {}

    def before(self, wallet_id: str, state: WalletState) -> PositionsBefore:
        return capture_positions(wallet_id, state, self._clock_ms())

    def after(
        self, wallet_id: str, state: WalletState, before: PositionsBefore, *, events: int = 1
    ) -> WalletChange:
        """`events`: how many events changed the state since `before` (a batch's), each a version."""
        now_ms = self._clock_ms()
        state.portfolio.version += events
        change = WalletChange(wallet_id)
        for view in build_position_changes(before, state, now_ms):
            change.messages.append((POSITIONS, view))
        self.observe(wallet_id, state)  # gauges follow every change; snapshots are rate-limited
        last = self._last_published.get(wallet_id)
        if last is None or self._monotonic() - last >= self._interval:
            change.messages.append((WALLET_SNAPSHOTS, self.snapshot(wallet_id, state, now_ms)))
        else:
            self.due.add(wallet_id)
        return change

    def snapshot(self, wallet_id: str, state: WalletState, now_ms: int) -> WalletSnapshot:
        """The wallet's snapshot now."""
        snapshot = build_snapshot(wallet_id, self._modes(wallet_id), state, now_ms)
        self._last_published[wallet_id] = self._monotonic()
        self.due.discard(wallet_id)
        return snapshot

    def observe(self, wallet: str, state: WalletState) -> None:
        """Set the wallet's gauges (floats for Prometheus; the topics and tables keep the exact decimals)."""
        gauges = self._gauges.get(wallet)
        if gauges is None:
            m = self._metrics
            gauges = self._gauges[wallet] = (
                m.wallet_capital.labels(wallet),
                m.wallet_available.labels(wallet),
                m.wallet_reserved.labels(wallet),
                m.wallet_deployed.labels(wallet),
                m.wallet_pnl.labels(wallet, "realised"),
                m.wallet_pnl.labels(wallet, "unrealised"),
            )
        capital, available, reserved, deployed, realised, unrealised = gauges
        ledger = state.ledger
        capital.set(float(ledger.capital_usdc))
        available.set(float(ledger.available))
        reserved.set(float(ledger.reserved))
        deployed.set(float(ledger.deployed))
        realised.set(float(ledger.realised_pnl))
        unrealised.set(float(state.portfolio.unrealised(ledger)))

    def forget(self, wallet_id: str) -> None:
        """A wallet no longer configured: drop its gauges (their label values stay bounded)."""
        self._last_published.pop(wallet_id, None)
        self._gauges.pop(wallet_id, None)  # removed below: a wallet configured again gets new ones
        self.due.discard(wallet_id)
        m = self._metrics
        for gauge in (m.wallet_capital, m.wallet_available, m.wallet_reserved, m.wallet_deployed):
            _remove(gauge, wallet_id)
        for kind in ("realised", "unrealised"):
            _remove(m.wallet_pnl, wallet_id, kind)


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set for this wallet
        metric.remove(*labels)


class PortfolioAgents:
    """The bodies of the resolution fan-out agent, the settlement agent and the snapshot timer."""

    def __init__(
        self,
        *,
        reference: engine.ReferenceView,
        store: WalletStateStore,
        publisher: WalletPublisher,
        send: Callable[[TopicSpec, str, bytes], Any],
        metrics: PipelineMetrics,
        clock_ms: Callable[[], int],
        locks: Mapping[str, asyncio.Lock],
    ) -> None:
        self._reference, self._store, self._publisher = reference, store, publisher
        self._send, self._metrics, self._clock_ms = send, metrics, clock_ms
        self._locks = locks  # each wallet's, held by its events from load to save

    async def fan_out(self, resolution: MarketResolution) -> None:
        """One resolution to every configured wallet (enabled or not: a disabled wallet still holds what it
        bought), each on its own partition."""
        self._metrics.resolutions.labels(resolution.source.value).inc()
        for wallet_id in sorted(self._reference.wallets()):
            item = WalletResolution(wallet_id=wallet_id, resolution=resolution)
            await self._send(WALLET_RESOLUTIONS, wallet_id, item.to_bytes())

    async def settle(self, item: WalletResolution) -> None:
        """Settle one resolution in one wallet's state and publish what changed."""
        wallet = self._reference.wallets().get(item.wallet_id)
        if wallet is None:
            log.info("wallet %s no longer configured; resolution ignored", item.wallet_id)
            return
        # The caller holds the wallet's lock (the other agents share its state); ack before state: the
        # events and the change are delivered (`send` waits for the broker) before the state is saved.
        state = self._store.load(wallet.id, wallet.capital_usdc)
        before = self._publisher.before(wallet.id, state)
        events = engine.settle(state, wallet.id, item.resolution, wallet.mode, self._clock_ms())
        change = self._publisher.after(wallet.id, state, before)
        for event in events:
            self._metrics.order_events.labels(event.event_type.value).inc()
            await self._send(ORDER_EVENTS, wallet.id, event.to_bytes())
        await self.send(change)
        self._store.save(wallet.id, state)

    async def send(self, change: WalletChange) -> None:
        for spec, message in change.messages:
            await self._send(spec, change.wallet_id, message.to_bytes())

    async def publish_due(self) -> None:
        """The snapshots the rate limit held back, from each wallet's saved state; and forget wallets that
        are no longer configured."""
        wallets = self._reference.wallets()
        for wallet_id in sorted(self._publisher.due):
            wallet = wallets.get(wallet_id)
            if wallet is None:
                self._publisher.forget(wallet_id)
                continue
            # After the wallet's events in flight: the state they save is kept, where a read meanwhile decoded
            # the wallet's value and scanned the tokens table (2 % of the worker under a backlog).
            async with self._locks[wallet_id]:
                state = self._store.load_saved(wallet_id)
            if state is None:
                self._publisher.due.discard(wallet_id)
                continue
            snapshot = self._publisher.snapshot(wallet_id, state, self._clock_ms())
            await self._send(WALLET_SNAPSHOTS, wallet_id, snapshot.to_bytes())
