"""What the MCP tools read: wallet configurations, snapshots and kill switches from their compacted topics
(followed in the background, so always current), and orders from PostgreSQL. Never writes anything."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from polycopy.infra.kafka import CompactedTopicReader
from polycopy.infra.postgres import query_rows
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.mcp.models import (
    OrderList,
    OrderStatusAnswer,
    OrderView,
    SnapshotSource,
    StrategyDetail,
    StrategyList,
    StrategyStatus,
    StrategySummary,
    ToolInputError,
)
from polycopy.tools.mcp.risk import build_risk_state
from schemas.control import ALL_WALLETS, KillSwitch
from schemas.orders import OrderEvent, OrderIntent, OrderStatus
from schemas.portfolio import OpenOrderView, PositionStatus, PositionView, WalletSnapshot
from schemas.topics import CONTROL, WALLET_CONFIG, WALLET_SNAPSHOTS
from schemas.wallets import WalletConfig

WALLET_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
INTENT_ID = re.compile(r"^[0-9a-f]{32}$")
# Paper orders are derived from their intent; a venue order id is the EIP-712 hash of the signed order.
ORDER_ID = re.compile(r"^(paper-[0-9a-f]{40}|0x[0-9a-fA-F]{64})$")
PENDING = "pending"  # an intent the executor has not reported on yet

_ORDER_COLUMNS = """
    i.intent_id, o.order_id, i.wallet_id, i.mode, COALESCE(o.status, 'pending') AS status, i.side, i.asset,
    i.condition_id, i.size, i.limit_price, COALESCE(o.matched_size, 0) AS matched_size, o.average_price,
    i.order_type, i.dedup_key, i.received_at_ms, i.created_at_ms, o.sent_at_ms, o.updated_at_ms
