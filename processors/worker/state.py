"""Per-wallet processor state in Faust tables, split so that each event reads and writes little: the store
loads a wallet's `WalletState` (the core's) for one event and saves what changed.

`wallet-state` holds the ledger's money (reservations, positions, daily PnL), the PnL book and the open
orders; `leader-positions` holds one (wallet, leader, token) position of a leader per key and
`followed-positions` the shares the wallet holds for following that leader in that token (what SELL
mirroring may sell); `recent-decisions` marks each (wallet, trade) evaluated in the last hours and
`recent-closed-orders` each order that ended (a late report about it changes nothing). An event loads the
few keys it needs from the per-key tables, so the value written per event stays small: with them inside it,
a busy wallet's value grew past 300 KB and its decode and changelog write cost ~9 ms per event (the bench's
profile). `wallet-tokens` holds, per (wallet, token), the position, the mark and the realised PnL with their
order numbers: a save writes only the tokens it changed (`WalletTokens`), where the whole wallet's tokens,
50 KB in the bench, went to the changelog with every event. All are written only from events keyed by that
wallet, so they stay co-partitioned with the wallet's topics.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, MutableMapping
from decimal import Decimal
from typing import Any

from processors.core.engine import RecentKeys
from processors.core.ids import build_intent_id
from processors.core.ledger import position_state
from processors.core.portfolio import mark_state
from processors.core.wallet_state import WalletState
from schemas.orders import ExecutionReport
from schemas.trades import RawTrade

# Keys are remembered in 6-hour buckets of the clock, and a key counts when marked in this bucket or the one
# before: a duplicate arrives within minutes (the other subscription type, a second producer, the poller's
# overlap). Each key starts with its bucket, so the buckets older than a day leave the worker's own store in
# one range (`BucketedKeys.expired_below`), as they leave the changelog by its retention.
RECENT_BUCKET_MS = 6 * 3600 * 1000
RECENT_BUCKETS_KEPT = 5  # this bucket and the four before it: a key is kept for 24 to 30 hours


class BucketedKeys:
    """RecentKeys on a table whose keys are `<bucket>|<key>` (a Faust table with plain keys; Faust's own
    windowed tables expire only the keys a process set itself, so a worker whose tables stay on disk across
    restarts would keep every older one for ever)."""

    def __init__(self, table: MutableMapping[str, Any], clock_ms: Callable[[], int]) -> None:
        self._table, self._clock_ms = table, clock_ms

    def __contains__(self, key: object) -> bool:
        bucket = self._clock_ms() // RECENT_BUCKET_MS
        return _bucketed(bucket, key) in self._table or _bucketed(bucket - 1, key) in self._table

    def add(self, key: str) -> None:
        # Marked in this bucket already (each report of an order marks its intent decided again, a late report
        # its order closed again): writing it again would change nothing but send one more changelog record.
        marked = _bucketed(self._clock_ms() // RECENT_BUCKET_MS, key)
        if marked not in self._table:
            self._table[marked] = 1

    def expired_below(self) -> str:
        """Every key that sorts below this one is in a bucket no longer kept."""
        return _bucketed(self._clock_ms() // RECENT_BUCKET_MS - RECENT_BUCKETS_KEPT + 1, "")


def _bucketed(bucket: int, key: object) -> str:
    return f"{bucket:010d}|{key}"


class PendingKeys:
    """RecentKeys whose additions reach the table only on `commit()`: a key is marked once the outputs that
    follow from it are in the log (ack before state)."""

    def __init__(self, keys: RecentKeys) -> None:
        self._keys, self._added = keys, list[str]()

    def __contains__(self, key: object) -> bool:
        return key in self._added or key in self._keys

    def add(self, key: str) -> None:
        self._added.append(key)

    def commit(self) -> None:
        for key in self._added:
            self._keys.add(key)
        self._added.clear()


SPLIT = "token_seq"  # in a wallet's value: its per-token parts are in the tokens table; the next order number


def _token_parts(state: WalletState) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The per-token parts of a state, in the order of a row: positions, marks, realised PnL by token."""
    return state.ledger.positions, state.portfolio.marks, state.portfolio.realised_by_token


def _contents(part: int, values: list[Any]) -> list[Any]:
    """What a part's entries are made of, flat, compared by identity: a mark or a realised amount is replaced
    when it changes, a position is changed in place (its shares and cost are new objects then)."""
    return [x for p in values for x in (p.shares, p.cost_usdc)] if part == 0 else values


