"""Staging buffer, commit and read-only views of the SQLite key-value store."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.node.index import create_schema
from ledger.node.kvstore import CommittedStore, ReadOnlyDB, StagingDB, atomic, connect


@pytest.fixture
def store(tmp_path: Path) -> CommittedStore:
    path = tmp_path / "kv.sqlite"
    create_schema(connect(path))
    return CommittedStore(path, cache_entries=8)


def commit(store: CommittedStore, staging: StagingDB) -> None:
    conn = connect(store.path)
    conn.execute("BEGIN IMMEDIATE")
    puts, deletes = staging.flush_into(conn)
    conn.execute("COMMIT")
    conn.close()
    staging.published(puts, deletes)


def test_staged_writes_are_invisible_until_commit(store: CommittedStore) -> None:
    staging = StagingDB(store)
    staging[b"k"] = b"v1"
    assert staging[b"k"] == b"v1"
    assert store.get(b"k") is None
    assert b"k" not in ReadOnlyDB(store)
    commit(store, staging)
    assert store.get(b"k") == b"v1"
    assert ReadOnlyDB(store)[b"k"] == b"v1"
    assert staging.pending_count == 0


def test_discard_drops_everything(store: CommittedStore) -> None:
    staging = StagingDB(store)
    staging[b"a"] = b"1"
    staging.discard()
    assert b"a" not in staging
    commit(store, staging)
    assert store.get(b"a") is None


def test_delete_is_staged_then_committed(store: CommittedStore) -> None:
    staging = StagingDB(store)
    staging[b"x"] = b"1"
    commit(store, staging)
    del staging[b"x"]
    assert b"x" not in staging
    assert store.get(b"x") == b"1"
    commit(store, staging)
    assert store.get(b"x") is None
    with pytest.raises(KeyError):
        del staging[b"never"]


def test_empty_value_round_trips(store: CommittedStore) -> None:
    staging = StagingDB(store)
    staging[b"e"] = b""
    commit(store, staging)
    assert ReadOnlyDB(store)[b"e"] == b""


def test_read_only_view_keeps_writes_private(store: CommittedStore) -> None:
    view = ReadOnlyDB(store)
    view[b"tmp"] = b"x"
    assert view[b"tmp"] == b"x"
    assert store.get(b"tmp") is None
    assert b"tmp" not in ReadOnlyDB(store)


def test_atomic_batch_rolls_back_on_error(store: CommittedStore) -> None:
    staging = StagingDB(store)
    db = atomic(staging)
    with pytest.raises(RuntimeError), db.atomic_batch() as batch:
        batch[b"p"] = b"1"
        raise RuntimeError("boom")
    assert b"p" not in staging


class _RacingStore(CommittedStore):
    """Runs ``hook`` right after a reader fetched a row from SQLite (before it caches it)."""

    hook: Callable[[], None] | None = None

    def _reader(self) -> sqlite3.Connection:
        conn = super()._reader()
        store = self

        class Conn:
            def execute(self, sql: str, args: tuple[bytes, ...]) -> Any:
                row = conn.execute(sql, args).fetchone()
                hook, store.hook = store.hook, None
                if hook is not None:
                    hook()

                class Cursor:
                    def fetchone(self) -> Any:
                        return row

                return Cursor()

        return Conn()  # type: ignore[return-value]


def test_cache_never_keeps_a_value_read_before_a_commit(tmp_path: Path) -> None:
    """A reader that fetched a mutable key just before a commit must not cache the old value."""
    path = tmp_path / "kv.sqlite"
    create_schema(connect(path))
    store = _RacingStore(path)
    staging = StagingDB(store)
    staging[b"head"] = b"old"
    commit(store, staging)
    fresh = _RacingStore(path)  # empty cache: the next get reads SQLite
    writer = StagingDB(fresh)

    def concurrent_commit() -> None:
        writer[b"head"] = b"new"
        commit(fresh, writer)

    fresh.hook = concurrent_commit
    assert fresh.get(b"head") == b"old"  # read before the commit: fine to return
    assert fresh.get(b"head") == b"new"  # but never served from the cache afterwards


def test_reads_from_many_threads(store: CommittedStore) -> None:
    staging = StagingDB(store)
    for i in range(50):
        staging[b"t%d" % i] = b"v%d" % i
    commit(store, staging)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for i in range(50):
                assert store.get(b"t%d" % i) == b"v%d" % i
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
