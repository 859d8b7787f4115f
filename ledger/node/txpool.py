"""Pending transactions between submission and their block (decision 0503).

Each sender's transactions execute in nonce order. A transaction whose nonce is ahead of the
sender's next nonce waits (bounded time, bounded distance) for the gap to fill, so a signer
may pipeline consecutive nonces over concurrent RPCs. A second, different transaction with the
same (sender, nonce) as a pending one is refused (no replacement: fees are zero here); the
*same* transaction submitted again joins the pending one's result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from ledger.node.chain import PendingTx, RejectCode, TxRejected
from ledger.node.index import TxRecord


@dataclass
class Submission:
    pending: PendingTx
    arrived: float = field(default_factory=time.monotonic)
    future: Future[TxRecord] = field(default_factory=Future)
    in_flight: bool = False  # taken by the producer for the block being built

    def resolve(self, record: TxRecord) -> None:
        if not self.future.done():
            self.future.set_result(record)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class TxPool:
    """Thread-safe pool; one producer thread calls :meth:`take` and :meth:`settle`."""

    def __init__(
        self,
        state_nonce: Callable[[bytes], int],
        *,
        max_size: int = 10_000,
        max_nonce_ahead: int = 256,
        gap_timeout: float = 5.0,
    ) -> None:
        self._state_nonce_fn = state_nonce
        self._max_size = max_size
        self._max_ahead = max_nonce_ahead
        self._gap_timeout = gap_timeout
        self._cond = threading.Condition()
        self._by_hash: dict[bytes, Submission] = {}
        self._by_sender: dict[bytes, dict[int, Submission]] = {}
        self._next_nonce: dict[bytes, int] = {}
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._by_hash)

    def _state_nonce(self, sender: bytes) -> int:
        n = self._next_nonce.get(sender)
        if n is None:
            n = self._state_nonce_fn(sender)
            if len(self._next_nonce) > 100_000:  # forget idle senders
                for s in [s for s in self._next_nonce if s not in self._by_sender]:
                    del self._next_nonce[s]
            self._next_nonce[sender] = n
        return n

    def add(self, pending: PendingTx) -> Future[TxRecord]:
        """Queue ``pending``; returns the future of its receipt. Raises :class:`TxRejected`."""
        with self._cond:
            if self._closed:
                raise TxRejected(RejectCode.UNAVAILABLE, "the ledger node is shutting down")
            existing = self._by_hash.get(pending.tx_hash)
            if existing is not None:
                return existing.future
            expected = self._state_nonce(pending.sender)
            if pending.nonce < expected:
                raise TxRejected(
                    RejectCode.NONCE_TOO_LOW,
                    f"nonce {pending.nonce} already used; the account's next nonce is {expected}",
                )
            if pending.nonce > expected + self._max_ahead:
                raise TxRejected(
                    RejectCode.NONCE_GAP,
                    f"nonce {pending.nonce} is more than {self._max_ahead} ahead of the "
                    f"account's next nonce {expected}",
                )
            slots = self._by_sender.setdefault(pending.sender, {})
            if pending.nonce in slots:
                other = slots[pending.nonce].pending.tx_hash.hex()
                raise TxRejected(
                    RejectCode.NONCE_CONFLICT,
                    f"another transaction (0x{other}) with nonce {pending.nonce} is pending",
                )
            if len(self._by_hash) >= self._max_size:
                raise TxRejected(RejectCode.POOL_FULL, "too many pending transactions; retry")
            sub = Submission(pending)
            slots[pending.nonce] = sub
            self._by_hash[pending.tx_hash] = sub
            self._cond.notify_all()
            return sub.future

    def pending_nonce(self, sender: bytes) -> tuple[int, int]:
        """``(next nonce in state, next nonce after the sender's pending run)``."""
        with self._cond:
            n = self._state_nonce(sender)
            p = n
            slots = self._by_sender.get(sender, {})
            while p in slots:
                p += 1
            return n, p

    def _ready(self) -> list[Submission]:
        runs: list[list[Submission]] = []
        for sender, slots in self._by_sender.items():
            n = self._state_nonce(sender)
            run = []
            while n in slots:
                run.append(slots[n])
                n += 1
            if run:
                runs.append(run)
        runs.sort(key=lambda r: r[0].arrived)
        return [s for run in runs for s in run]

    def _expire_gaps(self, now: float) -> None:
        for sender, slots in list(self._by_sender.items()):
            n = self._state_nonce(sender)
            for nonce, sub in list(slots.items()):
                if nonce > n and now - sub.arrived > self._gap_timeout and n not in slots:
                    self._remove(sub)
                    sub.fail(
                        TxRejected(
                            RejectCode.NONCE_GAP,
                            f"nonce {nonce} waited {self._gap_timeout:.0f} s for the account's "
                            f"next nonce {n}, which never came",
                        )
                    )

    def _remove(self, sub: Submission) -> None:
        p = sub.pending
        self._by_hash.pop(p.tx_hash, None)
        slots = self._by_sender.get(p.sender)
        if slots is not None and slots.get(p.nonce) is sub:
            del slots[p.nonce]
            if not slots:
                del self._by_sender[p.sender]

    def take(self, max_txs: int, timeout: float) -> list[Submission]:
        """Wait up to ``timeout`` for executable transactions; returns them in execution order."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._expire_gaps(time.monotonic())
                ready = self._ready()
                if ready or self._closed:
                    taken = ready[:max_txs]
                    for sub in taken:
                        sub.in_flight = True
                    return taken
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                # wake at least every second to expire stale gaps
                self._cond.wait(min(remaining, 1.0))

    def settle(
        self,
        applied: list[tuple[Submission, TxRecord]],
        rejected: list[tuple[Submission, TxRejected]],
        deferred: Sequence[Submission] = (),
    ) -> None:
        """Record a block's results (after its commit); deferred submissions stay queued."""
        with self._cond:
            for sub in deferred:
                sub.in_flight = False
            for sub, _ in applied:
                p = sub.pending
                self._next_nonce[p.sender] = max(self._next_nonce.get(p.sender, 0), p.nonce + 1)
                self._remove(sub)
            for sub, _ in rejected:
                self._remove(sub)
                # the state nonce may have moved under us (e.g. a too-low nonce): reload it
                self._next_nonce.pop(sub.pending.sender, None)
            self._cond.notify_all()
        for sub, record in applied:
            sub.resolve(record)
        for sub, error in rejected:
            sub.fail(error)

    def close(self) -> None:
        """Refuse new submissions and fail the queued ones (they were never applied)."""
        with self._cond:
            self._closed = True
            # in-flight submissions are settled by the producer when their block commits
            subs = [s for s in self._by_hash.values() if not s.in_flight]
            self._by_hash.clear()
            self._by_sender.clear()
            self._cond.notify_all()
        for sub in subs:
            sub.fail(
                TxRejected(RejectCode.UNAVAILABLE, "the ledger node shut down before the block")
            )
