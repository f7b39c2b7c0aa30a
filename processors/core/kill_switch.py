"""The kill switch and the live-order gate: pure rules the executor applies before sending anything.

A kill switch (per wallet, or `*` for all) stops new orders at once and asks for the wallet's open orders to
be cancelled; live orders also need the wallet's `mode: live`, the deployment's live mode and a signer key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas.control import ALL_WALLETS, KillSwitch
from schemas.orders import ExecutionMode


@dataclass(frozen=True)
class KillSwitchBoard:
    """Which kill switches are engaged (wallet ids, and `*` for every wallet)."""

    engaged: frozenset[str] = frozenset()

    def is_halted(self, wallet_id: str) -> bool:
        """True when new orders of `wallet_id` must not be sent."""
        return ALL_WALLETS in self.engaged or wallet_id in self.engaged


def apply_switch(board: KillSwitchBoard, key: str, switch: KillSwitch | None) -> KillSwitchBoard:
    """The board after one control-topic record (`switch` None: a tombstone, the switch is released)."""
    if switch is not None and switch.engaged:
        return KillSwitchBoard(board.engaged | {key})
    return KillSwitchBoard(board.engaged - {key})


def wallets_to_cancel(
    before: KillSwitchBoard, after: KillSwitchBoard, wallets_with_open_orders: Iterable[str]
) -> list[str]:
    """Wallets whose open orders must be cancelled now: those that were running and are halted now."""
    return sorted(
        wallet
        for wallet in set(wallets_with_open_orders)
        if after.is_halted(wallet) and not before.is_halted(wallet)
    )


def refuse_live_order(
    *,
    wallet_id: str,
    wallet_mode: ExecutionMode,
    deployment_mode: ExecutionMode,
    has_key: bool,
    board: KillSwitchBoard,
) -> str | None:
    """Why a live order must not be sent (one line naming what is missing), or None when it may go."""
    if board.is_halted(wallet_id):
        return "kill switch engaged" + (" for every wallet" if ALL_WALLETS in board.engaged else "")
    if wallet_mode is not ExecutionMode.LIVE:
        return f"wallet {wallet_id} is not in live mode (mode: live in its configuration)"
    if deployment_mode is not ExecutionMode.LIVE:
        return "the deployment is not live (POLYCOPY_EXECUTION_MODE=live)"
    if not has_key:
        return "no signer key (POLYCOPY_PRIVATE_KEY)"
    return None
