"""A wallet's risk state from its configuration and latest snapshot: each cap and how close it is. Pure.

The figures are the ones the copy policy compares (processors/core/policy.py, `_size_buy`): a market's
exposure is what its open positions cost plus what its open orders reserve (`WalletLedger.market_exposure`),
the total exposure is deployed plus reserved, the daily loss is the snapshot's `daily_loss_usdc`.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from polycopy.tools.mcp.models import CapUsage, RiskState
from schemas.control import KillSwitch
from schemas.portfolio import WalletSnapshot
from schemas.wallets import WalletConfig

ZERO = Decimal(0)


def build_cap_usage(cap: str, scope: str, limit: Decimal, used: Decimal | None) -> CapUsage:
    """One cap with its headroom and the fraction used (rounded to 4 places)."""
    if used is None:
        return CapUsage(cap=cap, scope=scope, limit=limit)
    return CapUsage(
        cap=cap,
        scope=scope,
        limit=limit,
        used=used,
        headroom=limit - used,
        used_fraction=(used / limit).quantize(Decimal("0.0001")) if limit else None,
    )


def build_market_exposures(snapshot: WalletSnapshot) -> dict[str, Decimal]:
    """Condition id -> cost of the open positions plus the capital reserved by open orders in that market."""
    exposure: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for position in snapshot.open_positions:
        exposure[position.condition_id] += position.cost_usdc
    for order in snapshot.open_orders:
        exposure[order.condition_id] += order.reserved_usdc
    return dict(exposure)


def build_risk_state(
    config: WalletConfig | None, snapshot: WalletSnapshot, kill_switch: KillSwitch | None = None
) -> RiskState:
    """The wallet's money and every cap it configures, the closest first within each kind."""
    # What copies can spend is the capital plus realised PnL; its headroom is exactly `available_usdc`.
    spendable = snapshot.capital_usdc + snapshot.realised_pnl_usdc
    caps = [
        build_cap_usage("capital_usdc", "wallet", spendable, snapshot.reserved_usdc + snapshot.deployed_usdc)
    ]
    if config is not None:
        if config.max_order_usdc is not None:
            caps.append(build_cap_usage("max_order_usdc", "per order", config.max_order_usdc, None))
        if config.max_total_exposure_usdc is not None:
            used = snapshot.deployed_usdc + snapshot.reserved_usdc
            caps.append(
                build_cap_usage("max_total_exposure_usdc", "wallet", config.max_total_exposure_usdc, used)
            )
        if config.max_market_exposure_usdc is not None:
            markets = sorted(build_market_exposures(snapshot).items(), key=lambda item: (-item[1], item[0]))
            caps.extend(
                build_cap_usage(
                    "max_market_exposure_usdc", f"market {condition}", config.max_market_exposure_usdc, used
                )
                for condition, used in markets
            )
        if config.max_daily_loss_usdc is not None:
            caps.append(
                build_cap_usage(
                    "max_daily_loss_usdc",
                    f"day {snapshot.day}",
                    config.max_daily_loss_usdc,
                    snapshot.daily_loss_usdc,
                )
            )
        if config.max_open_orders is not None:
            caps.append(
                build_cap_usage(
                    "max_open_orders",
                    "wallet",
                    Decimal(config.max_open_orders),
                    Decimal(len(snapshot.open_orders)),
                )
            )
    return RiskState(
        capital_usdc=snapshot.capital_usdc,
        available_usdc=snapshot.available_usdc,
        reserved_usdc=snapshot.reserved_usdc,
        deployed_usdc=snapshot.deployed_usdc,
        open_orders=len(snapshot.open_orders),
        open_positions=len(snapshot.open_positions),
        daily_loss_usdc=snapshot.daily_loss_usdc,
        day=snapshot.day,
        caps=tuple(caps),
        kill_switch=kill_switch if kill_switch is not None and kill_switch.engaged else None,
    )
