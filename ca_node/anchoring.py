"""Batched anchoring of issued ppCerts on the ledger (ARCHITECTURE §2.4; DLT-PKI material).

Issued certificates are collected for a short window (default 200 ms, or until ``max_batch``),
a Merkle tree is built over their leaf entries (RFC 9162 hashing; entry =
SHA-256(cert DER) ‖ operator key hash, decision 0401) and ONE ledger transaction anchors the
root. Every waiting request then gets its inclusion proof.

Durability: a batch (its leaves, in order) is written to the CA database *before* its anchor
transaction is sent, and marked anchored only after the ledger acknowledged it. After a crash or
a ledger outage the CA re-sends pending batches; the contract refuses a root anchored twice and
the anchorer first asks whether the root is already there, so nothing is anchored twice or lost.
Certificates stored but not yet in a batch (a crash in between) are picked up again at start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mpkix._internal.sqlite import GroupCommitWriter, connect
from mpkix.merkle import MerkleTree
from mpkix.v1 import common_pb2

log = logging.getLogger("mpkix.ca.anchoring")

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    local_id       INTEGER PRIMARY KEY,
    root           BLOB NOT NULL UNIQUE,
    size           INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('built', 'anchored')),
    ledger_batch   INTEGER,
    tx_hash        BLOB,
    anchored_at    REAL,
    created_at     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_leaves (
    local_id       INTEGER NOT NULL REFERENCES batches(local_id),
    leaf_index     INTEGER NOT NULL,
    serial         TEXT NOT NULL UNIQUE,
    entry          BLOB NOT NULL,          -- SHA-256(cert DER) || operator key hash
    PRIMARY KEY (local_id, leaf_index)
);
"""


@dataclass(frozen=True)
class AnchorReceipt:
    batch_id: int
    tx_hash: bytes
    anchored_at: dt.datetime


class AnchorRefused(Exception):
    """The registry refused the batch for a reason a retry will not fix soon (e.g. the CA's
    trust anchor was removed by governance)."""


class Anchorer(Protocol):
    """Writes one batch root to the ledger. Blocking; must be idempotent by root."""

    chain_id: int
    registry_address: bytes
    ca_cert_hash: bytes

    def anchor(self, root: bytes, size: int) -> AnchorReceipt: ...


def leaf_entry(cert_der: bytes, operator_key_hash: bytes) -> bytes:
    if len(operator_key_hash) != 32:
        raise ValueError("operator key hash must be 32 bytes")
    return hashlib.sha256(cert_der).digest() + operator_key_hash


def batch_inclusions(
    conn: sqlite3.Connection,
    local_id: int,
    indices: Sequence[int],
    ca_cert_hash: bytes,
    chain_id: int,
    registry_address: bytes,
) -> list[common_pb2.MerkleInclusion]:
    """Inclusion proofs for leaves of one anchored batch, rebuilt from the stored leaves."""
    row = conn.execute(
        "SELECT root, size, ledger_batch, tx_hash, anchored_at FROM batches WHERE local_id = ?",
        (local_id,),
    ).fetchone()
    leaves = [
        bytes(r[0])
        for r in conn.execute(
            "SELECT entry FROM batch_leaves WHERE local_id = ? ORDER BY leaf_index", (local_id,)
        )
    ]
    tree = MerkleTree(leaves)
    out = []
    for i in indices:
        inc = common_pb2.MerkleInclusion(
            batch_id=int(row[2]),
            leaf_index=i,
            tree_size=int(row[1]),
            audit_path=tree.audit_path(i),
            root=bytes(row[0]),
            issuer_ca_sha256=ca_cert_hash,
            anchor_tx_hash=bytes(row[3] or b""),
            chain_id=chain_id,
            registry_address=registry_address,
            operator_key_hash=leaves[i][32:],
        )
        inc.anchored_at.FromDatetime(dt.datetime.fromtimestamp(float(row[4]), dt.UTC))
        out.append(inc)
    return out


def inclusion_of_serial(
    conn: sqlite3.Connection,
    serial: str,
    ca_cert_hash: bytes,
    chain_id: int,
    registry_address: bytes,
) -> common_pb2.MerkleInclusion | None:
    row = conn.execute(
        "SELECT b.local_id, l.leaf_index FROM batch_leaves l JOIN batches b "
        "USING (local_id) WHERE l.serial = ? AND b.state = 'anchored'",
        (serial,),
    ).fetchone()
    if row is None:
        return None
    return batch_inclusions(
        conn, int(row[0]), [int(row[1])], ca_cert_hash, chain_id, registry_address
    )[0]


