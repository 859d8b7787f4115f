"""SQLite helpers: WAL connections and a group-commit writer.

Services acknowledge a request only after its rows are durable. Committing once per request
caps throughput at the disk's fsync rate, so :class:`GroupCommitWriter` collects the writes of
concurrent requests and commits them together (one transaction, one fsync), resolving each
caller's future afterwards. A failed transaction fails every write in it, and nothing of it
survives (SQLite atomicity).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

Write = Callable[[sqlite3.Connection], Any]


def connect(path: Path | str, *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """A connection in WAL mode with sane pragmas; usable from any thread (caller serializes)."""
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class GroupCommitWriter:
    """Single writer thread that commits queued write functions in shared transactions.

    ``submit(fn)`` runs ``fn(conn)`` inside the next transaction and returns a future with its
    result, set only after COMMIT. If ``fn`` raises, its future gets the exception and the
    transaction is rolled back and retried without it, so one bad write does not fail others.
    """

    def __init__(
        self, path: Path | str, *, max_batch: int = 512, synchronous: str = "NORMAL"
    ) -> None:
        self._conn = connect(path, synchronous=synchronous)
        self._q: queue.Queue[tuple[Write, Future[Any]] | None] = queue.Queue()
        self._max_batch = max_batch
        self._thread = threading.Thread(
            target=self._loop, name=f"sqlite-writer:{path}", daemon=True
        )
        self._closed = False
        self._thread.start()

    def submit(self, fn: Write) -> Future[Any]:
        if self._closed:
            raise RuntimeError("writer is closed")
        fut: Future[Any] = Future()
        self._q.put((fn, fut))
        return fut

    async def write(self, fn: Write) -> Any:
        """Await ``fn``'s durable commit from asyncio code."""
        return await asyncio.wrap_future(self.submit(fn))

    def run_sync(self, fn: Write) -> Any:
        return self.submit(fn).result()

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            self._commit(batch)
        self._conn.close()

    def _commit(self, batch: list[tuple[Write, Future[Any]]]) -> None:
        pending = [(fn, fut) for fn, fut in batch if fut.set_running_or_notify_cancel()]
        while pending:
            results: list[tuple[Future[Any], Any]] = []
            failed: tuple[Write, Future[Any], BaseException] | None = None
            self._conn.execute("BEGIN IMMEDIATE")
            for fn, fut in pending:
                try:
                    results.append((fut, fn(self._conn)))
                except BaseException as e:
                    failed = (fn, fut, e)
                    break
            if failed is None:
                try:
                    self._conn.execute("COMMIT")
                except BaseException as e:
                    self._conn.execute("ROLLBACK")
                    for _, fut in pending:
                        fut.set_exception(e)
                    return
                for fut, res in results:
                    fut.set_result(res)
                return
            self._conn.execute("ROLLBACK")
            _, bad_fut, exc = failed
            bad_fut.set_exception(exc)
            pending = [(fn, fut) for fn, fut in pending if fut is not bad_fut]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._q.put(None)
            self._thread.join(30)
