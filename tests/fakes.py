"""Fakes of our own for the clients the components receive: a broker with consumer groups, a publisher, the
executor's journal, a book gateway, the sink's row writer, compacted-topic tables. No I/O anywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polycopy.infra.kafka import Record
from polycopy.infra.postgres import JournalEntry, RestingEntry, RowsRejected
from schemas.base import Message
from schemas.deadletter import DeadLetter
from schemas.topics import DEAD_LETTERS, TopicSpec


class FakeBroker:
    """Topics of records by (topic, partition), and each consumer group's committed offsets."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, int], list[Record]] = {}
        self.committed: dict[str, dict[tuple[str, int], int]] = {}

    def append(
        self, topic: str, value: bytes | None, *, partition: int = 0, key: bytes | None = None
    ) -> Record:
        log = self.records.setdefault((topic, partition), [])
        record = Record(topic, partition, len(log), key, value, 1_790_000_000_000 + len(log))
        log.append(record)
        return record

    def append_message(self, topic: str, message: Message, *, partition: int = 0, key: str = "k") -> Record:
        return self.append(topic, message.to_bytes(), partition=partition, key=key.encode())

    def consumer(self, group: str, **options: Any) -> FakeConsumer:
        return FakeConsumer(self, group, **options)


class FakeConsumer:
    """A group member over a `FakeBroker`: reads from the group's committed offsets, records its commits.

    `revoke_at_poll=n` takes the partitions away (calling `on_revoke`) inside the n-th poll, as a rebalance
    does, and then hands them back from the committed offsets.
    """

    def __init__(self, broker: FakeBroker, group: str, *, revoke_at_poll: int | None = None) -> None:
        self.broker, self.group = broker, group
        self.topics: tuple[str, ...] = ()
        self.commits: list[dict[tuple[str, int], int]] = []
        self.closed = False
        self.polls = 0
        self._revoke_at_poll = revoke_at_poll
        self._on_revoke: Callable[[], None] | None = None
        self._position: dict[tuple[str, int], int] = {}
        self.events: list[str] | None = None  # when set, "commit" and "close" are appended here

    def subscribe(self, topics: Iterable[str], on_revoke: Callable[[], None] | None = None) -> None:
        self.topics, self._on_revoke = tuple(topics), on_revoke
        self._rewind()

    def _rewind(self) -> None:
        committed = self.broker.committed.get(self.group, {})
        self._position = {tp: committed.get(tp, 0) for tp in self.broker.records if tp[0] in self.topics}

    def poll_batch(self, max_records: int, timeout_secs: float) -> list[Record]:
        assert not self.closed, "poll after close"
        self.polls += 1
        if self.polls == self._revoke_at_poll:
            if self._on_revoke is not None:
                self._on_revoke()
            self._rewind()
        batch: list[Record] = []
        for tp in sorted(self._position):
            log = self.broker.records[tp]
            while self._position[tp] < len(log) and len(batch) < max_records:
                batch.append(log[self._position[tp]])
                self._position[tp] += 1
        return batch

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        self.commits.append(dict(offsets))
        self.broker.committed.setdefault(self.group, {}).update(offsets)
        if self.events is not None:
            self.events.append("commit")
        return True

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not read yet per assigned partition, as `RecordConsumer.lag` measures them."""
        return {tp: len(self.broker.records[tp]) - position for tp, position in self._position.items()}

    def close(self) -> None:
        self.closed = True
        if self.events is not None:
            self.events.append("close")


class FakePublisher:
    """Records what is published; `undelivered` is what each flush reports as still queued."""

    def __init__(self, client_id: str = "test", *, undelivered: int = 0) -> None:
        self.client_id = client_id
        self.undelivered = undelivered
        self.messages: list[tuple[TopicSpec, str | None, Message | None]] = []
        self.flushes = 0
        self.delivery_failures = 0

    def publish(
        self, spec: TopicSpec, key: str | None, message: Message | None, *, timestamp_ms: int = 0
    ) -> None:
        self.messages.append((spec, key, message))

    def publish_dead_letter(self, letter: DeadLetter) -> None:
        self.publish(DEAD_LETTERS, letter.stage, letter)

    def flush(self, timeout: float = 30.0) -> int:
        self.flushes += 1
        return self.undelivered

    def on(self, spec: TopicSpec) -> list[Any]:
        """The messages published to one topic, in order."""
        return [message for published, _, message in self.messages if published == spec]

    def keys(self, spec: TopicSpec) -> list[str | None]:
        return [key for published, key, _ in self.messages if published == spec]


class FakeJournal:
    """The executor's journal in memory: each intent's state and stored reports, the resting paper orders
    with their outboxes. `fail_next` makes the next calls raise (a lost database)."""

    def __init__(self, url: str = "postgresql://fake/journal") -> None:
        self.url = url
        self.states: dict[str, str] = {}
        self.reports: dict[str, list[dict[str, Any]]] = {}
        self.resting: dict[str, dict[str, Any]] = {}  # intent id -> {"state", "outbox", "open"}
        self.connected = self.closed = False
        self.calls: list[str] = []

    def connect(self) -> None:
        self.connected = True

    def claim(self, intent_id: str, order_id: str, mode: str) -> JournalEntry | None:
        assert self.connected, "claim before connect"
        self.calls.append("claim")
        if intent_id in self.states:
            return JournalEntry(self.states[intent_id], self.reports.get(intent_id))
        self.states[intent_id] = "claimed"
        return None

    def claim_sent(
        self,
        intent_id: str,
        order_id: str,
        mode: str,
        reports: Sequence[dict[str, Any]],
        resting: tuple[str, str, dict[str, Any]] | None = None,
    ) -> JournalEntry | None:
        assert self.connected, "claim before connect"
        self.calls.append("claim_sent")
        if intent_id in self.states:
            return JournalEntry(self.states[intent_id], self.reports.get(intent_id))
        self._store_sent(intent_id, reports, resting)
        return None

    def record_sent(
        self,
        intent_id: str,
        reports: Sequence[dict[str, Any]],
        resting: tuple[str, str, dict[str, Any]] | None = None,
    ) -> None:
        self.calls.append("record_sent")
        self._store_sent(intent_id, reports, resting)

    def _store_sent(
        self,
        intent_id: str,
        reports: Sequence[dict[str, Any]],
        resting: tuple[str, str, dict[str, Any]] | None,
    ) -> None:
        self.states[intent_id] = "sent"
        self.reports[intent_id] = [dict(report) for report in reports]
        if resting is not None:
            self.resting.setdefault(intent_id, {"state": resting[2], "outbox": [], "open": True})

    def mark_delivered(self, intent_ids: Sequence[str]) -> None:
        self.calls.append("mark_delivered")
        for intent_id in intent_ids:
            if self.states.get(intent_id) == "sent":
                self.states[intent_id] = "delivered"

    def open_resting(self) -> list[RestingEntry]:
        return [
            RestingEntry(intent_id, row["state"], list(row["outbox"]))
            for intent_id, row in sorted(self.resting.items())
            if row["open"]
        ]

    def update_resting(
        self, intent_id: str, state: dict[str, Any], outbox: Sequence[dict[str, Any]], *, open_: bool
    ) -> None:
        row = self.resting[intent_id]
        row.update(state=state, outbox=[*row["outbox"], *outbox], open=open_)

    def clear_outbox(self, intent_ids: Sequence[str]) -> None:
        for intent_id in intent_ids:
            self.resting[intent_id]["outbox"] = []

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeWriter:
    """The sink's row writer: keeps every batch it was given; `fail_with` makes the next writes raise."""

    url: str = "postgresql://fake/sink"
    batches: list[tuple[dict[str, list[dict[str, Any]]], dict[str, tuple[str, str, list[Any]]]]] = field(
        default_factory=list
    )
    fail_with: Exception | None = None
    refuse: Callable[[dict[str, Any]], bool] | None = None  # rows PostgreSQL would refuse (RowsRejected)
    connected: bool = False
    closed: bool = False
    attempts: int = 0

    def connect(self) -> None:
        self.connected = True

    def write(
        self,
        inserts: Mapping[str, Sequence[dict[str, Any]]],
        upserts: Mapping[str, tuple[str, str, Sequence[dict[str, Any]]]] | None = None,
    ) -> None:
        assert self.connected, "write before connect"
        self.attempts += 1
        if self.fail_with is not None:
            raise self.fail_with
        every_row = [row for rows in inserts.values() for row in rows]
        every_row += [row for _, _, rows in (upserts or {}).values() for row in rows]
        if self.refuse is not None and any(self.refuse(row) for row in every_row):
            raise RowsRejected("rows refused: integer out of range")
        self.batches.append(
            (
                {table: [dict(row) for row in rows] for table, rows in inserts.items() if rows},
                {t: (k, v, list(rows)) for t, (k, v, rows) in (upserts or {}).items() if rows},
            )
        )

    def close(self) -> None:
        self.closed = True

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row written to `table` (inserted or upserted), in order."""
        found: list[dict[str, Any]] = []
        for inserts, upserts in self.batches:
            found += inserts.get(table, [])
            found += upserts[table][2] if table in upserts else []
        return found


class FakeTable:
    """A compacted topic's latest value per key, as the poller reads it."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self.values = dict(values or {})
        self.started = self.stopped = 0

    def start(self) -> FakeTable:
        self.started += 1
        return self

    def stop(self) -> None:
        self.stopped += 1

    def snapshot(self) -> dict[str, Any]:
        return dict(self.values)
