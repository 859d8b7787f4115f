"""Issued-certificate store of the CA node (ARCHITECTURE §1: "issued-certificate store").

Keyed by serial, unique by request id for idempotent retries (same request id and same ppCSR
→ the stored certificate; same request id with another ppCSR → refused). Writes go through the
group-commit writer: a certificate is returned only once its row is durable.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from mpkix._internal.sqlite import GroupCommitWriter, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS issued (
    serial        TEXT PRIMARY KEY,      -- lowercase hex
    request_id    TEXT NOT NULL UNIQUE,
    csr_sha256    BLOB NOT NULL,
    cert_sha256   BLOB NOT NULL UNIQUE,
    subject_id    TEXT NOT NULL,
    operator_id   TEXT NOT NULL,
    operator_key_hash BLOB NOT NULL,      -- SHA-256 of the endorsing key's SPKI
    cert_der      BLOB NOT NULL,
    not_after     REAL NOT NULL,
    issued_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS issued_subject ON issued(subject_id);
"""


@dataclass(frozen=True)
class IssuedRecord:
    serial: str
    request_id: str
    csr_sha256: bytes
    cert_sha256: bytes
    subject_id: str
    operator_id: str
    operator_key_hash: bytes
    cert_der: bytes
    not_after: float


class IssuedStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        boot = connect(path)
        boot.executescript(SCHEMA)
        boot.close()
        self._reader = connect(path)
        self._writer = GroupCommitWriter(path)

    def close(self) -> None:
        self._writer.close()
        self._reader.close()

    def by_request(self, request_id: str) -> IssuedRecord | None:
        row = self._reader.execute(
            "SELECT serial, request_id, csr_sha256, cert_sha256, subject_id, operator_id, "
            "operator_key_hash, cert_der, not_after FROM issued WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return IssuedRecord(*row) if row else None

    def by_serial(self, serial: str) -> IssuedRecord | None:
        row = self._reader.execute(
            "SELECT serial, request_id, csr_sha256, cert_sha256, subject_id, operator_id, "
            "operator_key_hash, cert_der, not_after FROM issued WHERE serial = ?",
            (serial.lower(),),
        ).fetchone()
        return IssuedRecord(*row) if row else None

    def unbatched(self, batched: set[str] | None = None) -> list[tuple[str, bytes, bytes]]:
        """(serial, cert DER, operator key hash) of certificates not in any anchoring batch."""
        try:
            rows = self._reader.execute(
                "SELECT serial, cert_der, operator_key_hash FROM issued WHERE serial NOT IN "
                "(SELECT serial FROM batch_leaves) ORDER BY issued_at"
            ).fetchall()
        except sqlite3.OperationalError:  # no anchoring tables: anchoring never ran
            rows = self._reader.execute(
                "SELECT serial, cert_der, operator_key_hash FROM issued ORDER BY issued_at"
            ).fetchall()
        return [(r[0], bytes(r[1]), bytes(r[2])) for r in rows]

    def count(self) -> int:
        return int(self._reader.execute("SELECT count(*) FROM issued").fetchone()[0])

    async def add(self, rec: IssuedRecord) -> IssuedRecord:
        """Insert ``rec``; if its request id raced in meanwhile, return the stored one."""

        def write(conn: sqlite3.Connection) -> IssuedRecord | None:
            cur = conn.execute(
                "INSERT INTO issued VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(request_id) DO NOTHING",
                (
                    rec.serial,
                    rec.request_id,
                    rec.csr_sha256,
                    rec.cert_sha256,
                    rec.subject_id,
                    rec.operator_id,
                    rec.operator_key_hash,
                    rec.cert_der,
                    rec.not_after,
                    time.time(),
                ),
            )
            return rec if cur.rowcount == 1 else None

        stored: IssuedRecord | None = await self._writer.write(write)
        if stored is not None:
            return stored
        existing = self.by_request(rec.request_id)
        assert existing is not None
        return existing
