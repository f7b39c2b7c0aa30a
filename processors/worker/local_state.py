"""Where the worker's tables live: on local disk (Faust's rocksdb:// store), one directory per worker.

A table kept in memory is rebuilt from its changelog, from the start, at every start: a day of decisions and
fills (the windowed tables keep 24 hours). The restore grew by seconds within one 10-minute chaos run, and at
100 decisions/s a day is 8.6 M records (issue 8). On local disk Faust stores, beside each partition's rows,
the changelog offset it has written them up to, and a restarted worker reads only the records since, as Kafka
Streams does. A killed process loses nothing there (RocksDB writes its log before a put returns; a host that
loses its page cache loses a suffix of a partition's rows with the offset that covered them), and rows newer
than their changelog are a case the agents already handle: ack before state, their outputs are in the log.

RocksDB locks its directory, so two workers on one host need two: the directory is named by the instance id
(POLYCOPY_INSTANCE_ID). A worker that finds its directory taken keeps its tables in memory, and says so,
instead of waiting for a lock that another live worker holds."""

from __future__ import annotations

import fcntl
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from faust.stores import STORES
from faust.stores.rocksdb import Store as FaustRocksDB
from faust.types import TP

from polycopy.infra.settings import PolycopySettings, StateStore

log = logging.getLogger(__name__)


_MISSING = object()
VALUES_KEPT = 50_000  # per table: the values kept decoded, forgotten all at once at this bound
OFFSET_WRITE_SECS = 1.0  # how often a partition's changelog offset goes to disk at most (and at stop)


class LocalRocksDB(FaustRocksDB):  # type: ignore[misc] - faust is untyped here
    """Faust's RocksDB store, with the values this process read or wrote kept decoded in memory, and without
    Faust's garbage collections.

    Faust's store decodes a value at every read and encodes it at every write: the worker spent 16 % more CPU
    per decision than with its tables in memory (`polycopy bench --only stages`). Reads are served from the
    values kept (written through to disk), so only a first read decodes. The agents never change a value in
    place, and whatever writes behind this store's back (the changelog's recovery, a standby's updates, a
    revocation) drops what it changed. Faust collects garbage to close the databases it drops: per table at
    every assignment, even when nothing was revoked (0.3-0.5 s each here, 2.5 s of every start), and per
    table at stop (3 s of every SIGTERM)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._values: dict[Any, Any] = {}
        # Per partition: the changelog offset the rows are written up to, and when it last went to disk.
        self._offsets: dict[TP, int] = {}
        self._offsets_written_at: dict[TP, float] = {}

    def __getitem__(self, key: Any) -> Any:
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            value = super().__getitem__(key)  # KeyError when absent: nothing kept
            self._keep(key, value)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._keep(key, value)

    def _keep(self, key: Any, value: Any) -> None:
        # The recent keys' tables take a new key per fill or decision for a day: the values kept are
        # forgotten at a bound (the wallets' own few hundred values are read again from disk once).
        if len(self._values) >= VALUES_KEPT:
            self._values.clear()
        self._values[key] = value

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        """Faust calls this for every changelog record the broker acknowledged, and its store wrote each one
        to disk (3 % of the worker's time): the offset goes to disk at most every OFFSET_WRITE_SECS per
        partition, and at a revocation and a stop. A killed worker then reads up to that much of its
        changelogs again at its start, records whose rows it already has: applying them changes nothing."""
        self._offsets[tp] = offset
        now = time.monotonic()
        if now - self._offsets_written_at.get(tp, -OFFSET_WRITE_SECS) >= OFFSET_WRITE_SECS:
            self._write_offset(tp)
            self._offsets_written_at[tp] = now

    def persisted_offset(self, tp: TP) -> int | None:
        offset = self._offsets.get(tp)
        return offset if offset is not None else super().persisted_offset(tp)

    def _write_offset(self, tp: TP) -> None:
        offset = self._offsets.get(tp)
        if offset is not None:
            super().set_persisted_offset(tp, offset)

    def _write_offsets(self, tps: Any = None) -> None:
        for tp in list(self._offsets) if tps is None else tps:
            self._write_offset(tp)
            self._offsets.pop(tp, None)
            self._offsets_written_at.pop(tp, None)

    def __delitem__(self, key: Any) -> None:
        self._values.pop(key, None)
        super().__delitem__(key)

    def __contains__(self, key: object) -> bool:
        return key in self._values or super().__contains__(key)

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        events = list(batch)
        for event in events:
            self._values.pop(self._decode_key(event.message.key), None)
        super().apply_changelog_batch(events, to_key, to_value)

    def revoke_partitions(self, table: Any, tps: set[Any]) -> None:
        if tps:
            self._values.clear()
            self._write_offsets([tp for tp in tps if tp in self._offsets])
            super().revoke_partitions(table, tps)

    def drop_keys_below(self, key: str) -> None:
        """Delete every row whose key sorts below `key` from this worker's disk (not from the changelog)."""
        end = self._encode_key(key)
        for old in [kept for kept in self._values if kept < key]:
            del self._values[old]
        for db in self._dbs.values():
            db.delete_range(end[:1], end)  # the keys are JSON strings: from the opening quote up to `end`

    async def stop(self) -> None:
        # The agents' lanes finished before the tables stop (`PromptTableManager`): nothing writes after this.
        self._write_offsets()
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()
        self._values.clear()


STORES.aliases["rocksdb-local"] = f"{__name__}:LocalRocksDB"

# Per table partition (7 tables of 4 or 6 partitions): small buffers, the rows are few and small. Faust's
# defaults (a 64 MB write buffer, 3 of them, a 2 GB block cache per partition) suit one big table.
ROCKSDB_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 4 * 1024**2,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * 1024**2,
    "max_open_files": 64,
}


@dataclass
class TableStore:
    """Faust's store URL and data directory for one worker, and the lock that keeps the directory its own
    while the process lives (the kernel releases it when the process dies, however it dies)."""

    url: str
    datadir: Path
    lock: IO[bytes] | None = None

    @property
    def on_disk(self) -> bool:
        return self.url != "memory://"

    def table_options(self) -> dict[str, Any]:
        """Options for one table's store."""
        return dict(ROCKSDB_OPTIONS, driver="rocksdict") if self.on_disk else {}


def drop_local_keys_below(table: Any, key: str) -> None:
    """Delete a table's rows whose keys sort below `key` from this worker's own store only (its changelog
    drops them by retention): one range deletion on disk, a scan in memory."""
    store = table.data
    if isinstance(store, LocalRocksDB):
        store.drop_keys_below(key)
    else:  # Faust's memory store: a dict of the keys as set
        for old in [stored for stored in store.data if stored < key]:
            del store.data[old]


def choose_table_store(settings: PolycopySettings, app_id: str) -> TableStore:
    """The store for this worker: its own directory under `data_dir` on disk (memory when that directory is
    another live worker's, or when the settings ask for memory)."""
    base = settings.data_dir / "faust" / app_id
    base.mkdir(parents=True, exist_ok=True)
    if settings.worker_state_store is StateStore.MEMORY:
        return TableStore("memory://", base)
    datadir = base / (settings.instance_id or "worker")
    datadir.mkdir(exist_ok=True)
    lock = datadir.with_name(datadir.name + ".lock").open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        log.warning(
            "%s is another running worker's: this one keeps its tables in memory and restores them from "
            "their changelogs at every start; give each worker on a host its own POLYCOPY_INSTANCE_ID",
            datadir,
        )
        return TableStore("memory://", base)
    return TableStore("rocksdb-local://", datadir, lock)
