"""Books read back from the books topic: the live worker's view (`RecentBooks`) and the rule a replay uses
to rebuild, for each logged trade, the book the live gate saw (`ReplayBooks`).

The topic holds the full book of a token after each change, from the market channel (`source=channel`) or
from a worker's `GET /book` fallback (`source=rest`); a null record means the channel's book of that token
stopped being current (the socket closed or the token was dropped). Pure: callers feed the records in.
"""

from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from processors.core.books import is_fresh
from schemas.books import BookSource, OrderBook

PINNED_KEEP_MS = 120_000  # how long a worker can still find a state a trade was pinned to
PINNED_KEEP_PER_TOKEN = 200  # ... and how many states of one token it keeps for that


class RecentBooks:
    """The latest channel state of every token, and the recent states of each (any source), by id.

    The target filter pins a trade to a state; the evaluation of each follower, perhaps in another worker,
    finds that state again by id. States older than `keep_ms` (by the newest receive time seen) are
    forgotten, and at most `keep_per_token` are kept per token.
    """

    def __init__(self, keep_ms: int = PINNED_KEEP_MS, keep_per_token: int = PINNED_KEEP_PER_TOKEN) -> None:
        self._keep_ms, self._keep_per_token = keep_ms, keep_per_token
        self._channel: dict[str, OrderBook] = {}
        # Per token, its states by id in arrival order (a restarted worker applies every state of the last two
        # minutes: looked up by id, not scanned, which took 40% of that load); least recently changed first.
        self._recent: OrderedDict[str, OrderedDict[object, OrderBook]] = OrderedDict()
        self._unnamed = itertools.count()  # keys of the states that have no id (never found by id)
        self._newest_ms = 0

    def __len__(self) -> int:
        return sum(len(states) for states in self._recent.values())

    def apply(self, token_id: str, book: OrderBook | None) -> None:
        """One record of the books topic (None: the channel's book of the token is no longer current)."""
        if book is None:
            self._channel.pop(token_id, None)
            return
        if book.source is BookSource.CHANNEL:
            self._channel[token_id] = book
        states = self._recent.setdefault(token_id, OrderedDict())
        key = book.book_id if book.book_id is not None else next(self._unnamed)
        if key not in states:
            states[key] = book
            if len(states) > self._keep_per_token:
                states.popitem(last=False)
        self._recent.move_to_end(token_id)
        self._newest_ms = max(self._newest_ms, book.received_at_ms)
        self._expire()

    def fresh_channel_book(self, token_id: str, now_ms: int, max_age_ms: int) -> OrderBook | None:
        """The token's latest channel state if it was received within `max_age_ms` of `now_ms`."""
        book = self._channel.get(token_id)
        if book is None or not is_fresh(book.received_at_ms, now_ms, max_age_ms):
            return None
        return book

    def find(self, token_id: str, book_id: str) -> OrderBook | None:
        """The token's recent state with this id, if still kept."""
        states = self._recent.get(token_id)
        return states.get(book_id) if states is not None else None

    def _expire(self) -> None:
        horizon = self._newest_ms - self._keep_ms
        while self._recent:
            token, states = next(iter(self._recent.items()))
            while states and next(iter(states.values())).received_at_ms < horizon:
                states.popitem(last=False)
            if states:
                break
            del self._recent[token]
            self._channel.pop(token, None)  # older than any pin, and far older than any fresh book


@dataclass(frozen=True)
class ReplayedTrade:
    """A logged trade as a replay sees it: its fill, when it was received, and what the live run pinned."""

    dedup_key: str
    token_id: str
    received_at_ms: int
    decided_live: bool = False  # the decisions topic has a decision about it
    pinned_book_id: str | None = None  # the book its live decisions recorded (None: live had no book)


@dataclass
class _Candidate:
    received_at_ms: int = -1
    book: OrderBook | None = None


@dataclass
class _TokenTrades:
    times: list[int] = field(default_factory=list)  # receive times, ascending
    keys: list[str] = field(default_factory=list)  # the dedup keys, in the same order


class ReplayBooks:
    """Rebuilds, for each logged trade, the book the live gate saw.

    A trade decided live gets the state its decisions pinned (`book_id`; none if the live run had none).
    Any other trade gets what the live target filter would have chosen at its receive time: the latest
    channel state received at or before it within `channel_max_age_ms` (unless the channel's book was lost
    since), else the latest REST state within `rest_max_age_ms`, else no book. Feed every record of the books
    topic (any order across tokens; one token's records in log order) with `add`, then ask `book_for`.
    """

    def __init__(
        self, trades: Iterable[ReplayedTrade], channel_max_age_ms: int, rest_max_age_ms: int
    ) -> None:
        self._trades = {trade.dedup_key: trade for trade in trades}
        self._max_age = {BookSource.CHANNEL: channel_max_age_ms, BookSource.REST: rest_max_age_ms}
        self._by_token: dict[str, _TokenTrades] = {}
        for trade in sorted(self._trades.values(), key=lambda t: (t.token_id, t.received_at_ms)):
            entry = self._by_token.setdefault(trade.token_id, _TokenTrades())
            entry.times.append(trade.received_at_ms)
            entry.keys.append(trade.dedup_key)
        self._wanted = {t.pinned_book_id for t in self._trades.values() if t.pinned_book_id is not None}
        self._pinned: dict[str, OrderBook] = {}
        self._latest: dict[tuple[str, BookSource], _Candidate] = {}
        self.pinned_missing = 0  # trades decided live whose pinned state the log no longer holds

    def add(self, token_id: str, received_at_ms: int, book: OrderBook | None) -> None:
        """One record of the books topic: a state, or None (the channel's book of the token was lost)."""
        if book is not None and book.book_id in self._wanted:
            self._pinned[book.book_id] = book
        trades = self._by_token.get(token_id)
        if trades is None:
            return
        # A lost channel book (None) competes with the channel's states: after it, there is no channel book.
        source = book.source if book is not None and book.source is not None else BookSource.CHANNEL
        start = bisect.bisect_left(trades.times, received_at_ms)
        end = bisect.bisect_right(trades.times, received_at_ms + self._max_age[source])
        for key in trades.keys[start:end]:
            candidate = self._latest.setdefault((key, source), _Candidate())
            if received_at_ms >= candidate.received_at_ms:
                candidate.received_at_ms, candidate.book = received_at_ms, book

    def book_for(self, trade: ReplayedTrade) -> OrderBook | None:
        """The book for a trade given to the constructor, once every record has been added."""
        if trade.decided_live:
            if trade.pinned_book_id is None:
                return None
            if trade.pinned_book_id in self._pinned:
                return self._pinned[trade.pinned_book_id]
            self.pinned_missing += 1
        for source in (BookSource.CHANNEL, BookSource.REST):
            candidate = self._latest.get((trade.dedup_key, source))
            if candidate is not None and candidate.book is not None:
                return candidate.book
        return None
