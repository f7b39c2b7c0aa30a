"""A wallet's closed orders: remembered up to CLOSED_ORDERS_KEPT, answered from an index that stays in step
with the list it mirrors (the list is what the state saves)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from processors.core import wallet_state
from processors.core.orders import OrderRecord
from processors.core.wallet_state import WalletState
from schemas.orders import OrderStatus


@given(st.lists(st.sampled_from([f"order-{n}" for n in range(8)]), max_size=40), st.integers(1, 5))
def test_is_closed_answers_as_the_remembered_list_does(closed_ids: list[str], kept: int) -> None:
    original = wallet_state.CLOSED_ORDERS_KEPT
    wallet_state.CLOSED_ORDERS_KEPT = kept
    try:
        state = WalletState.new(Decimal(100))
        state.is_closed("order-0")  # the index exists before the first close: it must follow every change
        for order_id in closed_ids:
            state.record_order(OrderRecord(order_id, OrderStatus.FILLED))
            assert len(state.closed) <= kept
            for probe in (f"order-{n}" for n in range(8)):
                assert state.is_closed(probe) == (probe in state.closed)
        reloaded = WalletState.load(state.dump(), Decimal(100))
        assert all(reloaded.is_closed(o) == (o in state.closed) for o in (f"order-{n}" for n in range(8)))
    finally:
        wallet_state.CLOSED_ORDERS_KEPT = original


def test_an_open_order_is_not_closed() -> None:
    state = WalletState.new(Decimal(100))
    state.record_order(OrderRecord("order-1", OrderStatus.PLACED))

    assert not state.is_closed("order-1") and "order-1" in state.orders


def test_forgotten_closed_ids_are_forgotten_by_the_index_too() -> None:
    """The worker's store forgets the closed ids once their table has them and may keep the state for the next
    event, which adds back the one id its report needs: the index must answer from that list, not the old."""
    state = WalletState.new(Decimal(100))
    state.record_order(OrderRecord("order-1", OrderStatus.FILLED))
    assert state.is_closed("order-1")  # the index is built

    state.forget_closed()
    state.remember_closed("order-2")  # as `load_for_report` adds an id the closed-orders table holds
    assert state.is_closed("order-2") and not state.is_closed("order-1")


def test_an_id_remembered_after_the_index_was_built_is_closed() -> None:
    """A batch of reports on one state: the first report's lookup built the index, and a later report of the
    batch brings an id from the closed-orders table."""
    state = WalletState.new(Decimal(100))
    assert not state.is_closed("order-1")  # the index is built, empty

    state.remember_closed("order-1")
    assert state.is_closed("order-1")
