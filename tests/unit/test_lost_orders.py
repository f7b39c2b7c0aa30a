"""The lost-order rule: only definitive not-founds count, three in a row, and the trades are checked first."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processors.core.lost_orders import (
    LOST_AFTER_NOT_FOUND,
    LookupVerdict,
    LostVerdict,
    decide_lost,
    observe_lookup,
)
from schemas.base import Side
from schemas.venue import FillStatus, LookupKind, OrderFill

L, V = LookupKind, LookupVerdict


@pytest.mark.parametrize(
    ("count", "lookup", "expected"),
    [
        (0, L.NOT_FOUND, (1, V.COUNTED)),
        (1, L.NOT_FOUND, (2, V.COUNTED)),
        (2, L.NOT_FOUND, (3, V.CHECK_TRADES)),
        (3, L.NOT_FOUND, (4, V.CHECK_TRADES)),
        (2, L.FOUND, (0, V.FOUND)),
        (2, L.UNAVAILABLE, (2, V.NO_INFORMATION)),  # 5xx, 425, 429, time-out: says nothing, changes nothing
        (0, L.UNAVAILABLE, (0, V.NO_INFORMATION)),
    ],
)
def test_each_look_up_moves_the_count_as_the_rule_says(
    count: int, lookup: LookupKind, expected: tuple[int, LookupVerdict]
) -> None:
    assert observe_lookup(count, lookup) == expected


def test_ambiguous_answers_between_not_founds_neither_count_nor_break_the_streak() -> None:
    count = 0
    verdicts = []
    for lookup in [L.NOT_FOUND, L.UNAVAILABLE, L.NOT_FOUND, L.UNAVAILABLE, L.UNAVAILABLE, L.NOT_FOUND]:
        count, verdict = observe_lookup(count, lookup)
        verdicts.append(verdict)

    assert count == LOST_AFTER_NOT_FOUND and verdicts[-1] is V.CHECK_TRADES


def fill(order_id: str) -> OrderFill:
    return OrderFill("t1", order_id, FillStatus.MATCHED, Side.BUY, "a", Decimal(5), Decimal("0.5"), 0, True)


@pytest.mark.parametrize(
    ("fills", "expected"),
    [
        (None, LostVerdict.UNDECIDED),  # trades unreadable: decide later, never LOST on a guess
        ([], LostVerdict.LOST),
        ([fill("0xother")], LostVerdict.LOST),
        ([fill("0xother"), fill("0xours")], LostVerdict.FILLED),
    ],
)
def test_lost_only_when_the_trades_were_read_and_none_is_the_orders(
    fills: list[OrderFill] | None, expected: LostVerdict
) -> None:
    assert decide_lost("0xours", fills) is expected
