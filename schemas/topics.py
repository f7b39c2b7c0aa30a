"""The one place that names every topic: name, key, value model, partitions, cleanup policy."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.alerts import Alert
from schemas.base import Message
from schemas.books import OrderBook
from schemas.control import KillSwitch
from schemas.deadletter import DeadLetter
from schemas.decisions import Decision
from schemas.orders import ExecutionReport, OrderEvent, OrderIntent
from schemas.portfolio import MarketResolution, PositionView, WalletResolution, WalletSnapshot
from schemas.reference import MarketReference, PollerWatermark, TraderReference
from schemas.trades import RawTrade, TargetedTrade
from schemas.wallets import WalletConfig

# Topics keyed by copy-wallet id must share one partition count: the processors keep per-wallet state
# (the ledger) that is co-partitioned with the wallet's trades, intents, reports and events.
WALLET_PARTITIONS = 4


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is laid out."""

    name: str
    key: str  # what the key holds, for humans and docs
    value_model: type[Message]
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None
    description: str = ""

    def broker_config(self) -> dict[str, str]:
        """Topic-level broker settings for creation."""
        settings = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            settings["retention.ms"] = str(self.retention_ms)
        return settings


DAY_MS = 24 * 3600 * 1000
WEEK_MS = 7 * DAY_MS

RAW_TRADES = TopicSpec(
    "polycopy.trades.raw.v1",
    "trader wallet (lower-case)",
    RawTrade,
    6,
    retention_ms=4 * WEEK_MS,
    description="every fill seen on the venue feed, the REST poller or a replay",
)
TARGETED_TRADES = TopicSpec(
    "polycopy.trades.targeted.v1",
    "copy-wallet id",
    TargetedTrade,
    WALLET_PARTITIONS,
    retention_ms=WEEK_MS,
    description="one message per (trade, copy wallet following its trader)",
)
DECISIONS = TopicSpec(
    "polycopy.decisions.v1",
    "copy-wallet id",
    Decision,
    WALLET_PARTITIONS,
    retention_ms=4 * WEEK_MS,
    description="every evaluation outcome, skips included, with the reason",
)
ORDER_INTENTS = TopicSpec(
    "polycopy.orders.intents.v1",
    "copy-wallet id",
    OrderIntent,
    WALLET_PARTITIONS,
    retention_ms=4 * WEEK_MS,
    description="orders the policy decided to place; the executor's input",
)
EXECUTION_REPORTS = TopicSpec(
    "polycopy.orders.reports.v1",
    "copy-wallet id",
    ExecutionReport,
    WALLET_PARTITIONS,
    retention_ms=4 * WEEK_MS,
    description="what the executor saw the venue (or paper book) do",
)
ORDER_EVENTS = TopicSpec(
    "polycopy.orders.events.v1",
    "copy-wallet id",
    OrderEvent,
    WALLET_PARTITIONS,
    retention_ms=4 * WEEK_MS,
    description="OrderPlaced / PartialFill / Filled / Cancelled / Lost / Rejected",
)
WALLET_CONFIG = TopicSpec(
    "polycopy.config.wallets.v1",
    "copy-wallet id",
    WalletConfig,
    1,
    compacted=True,
    description="copy-wallet configuration; the latest value per wallet wins, null deletes",
)
MARKETS = TopicSpec(
    "polycopy.reference.markets.v1",
    "condition id",
    MarketReference,
    3,
    compacted=True,
    description="market metadata from Gamma: category, tags, end date, closed, tick size, token ids",
)
TRADERS = TopicSpec(
    "polycopy.reference.traders.v1",
    "trader wallet (lower-case)",
    TraderReference,
    1,
    compacted=True,
    description="leaderboard traders (followed by wallets without explicit targets) and their stats",
)
POLLER_WATERMARKS = TopicSpec(
    "polycopy.poller.watermarks.v1",
    "trader wallet (lower-case)",
    PollerWatermark,
    1,
    compacted=True,
    description="newest trade time the safety-net poller has seen per wallet",
)
BOOKS = TopicSpec(
    "polycopy.books.v1",
    "token id",
    OrderBook,
    6,
    retention_ms=3 * DAY_MS,
    description="the full book of a token after each change (market channel or a worker's GET /book); "
    "null = the channel's book of that token is no longer current",
)
DEAD_LETTERS = TopicSpec(
    "polycopy.deadletter.v1",
    "stage name",
    DeadLetter,
    1,
    retention_ms=4 * WEEK_MS,
    description="input that could not be processed, with the reason",
)

CONTROL = TopicSpec(
    "polycopy.control.v1",
    "copy-wallet id, or * for every wallet",
    KillSwitch,
    1,
    compacted=True,
    description="operator controls: the kill switch stops new orders and cancels open ones (latest wins)",
)
ALERTS = TopicSpec(
    "polycopy.alerts.v1",
    "alert kind",
    Alert,
    1,
    retention_ms=4 * WEEK_MS,
    description="alerts for operators (breakers, silent feeds; lost orders and kill switches are added by "
    "the alerts sink), posted to the webhook once each",
)
RESOLUTIONS = TopicSpec(
    "polycopy.reference.resolutions.v1",
    "condition id",
    MarketResolution,
    3,
    compacted=True,
    description="how markets resolved: the payout per token, when, and where it was learnt (Gamma, the "
    "market channel)",
)
WALLET_RESOLUTIONS = TopicSpec(
    "polycopy.wallets.resolutions.v1",
    "copy-wallet id",
    WalletResolution,
    WALLET_PARTITIONS,
    retention_ms=4 * WEEK_MS,
    description="each resolution fanned out to every copy wallet, so that its own partition settles it",
)
POSITIONS = TopicSpec(
    "polycopy.wallets.positions.v1",
    "copy-wallet id",
    PositionView,
    WALLET_PARTITIONS,
    retention_ms=4 * WEEK_MS,
    description="a (wallet, token) position after each change: bought, sold, settled, redeemable, closed",
)
WALLET_SNAPSHOTS = TopicSpec(
    "polycopy.wallets.snapshots.v1",
    "copy-wallet id",
    WalletSnapshot,
    1,
    compacted=True,
    description="each wallet's capital, PnL, open positions and orders, published when its state changes "
    "(rate-limited; the latest wins)",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    RAW_TRADES,
    TARGETED_TRADES,
    DECISIONS,
    ORDER_INTENTS,
    EXECUTION_REPORTS,
    ORDER_EVENTS,
    WALLET_CONFIG,
    MARKETS,
    TRADERS,
    POLLER_WATERMARKS,
    BOOKS,
    DEAD_LETTERS,
    CONTROL,
    ALERTS,
    RESOLUTIONS,
    WALLET_RESOLUTIONS,
    POSITIONS,
    WALLET_SNAPSHOTS,
)


def find_topic(name: str) -> TopicSpec:
    """Look a topic up by its full name or its short form (e.g. `decisions`, `trades.raw`)."""
    for spec in ALL_TOPICS:
        short = spec.name.removeprefix("polycopy.").rsplit(".v", 1)[0]
        if name in (spec.name, short):
            return spec
    known = ", ".join(spec.name for spec in ALL_TOPICS)
    raise KeyError(f"unknown topic {name!r}; known topics: {known}")
