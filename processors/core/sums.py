"""A sum of keyed Decimal terms kept up to date term by term, equal to summing them afresh, digit for digit.

The ledger's reserved and deployed capital and the PnL book's unrealised PnL were sums over every open order
or position on every evaluation: a replay of a million trades spent most of its time in them. `KeyedSum`
keeps the total as terms change. Its `total()` is exactly what `sum(terms, Decimal(0))` gives: while every
change is exact (USDC figures have a handful of decimals, far inside Decimal's 28 digits), the running total
equals the fresh sum, and its exponent is set to the one the fresh sum would have (the smallest of the terms'
and 0), so even its text (`"10.50"`, not `"10.500000"`) is the same. A change that would round makes the
sum give up (`total()` returns None) and the caller sums afresh, as before.
"""

from __future__ import annotations

from collections import Counter
from decimal import Context, Decimal, Inexact, Rounded

ZERO = Decimal(0)
_EXACT = Context(prec=28, traps=[Inexact, Rounded])  # the default context's precision; rounding is refused
_TRIM = Context(prec=28, traps=[Inexact])  # dropping trailing zeros rounds, but loses nothing
_QUANTA: dict[int, Decimal] = {}


class KeyedSum:
    """Terms by key and their running total."""

    __slots__ = ("_exact", "_exponents", "_terms", "_total", "_total_exponent")

    def __init__(self) -> None:
        self._terms: dict[str, tuple[Decimal, int]] = {}  # key -> (term, its exponent)
        self._exponents: Counter[int] = Counter()
        self._total, self._total_exponent = ZERO, 0  # an exact sum's exponent is its terms' smallest
        self._exact = True

    def __len__(self) -> int:
        return len(self._terms)

    def set(self, key: str, term: Decimal) -> None:
        """Make `term` the key's term (adding the key if new)."""
        old = self._terms.get(key)
        if old is not None:
            if old[0] is term:
                return
            self._drop(*old)
        exponent = _exponent_of(term)
        self._terms[key] = (term, exponent)
        self._exponents[exponent] += 1
        self._add(term, exponent)

    def discard(self, key: str) -> None:
        """Remove the key's term, if any."""
        old = self._terms.pop(key, None)
        if old is not None:
            self._drop(*old)
        if not self._terms:  # nothing left: exact again, whatever was dropped
            self._total, self._total_exponent, self._exact = ZERO, 0, True

    def total(self) -> Decimal | None:
        """The terms' sum as `sum(terms, Decimal(0))` gives it; None once a change could not be exact."""
        if not self._exact:
            return None
        exponent = min(0, min(self._exponents)) if self._exponents else 0
        if self._total_exponent == exponent:
            return self._total
        quantum = _QUANTA.get(exponent)
        if quantum is None:
            quantum = _QUANTA[exponent] = Decimal((0, (1,), exponent))
        try:  # drops trailing zeros only: every current term is a multiple of 10**exponent
            self._total = _TRIM.quantize(self._total, quantum)
        except Inexact:
            return None
        self._total_exponent = exponent
        return self._total

    def _add(self, term: Decimal, exponent: int) -> None:
        if self._exact:
            try:
                self._total = _EXACT.add(self._total, term)
            except (Inexact, Rounded):
                self._exact = False
            self._total_exponent = min(self._total_exponent, exponent)

    def _drop(self, old: Decimal, exponent: int) -> None:
        self._exponents[exponent] -= 1
        if not self._exponents[exponent]:
            del self._exponents[exponent]
        self._add(-old, exponent)


def _exponent_of(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "a ledger figure is always finite"
    return exponent


class GroupedSum:
    """A `KeyedSum`, and one per group of its keys (a market's orders or positions), kept in step."""

    __slots__ = ("_all", "_group_of", "_groups")

    def __init__(self) -> None:
        self._all = KeyedSum()
        self._groups: dict[str, KeyedSum] = {}
        self._group_of: dict[str, str] = {}

    def set(self, key: str, group: str, term: Decimal) -> None:
        """Make `term` the key's term, in `group`."""
        if self._group_of.get(key, group) != group:
            self.discard(key)
        self._all.set(key, term)
        self._group_of[key] = group
        members = self._groups.get(group)
        if members is None:
            members = self._groups[group] = KeyedSum()
        members.set(key, term)

    def discard(self, key: str) -> None:
        """Remove the key's term, if any."""
        group = self._group_of.pop(key, None)
        if group is None:
            return
        self._all.discard(key)
        members = self._groups[group]
        members.discard(key)
        if not len(members):
            del self._groups[group]

    def total(self) -> Decimal | None:
        """Every term's sum (`KeyedSum.total`)."""
        return self._all.total()

    def group_total(self, group: str) -> Decimal | None:
        """The sum of the group's terms (`KeyedSum.total`; 0 for a group with none)."""
        members = self._groups.get(group)
        return members.total() if members is not None else ZERO
