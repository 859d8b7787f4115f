"""``SubscriberStore`` on SQLite: WAL, one connection per thread (decision records 0200, 0201).

The ``subscribers`` table uses only portable column types (TEXT, BLOB, INTEGER; ``birthday`` as ISO
text), so the same layout works on PostgreSQL (DATE, BYTEA, BIGINT). Reads run in parallel on
per-thread connections (WAL readers never block); the SQN compare-and-set is one
``UPDATE ... WHERE imsi = ? AND sqn = ?`` statement, atomic by construction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any, Final

from cms_node.hss.model import Subscriber
from cms_node.hss.store import DuplicateSubscriberError, StoreClosedError, check_sqn

__all__ = ["SCHEMA_SQL", "SCHEMA_VERSION", "SchemaError", "SqliteSubscriberStore"]

SCHEMA_VERSION: Final = 1

#: The portable schema (decision record 0200).
SCHEMA_SQL: Final = """
CREATE TABLE IF NOT EXISTS subscribers (
    imsi          TEXT    NOT NULL PRIMARY KEY CHECK (length(imsi) = 15),
    msisdn        TEXT    NOT NULL UNIQUE,
    given_name    TEXT    NOT NULL,
    family_name   TEXT    NOT NULL,
    gender        TEXT    NOT NULL CHECK (gender IN ('F', 'M', 'X')),
    birthday      TEXT    NOT NULL CHECK (length(birthday) = 10),
    street_number TEXT    NOT NULL,
    street        TEXT    NOT NULL,
    city          TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (length(state) = 2),
    zip           TEXT    NOT NULL CHECK (length(zip) = 5),
    k             BLOB    NOT NULL CHECK (length(k) = 16),
    opc           BLOB    NOT NULL CHECK (length(opc) = 16),
    sqn           INTEGER NOT NULL CHECK (sqn >= 0 AND sqn < 281474976710656),
    amf           BLOB    NOT NULL CHECK (length(amf) = 2)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hss_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS: Final = (
    "imsi, msisdn, given_name, family_name, gender, birthday, street_number, street, city, "
    "state, zip, k, opc, sqn, amf"
)
_SELECT_ONE: Final = f"SELECT {_COLUMNS} FROM subscribers WHERE imsi = ?"
_SELECT_PAGE: Final = f"SELECT {_COLUMNS} FROM subscribers WHERE imsi > ? ORDER BY imsi LIMIT ?"
_INSERT: Final = f"INSERT INTO subscribers ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_ADVANCE_SQN: Final = "UPDATE subscribers SET sqn = ? WHERE imsi = ? AND sqn = ?"
_SET_SQN: Final = "UPDATE subscribers SET sqn = ? WHERE imsi = ?"
#: Page cache per connection (KiB): keeps the IMSI B-tree of a few million rows hot.
_CACHE_KIB: Final = 32 * 1024


class SchemaError(RuntimeError):
    """The file is not an HSS database of a schema version this code understands."""


def _row_to_subscriber(row: tuple[Any, ...]) -> Subscriber:
    return Subscriber(
        imsi=row[0],
        msisdn=row[1],
        given_name=row[2],
        family_name=row[3],
        gender=row[4],
        birthday=date.fromisoformat(row[5]),
        street_number=row[6],
        street=row[7],
        city=row[8],
        state=row[9],
        zip=row[10],
        k=row[11],
        opc=row[12],
        sqn=row[13],
        amf=row[14],
    )


def _subscriber_to_row(s: Subscriber) -> tuple[Any, ...]:
    return (
        s.imsi,
        s.msisdn,
        s.given_name,
        s.family_name,
        s.gender,
        s.birthday.isoformat(),
        s.street_number,
        s.street,
        s.city,
        s.state,
        s.zip,
        s.k,
        s.opc,
        s.sqn,
        s.amf,
    )


class SqliteSubscriberStore:
    """Subscriber records in one SQLite file (WAL, ``synchronous=NORMAL``), thread-safe.

    ``create=False`` refuses a missing file instead of creating an empty database. Each thread gets
    its own connection on first use; ``close()`` closes all of them.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        busy_timeout: float = 10.0,
    ) -> None:
        self._path = os.fspath(path)
        if self._path == ":memory:" or self._path.startswith("file:"):
            raise ValueError("SqliteSubscriberStore needs a file path (use MemorySubscriberStore)")
        if not create and not os.path.isfile(self._path):
            raise FileNotFoundError(f"no HSS database at {self._path}")
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._init_schema(create)

    @property
    def path(self) -> str:
        return self._path

    # -- connections ------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosedError("subscriber store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit; explicit BEGIN where a transaction is needed
            check_same_thread=False,  # only this thread uses it, but close() runs on another
            cached_statements=64,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise SchemaError(f"{self._path}: not an SQLite database ({exc})") from None
        with self._lock:
            if self._closed:
                conn.close()
                raise StoreClosedError("subscriber store is closed")
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    def _init_schema(self, create: bool) -> None:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            if (
                not create
                and not conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hss_meta'"
                ).fetchone()
            ):
                raise SchemaError(f"{self._path}: not an HSS database (no hss_meta table)")
            # Statement by statement: executescript() would commit the open transaction.
            for statement in SCHEMA_SQL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM hss_meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO hss_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif row[0] != str(SCHEMA_VERSION):
                raise SchemaError(
                    f"{self._path}: HSS schema version {row[0]}, need {SCHEMA_VERSION}"
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.close()
            raise

    # -- SubscriberStore ---------------------------------------------------------------------

    def get(self, imsi: str) -> Subscriber | None:
        row = self._conn().execute(_SELECT_ONE, (imsi,)).fetchone()
        return None if row is None else _row_to_subscriber(row)

    def count(self) -> int:
        (n,) = self._conn().execute("SELECT count(*) FROM subscribers").fetchone()
        return int(n)

    def insert_many(self, subscribers: Iterable[Subscriber]) -> int:
        conn = self._conn()
        # In key order: B-tree inserts then touch each page once per batch.
        rows = sorted((_subscriber_to_row(s) for s in subscribers), key=lambda r: str(r[0]))
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            if "UNIQUE" in str(exc):
                raise DuplicateSubscriberError(f"IMSI or MSISDN already stored ({exc})") from None
            raise
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return len(rows)

    def iter_all(self, batch: int = 1000) -> Iterator[Subscriber]:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        last = ""
        while True:
            rows = self._conn().execute(_SELECT_PAGE, (last, batch)).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_to_subscriber(row)
            last = rows[-1][0]

    def advance_sqn(self, imsi: str, expected_current: int, new: int) -> bool:
        check_sqn(new)
        cur = self._conn().execute(_ADVANCE_SQN, (new, imsi, expected_current))
        return cur.rowcount == 1

    def set_sqn(self, imsi: str, sqn: int) -> bool:
        check_sqn(sqn)
        cur = self._conn().execute(_SET_SQN, (sqn, imsi))
        return cur.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # -- extras (not part of the protocol) ---------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM hss_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._conn().execute(
            "INSERT INTO hss_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def stats(self, as_of: date, top: int = 10) -> dict[str, Any]:
        """Population summary: count, gender split, age bands on ``as_of``, top states/surnames."""
        conn = self._conn()

        def born_after(years: int) -> str:
            try:
                return as_of.replace(year=as_of.year - years).isoformat()
            except ValueError:  # 29 February
                return as_of.replace(year=as_of.year - years, day=28).isoformat()

        total = self.count()
        genders = dict(conn.execute("SELECT gender, count(*) FROM subscribers GROUP BY gender"))
        bands = {}
        for label, low, high in (("0-17", 0, 18), ("18-40", 18, 41), ("41-60", 41, 61),
                                 ("61-80", 61, 81), (">80", 81, 200)):  # fmt: skip
            (n,) = conn.execute(
                "SELECT count(*) FROM subscribers WHERE birthday > ? AND birthday <= ?",
                (born_after(high), born_after(low)),
            ).fetchone()
            bands[label] = n
        states = conn.execute(
            "SELECT state, count(*) AS n FROM subscribers GROUP BY state ORDER BY n DESC, state "
            "LIMIT ?",
            (top,),
        ).fetchall()
        surnames = conn.execute(
            "SELECT family_name, count(*) AS n FROM subscribers GROUP BY family_name "
            "ORDER BY n DESC, family_name LIMIT ?",
            (top,),
        ).fetchall()
        return {
            "count": total,
            "as_of": as_of.isoformat(),
            "gender": genders,
            "age_bands": bands,
            "minors_share": round(bands["0-17"] / total, 4) if total else 0.0,
            "distinct_states": conn.execute(
                "SELECT count(DISTINCT state) FROM subscribers"
            ).fetchone()[0],
            "top_states": [[s, n] for s, n in states],
            "top_surnames": [[s, n] for s, n in surnames],
        }
