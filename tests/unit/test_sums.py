"""KeyedSum: a running total that equals the fresh sum of its terms, value and text, or says it cannot."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core.sums import GroupedSum, KeyedSum

D = Decimal
KEYS = st.sampled_from([f"k{n}" for n in range(6)])
TERMS = st.one_of(
    st.decimals("-5000", "5000", places=2),
    st.decimals("-5000", "5000", places=6),
    st.decimals("-5", "5", places=3),
    st.sampled_from([D(0), D("0.000000"), D("-0.0"), D("10"), D("12.500000")]),
)
STEPS = st.lists(st.tuples(KEYS, st.one_of(st.none(), TERMS), st.sampled_from("ab")), max_size=40)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_the_total_is_the_fresh_sum_digit_for_digit(steps: list[tuple[str, Decimal | None, str]]) -> None:
    running, grouped = KeyedSum(), GroupedSum()
    terms: dict[str, Decimal] = {}
    groups: dict[str, str] = {}
    for key, term, group in steps:
        if term is None:
            running.discard(key)
            grouped.discard(key)
            terms.pop(key, None)
            groups.pop(key, None)
        else:
            running.set(key, term)
            grouped.set(key, group, term)
            terms[key], groups[key] = term, group
        fresh = sum(terms.values(), D(0))
        assert repr(running.total()) == repr(fresh)  # the same exponent too: "1.50", not "1.500000"
        assert repr(grouped.total()) == repr(fresh)
        for name in "ab":
            in_group = sum((t for k, t in terms.items() if groups[k] == name), D(0))
            assert repr(grouped.group_total(name)) == repr(in_group)


def test_a_change_that_would_round_gives_up_until_the_terms_are_gone() -> None:
    running = KeyedSum()
    running.set("big", D("1E+30"))
    running.set("small", D("0.00001"))  # 1E+30 + 1E-5 needs 36 digits: Decimal's 28 would round it
    assert running.total() is None
    running.discard("big")
    running.discard("small")
    assert running.total() == 0
    running.set("a", D("2.50"))
    assert repr(running.total()) == repr(D("2.50"))


def test_an_empty_sum_is_plain_zero() -> None:
    running = KeyedSum()
    running.set("a", D("1.234567"))
    running.set("a", D("3"))
    assert repr(running.total()) == repr(D(3))
    running.discard("a")
    assert repr(running.total()) == repr(D(0))
    assert GroupedSum().group_total("none") == 0
