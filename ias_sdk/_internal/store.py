"""SQLite schema of the ledger mirror and the projection of registry events onto it.

The mirror keeps exactly what verification needs (ARCHITECTURE §2.5; decision records
0402, 0406, 0801): trust anchors (live and removed), validators (for operator labels), batches
and per-(CA, certificate) status, plus the follower's cursor and the source identity.
:func:`apply_events` writes one page of events and the new cursor in the caller's transaction,
so the cursor never runs ahead of (or behind) the rows it covers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ledger.backends.base import RegistryEvent

SCHEMA_VERSION: Final = "1"

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS validators (
    address         BLOB PRIMARY KEY,
    role            INTEGER NOT NULL,
    label           BLOB NOT NULL,
    active          INTEGER NOT NULL,
    changed_cursor  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trust_anchors (
    anchor_hash     BLOB PRIMARY KEY,
    kind            INTEGER NOT NULL,       -- 1 CA certificate hash, 2 operator key hash
    owner           BLOB NOT NULL,
    active          INTEGER NOT NULL,
    added_at        REAL NOT NULL,
    removed_at      REAL,
    changed_cursor  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id        INTEGER PRIMARY KEY,
    root            BLOB NOT NULL,
    size            INTEGER NOT NULL,
    ca_cert_hash    BLOB NOT NULL,
    anchored_at     REAL NOT NULL,
    cursor          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS statuses (
    ca_cert_hash    BLOB NOT NULL,
    cert_hash       BLOB NOT NULL,
    state           INTEGER NOT NULL,       -- 0 good (resumed), 1 suspended, 2 revoked
    reason          INTEGER NOT NULL,       -- RFC 5280 CRLReason
    updated_at      REAL NOT NULL,
    batch_id        INTEGER NOT NULL,
    changed_by      BLOB NOT NULL,
    cursor          INTEGER NOT NULL,
    PRIMARY KEY (ca_cert_hash, cert_hash)
) WITHOUT ROWID;
"""

STATE_GOOD: Final = 0
STATE_SUSPENDED: Final = 1
STATE_REVOKED: Final = 2
REASON_CERTIFICATE_HOLD: Final = 6
REASON_REMOVE_FROM_CRL: Final = 8

#: Events that write a ``statuses`` row.
STATUS_EVENTS: Final = frozenset(
    {"CertificateRevoked", "CertificateSuspended", "CertificateResumed"}
)
#: Events that change the in-memory governance view (anchors, validators).
GOVERNANCE_EVENTS: Final = frozenset(
    {"ValidatorAdded", "ValidatorRemoved", "TrustAnchorAdded", "TrustAnchorRemoved"}
)


class EventFormatError(ValueError):
    """A registry event whose arguments do not have the expected form."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The newest applied event: the cursor and what identifies that event on its ledger."""

    cursor: int
    tx_hash: bytes
    block_number: int
    name: str


def create(conn: sqlite3.Connection) -> None:
    """Create the tables (idempotent) and check the schema version (autocommit connection)."""
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
    )
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row[0] != SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"mirror schema version {row[0]} is not supported (expected {SCHEMA_VERSION})"
        )


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}


def write_meta(conn: sqlite3.Connection, values: Mapping[str, str]) -> None:
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


def _b(args: Mapping[str, Any], name: str, size: int | None = 32) -> bytes:
    value = args.get(name)
    if isinstance(value, str) and value.startswith("0x"):
        try:
            value = bytes.fromhex(value[2:])
        except ValueError:
            raise EventFormatError(f"argument {name!r} is not hex") from None
    if not isinstance(value, bytes | bytearray):
        raise EventFormatError(f"argument {name!r} is missing or not bytes")
    if size is not None and len(value) != size:
        raise EventFormatError(f"argument {name!r} must be {size} bytes, got {len(value)}")
    return bytes(value)


def _i(args: Mapping[str, Any], name: str) -> int:
    value = args.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EventFormatError(f"argument {name!r} is missing or not a non-negative integer")
    return value


