"""Durable CMS state (ARCHITECTURE §2.1 step 3): subjects and enrollments.

Per ppCert subject the CMS keeps K_encr/K_aut (wrapped under the node's master key, so a copy
of the database alone reveals nothing) and the anonymized value of every attribute at every
level, computed once per ppCSR (paper §7.1). Enrollments are keyed by the CMA's transaction id
so a retried request returns the stored answer. A subject and its enrollment are written in one
transaction, and only after the CA has issued: a rejected or failed request leaves nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mpkix._internal.sqlite import GroupCommitWriter, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS subjects (
    subject_id    TEXT PRIMARY KEY,
    imsi          TEXT NOT NULL,
    wrapped_keys  BLOB NOT NULL,          -- AES-256-GCM(master, K_encr || K_aut, aad=subject_id)
    cert_serial   TEXT NOT NULL,
    cert_sha256   BLOB NOT NULL,
    anonymized    TEXT NOT NULL,          -- JSON {attr: [value at level 0..n-1 | null]}
    levels_as_of  TEXT NOT NULL,          -- date the age ranges were computed for
    created_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS subjects_imsi ON subjects(imsi);
CREATE TABLE IF NOT EXISTS enrollments (
    transaction_id TEXT PRIMARY KEY,
    imsi           TEXT NOT NULL,
    subject_id     TEXT NOT NULL REFERENCES subjects(subject_id),
    csr_sha256     BLOB NOT NULL,
    response       BLOB NOT NULL,         -- serialized SubmitPpCsrResponse
    created_at     REAL NOT NULL
);
"""


def load_or_create_master_key(path: Path) -> bytes:
    """The node's 256-bit key-wrapping key, created 0600 on first start."""
    if path.exists():
        key = path.read_bytes()
        if len(key) != 32:
            raise ValueError(f"{path}: master key must be 32 bytes")
        return key
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


@dataclass(frozen=True)
class SubjectRecord:
    subject_id: str
    imsi: str
    k_encr: bytes
    k_aut: bytes
    cert_serial: str
    cert_sha256: bytes
    anonymized: dict[str, list[str | None]]
    levels_as_of: str


@dataclass(frozen=True)
class StoredEnrollment:
    imsi: str
    subject_id: str
    csr_sha256: bytes
    response: bytes


class CmsState:
    """SQLite-backed CMS state with group commit for writes."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._aead = AESGCM(load_or_create_master_key(state_dir / "master.key"))
        db = state_dir / "cms.sqlite"
        boot = connect(db)
        boot.executescript(SCHEMA)
        boot.close()
        self._reader = connect(db)
        self._writer = GroupCommitWriter(db)

    def close(self) -> None:
        self._writer.close()
        self._reader.close()

    def get_enrollment(self, transaction_id: str) -> StoredEnrollment | None:
        row = self._reader.execute(
            "SELECT imsi, subject_id, csr_sha256, response FROM enrollments "
            "WHERE transaction_id = ?",
            (transaction_id,),
        ).fetchone()
        return StoredEnrollment(*row) if row else None

    def _wrap(self, subject_id: str, k_encr: bytes, k_aut: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, k_encr + k_aut, subject_id.encode())

    def _unwrap(self, subject_id: str, blob: bytes) -> tuple[bytes, bytes]:
        try:
            keys = self._aead.decrypt(blob[:12], blob[12:], subject_id.encode())
        except InvalidTag:
            raise ValueError(f"wrapped keys of {subject_id} fail authentication") from None
        return keys[:16], keys[16:]

    async def record_enrollment(
        self,
        *,
        transaction_id: str,
        subject: SubjectRecord,
        csr_sha256: bytes,
        response: bytes,
    ) -> None:
        """Store the subject and its enrollment atomically (one transaction)."""
        wrapped = self._wrap(subject.subject_id, subject.k_encr, subject.k_aut)
        now = time.time()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO subjects VALUES (?,?,?,?,?,?,?,?)",
                (
                    subject.subject_id,
                    subject.imsi,
                    wrapped,
                    subject.cert_serial,
                    subject.cert_sha256,
                    json.dumps(subject.anonymized, separators=(",", ":")),
                    subject.levels_as_of,
                    now,
                ),
            )
            conn.execute(
                "INSERT INTO enrollments VALUES (?,?,?,?,?,?)",
                (transaction_id, subject.imsi, subject.subject_id, csr_sha256, response, now),
            )

        await self._writer.write(write)

    def get_subject(self, subject_id: str) -> SubjectRecord | None:
        row = self._reader.execute(
            "SELECT subject_id, imsi, wrapped_keys, cert_serial, cert_sha256, anonymized, "
            "levels_as_of FROM subjects WHERE subject_id = ?",
            (subject_id,),
        ).fetchone()
        if row is None:
            return None
        k_encr, k_aut = self._unwrap(row[0], row[2])
        return SubjectRecord(
            subject_id=row[0],
            imsi=row[1],
            k_encr=k_encr,
            k_aut=k_aut,
            cert_serial=row[3],
            cert_sha256=row[4],
            anonymized=json.loads(row[5]),
            levels_as_of=row[6],
        )

    def bundles_of(self, imsi: str) -> list[tuple[str, bytes]]:
        """(subject id, serialized SubmitPpCsrResponse) of every ppCert of a subscriber."""
        rows = self._reader.execute(
            "SELECT subject_id, response FROM enrollments WHERE imsi = ? ORDER BY created_at",
            (imsi,),
        ).fetchall()
        return [(str(r[0]), bytes(r[1])) for r in rows]

    def count_subjects(self) -> int:
        return int(self._reader.execute("SELECT count(*) FROM subjects").fetchone()[0])

    def count_enrollments(self) -> int:
        return int(self._reader.execute("SELECT count(*) FROM enrollments").fetchone()[0])
