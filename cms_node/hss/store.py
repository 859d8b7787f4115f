"""The subscriber-store interface the CMS programs against (ARCHITECTURE §4).

``SqliteSubscriberStore`` (``sqlite_store``) is the embedded implementation; an operator can put
its own database behind the same protocol (decision record 0200 gives the table layout for
PostgreSQL). ``MemorySubscriberStore`` keeps everything in a dict: for tools and tests that need
no file. Every implementation must be safe to call from several threads.

SQN handling (3GPP TS 33.102 §6.3.2, Annex C): the AuC steps a subscriber's SQN each time it
builds an authentication vector. ``advance_sqn`` is a compare-and-set, so two concurrent
enrollments of one subscriber can never hand out the same SQN; ``set_sqn`` overwrites it after a
resynchronization (AUTS, TS 33.102 §6.3.5).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from cms_node.hss.model import SQN_LIMIT, Subscriber

__all__ = [
    "DuplicateSubscriberError",
    "MemorySubscriberStore",
    "StoreClosedError",
    "SubscriberStore",
    "check_sqn",
]


class DuplicateSubscriberError(ValueError):
    """``insert_many`` met an IMSI or MSISDN that is already stored (nothing was inserted)."""


class StoreClosedError(RuntimeError):
    """The store was used after ``close()``."""


def check_sqn(sqn: int) -> None:
    """Raise ``ValueError`` unless ``sqn`` is a 48-bit unsigned int."""
    if isinstance(sqn, bool) or not isinstance(sqn, int) or not 0 <= sqn < SQN_LIMIT:
        raise ValueError(f"sqn: out of the 48-bit range: {sqn!r}")


@runtime_checkable
class SubscriberStore(Protocol):
    """Subscriber records keyed by IMSI."""

    def get(self, imsi: str) -> Subscriber | None:
        """The record of ``imsi``, or ``None``."""
        ...

    def count(self) -> int:
        """Number of stored subscribers."""
        ...

    def insert_many(self, subscribers: Iterable[Subscriber]) -> int:
        """Insert new records atomically (all or none); return how many.

        Raises ``DuplicateSubscriberError`` if an IMSI or MSISDN is already present.
        """
        ...

    def iter_all(self, batch: int = 1000) -> Iterator[Subscriber]:
        """Every record in IMSI order, fetched ``batch`` at a time."""
        ...

    def advance_sqn(self, imsi: str, expected_current: int, new: int) -> bool:
        """Set SQN to ``new`` only if it is still ``expected_current``; ``False`` otherwise
        (another thread won the race, or the IMSI is unknown)."""
        ...

    def set_sqn(self, imsi: str, sqn: int) -> bool:
        """Overwrite SQN (after resynchronization); ``False`` if the IMSI is unknown."""
        ...

    def close(self) -> None:
        """Release the store's resources; later calls raise ``StoreClosedError``."""
        ...


class MemorySubscriberStore:
    """A ``SubscriberStore`` in a dict, guarded by one lock."""

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self._lock = threading.Lock()
        self._by_imsi: dict[str, Subscriber] = {}
        self._msisdns: set[str] = set()
        self._closed = False
        self.insert_many(subscribers)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("subscriber store is closed")

    def get(self, imsi: str) -> Subscriber | None:
        with self._lock:
            self._check_open()
            return self._by_imsi.get(imsi)

    def count(self) -> int:
        with self._lock:
            self._check_open()
            return len(self._by_imsi)

    def insert_many(self, subscribers: Iterable[Subscriber]) -> int:
        items = list(subscribers)
        with self._lock:
            self._check_open()
            imsis: set[str] = set()
            msisdns: set[str] = set()
            for s in items:
                if s.imsi in self._by_imsi or s.imsi in imsis:
                    raise DuplicateSubscriberError(f"IMSI already stored: {s.imsi}")
                if s.msisdn in self._msisdns or s.msisdn in msisdns:
                    raise DuplicateSubscriberError(f"MSISDN already stored: {s.msisdn}")
                imsis.add(s.imsi)
                msisdns.add(s.msisdn)
            for s in items:
                self._by_imsi[s.imsi] = s
            self._msisdns |= msisdns
        return len(items)

    def iter_all(self, batch: int = 1000) -> Iterator[Subscriber]:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        with self._lock:
            self._check_open()
            keys = sorted(self._by_imsi)
        for start in range(0, len(keys), batch):
            with self._lock:
                self._check_open()
                chunk = [
                    self._by_imsi[k] for k in keys[start : start + batch] if k in self._by_imsi
                ]
            yield from chunk

    def advance_sqn(self, imsi: str, expected_current: int, new: int) -> bool:
        check_sqn(new)
        with self._lock:
            self._check_open()
            current = self._by_imsi.get(imsi)
            if current is None or current.sqn != expected_current:
                return False
            self._by_imsi[imsi] = current.with_sqn(new)
            return True

    def set_sqn(self, imsi: str, sqn: int) -> bool:
        check_sqn(sqn)
        with self._lock:
            self._check_open()
            current = self._by_imsi.get(imsi)
            if current is None:
                return False
            self._by_imsi[imsi] = current.with_sqn(sqn)
            return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
