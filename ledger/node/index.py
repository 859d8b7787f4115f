"""The node's SQLite index: transactions, every contract log, and current registry state.

Written in the same SQLite transaction as the block's trie data (decision 0501), so the index
never disagrees with the chain. Every log gets a *cursor*, a sequence number that grows by one
per log across the whole chain; a follower that has processed cursor N asks for "everything
after N" (ARCHITECTURE §2.4: verifiers mirror the registry from a checkpoint).

Current-state tables (batches, certificate statuses, validators, trust anchors) are projections
of the registry events, kept for fast reads by the gRPC service (thin-client status checks).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.node.kvstore import KV_SCHEMA, connect

SCHEMA_VERSION = "1"

SCHEMA = [
    KV_SCHEMA,
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS blocks (
        number INTEGER PRIMARY KEY, hash BLOB NOT NULL, timestamp INTEGER NOT NULL,
        tx_count INTEGER NOT NULL, gas_used INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS txs (
        hash BLOB PRIMARY KEY, block_number INTEGER NOT NULL, tx_index INTEGER NOT NULL,
        sender BLOB NOT NULL, nonce INTEGER NOT NULL, to_addr BLOB NOT NULL,
        contract_address BLOB NOT NULL, status INTEGER NOT NULL, gas_used INTEGER NOT NULL,
        cumulative_gas_used INTEGER NOT NULL, revert_reason TEXT NOT NULL,
        revert_data BLOB NOT NULL) WITHOUT ROWID""",
    # one transaction per (sender, nonce), ever: the database itself refuses a double apply
    "CREATE UNIQUE INDEX IF NOT EXISTS txs_sender_nonce ON txs (sender, nonce)",
    """CREATE TABLE IF NOT EXISTS events (
        cursor INTEGER PRIMARY KEY, block_number INTEGER NOT NULL, tx_index INTEGER NOT NULL,
        log_index INTEGER NOT NULL, tx_hash BLOB NOT NULL, address BLOB NOT NULL,
        name TEXT NOT NULL, args TEXT NOT NULL, topics BLOB NOT NULL, data BLOB NOT NULL,
        timestamp INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS events_tx ON events (tx_hash)",
    """CREATE TABLE IF NOT EXISTS batches (
        batch_id INTEGER PRIMARY KEY, root BLOB NOT NULL, size INTEGER NOT NULL,
        ca_cert_hash BLOB NOT NULL, anchored_at INTEGER NOT NULL, block_number INTEGER NOT NULL,
        tx_hash BLOB NOT NULL, cursor INTEGER NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS batches_root ON batches (root)",
    """CREATE TABLE IF NOT EXISTS cert_status (
        cert_hash BLOB NOT NULL, ca_cert_hash BLOB NOT NULL, state INTEGER NOT NULL,
        reason INTEGER NOT NULL, updated_at INTEGER NOT NULL, batch_id INTEGER NOT NULL,
        by_addr BLOB NOT NULL, block_number INTEGER NOT NULL, tx_hash BLOB NOT NULL,
        cursor INTEGER NOT NULL, PRIMARY KEY (cert_hash, ca_cert_hash)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS validators (
        address BLOB PRIMARY KEY, role INTEGER NOT NULL, label BLOB NOT NULL,
        cursor INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS trust_anchors (
        anchor_hash BLOB PRIMARY KEY, kind INTEGER NOT NULL, owner BLOB NOT NULL,
        cursor INTEGER NOT NULL) WITHOUT ROWID""",
]

STATE_GOOD, STATE_SUSPENDED, STATE_REVOKED = 0, 1, 2
REASON_CERTIFICATE_HOLD, REASON_REMOVE_FROM_CRL = 6, 8


def create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in SCHEMA:
            conn.execute(stmt)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@dataclass(frozen=True)
class EventRecord:
    """One contract log as indexed."""

    cursor: int
    block_number: int
    tx_index: int
    log_index: int
    tx_hash: bytes
    address: bytes
    name: str
    args_json: str
    topics: tuple[bytes, ...]
    data: bytes
    timestamp: int

    @property
    def args(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.args_json)
        return value


@dataclass(frozen=True)
class TxRecord:
    """A transaction receipt as indexed (ledger-specific view of an Ethereum receipt)."""

    tx_hash: bytes
    block_number: int
    block_hash: bytes
    block_timestamp: int
    tx_index: int
    sender: bytes
    nonce: int
    to: bytes
    contract_address: bytes
    status: int  # 1 success, 0 reverted
    gas_used: int
    cumulative_gas_used: int
    revert_reason: str
    revert_data: bytes
    logs: tuple[EventRecord, ...] = field(default=())