"""
_ORDERS = f"SELECT {_ORDER_COLUMNS} FROM order_intents i LEFT JOIN orders o ON o.intent_id = i.intent_id"


def check_wallet_id(wallet_id: str) -> str:
    """The id, or a tool error when it cannot be a wallet id."""
    if not WALLET_ID.match(wallet_id):
        raise ToolInputError(
            f"malformed wallet id {wallet_id!r}: 1 to 64 letters, digits, '.', '_' or '-' (list_strategies "
            "names every wallet)"
        )
    return wallet_id


class PipelineReader:
    """Reads the pipeline's state for the tools: the compacted topics it follows, and PostgreSQL."""

    def __init__(self, settings: PolycopySettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._tables: dict[str, CompactedTopicReader] = {}

    # --- the compacted topics, followed from the first call on ---------------------------------------------
    def _table(self, name: str) -> dict[str, Any]:
        specs = {
            "wallets": (WALLET_CONFIG, WalletConfig),
            "snapshots": (WALLET_SNAPSHOTS, WalletSnapshot),
            "control": (CONTROL, KillSwitch),
        }
        with self._lock:
            if name not in self._tables:
                spec, model = specs[name]
                self._tables[name] = CompactedTopicReader(
                    self.settings, spec, model.model_validate_json
                ).start()
            return self._tables[name].snapshot()

    def stop(self) -> None:
        """Stop following the topics."""
        with self._lock:
            for reader in self._tables.values():
                reader.stop()
            self._tables.clear()

    def wallets(self) -> dict[str, WalletConfig]:
        """Every configured wallet by id."""
        return self._table("wallets")

    def kill_switch(self, wallet_id: str) -> KillSwitch | None:
        """The wallet's own kill switch when engaged, else the global one when engaged."""
        control = self._table("control")
        for key in (wallet_id, ALL_WALLETS):
            switch = control.get(key)
            if switch is not None and switch.engaged:
                return switch  # type: ignore[no-any-return]
        return None

    def snapshots(
        self, wallet_ids: Iterable[str] | None = None
    ) -> dict[str, tuple[WalletSnapshot, SnapshotSource]]:
        """The newest snapshot of each wallet: the topic's, or the table's when it holds a newer version."""
        from_topic: dict[str, WalletSnapshot] = self._table("snapshots")
        wanted = None if wallet_ids is None else list(wallet_ids)
        found = {
            wallet_id: (snapshot, SnapshotSource.TOPIC)
            for wallet_id, snapshot in from_topic.items()
            if wanted is None or wallet_id in wanted
        }
        for snapshot in self._snapshots_from_database(wanted):
            known = found.get(snapshot.wallet_id)
            if known is None or known[0].version < snapshot.version:
                found[snapshot.wallet_id] = (snapshot, SnapshotSource.DATABASE)
        return found

    def _snapshots_from_database(self, wallet_ids: Sequence[str] | None) -> list[WalletSnapshot]:
        filter_sql = "" if wallet_ids is None else " WHERE wallet_id = ANY(%(ids)s)"
        rows = self._rows(f"SELECT * FROM wallet_snapshots{filter_sql}", {"ids": wallet_ids})
        if not rows:
            return []
        positions: dict[str, list[PositionView]] = {}
        for row in self._rows(
            "SELECT * FROM positions WHERE wallet_id = ANY(%(ids)s) AND status = ANY(%(held)s) "
            "ORDER BY wallet_id, asset",
            {
                "ids": [row["wallet_id"] for row in rows],
                "held": [PositionStatus.OPEN.value, PositionStatus.REDEEMABLE.value],
            },
        ):
            positions.setdefault(row["wallet_id"], []).append(PositionView.model_validate(row))
        snapshots = []
        for row in rows:
            fields = {key: value for key, value in row.items() if key in WalletSnapshot.model_fields}
            fields["open_positions"] = tuple(positions.get(row["wallet_id"], ()))
            fields["open_orders"] = tuple(OpenOrderView.model_validate(order) for order in row["orders"])
            snapshots.append(WalletSnapshot.model_validate(fields))
        return snapshots

    def _rows(self, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return query_rows(self.settings.database_url, statement, params)

    # --- strategies ----------------------------------------------------------------------------------------
    def list_strategies(self) -> StrategyList:
        """Every configured wallet, and removed ones that still have a snapshot, by id."""
        wallets = self.wallets()
        snapshots = self.snapshots()
        summaries = []
        for wallet_id in sorted(set(wallets) | set(snapshots)):
            config = wallets.get(wallet_id)
            snapshot = snapshots[wallet_id][0] if wallet_id in snapshots else None
            summaries.append(_summary(wallet_id, config, snapshot))
        return StrategyList(strategies=tuple(summaries))

    def require_wallet(self, wallet_id: str) -> WalletConfig | None:
        """The wallet's configuration (None: removed, but it still has a snapshot), or a tool error."""
        check_wallet_id(wallet_id)
        config = self.wallets().get(wallet_id)
        if config is None and not self.snapshots([wallet_id]):
            known = ", ".join(sorted(self.wallets())) or "none"
            raise ToolInputError(f"unknown wallet {wallet_id!r}; configured wallets: {known}")
        return config

    def get_strategy(self, wallet_id: str) -> StrategyDetail:
        """The wallet's configuration, latest snapshot and risk state."""
        config = self.require_wallet(wallet_id)
        found = self.snapshots([wallet_id]).get(wallet_id)
        snapshot, source = found if found is not None else (None, None)
        return StrategyDetail(
            wallet_id=wallet_id,
            status=_status(config),
            config=config,
            snapshot=snapshot,
            snapshot_source=source,
            risk=build_risk_state(config, snapshot, self.kill_switch(wallet_id)) if snapshot else None,
        )

    # --- orders --------------------------------------------------------------------------------------------
    def get_orders(self, wallet_id: str, statuses: Sequence[OrderStatus], limit: int) -> OrderList:
        """The wallet's orders (every intent, `pending` until reported), newest first, at most `limit`."""
        self.require_wallet(wallet_id)
        wanted = [status.value for status in statuses] or None
        rows = self._rows(
            f"{_ORDERS} WHERE i.wallet_id = %(wallet)s "
            "AND (%(statuses)s::text[] IS NULL OR COALESCE(o.status, 'pending') = ANY(%(statuses)s::text[])) "
            "ORDER BY COALESCE(o.updated_at_ms, i.created_at_ms) DESC, i.intent_id LIMIT %(limit)s",
            {"wallet": wallet_id, "statuses": wanted, "limit": limit + 1},
        )
        return OrderList(
            wallet_id=wallet_id,
            statuses=tuple(wanted or ()),
            orders=tuple(OrderView.model_validate(row) for row in rows[:limit]),
            truncated=len(rows) > limit,
        )

    def order_views(self, intent_ids: Sequence[str]) -> dict[str, OrderView]:
        """The orders of these intents by intent id."""
        rows = self._rows(f"{_ORDERS} WHERE i.intent_id = ANY(%(ids)s)", {"ids": list(intent_ids)})
        return {row["intent_id"]: OrderView.model_validate(row) for row in rows}

    def get_order_status(self, order_id: str | None, intent_id: str | None) -> OrderStatusAnswer:
        """One order by its id or its intent's id, with its intent, events and the executor's claim."""
        if (order_id is None) == (intent_id is None):
            raise ToolInputError("give exactly one of order_id and intent_id")
        if order_id is not None and not ORDER_ID.match(order_id):
            raise ToolInputError(
                f"malformed order id {order_id!r}: a paper order is 'paper-' and 40 hex digits, a venue "
                "order '0x' and 64 hex digits"
            )
        if intent_id is not None and not INTENT_ID.match(intent_id):
            raise ToolInputError(f"malformed intent id {intent_id!r}: 32 lower-case hex digits")
        if order_id is not None:
            rows = self._rows("SELECT intent_id FROM orders WHERE order_id = %(id)s", {"id": order_id})
            if not rows:
                raise ToolInputError(f"no order {order_id!r} in the orders table")
            intent_id = rows[0]["intent_id"]
        intents = self._rows("SELECT * FROM order_intents WHERE intent_id = %(id)s", {"id": intent_id})
        if not intents:
            raise ToolInputError(f"no order intent {intent_id!r} in the order_intents table")
        intent = OrderIntent.model_validate(_model_fields(intents[0], OrderIntent))
        order = self.order_views([intent.intent_id])[intent.intent_id]
        events = self._rows(
            "SELECT * FROM order_events WHERE intent_id = %(id)s ORDER BY sequence, event_id",
            {"id": intent_id},
        )
        journal = self._rows("SELECT state FROM executor_journal WHERE intent_id = %(id)s", {"id": intent_id})
        return OrderStatusAnswer(
            order=order,
            intent=intent,
            events=tuple(_event(row, intent) for row in events),
            journal_state=journal[0]["state"] if journal else None,
        )


def _status(config: WalletConfig | None) -> StrategyStatus:
    if config is None:
        return StrategyStatus.REMOVED
    return StrategyStatus.ENABLED if config.enabled else StrategyStatus.DISABLED


def _summary(wallet_id: str, config: WalletConfig | None, snapshot: WalletSnapshot | None) -> StrategySummary:
    capital = snapshot.capital_usdc if snapshot is not None else config.capital_usdc  # type: ignore[union-attr]
    mode = config.mode.value if config is not None else snapshot.mode  # type: ignore[union-attr]
    if snapshot is None:
        return StrategySummary(
            wallet_id=wallet_id,
            status=_status(config),
            mode=mode,
            capital_usdc=capital,
            targets=len(config.targets) if config else 0,
        )
    return StrategySummary(
        wallet_id=wallet_id,
        status=_status(config),
        mode=mode,
        capital_usdc=config.capital_usdc if config is not None else capital,
        available_usdc=snapshot.available_usdc,
        realised_pnl_usdc=snapshot.realised_pnl_usdc,
        unrealised_pnl_usdc=snapshot.unrealised_pnl_usdc,
        total_pnl_usdc=snapshot.realised_pnl_usdc + snapshot.unrealised_pnl_usdc,
        open_positions=len(snapshot.open_positions),
        open_orders=len(snapshot.open_orders),
        targets=len(config.targets) if config else 0,
        as_of_ms=snapshot.as_of_ms,
    )


def _model_fields(row: dict[str, Any], model: type[Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key in model.model_fields}


def _event(row: dict[str, Any], intent: OrderIntent) -> OrderEvent:
    """An event row with the order's fields the table keeps once, on the intent."""
    fields = _model_fields(row, OrderEvent) | {
        "mode": intent.mode,
        "side": intent.side,
        "asset": intent.asset,
        "size": intent.size,
        "limit_price": intent.limit_price,
    }
    return OrderEvent.model_validate(fields)