def _entries(part: int, keys: list[str], contents: list[Any]) -> dict[str, tuple[Any, ...]]:
    """Each token's share of `_contents`."""
    if part == 0:
        return {asset: (contents[2 * i], contents[2 * i + 1]) for i, asset in enumerate(keys)}
    return {asset: (content,) for asset, content in zip(keys, contents, strict=True)}


class WalletTokens:
    """A wallet's per-token parts as the tokens table holds them: each part's tokens in order with what their
    entries were made of (compared by identity: an object neither replaced nor changed in place is the same
    value, digit for digit), and each token's order number per part. Reading a state back puts each part's
    tokens in that order, so it iterates, and therefore decides and reports, exactly as the state saved."""

    def __init__(
        self,
        parts: list[tuple[list[str], list[Any]]] | None,
        seqs: dict[str, list[int | None]],
        next_seq: int,
    ) -> None:
        self.parts, self.seqs, self.next_seq = parts, seqs, next_seq  # parts None: unknown, compare none

    @classmethod
    def of(cls, state: WalletState, seqs: dict[str, list[int | None]], next_seq: int) -> WalletTokens:
        parts = [(list(d), _contents(i, list(d.values()))) for i, d in enumerate(_token_parts(state))]
        return cls(parts, seqs, next_seq)

    def changes(self, state: WalletState) -> tuple[set[str], WalletTokens]:
        """The tokens whose row differs from what is written (an entry or an order number changed, or it is
        new or gone), and this state's tokens as they will be written. Whole parts are compared first (at the
        speed of C); a token is looked at only in a part that changed."""
        changed: set[str] = set()
        seqs = {asset: list(numbers) for asset, numbers in self.seqs.items()}
        parts: list[tuple[list[str], list[Any]]] = []
        for index, part in enumerate(_token_parts(state)):
            keys, contents = list(part), _contents(index, list(part.values()))
            parts.append((keys, contents))
            old = self.parts[index] if self.parts is not None else None
            if old is not None and keys == old[0] and all(map(operator.is_, contents, old[1])):
                continue  # the part is as written
            entries = _entries(index, keys, contents)
            was = _entries(index, *old) if old is not None else {}
            changed.update(
                asset
                for asset, entry in entries.items()
                if asset not in was or not all(map(operator.is_, entry, was[asset]))
            )
            if old is not None and keys == old[0]:
                continue  # same tokens in the same order: their numbers stand
            for asset, numbers in seqs.items():
                if numbers[index] is not None and asset not in entries:
                    numbers[index] = None  # gone from this part
                    changed.add(asset)
            last = -1
            for asset in keys:  # numbers rise along the part's order; a token out of order takes a new one
                numbers = seqs.setdefault(asset, [None, None, None])
                seq = numbers[index]
                if seq is None or seq <= last:
                    seq, self.next_seq = self.next_seq, self.next_seq + 1
                    numbers[index] = seq
                    changed.add(asset)
                last = seq
        return changed, WalletTokens(parts, seqs, self.next_seq)