@dataclass(frozen=True)
class BatcherStats:
    anchored_since_start: int
    queued: int
    unanchored: int
    refused: int
    oldest_unanchored_s: float


@dataclass
class _Pending:
    serial: str
    entry: bytes
    future: asyncio.Future[common_pb2.MerkleInclusion]


class AnchorBatcher:
    """Collects leaves, anchors one root per batch, hands out inclusion proofs."""

    def __init__(
        self,
        db_path: str,
        anchorer: Anchorer,
        *,
        window_s: float = 0.2,
        max_batch: int = 8192,
        retry_s: float = 0.5,
        refused_retry_s: float = 60.0,
    ) -> None:
        boot = connect(db_path)
        boot.executescript(SCHEMA)
        boot.close()
        self._reader = connect(db_path)
        self._writer = GroupCommitWriter(db_path)
        self._anchorer = anchorer
        self._window = window_s
        self._max = max_batch
        self._retry = retry_s
        self._refused_retry = refused_retry_s
        # Batches the registry refuses (AnchorRefused), by local id: the reason, for callers.
        self.refused: dict[int, str] = {}
        self._pending: list[_Pending] = []
        self._waiting: dict[int, list[_Pending]] = {}
        self._by_serial: dict[str, _Pending] = {}  # queued or anchoring, not yet resolved
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Anchoring tasks in flight: the loop keeps only weak references to tasks (RUF006).
        self._anchoring: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.anchored_batches = 0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, unbatched: Sequence[tuple[str, bytes]] = ()) -> None:
        """Resume pending batches and re-queue certificates that never got into one."""
        loop = asyncio.get_running_loop()
        for serial, entry in unbatched:
            p = _Pending(serial, entry, loop.create_future())
            self._by_serial[serial] = p
            self._pending.append(p)
        self._task = asyncio.create_task(self._run())
        for (local_id,) in self._reader.execute(
            "SELECT local_id FROM batches WHERE state = 'built' ORDER BY local_id"
        ).fetchall():
            self._spawn_anchoring(int(local_id))
        if self._pending:
            self._wake.set()

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        tasks = [*self._anchoring, *([self._task] if self._task is not None else [])]
        for t in tasks:
            t.cancel()
        # A batch whose mark was cut short stays 'built' and is re-anchored (idempotently) at start.
        await asyncio.gather(*tasks, return_exceptions=True)
        self._writer.close()
        self._reader.close()

    # -- API -------------------------------------------------------------------------------
    def submit(self, serial: str, entry: bytes) -> asyncio.Future[common_pb2.MerkleInclusion]:
        """Queue a certificate's leaf entry; the future resolves once its batch is anchored."""
        existing = self._by_serial.get(serial)
        if existing is not None:
            return existing.future
        fut: asyncio.Future[common_pb2.MerkleInclusion] = (
            asyncio.get_running_loop().create_future()
        )
        p = _Pending(serial, entry, fut)
        self._by_serial[serial] = p
        self._pending.append(p)
        if len(self._pending) >= self._max or len(self._pending) == 1:
            self._wake.set()
        return fut

    def inclusion_for(self, serial: str) -> common_pb2.MerkleInclusion | None:
        """Inclusion proof of an already anchored certificate (None if not anchored yet)."""
        a = self._anchorer
        return inclusion_of_serial(
            self._reader, serial, a.ca_cert_hash, a.chain_id, a.registry_address
        )

    def stats(self) -> BatcherStats:
        """Counters for metrics and operators (one indexed query)."""
        n, oldest = self._reader.execute(
            "SELECT count(*), min(created_at) FROM batches WHERE state = 'built'"
        ).fetchone()
        return BatcherStats(
            anchored_since_start=self.anchored_batches,
            queued=len(self._pending),
            unanchored=int(n),
            refused=len(self.refused),
            oldest_unanchored_s=max(0.0, time.time() - float(oldest)) if oldest else 0.0,
        )

    def refusal_for(self, serial: str) -> str | None:
        """Why the registry refuses the batch holding ``serial`` (None: not refused)."""
        if not self.refused:
            return None
        row = self._reader.execute(
            "SELECT local_id FROM batch_leaves WHERE serial = ?", (serial,)
        ).fetchone()
        return None if row is None else self.refused.get(int(row[0]))

    def is_batched(self, serial: str) -> bool:
        return (
            self._reader.execute(
                "SELECT 1 FROM batch_leaves WHERE serial = ?", (serial,)
            ).fetchone()
            is not None
        )

    def leaf_position(self, serial: str) -> tuple[int, int, list[bytes], bytes] | None:
        """(ledger batch id, leaf index, audit path, entry) for revocation by the CA."""
        inc = self.inclusion_for(serial)
        if inc is None:
            return None
        row = self._reader.execute(
            "SELECT entry FROM batch_leaves WHERE serial = ?", (serial,)
        ).fetchone()
        return inc.batch_id, inc.leaf_index, list(inc.audit_path), bytes(row[0])

    # -- internals -------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                continue
            if len(self._pending) < self._max:
                await asyncio.sleep(self._window)
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            if self._pending:
                self._wake.set()
            try:
                local_id = await self._persist(batch)
            except Exception:
                log.exception("could not persist a batch; re-queued")
                self._pending[:0] = batch
                await asyncio.sleep(self._retry)
                self._wake.set()
                continue
            self._waiting[local_id] = batch
            self._spawn_anchoring(local_id)

    def _spawn_anchoring(self, local_id: int) -> None:
        task = asyncio.create_task(self._anchor_until_done(local_id))
        self._anchoring.add(task)
        task.add_done_callback(self._anchoring.discard)

    async def _persist(self, batch: list[_Pending]) -> int:
        tree = MerkleTree([p.entry for p in batch])
        root = tree.root
        now = time.time()

        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO batches (root, size, state, created_at) VALUES (?,?, 'built', ?)",
                (root, len(batch), now),
            )
            local_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO batch_leaves VALUES (?,?,?,?)",
                [(local_id, i, p.serial, p.entry) for i, p in enumerate(batch)],
            )
            return local_id

        return int(await self._writer.write(write))

    def _inclusion(
        self, local_id: int, indices: Sequence[int]
    ) -> list[common_pb2.MerkleInclusion]:
        a = self._anchorer
        return batch_inclusions(
            self._reader, local_id, indices, a.ca_cert_hash, a.chain_id, a.registry_address
        )

    async def _anchor_until_done(self, local_id: int) -> None:
        row = self._reader.execute(
            "SELECT root, size FROM batches WHERE local_id = ?", (local_id,)
        ).fetchone()
        root, size = bytes(row[0]), int(row[1])
        delay = self._retry
        while not self._stopping:
            try:
                receipt = await asyncio.to_thread(self._anchorer.anchor, root, size)
                self.refused.pop(local_id, None)
                break
            except AnchorRefused as e:
                # Not a transient fault (e.g. this CA's trust anchor was removed): answer the
                # waiting callers now, keep the batch and its certificates, look again rarely.
                if local_id not in self.refused:
                    log.error(
                        "the registry refuses batch %d: %s; its %d certificates are kept and "
                        "the batch is retried every %.0fs", local_id, e, size, self._refused_retry,
                    )
                self.refused[local_id] = str(e)
                for p in self._waiting.pop(local_id, []):
                    self._by_serial.pop(p.serial, None)
                    if not p.future.done():
                        p.future.set_exception(AnchorRefused(str(e)))
                await asyncio.sleep(self._refused_retry)
                delay = self._retry
            except Exception as e:  # ledger down or rejecting: keep the batch, retry
                log.warning("anchoring batch %d failed (%s); retrying in %.1fs", local_id, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        else:
            return

        def mark(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE batches SET state = 'anchored', ledger_batch = ?, tx_hash = ?, "
                "anchored_at = ? WHERE local_id = ?",
                (receipt.batch_id, receipt.tx_hash, receipt.anchored_at.timestamp(), local_id),
            )

        await self._writer.write(mark)
        self.anchored_batches += 1
        waiting = self._waiting.pop(local_id, [])
        if waiting:
            for p, inc in zip(
                waiting, self._inclusion(local_id, range(len(waiting))), strict=True
            ):
                self._by_serial.pop(p.serial, None)
                if not p.future.done():
                    p.future.set_result(inc)
