"""Paper GTC/GTD orders resting on the book, for the executor: they fill as the books topic moves and end at
their expiry. Every change is stored with its reports (an outbox in the journal) before the reports are
published, and a restart publishes whatever the last run stored but could not deliver."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from polycopy.infra.kafka import Record
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import RestingEntry
from processors.core.paper import RestingOrder, expire_resting, fill_resting
from schemas.books import OrderBook
from schemas.orders import ExecutionReport

log = logging.getLogger(__name__)


class RestingJournal(Protocol):
    """The journal's resting-order part (`polycopy.infra.postgres.ExecutionJournal`, or a fake in tests)."""

    def open_resting(self) -> list[RestingEntry]: ...

    def update_resting(
        self, intent_id: str, state: dict[str, Any], outbox: Sequence[dict[str, Any]], *, open_: bool
    ) -> None: ...

    def clear_outbox(self, intent_ids: Sequence[str]) -> None: ...


class ReportSink(Protocol):
    """Where reports go, and how their delivery is confirmed (the executor's `deliver`)."""

    def publish(self, report: ExecutionReport) -> None: ...

    def deliver(self) -> None: ...


class LatestBooks:
    """The newest state of each token on the books topic, as a follower thread hands them over; the
    executor's loop takes them between polls. Holds raw values: parsing happens in the loop, where a
    malformed state is counted and skipped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, bytes] = {}

    def on_record(self, record: Record) -> None:
        if record.key is None or record.value is None:
            return  # a lost channel book: nothing to fill against
        with self._lock:
            self._latest[record.key.decode(errors="replace")] = record.value

    def take(self) -> dict[str, bytes]:
        with self._lock:
            taken, self._latest = self._latest, {}
        return taken


class RestingPaperOrders:
    """The executor's resting paper orders: loaded from the journal at start, stepped between polls."""

    def __init__(
        self,
        journal: RestingJournal,
        reports: ReportSink,
        metrics: PipelineMetrics,
        *,
        books: LatestBooks,
        clock_ms: Callable[[], int],
    ) -> None:
        self._journal, self._reports, self._metrics = journal, reports, metrics
        self._books, self._clock_ms = books, clock_ms
        self._orders: dict[str, RestingOrder] = {}  # by intent id
        self.malformed_books = 0

    @property
    def orders(self) -> dict[str, RestingOrder]:
        return dict(self._orders)

    def load(self) -> None:
        """Take up the orders the journal holds as resting; publish what an earlier run stored but did not
        deliver."""
        undelivered = []
        for entry in self._journal.open_resting():
            self._orders[entry.intent_id] = RestingOrder.from_state(entry.state)
            if entry.outbox:
                undelivered.append(entry.intent_id)
                for report in entry.outbox:
                    self._reports.publish(ExecutionReport.model_validate(report))
        if undelivered:
            self._reports.deliver()
            self._journal.clear_outbox(undelivered)
        if self._orders:
            log.info("%d paper orders resting on the book", len(self._orders))

    def add(self, order: RestingOrder) -> None:
        """An order just placed left a remainder resting (the journal already holds it)."""
        self._orders[order.intent.intent_id] = order

    def step(self) -> None:
        """Fill resting orders against the book states that arrived since the last step; end expired ones."""
        books = self._books.take()
        if not self._orders:
            return
        now = self._clock_ms()
        changes: list[tuple[RestingOrder, list[ExecutionReport], bool]] = []
        for token, value in books.items():
            orders = [order for order in self._orders.values() if order.intent.asset == token]
            if not orders:
                continue
            book = self._parse(token, value)
            if book is None:
                continue
            for order in orders:
                updated, reports = fill_resting(order, book, now_ms=now)
                self._orders[order.intent.intent_id] = updated
                if reports:
                    changes.append((updated, reports, updated.remaining > 0))
        for order in list(self._orders.values()):
            expired = expire_resting(order, now_ms=now)
            if expired is not None:
                changes.append((order, [expired], False))
        self._apply(changes)

    def _apply(self, changes: Iterable[tuple[RestingOrder, list[ExecutionReport], bool]]) -> None:
        changed = []
        for order, reports, still_open in changes:
            intent_id = order.intent.intent_id
            outbox = [report.model_dump(mode="json") for report in reports]
            self._journal.update_resting(intent_id, order.to_state(), outbox, open_=still_open)
            if not still_open:
                self._orders.pop(intent_id, None)
            for report in reports:
                self._metrics.reports.labels(report.kind.value).inc()
                self._reports.publish(report)
            changed.append(intent_id)
        if changed:
            self._reports.deliver()
            self._journal.clear_outbox(changed)

    def _parse(self, token: str, value: bytes) -> OrderBook | None:
        try:
            return OrderBook.model_validate_json(value)
        except (ValidationError, ValueError) as error:
            # A malformed state never stops the executor: the next valid one fills the orders.
            self.malformed_books += 1
            self._metrics.parse_errors.labels("books").inc()
            log.warning("malformed book state of %s skipped: %s", token, str(error)[:200])
            return None
