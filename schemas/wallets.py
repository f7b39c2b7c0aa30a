"""Copy-wallet configuration: what one copy wallet follows and how it sizes and caps its copies."""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import Field, field_validator, model_validator

from schemas.base import Address, Amount, Message, Side
from schemas.orders import ExecutionMode, OrderType


class SizingMode(StrEnum):
    """How the copy size is computed from the leader's trade."""

    FIXED_USDC = "fixed_usdc"  # spend a fixed notional
    RATIO = "ratio"  # a fraction of the leader's notional
    PERCENT_OF_CAPITAL = "percent_of_capital"  # a percent of the wallet's capital


class Sizing(Message):
    """Sizing rule; `value` is USDC, a ratio, or a percent depending on `mode`."""

    mode: SizingMode = SizingMode.FIXED_USDC
    value: Amount = Field(default=Decimal("10"), gt=0)


class WalletConfig(Message):
    """One copy wallet. Key on the compacted configuration topic: `id`; a null value deletes it."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    mode: ExecutionMode = ExecutionMode.PAPER
    enabled: bool = True
    capital_usdc: Amount = Field(gt=0)
    targets: tuple[Address, ...] = ()
    sides: tuple[Side, ...] = (Side.BUY,)
    sizing: Sizing = Sizing()
    min_leader_usdc: Amount = Decimal("0")
    price_min: Amount = Field(default=Decimal("0.01"), gt=0, lt=1)
    price_max: Amount = Field(default=Decimal("0.99"), gt=0, lt=1)
    max_slippage: Amount = Field(default=Decimal("0.02"), ge=0, lt=1)
    max_order_usdc: Amount | None = Field(default=None, gt=0)
    max_market_exposure_usdc: Amount | None = Field(default=None, gt=0)
    max_total_exposure_usdc: Amount | None = Field(default=None, gt=0)
    max_daily_loss_usdc: Amount | None = Field(default=None, gt=0)
    max_open_orders: int | None = Field(default=None, gt=0)
    categories_allow: tuple[str, ...] = ()
    categories_deny: tuple[str, ...] = ()
    min_edge: Amount | None = None
    max_signal_age_secs: int | None = Field(default=600, gt=0)  # a fill found 10 min late is rarely wanted
    min_days_to_end: Amount | None = None
    order_type: OrderType = OrderType.FAK
    expiry_secs: int | None = Field(default=None, gt=0)
    liquidity_min_fill_ratio: Amount = Field(default=Decimal("0.5"), ge=0, le=1)

    @field_validator("targets", mode="before")
    @classmethod
    def _lower_case_targets(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(str(item).lower() for item in value)
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.price_min > self.price_max:
            raise ValueError("price_min must not exceed price_max")
        if self.order_type is OrderType.GTD and self.expiry_secs is None:
            raise ValueError("order_type GTD needs expiry_secs")
        if not self.sides:
            raise ValueError("sides must name BUY, SELL or both")
        return self

    def follows(self, trader: str, synced_traders: Collection[str] = frozenset()) -> bool:
        """True when this wallet copies `trader`: an enabled wallet follows its explicit `targets`, or, when
        it has none, the synced traders (the leaderboard on the traders topic). Addresses are lower-case."""
        if not self.enabled:
            return False
        return trader in _target_set(self.targets) if self.targets else trader in synced_traders


# The target filter asks every wallet about every trade: a set answers in O(1) where the tuple of a wallet
# following hundreds of traders is scanned. Keyed by the tuple's id, holding the tuple (so the id cannot be
# reused while its entry lives); cleared when it grows past any real number of wallet configs.
_TARGET_SETS: dict[int, tuple[tuple[str, ...], frozenset[str]]] = {}
_TARGET_SETS_MAX = 4096


def _target_set(targets: tuple[str, ...]) -> frozenset[str]:
    entry = _TARGET_SETS.get(id(targets))
    if entry is None or entry[0] is not targets:
        if len(_TARGET_SETS) >= _TARGET_SETS_MAX:
            _TARGET_SETS.clear()
        entry = _TARGET_SETS[id(targets)] = (targets, frozenset(targets))
    return entry[1]


class WalletConfigFile(Message):
    """The YAML file applied by `polycopy wallets apply`."""

    wallets: tuple[WalletConfig, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        seen: set[str] = set()
        for wallet in self.wallets:
            if wallet.id in seen:
                raise ValueError(f"duplicate wallet id {wallet.id!r}")
            seen.add(wallet.id)
        return self
