"""The target filter: which copy wallets follow the trader of a raw trade."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from schemas.trades import RawTrade
from schemas.wallets import WalletConfig


def select_followers(
    trade: RawTrade, wallets: Iterable[WalletConfig], followed: Collection[str] = frozenset()
) -> list[str]:
    """Ids of the wallets that copy this trade's trader (`WalletConfig.follows`), sorted for a stable
    fan-out order. `followed` are the synced traders, followed by the wallets without explicit targets."""
    trader = trade.proxy_wallet
    return sorted(wallet.id for wallet in wallets if wallet.follows(trader, followed))
