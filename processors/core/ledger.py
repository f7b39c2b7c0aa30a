"""A copy wallet's capital ledger: reservations for open orders, positions from fills, realised PnL.

Invariant (property-tested): available + reserved + deployed == capital + realised_pnl, no term negative.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from processors.core.sums import GroupedSum
from schemas.base import Side

ZERO = Decimal(0)
USDC_STEP = Decimal("0.000001")  # the collateral token has 6 decimals
RECENT_INTENTS_KEPT = 2000
POSITION_CHANGES_KEPT = 10_000  # then the log starts again under a new epoch (its readers resynchronise)
DAYS_KEPT = 7  # days of daily PnL a saved ledger keeps (the daily loss reads the latest day only)


class LedgerError(ValueError):
    """An operation would break the ledger's invariant."""


@dataclass
class Reservation:
    """Capital (BUY) or shares (SELL) held for one open order."""

    asset: str
    condition_id: str
    side: Side
    limit_price: Decimal
    size: Decimal  # shares ordered
    matched: Decimal = ZERO  # shares filled so far
    filled_value: Decimal = ZERO  # USDC those shares were filled for, at the fill prices
    leader: str = ""  # the trader whose trade the order copies ("" when not known)

    @property
    def open_size(self) -> Decimal:
        return self.size - self.matched

    @property
    def reserved_usdc(self) -> Decimal:
        return self.open_size * self.limit_price if self.side is Side.BUY else ZERO


@dataclass
class Position:
    """Shares held in one outcome token and what they cost."""

    condition_id: str
    shares: Decimal = ZERO
    cost_usdc: Decimal = ZERO

    @property
    def average_price(self) -> Decimal:
        return self.cost_usdc / self.shares if self.shares > 0 else ZERO


