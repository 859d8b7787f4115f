"""The ledger node: chain engine + transaction pool + group-commit block producer.

:class:`LedgerNode` is the in-process API the gRPC service (and tests, benchmarks) use. One
producer thread takes every executable pending transaction (up to ``max_block_txs``), executes
them as one block and commits it with one fsync'd SQLite transaction; then, and only then, the
submitters get their receipts (decision 0503). While a block is being built and committed, new
submissions queue up and form the next block, so the batch size adapts to the load without
adding latency when the node is idle (group commit).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ledger.contracts import ContractArtifact
from ledger.node.chain import (
    CallResult,
    ChainEngine,
    PoisonTransaction,
    RejectCode,
    TxRejected,
)
from ledger.node.genesis import GenesisConfig
from ledger.node.index import BatchRecord, CertStatusRecord, EventRecord, TxRecord
from ledger.node.txpool import Submission, TxPool

log = logging.getLogger("ledger.node")

DB_FILE = "chain.sqlite"
LOCK_FILE = "LOCK"


class StateDirLocked(RuntimeError):
    """Another ledger node process uses this state directory."""


@dataclass(frozen=True)
class NodeStatus:
    chain_id: int
    head_number: int
    head_hash: bytes
    head_timestamp: int
    genesis_hash: bytes
    contract_address: bytes
    last_cursor: int
    pending: int
    gas_limit: int
    gas_target: int


@dataclass
class ProducerStats:
    blocks: int = 0
    transactions: int = 0
    rejected: int = 0
    last_block_txs: int = 0
    last_block_ms: float = 0.0
    last_commit_ms: float = 0.0


class LedgerNode:
    """A running ledger: submit, read, follow. ``start()`` before use; ``stop()`` at the end."""

    def __init__(
        self,
        state_dir: Path | str,
        genesis: GenesisConfig,
        artifact: ContractArtifact | None = None,
        *,
        max_block_txs: int = 500,
        pool_size: int = 10_000,
        gap_timeout: float = 5.0,
        cache_entries: int = 200_000,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_state_dir(self.state_dir)
        try:
            self.engine = ChainEngine(
                self.state_dir / DB_FILE,
                genesis,
                artifact if artifact is not None else genesis.load_artifact(),
                cache_entries=cache_entries,
            )
        except BaseException:
            self._lock_file.close()
            raise
        self.max_block_txs = max_block_txs
        self.pool = TxPool(self.engine.nonce, max_size=pool_size, gap_timeout=gap_timeout)
        self.stats = ProducerStats()
        self._listeners: list[Callable[[int], None]] = []
        self._listeners_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="ledger-producer", daemon=True)
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> LedgerNode:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the block in progress, fail queued submissions, close the database."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.pool.close()
        if self._started:
            self._thread.join(timeout)
        self.engine.close()
        self._lock_file.close()

    def __enter__(self) -> LedgerNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- producer ------------------------------------------------------------------------

    def _produce(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = self.pool.take(self.max_block_txs, timeout=0.5)
                if batch:
                    self._make_block(batch)
            except Exception:  # keep producing; the failed batch was settled or stays queued
                log.exception("block producer error")
                time.sleep(0.1)

    def _make_block(self, batch: list[Submission]) -> None:
        by_hash = {s.pending.tx_hash: s for s in batch}
        t0 = time.perf_counter()
        try:
            outcome = self.engine.execute([s.pending for s in batch])
        except PoisonTransaction as e:
            log.error("%s", e)
            sub = by_hash[e.pending.tx_hash]
            others = [s for s in batch if s is not sub]
            self.pool.settle(
                [],
                [(sub, TxRejected(RejectCode.INTERNAL, "the transaction broke block execution"))],
                others,
            )
            return
        except Exception:
            log.exception("block execution failed")
            self.pool.settle(
                [], [(s, TxRejected(RejectCode.INTERNAL, "block execution failed")) for s in batch]
            )
            return
        t1 = time.perf_counter()
        rejected = [(by_hash[p.tx_hash], err) for p, err in outcome.rejected]
        deferred = [by_hash[p.tx_hash] for p in outcome.deferred]
        try:
            self.engine.commit(outcome)
        except Exception:
            log.exception("block commit failed; nothing of it is durable")
            failed = [
                (by_hash[p.tx_hash], TxRejected(RejectCode.UNAVAILABLE, "could not persist block"))
                for p in outcome.applied
            ]
            self.pool.settle([], rejected + failed, deferred)
            return
        t2 = time.perf_counter()
        applied = [(by_hash[r.tx_hash], r) for r in outcome.receipts]
        self.pool.settle(applied, rejected, deferred)
        st = self.stats
        if outcome.header is not None:
            st.blocks += 1
            st.transactions += len(applied)
            st.last_block_txs = len(applied)
            st.last_block_ms = (t1 - t0) * 1000
            st.last_commit_ms = (t2 - t1) * 1000
        st.rejected += len(rejected)
        if outcome.events:
            self._notify(self.engine.last_cursor)

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(last_cursor)`` (on the producer thread) after blocks with events."""
        with self._listeners_lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[int], None]) -> None:
        with self._listeners_lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def _notify(self, cursor: int) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb(cursor)
            except Exception:  # a listener must not stop the producer
                log.exception("event listener failed")

    # -- writes --------------------------------------------------------------------------

    def submit(self, raw: bytes) -> Future[TxRecord]:
        """Submit a raw signed transaction; the future resolves once its block is durable.

        Idempotent: a transaction already on chain resolves at once to its receipt; one already
        pending shares the pending result. Raises :class:`TxRejected` for refusals.
        """
        if self._stopping.is_set():
            raise TxRejected(RejectCode.UNAVAILABLE, "the ledger node is shutting down")
        pending = self.engine.decode(raw)
        done = self.engine.receipt(pending.tx_hash)
        if done is None:
            try:
                return self.pool.add(pending)
            except TxRejected as e:
                if e.code is not RejectCode.NONCE_TOO_LOW:
                    raise
                done = self.engine.receipt(pending.tx_hash)  # committed meanwhile?
                if done is None:
                    raise
        fut: Future[TxRecord] = Future()
        fut.set_result(done)
        return fut

    def submit_and_wait(self, raw: bytes, timeout: float | None = 30.0) -> TxRecord:
        return self.submit(raw).result(timeout)

    # -- reads ---------------------------------------------------------------------------

    def receipt(self, tx_hash: bytes) -> TxRecord | None:
        return self.engine.receipt(tx_hash)

    def call(
        self, to: bytes, data: bytes, *, sender: bytes | None = None, gas: int | None = None
    ) -> CallResult:
        if sender is None:
            return self.engine.call(to, data, gas=gas)
        return self.engine.call(to, data, sender=sender, gas=gas)

    def nonces(self, address: bytes) -> tuple[int, int]:
        """``(next nonce on chain, next nonce after this sender's pending transactions)``."""
        return self.pool.pending_nonce(address)

    def status(self) -> NodeStatus:
        head = self.engine.head
        return NodeStatus(
            chain_id=self.engine.chain_id,
            head_number=head.block_number,
            head_hash=head.hash,
            head_timestamp=head.timestamp,
            genesis_hash=self.engine.genesis_hash,
            contract_address=self.engine.contract_address,
            last_cursor=self.engine.last_cursor,
            pending=len(self.pool),
            gas_limit=head.gas_limit,
            gas_target=self.engine.gas_target,
        )

    def batch(self, batch_id: int) -> BatchRecord | None:
        return self.engine.index.batch(batch_id)

    def batch_by_root(self, root: bytes) -> BatchRecord | None:
        return self.engine.index.batch_by_root(root)

    def cert_statuses(self, cert_hash: bytes) -> list[CertStatusRecord]:
        return self.engine.index.cert_statuses(cert_hash)

    def events_after(self, cursor: int, limit: int = 1000) -> list[EventRecord]:
        """Indexed events with a cursor greater than ``cursor``, oldest first."""
        return self.engine.index.events_after(cursor, limit)

    @property
    def last_cursor(self) -> int:
        return self.engine.last_cursor


def _lock_state_dir(state_dir: Path) -> IO[str]:
    """Hold an exclusive lock on ``state_dir/LOCK`` for the life of the node."""
    f = open(state_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held open until stop()
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise StateDirLocked(f"{state_dir} is in use by another ledger node") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f
