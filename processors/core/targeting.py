"""The target filter: which copy wallets follow the trader of a raw trade."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.trades import RawTrade
from schemas.wallets import WalletConfig


def select_followers(
    trade: RawTrade, wallets: Iterable[WalletConfig], followed: frozenset[str] = frozenset()
) -> list[str]:
    """Ids of the enabled wallets that copy this trade's trader, sorted for a stable fan-out order.

    A wallet with no explicit targets follows the synced traders in `followed`.
    """
    trader = trade.proxy_wallet
    return sorted(
        wallet.id
        for wallet in wallets
        if wallet.enabled and (wallet.follows(trader) or (not wallet.targets and trader in followed))
    )