@dataclass
class WalletLedger:
    """Ledger of one copy wallet, kept in processor state keyed by wallet id."""

    capital_usdc: Decimal
    realised_pnl: Decimal = ZERO
    reservations: dict[str, Reservation] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    leader_positions: dict[str, Decimal] = field(default_factory=dict)  # "trader|asset" -> shares seen
    # "trader|asset" -> shares we hold because we copied that trader's buys: SELL mirroring sells only these
    followed_positions: dict[str, Decimal] = field(default_factory=dict)
    daily_realised: dict[str, Decimal] = field(default_factory=dict)  # "YYYY-MM-DD" -> realised PnL that day
    # "YYYY-MM-DD" -> change of the open positions' marked value that day (processors.core.portfolio keeps it)
    daily_unrealised: dict[str, Decimal] = field(default_factory=dict)
    recent_intents: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # intent id -> shares a SELL matched that the wallet no longer held (a live BUY of them failed on chain
    # meanwhile): the venue cannot settle them, so they moved no money and their failure moves none back.
    unbacked_sells: dict[str, Decimal] = field(default_factory=dict)
    # Tokens whose position changed, in order, for the PnL book to follow (`Portfolio` keeps its unrealised
    # PnL by token); restarted under a new epoch when long. Not state: a loaded ledger starts a new log.
    position_changes: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    changes_epoch: int = field(default=0, init=False, repr=False, compare=False)
    # The deployed capital, in total and by market, kept as positions change (every change below goes
    # through `_sync_position`), built on first use: a view costs O(1), not a sum over every position.
    # (Reservations are summed afresh: an order is open for moments, so there are few.)
    _deployed: GroupedSum | None = field(default=None, init=False, repr=False, compare=False)

    # --- views -------------------------------------------------------------------------------------------
    @property
    def reserved(self) -> Decimal:
        return sum((r.reserved_usdc for r in self.reservations.values()), ZERO)

    @property
    def deployed(self) -> Decimal:
        total = self._deployed_sum().total()
        return total if total is not None else sum((p.cost_usdc for p in self.positions.values()), ZERO)

    @property
    def available(self) -> Decimal:
        return self.capital_usdc + self.realised_pnl - self.reserved - self.deployed

    @property
    def open_orders(self) -> int:
        return len(self.reservations)

    def market_exposure(self, condition_id: str) -> Decimal:
        """Deployed plus reserved capital in one market."""
        deployed = self._deployed_sum().group_total(condition_id)
        if deployed is None:
            deployed = sum(
                (p.cost_usdc for p in self.positions.values() if p.condition_id == condition_id), ZERO
            )
        reserved = sum(
            (r.reserved_usdc for r in self.reservations.values() if r.condition_id == condition_id), ZERO
        )
        return deployed + reserved

    def total_exposure(self) -> Decimal:
        return self.deployed + self.reserved

    def sellable_shares(self, asset: str, leader: str | None = None) -> Decimal:
        """Shares held minus shares already offered by open SELL orders; with `leader`, only the shares
        bought following that leader (minus that leader's open SELLs), never more than held."""
        held = self.positions[asset].shares if asset in self.positions else ZERO
        sells = [r for r in self.reservations.values() if r.asset == asset and r.side is Side.SELL]
        free = held - sum((r.open_size for r in sells), ZERO)
        if leader is None:
            return max(free, ZERO)
        followed = self.followed_positions.get(f"{leader}|{asset}", ZERO)
        offered = sum((r.open_size for r in sells if r.leader == leader), ZERO)
        return max(min(followed - offered, free), ZERO)

    def daily_loss(self, day: str) -> Decimal:
        """Loss on `day`, realised plus unrealised, as a positive number (0 when the day made money): PnL
        booked that day plus the change of the open positions' marked value since the day began."""
        return max(-(self.daily_realised.get(day, ZERO) + self.daily_unrealised.get(day, ZERO)), ZERO)

    def has_seen(self, intent_id: str) -> bool:
        return intent_id in self.recent_intents

    def leader_position(self, trader: str, asset: str) -> Decimal:
        return self.leader_positions.get(f"{trader}|{asset}", ZERO)

    # --- changes -----------------------------------------------------------------------------------------
    def observe_leader_trade(self, trader: str, asset: str, side: Side, size: Decimal) -> None:
        """Track the leader's position from the trades we see, for proportional SELL mirroring."""
        key = f"{trader}|{asset}"
        current = self.leader_positions.get(key, ZERO)
        updated = current + size if side is Side.BUY else max(current - size, ZERO)
        if updated > 0:
            self.leader_positions[key] = updated
        else:
            self.leader_positions.pop(key, None)

    def reserve(
        self,
        intent_id: str,
        *,
        asset: str,
        condition_id: str,
        side: Side,
        size: Decimal,
        limit_price: Decimal,
        leader: str = "",
    ) -> None:
        """Hold capital (BUY: size x limit) or shares (SELL) for a new order copying `leader`."""
        if intent_id in self.reservations:
            raise LedgerError(f"intent {intent_id} already reserved")
        reservation = Reservation(asset, condition_id, side, limit_price, size, leader=leader)
        if reservation.reserved_usdc > self.available:
            raise LedgerError("reservation exceeds available capital")
        if side is Side.SELL and size > self.sellable_shares(asset):
            raise LedgerError("sell exceeds held shares")
        self.reservations[intent_id] = reservation
        self.remember_intent(intent_id)

    def remember_intent(self, intent_id: str) -> None:
        self.recent_intents[intent_id] = None
        self.recent_intents.move_to_end(intent_id)
        while len(self.recent_intents) > RECENT_INTENTS_KEPT:
            self.recent_intents.popitem(last=False)

    def apply_fill(self, intent_id: str, matched_total: Decimal, average_price: Decimal, day: str) -> None:
        """Turn the newly matched part of a reservation into a position (BUY) or realised PnL (SELL).

        `matched_total` is cumulative, so re-applying the same report changes nothing.
        """
        reservation = self.reservations.get(intent_id)
        if reservation is None:
            return
        matched_total = min(matched_total, reservation.size)
        new_shares = matched_total - reservation.matched
        if new_shares <= 0:
            return
        # Reports carry the cumulative average price: the new shares' value is the new total minus the old.
        value_total = matched_total * average_price
        new_value = max(
            value_total - reservation.filled_value, ZERO
        )  # never negative, even if reports are not
        reservation.matched, reservation.filled_value = matched_total, value_total
        self._follow(
            reservation.leader, reservation.asset, new_shares if reservation.side is Side.BUY else -new_shares
        )
        if reservation.side is Side.BUY:
            position = self.positions.setdefault(reservation.asset, Position(reservation.condition_id))
            position.shares += new_shares
            position.cost_usdc += min(new_value, new_shares * reservation.limit_price)
        else:
            self._book_sale(intent_id, reservation.asset, new_shares, new_value, day)
        if reservation.open_size <= 0:
            del self.reservations[intent_id]
        self._sync_position(reservation.asset)

    def _book_sale(self, intent_id: str, asset: str, shares: Decimal, value: Decimal, day: str) -> None:
        """Sell `shares` for `value`: only what is held, at its cost basis; the rest is unbacked."""
        position = self.positions.get(asset)
        sold = min(shares, position.shares) if position is not None else ZERO
        if sold < shares:
            self.unbacked_sells[intent_id] = self.unbacked_sells.get(intent_id, ZERO) + shares - sold
            value = (value * sold / shares).quantize(USDC_STEP, rounding=ROUND_DOWN)
        if position is None or sold <= 0:
            return
        # Cost basis moves in whole micro-USDC so every sum stays exact (an average price is a repeating
        # decimal); the sale that empties the position takes whatever cost is left.
        cost = (
            position.cost_usdc
            if sold >= position.shares
            else (position.cost_usdc * sold / position.shares).quantize(USDC_STEP, rounding=ROUND_DOWN)
        )
        pnl = value - cost
        position.shares -= sold
        position.cost_usdc -= cost
        self.realised_pnl += pnl
        self.daily_realised[day] = self.daily_realised.get(day, ZERO) + pnl
        if position.shares <= 0:
            del self.positions[asset]

    def rebook(
        self,
        intent_id: str,
        *,
        asset: str,
        condition_id: str,
        side: Side,
        size: Decimal,
        limit_price: Decimal,
        matched: Decimal,
        leader: str = "",
    ) -> None:
        """Hold an order again whose reservation was released (a LOST order the venue then filled), or
        that this ledger never saw reserved: the order exists, so no capital check can refuse it.
        `matched` shares were already booked before."""
        filled_value = matched * limit_price
        self.reservations[intent_id] = Reservation(
            asset, condition_id, side, limit_price, size, matched, filled_value, leader
        )

    def reverse_fill(
        self, intent_id: str, asset: str, side: Side, shares: Decimal, price: Decimal, day: str
    ) -> None:
        """Undo `shares` of a fill that failed on chain (it never happened). A BUY gives back the shares and
        their cost (capital is available again); a SELL gives back the shares and takes back its realised PnL,
        with the cost basis at the position's average price (the sale price when nothing is left)."""
        reservation = self.reservations.get(intent_id)
        if reservation is not None:  # the order is still open: it may fill these shares again
            reservation.matched = max(reservation.matched - shares, ZERO)
            reservation.filled_value = max(reservation.filled_value - shares * price, ZERO)
            self._follow(reservation.leader, asset, -shares if side is Side.BUY else shares)
        if side is Side.BUY:
            position = self.positions.get(asset)
            if position is None:
                return
            taken = min(shares, position.shares)
            cost = position.cost_usdc if taken >= position.shares else min(taken * price, position.cost_usdc)
            position.shares -= taken
            position.cost_usdc -= cost
            if position.shares <= 0:
                del self.positions[asset]
            self._sync_position(asset)
            return
        unbacked = min(self.unbacked_sells.get(intent_id, ZERO), shares)
        if unbacked > 0:  # never sold from what was held: nothing to give back for them
            left = self.unbacked_sells.pop(intent_id) - unbacked
            if left > 0:
                self.unbacked_sells[intent_id] = left
            shares -= unbacked
            if shares <= 0:
                return
        existing = self.positions.get(asset)
        condition_id = (
            reservation.condition_id if reservation else (existing.condition_id if existing else "")
        )
        position = self.positions.setdefault(asset, Position(condition_id))
        per_share = position.average_price if position.shares > 0 else price
        cost = (shares * per_share).quantize(USDC_STEP, rounding=ROUND_DOWN)
        pnl = shares * price - cost
        position.shares += shares
        position.cost_usdc += cost
        self._sync_position(asset)
        self.realised_pnl -= pnl
        self.daily_realised[day] = self.daily_realised.get(day, ZERO) - pnl

    def _follow(self, leader: str, asset: str, shares: Decimal) -> None:
        if not leader:
            return
        key = f"{leader}|{asset}"
        held = max(self.followed_positions.get(key, ZERO) + shares, ZERO)
        if held > 0:
            self.followed_positions[key] = held
        else:
            self.followed_positions.pop(key, None)

    def settle(self, asset: str, proceeds: Decimal, day: str) -> Decimal:
        """Close a position in a resolved market for what its shares paid out (shares x payout on paper, what
        arrived when live shares are redeemed); returns the realised PnL. Open orders for those shares must be
        gone first (the lifecycle cancels them), so no SELL reservation is left without shares."""
        position = self.positions.pop(asset, None)
        if position is None:
            return ZERO
        self._sync_position(asset)
        pnl = proceeds - position.cost_usdc
        self.realised_pnl += pnl
        self.daily_realised[day] = self.daily_realised.get(day, ZERO) + pnl
        return pnl

    def charge_fee(self, amount: Decimal, day: str) -> None:
        """A fee the venue charged: a realised cost of that day (the venue refuses what it cannot charge)."""
        self.realised_pnl -= amount
        self.daily_realised[day] = self.daily_realised.get(day, ZERO) - amount

    def release(self, intent_id: str) -> Decimal:
        """Close an order (cancel, reject, lost): give back what did not fill; returns the USDC released."""
        reservation = self.reservations.pop(intent_id, None)
        return reservation.reserved_usdc if reservation else ZERO

    # --- the running total --------------------------------------------------------------------------------
    def _deployed_sum(self) -> GroupedSum:
        if self._deployed is None:
            self._deployed = GroupedSum()
            for asset, p in self.positions.items():
                self._deployed.set(asset, p.condition_id, p.cost_usdc)
        return self._deployed

    def _sync_position(self, asset: str) -> None:
        """Bring the totals and the change log in step with one token's position (after any change)."""
        if len(self.position_changes) >= POSITION_CHANGES_KEPT:
            self.position_changes.clear()
            self.changes_epoch += 1
        self.position_changes.append(asset)
        if self._deployed is None:
            return
        position = self.positions.get(asset)
        if position is None:
            self._deployed.discard(asset)
        else:
            self._deployed.set(asset, position.condition_id, position.cost_usdc)

    # --- state (Faust table values are plain JSON) --------------------------------------------------------
    def to_state(self, *, positions: bool = True) -> dict[str, Any]:
        """Plain-JSON state for processor tables (`positions=False`: without the positions, which the worker
        keeps per token)."""
        return {
            "capital_usdc": str(self.capital_usdc),
            "realised_pnl": str(self.realised_pnl),
            "reservations": {
                key: [
                    r.asset,
                    r.condition_id,
                    r.side.value,
                    str(r.limit_price),
                    str(r.size),
                    str(r.matched),
                    str(r.filled_value),
                    r.leader,
                ]
                for key, r in self.reservations.items()
            },
            "positions": {k: position_state(p) for k, p in self.positions.items()} if positions else {},
            "leader_positions": {k: str(v) for k, v in self.leader_positions.items()},
            "followed_positions": {k: str(v) for k, v in self.followed_positions.items()},
            "daily_realised": {k: str(v) for k, v in sorted(self.daily_realised.items())[-DAYS_KEPT:]},
            "daily_unrealised": {k: str(v) for k, v in sorted(self.daily_unrealised.items())[-DAYS_KEPT:]},
            "recent_intents": list(self.recent_intents),
            "unbacked_sells": {k: str(v) for k, v in self.unbacked_sells.items()},
        }

    def state_is_whole(self) -> bool:
        """Whether `from_state(to_state())` gives this ledger back (the state keeps DAYS_KEPT days of PnL)."""
        return len(self.daily_realised) <= DAYS_KEPT and len(self.daily_unrealised) <= DAYS_KEPT

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WalletLedger:
        """Inverse of `to_state`."""
        return cls(
            capital_usdc=Decimal(state["capital_usdc"]),
            realised_pnl=Decimal(state["realised_pnl"]),
            reservations={key: _reservation(fields) for key, fields in state["reservations"].items()},
            positions={k: Position(c, Decimal(s), Decimal(v)) for k, (c, s, v) in state["positions"].items()},
            leader_positions={k: Decimal(v) for k, v in state["leader_positions"].items()},
            followed_positions={k: Decimal(v) for k, v in state.get("followed_positions", {}).items()},
            daily_realised={k: Decimal(v) for k, v in state["daily_realised"].items()},
            daily_unrealised={k: Decimal(v) for k, v in state.get("daily_unrealised", {}).items()},
            recent_intents=OrderedDict.fromkeys(state["recent_intents"]),
            unbacked_sells={k: Decimal(v) for k, v in state.get("unbacked_sells", {}).items()},
        )


def position_state(position: Position) -> list[str]:
    """One position's plain-JSON state (an entry of the state's `positions`)."""
    return [position.condition_id, str(position.shares), str(position.cost_usdc)]


def _reservation(fields: list[str]) -> Reservation:
    # States written before reservations named their leader have seven fields.
    asset, condition_id, side, price, size, matched, value, *leader = fields
    return Reservation(
        asset,
        condition_id,
        Side(side),
        Decimal(price),
        Decimal(size),
        Decimal(matched),
        Decimal(value),
        leader[0] if leader else "",
    )