class WalletStateStore:
    """Loads the state one event needs into a WalletState and writes back what changed."""

    def __init__(
        self,
        wallets: MutableMapping[str, Any],
        leader_positions: MutableMapping[str, Any],
        decided: RecentKeys,
        followed_positions: MutableMapping[str, Any],
        closed_orders: RecentKeys,
        tokens: MutableMapping[str, Any],
    ) -> None:
        self._wallets, self._leader_positions, self._decided = wallets, leader_positions, decided
        self._followed, self._closed, self._tokens = followed_positions, closed_orders, tokens
        # Per wallet: its tokens as the tokens table holds them (absent: not known, every token is written).
        self._written: dict[str, WalletTokens] = {}
        # Per wallet (an event holds its wallet's lock from load to save): the followed keys loaded, so a
        # position sold down to nothing is deleted from its table.
        self._loaded_followed: dict[str, set[str]] = {}
        self._loaded_leaders: dict[str, set[str]] = {}  # the same for the leader positions (a batch's trades)
        # Per wallet: the state its last save wrote. Decoding a wallet's value (its PnL book above all) and
        # rebuilding the running sums of its ledger and book was a tenth of the worker's time; the wallet's
        # next event reuses it, until a rebalance (`forget_kept`) may have let another worker write.
        self._saved: dict[str, WalletState] = {}

    def load(self, wallet_id: str, capital: Decimal) -> WalletState:
        """The wallet's state without any followed position or closed order id (`load_for_*` add the ones
        their event needs)."""
        self._loaded_followed[wallet_id] = set()
        self._loaded_leaders[wallet_id] = set()
        # A kept state is never stale: it is taken out here, whatever happens next, so an event that changed
        # it and then failed before its save leaves nothing behind; only this worker's saves write the
        # wallet's value while it owns the partition, and a rebalance forgets every kept state.
        saved = self._saved.pop(wallet_id, None)
        if saved is not None:
            return saved
        state, written = self._decode(wallet_id, self._wallets.get(wallet_id), capital)
        self._written.pop(wallet_id, None)
        if written is not None:
            self._written[wallet_id] = written
        return state

    def load_saved(self, wallet_id: str) -> WalletState | None:
        """The wallet's saved state, or None when this worker holds none (a wallet with no event yet, or one
        whose partition another worker owns). To read only: it may be the state kept for the next event."""
        saved = self._saved.get(wallet_id)
        if saved is not None:
            return saved  # what decoding its value gives (see `load`)
        value = self._wallets.get(wallet_id)
        return self._decode(wallet_id, value, Decimal(0))[0] if value else None

    def forget_kept(self) -> None:
        """Drop every kept state: partitions moved (a rebalance), and another worker may have written the
        values since; the next event of each wallet decodes the table's."""
        self._saved.clear()

    def _decode(
        self, wallet_id: str, value: dict[str, Any] | None, capital: Decimal
    ) -> tuple[WalletState, WalletTokens | None]:
        """The state a value (and its rows in the tokens table) gives, and those rows as written. A value
        saved before the split holds its tokens: its rows are unknown, and its first save writes them all."""
        if not value:
            return WalletState.load(value, capital), WalletTokens([([], [])] * 3, {}, 0)
        if SPLIT not in value:
            return WalletState.load(value, capital), None
        prefix = f"{wallet_id}|"
        rows = [(key[len(prefix) :], row) for key, row in self._tokens.items() if key.startswith(prefix)]
        whole = {**value, "ledger": dict(value["ledger"]), "portfolio": dict(value["portfolio"])}
        for index, (part, name) in enumerate(
            (("ledger", "positions"), ("portfolio", "marks"), ("portfolio", "realised_by_token"))
        ):
            held = sorted(
                (row[2 * index + 1], asset, row[2 * index])
                for asset, row in rows
                if row[2 * index] is not None
            )
            whole[part][name] = {asset: entry for _, asset, entry in held}
        state = WalletState.load(whole, capital)
        seqs: dict[str, list[int | None]] = {asset: [row[1], row[3], row[5]] for asset, row in rows}
        return state, WalletTokens.of(state, seqs, int(value[SPLIT]))

    def _save_tokens(self, wallet_id: str, state: WalletState) -> int:
        """Write the rows of the tokens whose parts or order changed since they were written, delete the rows
        of tokens gone; the next order number. An event changes a token or a few, and writing the whole
        wallet's tokens with every event was most of what the worker sent (50 KB per event in the bench)."""
        written = self._written.pop(wallet_id, None) or WalletTokens(None, {}, 0)
        changed, now = written.changes(state)
        positions, marks, realised = _token_parts(state)
        for asset in changed:
            numbers = now.seqs[asset]
            key = f"{wallet_id}|{asset}"
            if numbers == [None, None, None]:
                del now.seqs[asset]
                self._tokens.pop(key, None)
                continue
            position, mark, amount = positions.get(asset), marks.get(asset), realised.get(asset)
            self._tokens[key] = [
                None if position is None else position_state(position),
                numbers[0],
                None if mark is None else mark_state(mark),
                numbers[1],
                None if amount is None else str(amount),
                numbers[2],
            ]
        self._written[wallet_id] = now
        return now.next_seq

    def save(self, wallet_id: str, state: WalletState) -> None:
        """Write the followed positions and the closed order ids to their tables, the rest to the wallet's
        value (a value saved before they had tables moves them there on its first save)."""
        ledger = state.ledger
        for key in self._loaded_followed.pop(wallet_id, set()) | set(ledger.followed_positions):
            shares = ledger.followed_positions.get(key)
            table_key = f"{wallet_id}|{key}"
            if shares is not None and shares > 0:
                if self._followed.get(table_key) != str(shares):
                    self._followed[table_key] = str(shares)
            elif self._followed.get(table_key) is not None:
                del self._followed[table_key]
        for order_id in state.closed:
            self._closed.add(order_id)
        ledger.followed_positions.clear()
        state.forget_closed()
        value = state.dump(tokens=False)
        value[SPLIT] = self._save_tokens(wallet_id, state)
        self._wallets[wallet_id] = value
        if state.dumps_whole():  # the state is then what decoding its value gives
            self._saved[wallet_id] = state

    def is_decided(self, wallet_id: str, trade: RawTrade) -> bool:
        """Whether this (wallet, trade) pair was decided and its outputs are in the log."""
        return build_intent_id(wallet_id, trade.dedup_key) in self._decided

    def load_for_trade(self, wallet_id: str, capital: Decimal, trade: RawTrade) -> WalletState:
        """The wallet's state plus this trade's leader position, what the wallet holds for following this
        leader in this token, and whether the pair was already decided."""
        state = self.load(wallet_id, capital)
        self.add_trade(wallet_id, state, trade)
        return state

    def add_trade(self, wallet_id: str, state: WalletState, trade: RawTrade) -> None:
        """Add what `trade` needs to a state loaded for the same wallet: the next trade of a batch decided on
        one state (what an earlier trade of the batch changed stays as it is in memory)."""
        leader_key = f"{trade.proxy_wallet}|{trade.asset}"
        loaded = self._loaded_leaders.setdefault(wallet_id, set())
        if leader_key not in loaded:
            loaded.add(leader_key)
            position = self._leader_positions.get(_leader_key(wallet_id, trade))
            if position is not None:
                state.ledger.leader_positions[leader_key] = Decimal(position)
        self._load_followed(wallet_id, state, trade.proxy_wallet, trade.asset)
        intent_id = build_intent_id(wallet_id, trade.dedup_key)
        if intent_id in self._decided:
            state.ledger.remember_intent(intent_id)

    def load_for_report(self, wallet_id: str, capital: Decimal, report: ExecutionReport) -> WalletState:
        """The wallet's state plus what the report's order may change: whether the order already ended, and
        the followed position its fill moves."""
        state = self.load(wallet_id, capital)
        self.add_report(wallet_id, state, report)
        return state

    def add_report(self, wallet_id: str, state: WalletState, report: ExecutionReport) -> None:
        """Add what `report` needs to a state loaded for the same wallet: the next report of a batch applied
        to one state (an order an earlier report of the batch ended is closed in memory already)."""
        if report.order_id in self._closed and not state.is_closed(report.order_id):
            state.remember_closed(report.order_id)
        reservation = state.ledger.reservations.get(report.intent_id)
        if reservation is not None and reservation.leader:
            self._load_followed(wallet_id, state, reservation.leader, reservation.asset)

    def save_for_reports(self, wallet_id: str, state: WalletState, reports: list[ExecutionReport]) -> None:
        """`save`, marking each report's (wallet, trade) pair decided: a report means its intent, and the
        decision sent with it, are in the log. A worker killed after sending them but before its state write
        would otherwise decide the trade again from the older state and reserve the intent a second time,
        a reservation that nothing releases (the executor does not execute or report an intent twice)."""
        for report in reports:
            self._decided.add(report.intent_id)
        self.save(wallet_id, state)

    def save_for_trades(self, wallet_id: str, state: WalletState, trades: list[RawTrade]) -> None:
        """Write the trades' leader positions and decided marks to their tables, then the rest (`save`)."""
        ledger = state.ledger
        for key, trade in {_leader_key(wallet_id, trade): trade for trade in trades}.items():
            position = ledger.leader_position(trade.proxy_wallet, trade.asset)
            if position > 0:
                self._leader_positions[key] = str(position)
            elif self._leader_positions.get(key) is not None:
                del self._leader_positions[key]
        for intent_id in ledger.recent_intents:
            self._decided.add(intent_id)
        ledger.leader_positions.clear()
        ledger.recent_intents.clear()
        self.save(wallet_id, state)

    def _load_followed(self, wallet_id: str, state: WalletState, leader: str, asset: str) -> None:
        key = f"{leader}|{asset}"
        loaded = self._loaded_followed.setdefault(wallet_id, set())
        if key in loaded:
            return  # loaded for an earlier event of this state's batch: memory has it (or sold it to nothing)
        loaded.add(key)
        shares = self._followed.get(f"{wallet_id}|{key}")
        if shares is not None and key not in state.ledger.followed_positions:
            state.ledger.followed_positions[key] = Decimal(shares)


def _leader_key(wallet_id: str, trade: RawTrade) -> str:
    return f"{wallet_id}|{trade.proxy_wallet}|{trade.asset}"
