"""The target filter: which copy wallets follow the trader of a raw trade."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from processors.core.targeting import select_followers
from tests.builders import OTHER_TRADER, TRADER, build_trade, build_wallet


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
