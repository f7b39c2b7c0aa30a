"""`explain_decision`: why each wallet did or did not copy a fill, from the trades, decisions and intents
tables, the copy rule behind the reason, and the book state the gate saw (read back from the books topic)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from polycopy.infra.kafka import read_topic
from polycopy.infra.postgres import query_rows
from polycopy.tools.mcp.models import (
    BookSeen,
    DecisionExplanation,
    DecisionOutcome,
    OrderView,
    ToolInputError,
    TradeExplanations,
)
from polycopy.tools.mcp.reader import PipelineReader, check_wallet_id
from polycopy.tools.mcp.rules import explain_reason
from schemas.books import Level, OrderBook
from schemas.decisions import Decision, DecisionAction, SkipReason
from schemas.topics import BOOKS
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig

DEDUP_KEY = re.compile(r"^[0-9a-f]{32}$")
TRANSACTION_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
# Reading the books topic back stops at this many records: a book older than that is reported as not found.
MAX_BOOK_RECORDS = 200_000
# A pinned state was received before its trade was decided; later states of the token end the search.
BOOK_SEARCH_AFTER_MS = 60_000


class DecisionExplainer:
    """Explains decisions from the tables, with the reader's wallets and the books topic."""

    def __init__(self, reader: PipelineReader) -> None:
        self.reader = reader
        self.settings = reader.settings

    def explain(self, trade: str, wallet_id: str | None = None) -> TradeExplanations:
        """Every fill `trade` names (a dedup key, or a transaction hash holding several fills), and for each
        the decision of `wallet_id` (or of every wallet that decided it or follows its trader)."""
        trades = self._trades(trade)
        if wallet_id is not None:
            check_wallet_id(wallet_id)
        keys = [t.dedup_key for t in trades]
        decisions = [
            Decision.model_validate(_fields(row, Decision))
            for row in self._rows(
                "SELECT * FROM decisions WHERE dedup_key = ANY(%(keys)s) "
                "AND (%(wallet)s::text IS NULL OR wallet_id = %(wallet)s::text) "
                "ORDER BY wallet_id, dedup_key",
                {"keys": keys, "wallet": wallet_id},
            )
        ]
        wallets = self.reader.wallets()
        if wallet_id is not None and wallet_id not in wallets and not decisions:
            self.reader.require_wallet(wallet_id)
        intents = {
            row["intent_id"]: row
            for row in self._rows(
                "SELECT intent_id, wallet_id, dedup_key, book_levels FROM order_intents "
                "WHERE dedup_key = ANY(%(keys)s)",
                {"keys": keys},
            )
        }
        orders = self.reader.order_views(list(intents))
        books = self._books(decisions)
        decided = {(d.dedup_key, d.wallet_id): d for d in decisions}
        followed = self._synced_traders()
        explanations = []
        for fill in trades:
            candidates = (
                [wallet_id]
                if wallet_id is not None
                else sorted({d.wallet_id for d in decisions if d.dedup_key == fill.dedup_key} | set(wallets))
            )
            for candidate in candidates:
                decision = decided.get((fill.dedup_key, candidate))
                config = wallets.get(candidate)
                if decision is None:
                    explanations.append(_undecided(fill, candidate, config, followed))
                    continue
                intent = next(
                    (
                        row
                        for row in intents.values()
                        if (row["wallet_id"], row["dedup_key"]) == (candidate, fill.dedup_key)
                    ),
                    None,
                )
                explanations.append(_decided(decision, config, books, intent, orders))
        return TradeExplanations(trades=tuple(trades), explanations=tuple(explanations))

    def _trades(self, trade: str) -> list[RawTrade]:
        if DEDUP_KEY.match(trade):
            where, what = "dedup_key = %(q)s", "dedup key"
        elif TRANSACTION_HASH.match(trade):
            where, what = "lower(transaction_hash) = lower(%(q)s)", "transaction hash"
        else:
            raise ToolInputError(
                f"malformed trade {trade!r}: give a dedup key (32 lower-case hex digits) or a transaction "
                "hash ('0x' and 64 hex digits)"
            )
        rows = self._rows(
            f"SELECT * FROM trades WHERE {where} ORDER BY received_at_ms, dedup_key", {"q": trade}
        )
        if not rows:
            raise ToolInputError(f"no trade with {what} {trade!r} in the trades table")
        return [_trade(row) for row in rows]

    def _synced_traders(self) -> set[str]:
        return {row["wallet"] for row in self._rows("SELECT wallet FROM traders", {})}

    def _books(self, decisions: list[Decision]) -> dict[str, OrderBook]:
        """The pinned book states of these decisions, read back from the books topic in one pass."""
        wanted = {d.book_id: d for d in decisions if d.book_id is not None}
        if not wanted:
            return {}
        assets = {d.asset for d in wanted.values()}
        since = min(d.received_at_ms for d in wanted.values()) - self.settings.market_book_max_age_ms
        until = max(d.decided_at_ms for d in wanted.values()) + BOOK_SEARCH_AFTER_MS
        found: dict[str, OrderBook] = {}
        for book in _books_of(self.settings, assets, since, until):
            if book.book_id in wanted:
                found[book.book_id] = book
                if len(found) == len(wanted):
                    break
        return found

    def _rows(self, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return query_rows(self.settings.database_url, statement, params)


def _books_of(settings: Any, assets: set[str], since_ms: int, until_ms: int) -> Iterator[OrderBook]:
    """Book states of `assets` on the books topic from `since_ms`, until a state of theirs received after
    `until_ms` (a token's states are in order on its partition) or MAX_BOOK_RECORDS records."""
    keys = {asset.encode() for asset in assets}
    for count, record in enumerate(read_topic(settings, BOOKS, since_ms=since_ms, idle_secs=5), 1):
        if count > MAX_BOOK_RECORDS:
            return
        if record.key not in keys or record.value is None:
            continue
        book = OrderBook.model_validate_json(record.value)
        if book.received_at_ms > until_ms:
            return
        yield book


def _decided(
    decision: Decision,
    config: WalletConfig | None,
    books: dict[str, OrderBook],
    intent: dict[str, Any] | None,
    orders: dict[str, OrderView],
) -> DecisionExplanation:
    levels = None
    if intent is not None and intent["book_levels"] is not None:
        levels = tuple(Level(price=level["price"], size=level["size"]) for level in intent["book_levels"])
    book = books.get(decision.book_id) if decision.book_id else None
    if decision.book_id is None:
        note = "the decision had no book (none was pinned to the trade)"
    elif book is None:
        note = (
            "the pinned state is no longer in the books topic (kept 3 days) or was not found near the trade"
        )
    else:
        note = ""
    return DecisionExplanation(
        wallet_id=decision.wallet_id,
        dedup_key=decision.dedup_key,
        outcome=DecisionOutcome.COPIED if decision.action is DecisionAction.COPY else DecisionOutcome.SKIPPED,
        reason=decision.reason,
        detail=decision.detail,
        decision=decision,
        rule=explain_reason(decision.reason, config),
        book=BookSeen(book_id=decision.book_id, book=book, levels_at_limit=levels, note=note),
        order=orders.get(intent["intent_id"]) if intent is not None else None,
    )


def _undecided(
    fill: RawTrade, wallet_id: str, config: WalletConfig | None, synced_traders: set[str]
) -> DecisionExplanation:
    if config is not None and config.follows(fill.proxy_wallet, synced_traders):
        return DecisionExplanation(
            wallet_id=wallet_id,
            dedup_key=fill.dedup_key,
            outcome=DecisionOutcome.NOT_DECIDED,
            reason="not_decided",
            detail="the wallet follows the trader now but recorded no decision on this fill: it followed "
            "them only later, or the fill is still on its way",
        )
    why = (
        "the wallet is not configured"
        if config is None
        else (
            "the wallet is disabled"
            if not config.enabled
            else "the trader is not among the wallet's targets"
            if config.targets
            else "the trader is not among the synced traders the wallet follows"
        )
    )
    return DecisionExplanation(
        wallet_id=wallet_id,
        dedup_key=fill.dedup_key,
        outcome=DecisionOutcome.NOT_FOLLOWED,
        reason=SkipReason.NOT_TARGET.value,
        detail=f"{why}: trades of traders a wallet does not follow are not fanned out to it, so no decision "
        "is recorded",
        rule=explain_reason(SkipReason.NOT_TARGET, config),
    )


def _fields(row: dict[str, Any], model: type[Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key in model.model_fields}


def _trade(row: dict[str, Any]) -> RawTrade:
    fields = _fields(row, RawTrade)
    fields["timestamp"] = int(row["trade_time"].timestamp())
    return RawTrade.model_validate(fields)