@dataclass(frozen=True)
class BatchRecord:
    batch_id: int
    root: bytes
    size: int
    ca_cert_hash: bytes
    anchored_at: int
    block_number: int
    tx_hash: bytes
    cursor: int


@dataclass(frozen=True)
class CertStatusRecord:
    cert_hash: bytes
    ca_cert_hash: bytes
    state: int
    reason: int
    updated_at: int
    batch_id: int
    by: bytes
    block_number: int
    tx_hash: bytes
    cursor: int


def _h(value: Any) -> bytes:
    """Decoded JSON hex back to bytes."""
    return bytes.fromhex(str(value)[2:])


def project_event(conn: sqlite3.Connection, ev: EventRecord) -> None:
    """Apply one registry event to the current-state tables."""
    a = ev.args
    if ev.name == "BatchAnchored":
        conn.execute(
            "INSERT INTO batches (batch_id, root, size, ca_cert_hash, anchored_at, block_number,"
            " tx_hash, cursor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a["batch_id"],
                _h(a["root"]),
                a["size"],
                _h(a["ca_cert_hash"]),
                a["timestamp"],
                ev.block_number,
                ev.tx_hash,
                ev.cursor,
            ),
        )
    elif ev.name in ("CertificateRevoked", "CertificateSuspended", "CertificateResumed"):
        state, reason = {
            "CertificateRevoked": (STATE_REVOKED, a.get("reason", 0)),
            "CertificateSuspended": (STATE_SUSPENDED, REASON_CERTIFICATE_HOLD),
            "CertificateResumed": (STATE_GOOD, REASON_REMOVE_FROM_CRL),
        }[ev.name]
        conn.execute(
            "INSERT OR REPLACE INTO cert_status (cert_hash, ca_cert_hash, state, reason,"
            " updated_at, batch_id, by_addr, block_number, tx_hash, cursor)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _h(a["cert_hash"]),
                _h(a["ca_cert_hash"]),
                state,
                reason,
                a["timestamp"],
                a["batch_id"],
                _h(a["by"]),
                ev.block_number,
                ev.tx_hash,
                ev.cursor,
            ),
        )
    elif ev.name == "ValidatorAdded":
        conn.execute(
            "INSERT OR REPLACE INTO validators (address, role, label, cursor) VALUES (?,?,?,?)",
            (_h(a["account"]), a["role"], _h(a["label"]), ev.cursor),
        )
    elif ev.name == "ValidatorRemoved":
        conn.execute("DELETE FROM validators WHERE address = ?", (_h(a["account"]),))
    elif ev.name == "TrustAnchorAdded":
        conn.execute(
            "INSERT OR REPLACE INTO trust_anchors (anchor_hash, kind, owner, cursor)"
            " VALUES (?, ?, ?, ?)",
            (_h(a["anchor_hash"]), a["kind"], _h(a["owner"]), ev.cursor),
        )
    elif ev.name == "TrustAnchorRemoved":
        conn.execute("DELETE FROM trust_anchors WHERE anchor_hash = ?", (_h(a["anchor_hash"]),))
    elif ev.name == "ThresholdChanged":
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('threshold', ?)",
            (str(a["new_threshold"]),),
        )


def write_events(conn: sqlite3.Connection, events: list[EventRecord]) -> None:
    conn.executemany(
        "INSERT INTO events (cursor, block_number, tx_index, log_index, tx_hash, address, name,"
        " args, topics, data, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.cursor,
                e.block_number,
                e.tx_index,
                e.log_index,
                e.tx_hash,
                e.address,
                e.name,
                e.args_json,
                b"".join(e.topics),
                e.data,
                e.timestamp,
            )
            for e in events
        ],
    )
    for e in events:
        if e.name:
            project_event(conn, e)


def write_txs(conn: sqlite3.Connection, txs: list[TxRecord]) -> None:
    conn.executemany(
        "INSERT INTO txs (hash, block_number, tx_index, sender, nonce, to_addr, contract_address,"
        " status, gas_used, cumulative_gas_used, revert_reason, revert_data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                t.tx_hash,
                t.block_number,
                t.tx_index,
                t.sender,
                t.nonce,
                t.to,
                t.contract_address,
                t.status,
                t.gas_used,
                t.cumulative_gas_used,
                t.revert_reason,
                t.revert_data,
            )
            for t in txs
        ],
    )


def set_meta(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())


_EVENT_COLUMNS = (
    "cursor, block_number, tx_index, log_index, tx_hash, address, name, args, topics, data,"
    " timestamp"
)


