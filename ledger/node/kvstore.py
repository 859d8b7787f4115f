"""SQLite-backed key-value store for py-evm's trie and chain data (decision 0501).

py-evm keeps everything — state trie nodes, headers, block bodies, receipts, the canonical
chain index — in one ``AtomicDatabaseAPI`` key-value store. This module provides three views
over a single ``kv`` table in the node's SQLite database:

* :class:`CommittedStore` — what is durable: a ``WITHOUT ROWID`` table plus an in-memory
  cache of committed values. Reads are thread-safe (one read-only connection per thread).
* :class:`StagingDB` — the block producer's view: writes buffer in memory over the committed
  store, and :meth:`StagingDB.flush_into` writes them inside the caller's SQLite transaction,
  so a block's trie nodes, chain index and event index commit atomically (or not at all).
* :class:`ReadOnlyDB` — a view for ``eth_call``-style reads: sees only committed data, and any
  writes py-evm makes while executing stay private to the view and are dropped.

Wrap a view with :func:`atomic` to get the ``AtomicDatabaseAPI`` py-evm expects.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB

KV_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"


class _GenerationalCache:
    """A two-generation cache: O(1) reads and bounded memory without per-hit bookkeeping.

    Writers hold :attr:`CommittedStore._cache_lock`; readers take no lock.
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max(1, max_entries // 2)
        self._young: dict[bytes, bytes] = {}
        self._old: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        value = self._young.get(key)
        if value is None:
            value = self._old.get(key)  # not promoted: only :class:`CommittedStore` writes
        return value

    def put(self, key: bytes, value: bytes) -> None:
        if len(self._young) >= self._max:
            self._old = self._young
            self._young = {}
        self._young[key] = value

    def discard(self, key: bytes) -> None:
        self._young.pop(key, None)
        self._old.pop(key, None)


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open the node database with the durability settings of decision 0501.

    WAL lets readers run while the producer commits; ``synchronous=FULL`` makes every COMMIT
    durable (fsync of the WAL) before it returns, which is the point where the node acks.
    """
    if read_only:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class CommittedStore:
    """Durable key-value data: the ``kv`` table plus a cache of committed values."""

    def __init__(self, path: Path, *, cache_entries: int = 200_000) -> None:
        self.path = path
        self._cache = _GenerationalCache(cache_entries)
        self._cache_lock = threading.Lock()
        self._generation = 0  # bumped by every commit
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("store is closed")
            conn = connect(self.path, read_only=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def get(self, key: bytes) -> bytes | None:
        value = self._cache.get(key)
        if value is not None:
            return value
        generation = self._generation
        row = self._reader().execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            return None
        value = bytes(row[0])
        with self._cache_lock:
            # a commit in between may have replaced this key: do not cache what we read before
            if generation == self._generation:
                self._cache.put(key, value)
        return value

    def write_rows(
        self, conn: sqlite3.Connection, puts: dict[bytes, bytes], deletes: Iterable[bytes]
    ) -> None:
        """Write inside the caller's open transaction on ``conn`` (the writer connection)."""
        if puts:
            conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", puts.items())
        dels = [(k,) for k in deletes]
        if dels:
            conn.executemany("DELETE FROM kv WHERE k = ?", dels)

    def after_commit(self, puts: dict[bytes, bytes], deletes: Iterable[bytes]) -> None:
        """Publish committed writes to the cache (only after COMMIT returned)."""
        with self._cache_lock:
            self._generation += 1
            for k in deletes:
                self._cache.discard(k)
            for k, v in puts.items():
                self._cache.put(k, v)

    def close(self) -> None:
        self._closed = True
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()


class StagingDB(BaseDB):
    """The producer's write-buffering view over a :class:`CommittedStore`."""

    def __init__(self, store: CommittedStore) -> None:
        self._store = store
        # None marks a deletion
        self._pending: dict[bytes, bytes | None] = {}

    def __getitem__(self, key: bytes) -> bytes:
        value = self._pending[key] if key in self._pending else self._store.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[key] = None

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def flush_into(self, conn: sqlite3.Connection) -> tuple[dict[bytes, bytes], list[bytes]]:
        """Write buffered changes inside the caller's transaction; returns (puts, deletes).

        The buffer is kept until :meth:`published` (after COMMIT) or :meth:`discard`.
        """
        puts = {k: v for k, v in self._pending.items() if v is not None}
        deletes = [k for k, v in self._pending.items() if v is None]
        self._store.write_rows(conn, puts, deletes)
        return puts, deletes

    def published(self, puts: dict[bytes, bytes], deletes: list[bytes]) -> None:
        """The transaction that carried the buffer committed: move it into the cache."""
        self._store.after_commit(puts, deletes)
        self._pending.clear()

    def discard(self) -> None:
        """Drop every buffered write (the block was abandoned or its commit failed)."""
        self._pending.clear()


class ReadOnlyDB(BaseDB):
    """Committed data only; writes py-evm makes during a view call stay local and vanish."""

    def __init__(self, store: CommittedStore) -> None:
        self._store = store
        self._local: dict[bytes, bytes | None] = {}

    def __getitem__(self, key: bytes) -> bytes:
        value = self._local[key] if key in self._local else self._store.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._local[key] = value

    def __delitem__(self, key: bytes) -> None:
        self._local[key] = None

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True


def atomic(view: BaseDB) -> AtomicDB:
    """py-evm's ``AtomicDatabaseAPI`` over one of the views above."""
    return AtomicDB(wrapped_db=view)
