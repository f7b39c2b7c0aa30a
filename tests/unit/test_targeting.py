"""The target filter: which copy wallets follow the trader of a raw trade."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from processors.core.ledger import WalletLedger
from processors.core.policy import evaluate_trade
from processors.core.targeting import select_followers
from producers.poller import select_wallets
from tests.builders import NOW_MS, OTHER_TRADER, TRADER, build_market, build_trade, build_wallet


def test_enabled_wallets_listing_the_trader_follow_it_in_id_order() -> None:
    wallets = [
        build_wallet(id="zeta", targets=(TRADER,)),
        build_wallet(id="alpha", targets=(OTHER_TRADER, TRADER)),
        build_wallet(id="off", targets=(TRADER,), enabled=False),
        build_wallet(id="other", targets=(OTHER_TRADER,)),
    ]

    assert select_followers(build_trade(), wallets) == ["alpha", "zeta"]


def test_wallets_without_targets_follow_only_synced_traders() -> None:
    wallets = [build_wallet(id="synced", targets=()), build_wallet(id="explicit", targets=(OTHER_TRADER,))]

    assert select_followers(build_trade(), wallets, frozenset({TRADER})) == ["synced"]
    assert select_followers(build_trade(), wallets) == []
    assert select_followers(build_trade(proxy_wallet=OTHER_TRADER), wallets, frozenset({TRADER})) == [
        "explicit"
    ]


@given(st.permutations(["a", "b", "c", "d"]))
def test_fan_out_order_does_not_depend_on_configuration_order(ids: list[str]) -> None:
    wallets = [build_wallet(id=wallet_id) for wallet_id in ids]

    assert select_followers(build_trade(), wallets) == ["a", "b", "c", "d"]


# --- the follows rule: one home (WalletConfig.follows), every caller agrees -------------------------------
def test_a_wallet_without_targets_follows_the_synced_traders_and_one_with_targets_only_those() -> None:
    synced = frozenset({TRADER})

    assert build_wallet(targets=()).follows(TRADER, synced)
    assert not build_wallet(targets=()).follows(OTHER_TRADER, synced)
    assert not build_wallet(targets=()).follows(TRADER)  # no synced traders: follows nobody
    assert build_wallet(targets=(OTHER_TRADER,)).follows(OTHER_TRADER, synced)
    assert not build_wallet(targets=(OTHER_TRADER,)).follows(TRADER, synced)


def test_a_disabled_wallet_follows_nobody() -> None:
    assert not build_wallet(targets=(TRADER,), enabled=False).follows(TRADER, frozenset({TRADER}))
    assert not build_wallet(targets=(), enabled=False).follows(TRADER, frozenset({TRADER}))


TRADERS = st.sampled_from(["0x" + c * 40 for c in "123456"])


@given(
    configs=st.lists(
        st.tuples(st.booleans(), st.lists(TRADERS, max_size=3, unique=True)), min_size=1, max_size=5
    ),
    synced=st.frozensets(TRADERS, max_size=3),
    trader=TRADERS,
)
def test_the_target_filter_the_policy_and_the_poller_agree_with_follows(
    configs: list[tuple[bool, list[str]]], synced: frozenset[str], trader: str
) -> None:
    wallets = [
        build_wallet(id=f"w{n}", enabled=enabled, targets=tuple(targets))
        for n, (enabled, targets) in enumerate(configs)
    ]
    trade = build_trade(proxy_wallet=trader)
    following = sorted(wallet.id for wallet in wallets if wallet.follows(trader, synced))

    assert select_followers(trade, wallets, synced) == following
    not_target = {
        wallet.id
        for wallet in wallets
        if evaluate_trade(
            trade,
            wallet,
            WalletLedger(Decimal(1000)),
            market=build_market(),
            book=None,
            followed=synced,
            now_ms=NOW_MS,
        ).decision.reason
        == "not_target"
    }
    assert not_target == {wallet.id for wallet in wallets} - set(following)
    assert (trader in select_wallets(wallets, synced)) is bool(following)


def test_follows_answers_for_the_targets_of_each_config_even_after_a_copy_changes_them() -> None:
    wallet = build_wallet(id="w", targets=(TRADER,))
    changed = wallet.model_copy(update={"targets": (OTHER_TRADER,)})

    assert wallet.follows(TRADER) and not wallet.follows(OTHER_TRADER)
    assert changed.follows(OTHER_TRADER) and not changed.follows(TRADER)
    assert wallet.follows(TRADER)  # asked again after the copy: still its own targets