def _event(row: tuple[Any, ...]) -> EventRecord:
    topics = bytes(row[8])
    return EventRecord(
        cursor=row[0],
        block_number=row[1],
        tx_index=row[2],
        log_index=row[3],
        tx_hash=bytes(row[4]),
        address=bytes(row[5]),
        name=row[6],
        args_json=row[7],
        topics=tuple(topics[i : i + 32] for i in range(0, len(topics), 32)),
        data=bytes(row[9]),
        timestamp=row[10],
    )


class IndexReader:
    """Read-only queries; one SQLite connection per calling thread (WAL readers)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, read_only=True)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for c in self._conns:
                c.close()
            self._conns.clear()

    def meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def receipt(self, tx_hash: bytes) -> TxRecord | None:
        conn = self._conn()
        row = conn.execute(
            "SELECT t.hash, t.block_number, b.hash, b.timestamp, t.tx_index, t.sender, t.nonce,"
            " t.to_addr, t.contract_address, t.status, t.gas_used, t.cumulative_gas_used,"
            " t.revert_reason, t.revert_data FROM txs t JOIN blocks b ON b.number ="
            " t.block_number WHERE t.hash = ?",
            (tx_hash,),
        ).fetchone()
        if row is None:
            return None
        logs = tuple(
            _event(r)
            for r in conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE tx_hash = ? ORDER BY cursor",
                (tx_hash,),
            )
        )
        return TxRecord(
            tx_hash=bytes(row[0]),
            block_number=row[1],
            block_hash=bytes(row[2]),
            block_timestamp=row[3],
            tx_index=row[4],
            sender=bytes(row[5]),
            nonce=row[6],
            to=bytes(row[7]),
            contract_address=bytes(row[8]),
            status=row[9],
            gas_used=row[10],
            cumulative_gas_used=row[11],
            revert_reason=row[12],
            revert_data=bytes(row[13]),
            logs=logs,
        )

    def events_after(self, cursor: int, limit: int) -> list[EventRecord]:
        rows = self._conn().execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?",
            (cursor, limit),
        )
        return [_event(r) for r in rows]

    def last_cursor(self) -> int:
        row = self._conn().execute("SELECT MAX(cursor) FROM events").fetchone()
        return int(row[0] or 0)

    def event_count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def _batch(self, where: str, arg: Any) -> BatchRecord | None:
        row = (
            self._conn()
            .execute(
                "SELECT batch_id, root, size, ca_cert_hash, anchored_at, block_number, tx_hash,"
                f" cursor FROM batches WHERE {where} = ?",
                (arg,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return BatchRecord(
            batch_id=row[0],
            root=bytes(row[1]),
            size=row[2],
            ca_cert_hash=bytes(row[3]),
            anchored_at=row[4],
            block_number=row[5],
            tx_hash=bytes(row[6]),
            cursor=row[7],
        )

    def batch(self, batch_id: int) -> BatchRecord | None:
        return self._batch("batch_id", batch_id)

    def batch_by_root(self, root: bytes) -> BatchRecord | None:
        return self._batch("root", root)

    def cert_statuses(self, cert_hash: bytes) -> list[CertStatusRecord]:
        rows = self._conn().execute(
            "SELECT cert_hash, ca_cert_hash, state, reason, updated_at, batch_id, by_addr,"
            " block_number, tx_hash, cursor FROM cert_status WHERE cert_hash = ?"
            " ORDER BY ca_cert_hash",
            (cert_hash,),
        )
        return [
            CertStatusRecord(
                cert_hash=bytes(r[0]),
                ca_cert_hash=bytes(r[1]),
                state=r[2],
                reason=r[3],
                updated_at=r[4],
                batch_id=r[5],
                by=bytes(r[6]),
                block_number=r[7],
                tx_hash=bytes(r[8]),
                cursor=r[9],
            )
            for r in rows
        ]

    def validator_role(self, address: bytes) -> int:
        row = (
            self._conn()
            .execute("SELECT role FROM validators WHERE address = ?", (address,))
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def validators(self) -> list[tuple[bytes, int, bytes]]:
        rows = self._conn().execute("SELECT address, role, label FROM validators ORDER BY cursor")
        return [(bytes(r[0]), int(r[1]), bytes(r[2])) for r in rows]

    def trust_anchors(self) -> list[tuple[bytes, int, bytes]]:
        rows = self._conn().execute(
            "SELECT anchor_hash, kind, owner FROM trust_anchors ORDER BY cursor"
        )
        return [(bytes(r[0]), int(r[1]), bytes(r[2])) for r in rows]

    def counts(self) -> dict[str, int]:
        conn = self._conn()
        out = {}
        for table in ("blocks", "txs", "events", "batches", "cert_status"):
            out[table] = int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        return out
