"""A copy wallet's PnL book beside its ledger: the marks of its positions, the day's baseline for the daily
loss, realised PnL per token, fees, what settled, and the markets it knows resolved. Pure.

Marks come from the wallet's own events only (the trades it evaluates, the book its gate saw, its fills'
settlement), so a replay of the log marks, and therefore decides, exactly as the live worker did.

Daily loss (`WalletLedger.daily_loss`, what `max_daily_loss_usdc` compares with): for the UTC day D of the
wallet's latest event, the PnL booked on D (sales, settlements, fees) plus the change of the open positions'
marked value since D began: unrealised PnL now minus unrealised PnL at the wallet's first event of D (with the
marks it had then). A loss is that sum when negative.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from processors.core.ledger import ZERO, WalletLedger
from processors.core.sums import KeyedSum
from schemas.books import OrderBook
from schemas.trades import RawTrade

KEPT = 500  # resolutions, settled tokens and closed tokens' realised PnL remembered per wallet
TWO = Decimal(2)


@dataclass
class Mark:
    """The latest price the wallet saw for a token, and when (venue time, epoch ms)."""

    price: Decimal
    at_ms: int


def mark_state(mark: Mark) -> list[Any]:
    """One mark's plain-JSON state (an entry of the state's `marks`)."""
    return [str(mark.price), mark.at_ms]


@dataclass
class Portfolio:
    """The PnL book of one wallet, kept in its state beside the ledger."""

    marks: dict[str, Mark] = field(default_factory=dict)  # held tokens only
    realised_by_token: OrderedDict[str, Decimal] = field(default_factory=OrderedDict)
    day: str = ""  # UTC day of the wallet's latest event
    unrealised_at_day_start: Decimal = ZERO
    fees_usdc: Decimal = ZERO
    settled_positions: int = 0
    winning_positions: int = 0
    # condition id -> payout per token, of markets known to have resolved (the newest KEPT)
    resolutions: OrderedDict[str, dict[str, Decimal]] = field(default_factory=OrderedDict)
    redeemable: dict[str, Decimal] = field(default_factory=dict)  # live: token -> payout, until redeemed
    settled: OrderedDict[str, Decimal] = field(default_factory=OrderedDict)  # token -> payout it settled at
    version: int = 0  # bumped by the worker for every event that changed the wallet's state
    # Unrealised PnL by held token, kept in step with the ledger's position changes and the marks (`_follow`):
    # every trade asks for the total, and a sum over every position each time dominated long replays.
    _follower: _LedgerFollower | None = field(default=None, init=False, repr=False, compare=False)
    _marks_changed: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    # --- views -------------------------------------------------------------------------------------------
    def mark_of(self, ledger: WalletLedger, asset: str) -> Decimal:
        """The price a held token is marked at: its latest mark, else what it cost."""
        mark = self.marks.get(asset)
        return mark.price if mark is not None else ledger.positions[asset].average_price

    def unrealised_of(self, ledger: WalletLedger, asset: str) -> Decimal:
        """A held token at its mark minus what it cost (0 before its first mark: it is worth its cost)."""
        mark, position = self.marks.get(asset), ledger.positions[asset]
        return position.shares * mark.price - position.cost_usdc if mark is not None else ZERO

    def unrealised(self, ledger: WalletLedger) -> Decimal:
        """Open positions at their marks minus what they cost."""
        total = self._follow(ledger).terms.total()
        if total is None:  # a change could not be kept exactly: sum afresh
            return sum((self.unrealised_of(ledger, asset) for asset in ledger.positions), ZERO)
        return total

    def redeemable_usdc(self, ledger: WalletLedger) -> Decimal:
        """What the resolved positions waiting for redemption will pay."""
        return sum(
            (
                ledger.positions[a].shares * payout
                for a, payout in self.redeemable.items()
                if a in ledger.positions
            ),
            ZERO,
        )

    def win_rate(self) -> Decimal | None:
        return Decimal(self.winning_positions) / self.settled_positions if self.settled_positions else None

    def payout_of(self, condition_id: str, asset: str) -> Decimal | None:
        """What a token pays out when its market is known to have resolved, else None."""
        payouts = self.resolutions.get(condition_id)
        return None if payouts is None else payouts.get(asset, ZERO)

    # --- changes -----------------------------------------------------------------------------------------
    def roll_day(self, ledger: WalletLedger, day: str) -> None:
        """Start day `day` (a later UTC day than the latest event's): the open positions' value now, with
        the marks seen before it, is the baseline of its unrealised change. Call before an event's changes."""
        if day > self.day:
            self.day = day
            self.unrealised_at_day_start = self.unrealised(ledger)
            self.refresh(ledger)

    def refresh(self, ledger: WalletLedger) -> None:
        """Record the day's unrealised change in the ledger (its daily loss reads it) and forget the marks of
        tokens no longer held."""
        follower = self._follow(ledger)
        # Only a token whose position changed since the last refresh can have stopped being held.
        candidates = (
            follower.changed if follower.changed is not None else list(self.marks) + list(self.redeemable)
        )
        if candidates:
            for asset in [a for a in candidates if a not in ledger.positions]:
                if self.marks.pop(asset, None) is not None:
                    self._marks_changed.add(asset)
                self.redeemable.pop(asset, None)
            follower.changed = set()
        if self.day:
            ledger.daily_unrealised[self.day] = self.unrealised(ledger) - self.unrealised_at_day_start

    def update_mark(self, ledger: WalletLedger, asset: str, price: Decimal, at_ms: int) -> None:
        """Mark a held token at a newer price (a resolved token keeps its payout)."""
        if asset not in ledger.positions or asset in self.redeemable:
            return
        current = self.marks.get(asset)
        if current is None or at_ms >= current.at_ms:
            self.set_mark(asset, price, at_ms)

    def set_mark(self, asset: str, price: Decimal, at_ms: int) -> None:
        """Mark a token at `price` whatever its current mark (a resolved token at its payout)."""
        self.marks[asset] = Mark(price, at_ms)
        self._marks_changed.add(asset)

    def observe_trade(self, ledger: WalletLedger, trade: RawTrade, book: OrderBook | None, day: str) -> None:
        """A trade the wallet evaluates marks its token at the trade's price, or at the mid of the book the
        gate saw when that book is newer than the trade."""
        self.roll_day(ledger, day)
        self.update_mark(ledger, trade.asset, trade.price, trade.timestamp * 1000)
        if book is not None and book.bids and book.asks and book.asset == trade.asset:
            mid = (book.bids[0].price + book.asks[0].price) / TWO
            if book.timestamp_ms > trade.timestamp * 1000:
                self.update_mark(ledger, trade.asset, mid, book.timestamp_ms)
        self.refresh(ledger)

    def attribute_realised(self, asset: str, amount: Decimal) -> None:
        """Add realised PnL (a sale, a payout, a fee) to what the token has made."""
        if amount == 0 and asset in self.realised_by_token:
            return
        self.realised_by_token[asset] = self.realised_by_token.get(asset, ZERO) + amount
        self.realised_by_token.move_to_end(asset)

    def realised_of(self, asset: str) -> Decimal:
        return self.realised_by_token.get(asset, ZERO)

    def record_resolution(self, condition_id: str, payouts: dict[str, Decimal]) -> None:
        self.resolutions[condition_id] = dict(payouts)
        self.resolutions.move_to_end(condition_id)
        _trim(self.resolutions)

    def record_settlement(self, asset: str, payout: Decimal, pnl: Decimal) -> None:
        """A position paid out: count it (a win when it made money) and remember its payout."""
        self.settled_positions += 1
        self.winning_positions += pnl > 0
        self.settled[asset] = payout
        self.settled.move_to_end(asset)
        _trim(self.settled)
        self.redeemable.pop(asset, None)

    def trim(self, ledger: WalletLedger) -> None:
        """Keep the realised PnL of held tokens and of the KEPT most recently changed others."""
        others = [a for a in self.realised_by_token if a not in ledger.positions]
        for asset in others[: max(len(others) - KEPT, 0)]:
            del self.realised_by_token[asset]

    def _follow(self, ledger: WalletLedger) -> _LedgerFollower:
        """The unrealised PnL by token, brought up to date with the ledger's position changes and the marks
        changed since the last call (rebuilt for another ledger, or when the ledger restarted its log)."""
        follower = self._follower
        if (
            follower is not None
            and follower.seen == len(ledger.position_changes)
            and not self._marks_changed
            and follower.ledger is ledger
            and follower.epoch == ledger.changes_epoch
        ):
            return follower  # nothing changed since the last call
        if follower is None or follower.ledger is not ledger or follower.epoch != ledger.changes_epoch:
            follower = self._follower = _LedgerFollower(
                ledger, ledger.changes_epoch, len(ledger.position_changes), KeyedSum()
            )
            for asset in ledger.positions:
                follower.terms.set(asset, self.unrealised_of(ledger, asset))
            self._marks_changed.clear()
            return follower
        changed = ledger.position_changes[follower.seen :]
        follower.seen = len(ledger.position_changes)
        if follower.changed is not None:
            follower.changed.update(changed)
        for asset in (*changed, *self._marks_changed):
            if asset in ledger.positions:
                follower.terms.set(asset, self.unrealised_of(ledger, asset))
            else:
                follower.terms.discard(asset)
        self._marks_changed.clear()
        return follower

    # --- state (plain JSON) --------------------------------------------------------------------------------
    def to_state(self, *, tokens: bool = True) -> dict[str, Any]:
        """Plain JSON (`tokens=False`: without the marks and realised PnL by token, which the worker keeps per
        token)."""
        return {
            "marks": {a: mark_state(m) for a, m in self.marks.items()} if tokens else {},
            "realised_by_token": {a: str(v) for a, v in self.realised_by_token.items()} if tokens else {},
            "day": self.day,
            "unrealised_at_day_start": str(self.unrealised_at_day_start),
            "fees_usdc": str(self.fees_usdc),
            "settled_positions": self.settled_positions,
            "winning_positions": self.winning_positions,
            "resolutions": {c: {a: str(p) for a, p in pay.items()} for c, pay in self.resolutions.items()},
            "redeemable": {a: str(p) for a, p in self.redeemable.items()},
            "settled": {a: str(p) for a, p in self.settled.items()},
            "version": self.version,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Portfolio:
        """Inverse of `to_state` (None: a wallet state written before the PnL book existed)."""
        if not state:
            return cls()
        return cls(
            marks={a: Mark(Decimal(p), int(t)) for a, (p, t) in state["marks"].items()},
            realised_by_token=OrderedDict((a, Decimal(v)) for a, v in state["realised_by_token"].items()),
            day=state["day"],
            unrealised_at_day_start=Decimal(state["unrealised_at_day_start"]),
            fees_usdc=Decimal(state["fees_usdc"]),
            settled_positions=int(state["settled_positions"]),
            winning_positions=int(state["winning_positions"]),
            resolutions=OrderedDict(
                (c, {a: Decimal(p) for a, p in pay.items()}) for c, pay in state["resolutions"].items()
            ),
            redeemable={a: Decimal(p) for a, p in state["redeemable"].items()},
            settled=OrderedDict((a, Decimal(p)) for a, p in state["settled"].items()),
            version=int(state["version"]),
        )


@dataclass
class _LedgerFollower:
    """Where a PnL book is in one ledger's position changes, and its unrealised PnL by token so far."""

    ledger: WalletLedger
    epoch: int
    seen: int  # position changes read
    terms: KeyedSum
    changed: set[str] | None = None  # tokens changed since the last refresh (None: any may have)


def _trim(items: OrderedDict[str, Any]) -> None:
    while len(items) > KEPT:
        items.popitem(last=False)
