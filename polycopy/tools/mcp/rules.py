"""Where each decision reason comes from: the copy rule, its place in the evaluation order, and the wallet
settings it reads (README, "The copy policy"; `_apply_rules` in processors/core/policy.py holds the order)."""

from __future__ import annotations

from polycopy.tools.mcp.models import RuleExplanation
from schemas.decisions import SkipReason
from schemas.wallets import WalletConfig

COPY = "copy"

# reason -> (the rule in words, the wallet settings it reads), in the order the policy evaluates them.
RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    SkipReason.NOT_TARGET: (
        "the wallet is disabled, or does not follow the trader (its targets, or the synced traders when it "
        "has none)",
        ("enabled", "targets"),
    ),
    SkipReason.SIDE_DISABLED: ("the trade's side is not one the wallet copies", ("sides",)),
    SkipReason.MARKET_UNKNOWN: ("no market data and no book for the token: nothing to size or gate on", ()),
    SkipReason.MARKET_CLOSED: (
        "the market is closed, or ends sooner than the wallet's minimum days to its end",
        ("min_days_to_end",),
    ),
    SkipReason.CATEGORY_DENIED: (
        "the market's category or tags are not allowed, or are denied",
        ("categories_allow", "categories_deny"),
    ),
    SkipReason.SIGNAL_STALE: (
        "the fill reached us later after the trade than the wallet accepts",
        ("max_signal_age_secs",),
    ),
    SkipReason.LEADER_TOO_SMALL: (
        "the leader's notional is below the wallet's minimum",
        ("min_leader_usdc",),
    ),
    SkipReason.PRICE_OUT_OF_BAND: (
        "the leader's price is outside the wallet's band",
        ("price_min", "price_max"),
    ),
    SkipReason.EDGE_BELOW_MIN: (
        "the leader's win rate minus the price is below the wallet's minimum edge (unknown stats fail)",
        ("min_edge",),
    ),
    SkipReason.NO_POSITION: ("a SELL to mirror, but the wallet holds none of the token", ("sides",)),
    SkipReason.BELOW_MIN_ORDER_SIZE: (
        "the sized order (after max_order_usdc) is below the market's minimum order size",
        ("sizing", "max_order_usdc"),
    ),
    SkipReason.EXPOSURE_CAP: (
        "the market or total exposure cap leaves less than the minimum order",
        ("max_market_exposure_usdc", "max_total_exposure_usdc"),
    ),
    SkipReason.DAILY_LOSS_CAP: ("the wallet lost its daily maximum today (UTC)", ("max_daily_loss_usdc",)),
    SkipReason.OPEN_ORDERS_CAP: ("the wallet has its maximum of open orders", ("max_open_orders",)),
    SkipReason.CAPITAL_EXHAUSTED: (
        "the capital available (capital + realised PnL - reserved - deployed) buys less than the minimum "
        "order",
        ("capital_usdc",),
    ),
    SkipReason.BOOK_UNAVAILABLE: ("no book of the token could be had for the gate", ()),
    SkipReason.INSUFFICIENT_LIQUIDITY: (
        "the book holds less than the wallet's fill ratio of the order at its limit (the leader's price "
        "+/- slippage)",
        ("liquidity_min_fill_ratio", "max_slippage"),
    ),
    SkipReason.DUPLICATE: ("the wallet already decided this fill (a re-delivery or replay)", ()),
}
COPY_RULE = (
    "every rule passed: sized by the wallet's sizing, limited by its caps, priced at the leader's price +/- "
    "the slippage",
    ("sizing", "max_slippage", "order_type", "max_order_usdc"),
)


def explain_reason(reason: str, config: WalletConfig | None) -> RuleExplanation:
    """The rule behind `reason`, with the values the wallet's settings have now (None: no such wallet now)."""
    if reason == COPY:
        position, (rule, settings) = 0, COPY_RULE
    elif reason in RULES:
        position = list(RULES).index(reason) + 1
        rule, settings = RULES[reason]
    else:
        return RuleExplanation(
            reason=reason, position=-1, rule="a reason this version does not know", settings={}
        )
    values = config.model_dump(mode="json") if config is not None else {}
    return RuleExplanation(
        reason=reason,
        position=position,
        rule=rule,
        settings={name: _text(values.get(name)) if config is not None else None for name in settings},
    )


def _text(value: object) -> str | None:
    if value is None or value in ((), [], {}):  # an empty list restricts nothing: not set
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)
