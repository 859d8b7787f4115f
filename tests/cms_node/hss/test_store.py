"""SubscriberStore contract on both implementations, plus SQLite specifics."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest

from cms_node.hss.generator import generate
from cms_node.hss.model import SQN_LIMIT, Subscriber
from cms_node.hss.sqlite_store import SchemaError, SqliteSubscriberStore
from cms_node.hss.store import (
    DuplicateSubscriberError,
    MemorySubscriberStore,
    StoreClosedError,
    SubscriberStore,
)
from mpkix.anonymize import age_on

POPULATION = list(generate(200, 42))


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SubscriberStore]:
    s: SubscriberStore
    if request.param == "sqlite":
        s = SqliteSubscriberStore(tmp_path / "hss.sqlite")
    else:
        s = MemorySubscriberStore()
    yield s
    s.close()


def test_protocol_conformance(store: SubscriberStore) -> None:
    assert isinstance(store, SubscriberStore)


def test_round_trip(store: SubscriberStore) -> None:
    assert store.count() == 0
    assert store.insert_many(POPULATION) == len(POPULATION)
    assert store.count() == len(POPULATION)
    for s in POPULATION:
        assert store.get(s.imsi) == s
    assert store.get("310260999999999") is None
    assert store.get("not an imsi") is None


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_iter_all_in_imsi_order(store: SubscriberStore, batch: int) -> None:
    store.insert_many(POPULATION)
    assert list(store.iter_all(batch=batch)) == sorted(POPULATION, key=lambda s: s.imsi)


def test_iter_all_rejects_bad_batch(store: SubscriberStore) -> None:
    with pytest.raises(ValueError, match="batch"):
        list(store.iter_all(batch=0))


def test_duplicate_imsi_inserts_nothing(store: SubscriberStore) -> None:
    store.insert_many(POPULATION[:10])
    clash = POPULATION[5]
    fresh = POPULATION[10:20]
    with pytest.raises(DuplicateSubscriberError):
        store.insert_many([*fresh, clash])
    assert store.count() == 10
    assert all(store.get(s.imsi) is None for s in fresh)


def test_duplicate_msisdn_inserts_nothing(store: SubscriberStore) -> None:
    store.insert_many(POPULATION[:10])
    twin = Subscriber.from_json_dict(
        {**POPULATION[10].to_json_dict(), "msisdn": POPULATION[0].msisdn}
    )
    with pytest.raises(DuplicateSubscriberError):
        store.insert_many([POPULATION[11], twin])
    assert store.count() == 10


def test_duplicate_within_one_batch(store: SubscriberStore) -> None:
    with pytest.raises(DuplicateSubscriberError):
        store.insert_many([POPULATION[0], POPULATION[1], POPULATION[0]])
    assert store.count() == 0


def test_advance_sqn_compare_and_set(store: SubscriberStore) -> None:
    store.insert_many(POPULATION[:3])
    s = POPULATION[0]
    assert store.advance_sqn(s.imsi, s.sqn, s.sqn + 32)
    assert not store.advance_sqn(s.imsi, s.sqn, s.sqn + 64)  # stale expectation
    got = store.get(s.imsi)
    assert got is not None and got.sqn == s.sqn + 32
    assert not store.advance_sqn("310260999999999", 0, 32)  # unknown IMSI
    other = store.get(POPULATION[1].imsi)
    assert other == POPULATION[1]  # untouched


def test_set_sqn(store: SubscriberStore) -> None:
    store.insert_many(POPULATION[:2])
    s = POPULATION[1]
    assert store.set_sqn(s.imsi, 12345 * 32)
    got = store.get(s.imsi)
    assert got is not None and got.sqn == 12345 * 32
    assert not store.set_sqn("310260999999999", 32)


@pytest.mark.parametrize("bad", [-1, SQN_LIMIT, True, "32"])
def test_sqn_range_checked(store: SubscriberStore, bad: object) -> None:
    store.insert_many(POPULATION[:1])
    s = POPULATION[0]
    with pytest.raises(ValueError, match="sqn"):
        store.advance_sqn(s.imsi, s.sqn, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sqn"):
        store.set_sqn(s.imsi, bad)  # type: ignore[arg-type]
    got = store.get(s.imsi)
    assert got is not None and got.sqn == s.sqn


def test_cas_race_has_exactly_one_winner(store: SubscriberStore) -> None:
    store.insert_many(POPULATION[:1])
    s = POPULATION[0]
    barrier = threading.Barrier(8)

    def attempt(i: int) -> bool:
        barrier.wait()
        return store.advance_sqn(s.imsi, s.sqn, s.sqn + 32 * (i + 1))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert results.count(True) == 1
    winner = results.index(True)
    got = store.get(s.imsi)
    assert got is not None and got.sqn == s.sqn + 32 * (winner + 1)


def test_cas_increments_are_never_lost(store: SubscriberStore) -> None:
    """Threads step SQN with read + compare-and-set retry; every SQN is handed out once."""
    store.insert_many(POPULATION[:1])
    imsi, start = POPULATION[0].imsi, POPULATION[0].sqn
    handed_out: list[int] = []
    lock = threading.Lock()

    def worker(steps: int) -> None:
        for _ in range(steps):
            while True:
                current = store.get(imsi)
                assert current is not None
                if store.advance_sqn(imsi, current.sqn, current.sqn + 32):
                    with lock:
                        handed_out.append(current.sqn + 32)
                    break

    threads = [threading.Thread(target=worker, args=(50,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get(imsi)
    assert final is not None and final.sqn == start + 300 * 32
    assert sorted(handed_out) == [start + 32 * i for i in range(1, 301)]


def test_closed_store_refuses(store: SubscriberStore) -> None:
    store.insert_many(POPULATION[:1])
    store.close()
    with pytest.raises(StoreClosedError):
        store.get(POPULATION[0].imsi)
    with pytest.raises(StoreClosedError):
        store.count()
    with pytest.raises(StoreClosedError):
        store.advance_sqn(POPULATION[0].imsi, POPULATION[0].sqn, POPULATION[0].sqn + 32)
    store.close()  # idempotent


# --- SQLite specifics -------------------------------------------------------------------------


def test_sqlite_pragmas_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "hss.sqlite"
    s = SqliteSubscriberStore(path)
    s.insert_many(POPULATION[:20])
    s.set_sqn(POPULATION[0].imsi, 64)
    raw = s._conn()  # this thread's connection
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    s.close()
    reopened = SqliteSubscriberStore(path, create=False)
    assert reopened.count() == 20
    got = reopened.get(POPULATION[0].imsi)
    assert got is not None and got.sqn == 64
    assert reopened.get_meta("schema_version") == "1"
    reopened.close()


def test_sqlite_schema_is_the_documented_one(tmp_path: Path) -> None:
    s = SqliteSubscriberStore(tmp_path / "hss.sqlite")
    cols = [row[1] for row in s._conn().execute("PRAGMA table_info(subscribers)")]
    s.close()
    assert cols == [
        "imsi", "msisdn", "given_name", "family_name", "gender", "birthday", "street_number",
        "street", "city", "state", "zip", "k", "opc", "sqn", "amf",
    ]  # fmt: skip


def test_sqlite_threads_get_their_own_connection(tmp_path: Path) -> None:
    s = SqliteSubscriberStore(tmp_path / "hss.sqlite")
    s.insert_many(POPULATION)
    errors: list[BaseException] = []
    conns: set[int] = set()
    lock = threading.Lock()

    def reader(part: list[Subscriber]) -> None:
        try:
            with lock:
                conns.add(id(s._conn()))
            for _ in range(5):
                for sub in part:
                    assert s.get(sub.imsi) == sub
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(POPULATION[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s.close()
    assert not errors
    assert len(conns) == 4


def test_sqlite_missing_file_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.sqlite"
    with pytest.raises(FileNotFoundError):
        SqliteSubscriberStore(path, create=False)
    assert not path.exists()


def test_sqlite_rejects_non_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not an sqlite file at all" * 100)
    with pytest.raises(SchemaError):
        SqliteSubscriberStore(path)


def test_sqlite_rejects_foreign_database_when_not_creating(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="not an HSS database"):
        SqliteSubscriberStore(path, create=False)


def test_sqlite_rejects_other_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "hss.sqlite"
    s = SqliteSubscriberStore(path)
    s.set_meta("schema_version", "99")
    s.close()
    with pytest.raises(SchemaError, match="99"):
        SqliteSubscriberStore(path)


def test_sqlite_refuses_memory_path() -> None:
    with pytest.raises(ValueError, match="file path"):
        SqliteSubscriberStore(":memory:")


def test_sqlite_stats(tmp_path: Path) -> None:
    s = SqliteSubscriberStore(tmp_path / "hss.sqlite")
    s.insert_many(POPULATION)
    as_of = date(2025, 1, 1)
    summary = s.stats(as_of, top=3)
    s.close()
    assert summary["count"] == len(POPULATION)
    assert sum(summary["gender"].values()) == len(POPULATION)
    assert sum(summary["age_bands"].values()) == len(POPULATION)
    minors = sum(1 for p in POPULATION if age_on(p.birthday, as_of) < 18)
    assert summary["age_bands"]["0-17"] == minors
    assert len(summary["top_states"]) == 3
    counts = [n for _, n in summary["top_surnames"]]
    assert counts == sorted(counts, reverse=True)
