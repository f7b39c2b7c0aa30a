"""Per-wallet processor state in Faust tables, split so that each event reads and writes little: the store
loads a wallet's `WalletState` (the core's) for one event and saves what changed.

`wallet-state` holds the ledger's money (reservations, positions, daily PnL) and the open orders;
`leader-positions` holds one (wallet, leader, token) position per key; `recent-decisions` marks each
(wallet, trade) evaluated in the last hours. All three are written only from events keyed by that wallet, so
they stay co-partitioned with the wallet's topics.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from processors.core.engine import RecentKeys
from processors.core.ids import build_intent_id
from processors.core.wallet_state import WalletState
from schemas.trades import RawTrade

# Keys are remembered in 6-hour windows kept for a day: a duplicate arrives within minutes (the other
# subscription type, a second producer, the poller's overlap), and the tables must not grow forever.
RECENT_WINDOW = timedelta(hours=6)
RECENT_EXPIRY = timedelta(hours=24)


class WindowedKeys:
    """RecentKeys on a Faust tumbling-window table: a key counts when set in this window or the one before."""

    def __init__(self, table: Any) -> None:
        self._table = table  # faust WindowWrapper over a Table(default=int)

    def __contains__(self, key: object) -> bool:
        window = self._table[key]
        return bool(window.current() or window.delta(RECENT_WINDOW))

    def add(self, key: str) -> None:
        self._table[key] = 1


class WalletStateStore:
    """Loads the state one event needs into a WalletLedger and writes back what changed."""

    def __init__(
        self,
        wallets: MutableMapping[str, Any],
        leader_positions: MutableMapping[str, Any],
        decided: RecentKeys,
    ) -> None:
        self._wallets, self._leader_positions, self._decided = wallets, leader_positions, decided

    def load(self, wallet_id: str, capital: Decimal) -> WalletState:
        return WalletState.load(self._wallets.get(wallet_id), capital)

    def load_saved(self, wallet_id: str) -> WalletState | None:
        """The wallet's saved state, or None when this worker holds none (a wallet with no event yet, or one
        whose partition another worker owns)."""
        value = self._wallets.get(wallet_id)
        return WalletState.load(value, Decimal(0)) if value else None

    def save(self, wallet_id: str, state: WalletState) -> None:
        self._wallets[wallet_id] = state.dump()

    def load_for_trade(self, wallet_id: str, capital: Decimal, trade: RawTrade) -> WalletState:
        """The wallet's state plus this trade's leader position and whether it was already decided."""
        state = self.load(wallet_id, capital)
        position = self._leader_positions.get(_leader_key(wallet_id, trade))
        if position is not None:
            state.ledger.leader_positions[f"{trade.proxy_wallet}|{trade.asset}"] = Decimal(position)
        intent_id = build_intent_id(wallet_id, trade.dedup_key)
        if intent_id in self._decided:
            state.ledger.remember_intent(intent_id)
        return state

    def save_for_trade(self, wallet_id: str, state: WalletState, trade: RawTrade) -> None:
        """Write the leader position and the decided mark to their tables, the rest to the wallet's value."""
        ledger = state.ledger
        key = _leader_key(wallet_id, trade)
        position = ledger.leader_position(trade.proxy_wallet, trade.asset)
        if position > 0:
            self._leader_positions[key] = str(position)
        elif self._leader_positions.get(key) is not None:
            del self._leader_positions[key]
        for intent_id in ledger.recent_intents:
            self._decided.add(intent_id)
        ledger.leader_positions.clear()
        ledger.recent_intents.clear()
        self.save(wallet_id, state)


def _leader_key(wallet_id: str, trade: RawTrade) -> str:
    return f"{wallet_id}|{trade.proxy_wallet}|{trade.asset}"