def _apply(conn: sqlite3.Connection, ev: RegistryEvent) -> None:
    a = ev.args
    name = ev.name
    if name == "BatchAnchored":
        row = (_i(a, "batch_id"), _b(a, "root"), _i(a, "size"), _b(a, "ca_cert_hash"))
        existing = conn.execute(
            "SELECT root, size, ca_cert_hash FROM batches WHERE batch_id = ?", (row[0],)
        ).fetchone()
        if existing is not None:
            if (bytes(existing[0]), int(existing[1]), bytes(existing[2])) != row[1:]:
                raise EventFormatError(f"batch {row[0]} anchored twice with different contents")
            return
        conn.execute(
            "INSERT INTO batches (batch_id, root, size, ca_cert_hash, anchored_at, cursor) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (*row, float(_i(a, "timestamp")), ev.cursor),
        )
    elif name in STATUS_EVENTS:
        if name == "CertificateRevoked":
            state, reason = STATE_REVOKED, _i(a, "reason")
        elif name == "CertificateSuspended":
            state, reason = STATE_SUSPENDED, REASON_CERTIFICATE_HOLD
        else:
            state, reason = STATE_GOOD, REASON_REMOVE_FROM_CRL
        conn.execute(
            "INSERT OR REPLACE INTO statuses (ca_cert_hash, cert_hash, state, reason, "
            "updated_at, batch_id, changed_by, cursor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _b(a, "ca_cert_hash"),
                _b(a, "cert_hash"),
                state,
                reason,
                float(_i(a, "timestamp")),
                _i(a, "batch_id"),
                _b(a, "by", 20),
                ev.cursor,
            ),
        )
    elif name == "ValidatorAdded":
        conn.execute(
            "INSERT OR REPLACE INTO validators (address, role, label, active, changed_cursor) "
            "VALUES (?, ?, ?, 1, ?)",
            (_b(a, "account", 20), _i(a, "role"), _b(a, "label"), ev.cursor),
        )
    elif name == "ValidatorRemoved":
        conn.execute(
            "UPDATE validators SET active = 0, changed_cursor = ? WHERE address = ?",
            (ev.cursor, _b(a, "account", 20)),
        )
    elif name == "TrustAnchorAdded":
        conn.execute(
            "INSERT OR REPLACE INTO trust_anchors (anchor_hash, kind, owner, active, added_at, "
            "removed_at, changed_cursor) VALUES (?, ?, ?, 1, ?, NULL, ?)",
            (_b(a, "anchor_hash"), _i(a, "kind"), _b(a, "owner", 20), ev.block_time, ev.cursor),
        )
    elif name == "TrustAnchorRemoved":
        conn.execute(
            "UPDATE trust_anchors SET active = 0, removed_at = ?, changed_cursor = ? "
            "WHERE anchor_hash = ?",
            (ev.block_time, ev.cursor, _b(a, "anchor_hash")),
        )
    elif name == "ThresholdChanged":
        write_meta(conn, {"threshold": str(_i(a, "new_threshold"))})
    # Proposal* events and logs the registry ABI does not know carry nothing verification needs.


def status_keys(events: Sequence[RegistryEvent]) -> set[tuple[bytes, bytes]]:
    """The ``(ca_cert_hash, cert_hash)`` rows that applying ``events`` wrote (applied events only:
    their arguments were already checked)."""
    return {
        (_b(ev.args, "ca_cert_hash"), _b(ev.args, "cert_hash"))
        for ev in events
        if ev.name in STATUS_EVENTS
    }


def apply_events(conn: sqlite3.Connection, events: Sequence[RegistryEvent], cursor: int) -> int:
    """Project ``events`` (cursors strictly increasing, all above ``cursor``) and store the new
    cursor and checkpoint. Runs inside the caller's transaction; returns the new cursor.

    Raises :class:`EventFormatError` on an out-of-order or malformed event; the caller rolls
    the whole page back.
    """
    last: RegistryEvent | None = None
    for ev in events:
        if ev.cursor <= cursor:
            raise EventFormatError(f"event cursor {ev.cursor} is not after {cursor}")
        try:
            _apply(conn, ev)
        except EventFormatError as e:
            raise EventFormatError(f"event {ev.cursor} ({ev.name}): {e}") from None
        cursor = ev.cursor
        last = ev
    if last is not None:
        write_meta(
            conn,
            {
                "cursor": str(last.cursor),
                "checkpoint_tx": last.tx_hash.hex(),
                "checkpoint_block": str(last.block_number),
                "checkpoint_name": last.name,
                "head_block_seen": str(last.block_number),
                "block_time_seen": repr(last.block_time),
            },
        )
    return cursor
