"""A local mirror of the ``CertificateRegistry`` for verifiers (ARCHITECTURE §2.4 "Verifiers never
ask the ledger per verification", §2.5; decision records 0800–0803).

:class:`LedgerMirror` follows the registry's events through any
:class:`ledger.backends.base.EventSource` from its checkpoint and keeps, in SQLite, what
verification reads: trust anchors, validators (operator labels), batches and per-(issuing CA,
certificate) status. Each page of events is applied together with the new cursor in one
transaction, so a process killed at any moment leaves a mirror that is exactly the state after
some event, and a restart resumes from there without fetching old events again.

The mirror is bound to one source (chain id + registry address, set on the first sync) and
refuses another. After reopening, its newest event is fetched once and compared (transaction
hash, block, name) so a different ledger that happens to reuse the chain id and address (e.g.
a node re-created from the same genesis) is noticed instead of silently mixed.

Statuses (decision 0811): a mirror with a source is the database's one follower, so it also
keeps every row of ``statuses`` in memory: loaded when it opens, and after each committed page
re-read from the database for the certificates that page changed (a rolled-back page changes
nothing). A mirror without a source (another process keeps the file current) reads SQLite on
every :meth:`status` call.

Freshness: ``last_synced_at`` is the wall-clock time at which the mirror last *knew* it held
every event the source had (taken before asking). With ``max_staleness`` set, lookups through
:meth:`check_fresh` raise :class:`MirrorStale` once that time is older than the bound, e.g. when
the ledger is unreachable.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ias_sdk._internal import store
from ledger.backends.base import EventSource, RegistryEvent

__all__ = [
    "BatchRecord",
    "CertificateStatus",
    "Freshness",
    "LedgerMirror",
    "MirrorError",
    "MirrorSourceMismatch",
    "MirrorStale",
    "TrustAnchorRecord",
    "ValidatorRecord",
]

log = logging.getLogger("mpkix.ias.mirror")

DEFAULT_POLL_INTERVAL: Final = 0.1
DEFAULT_PAGE_SIZE: Final = 1000
#: How often an idle mirror persists its ``last_synced_at`` (a restarted verifier reads it).
SYNCED_AT_PERSIST_INTERVAL: Final = 1.0
_BATCH_CACHE_MAX: Final = 100_000
#: Longest pause between follower rounds while the source keeps failing.
MAX_RETRY_DELAY: Final = 2.0

ROLE_CA: Final = 1
ROLE_OPERATOR: Final = 2


class MirrorError(Exception):
    """The mirror cannot follow its source (bad event, unusable database)."""


class MirrorSourceMismatch(MirrorError):
    """The event source is another ledger than the one this mirror was built from."""


class MirrorStale(MirrorError):
    """The mirror has not confirmed it is up to date within ``max_staleness`` seconds."""

    def __init__(self, message: str, age: float | None) -> None:
        super().__init__(message)
        self.age = age


@dataclass(frozen=True, slots=True)
class TrustAnchorRecord:
    anchor_hash: bytes
    kind: int  # 1 CA certificate hash, 2 operator endorsement key hash
    owner: bytes  # validator address (20 bytes)
    active: bool
    added_at: float
    removed_at: float | None


@dataclass(frozen=True, slots=True)
class ValidatorRecord:
    address: bytes
    role: int
    label: bytes  # bytes32 as on chain
    active: bool

    @property
    def label_text(self) -> str:
        """The label as text (trailing NUL padding removed; non-UTF-8 bytes replaced)."""
        return self.label.rstrip(b"\x00").decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch_id: int
    root: bytes
    size: int
    ca_cert_hash: bytes
    anchored_at: float


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    ca_cert_hash: bytes
    cert_hash: bytes
    state: int  # 0 good (resumed), 1 suspended, 2 revoked
    reason: int  # RFC 5280 CRLReason (6 certificateHold, 8 removeFromCRL)
    updated_at: float
    batch_id: int
    changed_by: bytes
    cursor: int


@dataclass(frozen=True, slots=True)
class Freshness:
    """How current the mirror is (``mpkix ias mirror-status`` prints this)."""

    chain_id: int | None
    registry_address: bytes | None
    cursor: int
    source_cursor: int | None  # newest event cursor the source reported, when known
    last_synced_at: float | None
    age: float | None  # seconds since last_synced_at
    max_staleness: float | None
    stale: bool
    last_error: str | None

    @property
    def lag_events(self) -> int | None:
        if self.source_cursor is None:
            return None
        return max(0, self.source_cursor - self.cursor)


class LedgerMirror:
    """Follows the registry through ``source`` into the SQLite database at ``path``.

    ``path`` ``None`` (or ``":memory:"``) keeps the database in a temporary directory removed on
    :meth:`close`. ``source`` may be ``None`` for a read-only mirror (e.g. offline checks against
    a database another process keeps current). Thread-safe: one follower writes, any number of
    threads read (one SQLite connection per reading thread, WAL mode).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        source: EventSource | None = None,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_staleness: float | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if max_staleness is not None and max_staleness <= 0:
            raise ValueError("max_staleness must be positive (or None for no bound)")
        self._tmpdir: str | None = None
        if path is None or str(path) == ":memory:":
            self._tmpdir = tempfile.mkdtemp(prefix="mpkix-mirror-")
            path = Path(self._tmpdir) / "mirror.sqlite"
        self.path = Path(path)
        self.source = source
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        self.page_size = page_size
        self._clock = clock

        try:
            self._writer = self._connect()
        except sqlite3.Error as e:
            raise MirrorError(f"cannot open mirror database {self.path}: {e}") from None
        try:
            store.create(self._writer)
            meta = store.read_meta(self._writer)
        except sqlite3.Error as e:
            self._writer.close()
            raise MirrorError(f"cannot use mirror database {self.path}: {e}") from None
        self._cursor = int(meta.get("cursor", "0"))
        self._chain_id: int | None = int(meta["chain_id"]) if "chain_id" in meta else None
        self._registry: bytes | None = (
            bytes.fromhex(meta["registry_address"]) if "registry_address" in meta else None
        )
        synced = meta.get("synced_at")
        self._synced_at: float | None = float(synced) if synced else None
        self._synced_at_persisted = self._synced_at
        self._checkpoint: store.Checkpoint | None = None
        if self._cursor > 0:
            self._checkpoint = store.Checkpoint(
                self._cursor,
                bytes.fromhex(meta.get("checkpoint_tx", "")),
                int(meta.get("checkpoint_block", "0")),
                meta.get("checkpoint_name", ""),
            )
        self._checkpoint_verified = self._cursor == 0
        self._source_cursor: int | None = None
        self._last_error: str | None = None
        self._fatal: MirrorError | None = None

        self._sync_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._cursor_changed = threading.Condition(self._state_lock)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._anchors: dict[bytes, TrustAnchorRecord] = {}
        self._validators: dict[bytes, ValidatorRecord] = {}
        self._batches: dict[int, BatchRecord] = {}
        # Every statuses row, when this object is the follower (None: read SQLite each time).
        self._statuses: dict[tuple[bytes, bytes], CertificateStatus] | None = None
        self._load_governance()
        if source is not None:
            self._statuses = self._read_statuses()

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.events_applied = 0  # in this process, for metrics and tests
        self.events_fetched = 0

    # -- database ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a killed process loses nothing committed; a power cut may lose
            # the newest pages, never consistency (cursor and rows commit together).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise MirrorError("the mirror is closed")
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _load_governance(self) -> None:
        anchors = {
            bytes(r[0]): TrustAnchorRecord(
                bytes(r[0]), int(r[1]), bytes(r[2]), bool(r[3]), float(r[4]), r[5]
            )
            for r in self._writer.execute(
                "SELECT anchor_hash, kind, owner, active, added_at, removed_at FROM trust_anchors"
            )
        }
        validators = {
            bytes(r[0]): ValidatorRecord(bytes(r[0]), int(r[1]), bytes(r[2]), bool(r[3]))
            for r in self._writer.execute("SELECT address, role, label, active FROM validators")
        }
        with self._state_lock:
            self._anchors = anchors
            self._validators = validators

    def _read_statuses(
        self, keys: set[tuple[bytes, bytes]] | None = None
    ) -> dict[tuple[bytes, bytes], CertificateStatus]:
        """Committed ``statuses`` rows (all, or those of ``keys``) from the writer connection."""
        sql = (
            "SELECT ca_cert_hash, cert_hash, state, reason, updated_at, batch_id, changed_by, "
            "cursor FROM statuses"
        )
        if keys is None:
            rows = list(self._writer.execute(sql))
        else:
            rows = []
            for key in keys:
                rows.extend(
                    self._writer.execute(sql + " WHERE ca_cert_hash = ? AND cert_hash = ?", key)
                )
        return {(bytes(r[0]), bytes(r[1])): _status_of(r) for r in rows}

    # -- identity and cursor -------------------------------------------------------------

    @property
    def cursor(self) -> int:
        """Cursor of the newest applied event (0: none yet)."""
        return self._cursor

    @property
    def identity(self) -> tuple[int, bytes] | None:
        """``(chain id, registry address)`` of the source, once known."""
        if self._chain_id is None or self._registry is None:
            return None
        return self._chain_id, self._registry

    @property
    def last_synced_at(self) -> float | None:
        return self._synced_at

    @property
    def last_error(self) -> str | None:
        return self._last_error

    # -- syncing -------------------------------------------------------------------------

    def sync(self, *, max_pages: int | None = None) -> int:
        """Fetch and apply everything the source has after the cursor (one follower round).

        Returns the number of events applied. Raises :class:`MirrorSourceMismatch` when the
        source is another ledger, :class:`MirrorError` for an event that cannot be applied (the
        page is rolled back, the cursor stays), and the source's own errors (e.g.
        ``grpc.RpcError``) when it is unreachable.
        """
        if self.source is None:
            raise MirrorError("this mirror has no event source")
        if self._fatal is not None:
            raise self._fatal
        with self._sync_lock:
            try:
                applied = self._sync_round(self.source, max_pages)
            except MirrorSourceMismatch as e:
                self._fatal = e
                self._last_error = str(e)
                raise
            except Exception as e:
                self._last_error = f"{type(e).__name__}: {e}"
                raise
            self._last_error = None
            return applied

    def _sync_round(self, source: EventSource, max_pages: int | None) -> int:
        started = self._clock()
        status = source.status()
        self._check_identity(status.chain_id, status.registry_address)
        if status.event_cursor < self._cursor:
            raise MirrorSourceMismatch(
                f"the source's newest event is {status.event_cursor} but this mirror already "
                f"holds events up to {self._cursor}: it is another (or a reset) ledger"
            )
        self._source_cursor = status.event_cursor
        if not self._checkpoint_verified:
            self._verify_checkpoint(source)
        applied = 0
        pages = 0
        caught_up = status.event_cursor == self._cursor
        while not caught_up:
            if max_pages is not None and pages >= max_pages:
                break
            asked_at = self._clock()
            events = source.events_after(self._cursor, self.page_size)
            self.events_fetched += len(events)
            pages += 1
            if events:
                applied += self._apply_page(events)
            if len(events) < self.page_size:
                caught_up = True
                started = asked_at
        if caught_up:
            self._mark_synced(started, wrote=applied > 0)
        return applied

    def _check_identity(self, chain_id: int, registry: bytes) -> None:
        if self._chain_id is None:
            with self._transaction() as conn:
                store.write_meta(
                    conn, {"chain_id": str(chain_id), "registry_address": registry.hex()}
                )
            self._chain_id, self._registry = chain_id, bytes(registry)
            log.info(
                "mirror %s follows chain %d, registry 0x%s", self.path, chain_id, registry.hex()
            )
            return
        if chain_id != self._chain_id or bytes(registry) != self._registry:
            assert self._registry is not None
            raise MirrorSourceMismatch(
                f"this mirror follows chain {self._chain_id} registry 0x{self._registry.hex()}, "
                f"the source is chain {chain_id} registry 0x{bytes(registry).hex()}"
            )

    def _verify_checkpoint(self, source: EventSource) -> None:
        cp = self._checkpoint
        assert cp is not None
        events = source.events_after(cp.cursor - 1, 1)
        self.events_fetched += len(events)
        found = events[0] if events else None
        if (
            found is None
            or found.cursor != cp.cursor
            or found.tx_hash != cp.tx_hash
            or found.block_number != cp.block_number
            or found.name != cp.name
        ):
            raise MirrorSourceMismatch(
                f"the source's event {cp.cursor} is not the one this mirror applied "
                f"({cp.name} in block {cp.block_number}): it is another ledger"
            )
        self._checkpoint_verified = True

    def _apply_page(self, events: list[RegistryEvent]) -> int:
        governance = False
        try:
            with self._transaction() as conn:
                cursor = store.apply_events(conn, events, self._cursor)
        except store.EventFormatError as e:
            raise MirrorError(f"cannot apply the ledger's events: {e}") from None
        # Committed: refresh the in-memory statuses of what this page touched, from the database.
        if self._statuses is not None:
            touched = store.status_keys(events)
            if touched:
                self._statuses.update(self._read_statuses(touched))
        for ev in events:
            if ev.name in store.GOVERNANCE_EVENTS:
                governance = True
                break
        if governance:
            self._load_governance()
        last = events[-1]
        with self._cursor_changed:
            self._cursor = cursor
            self._checkpoint = store.Checkpoint(
                last.cursor, last.tx_hash, last.block_number, last.name
            )
            self._cursor_changed.notify_all()
        self.events_applied += len(events)
        return len(events)

    def _mark_synced(self, at: float, *, wrote: bool) -> None:
        self._synced_at = at
        persisted = self._synced_at_persisted
        if wrote or persisted is None or at - persisted >= SYNCED_AT_PERSIST_INTERVAL:
            with self._transaction() as conn:
                store.write_meta(conn, {"synced_at": repr(at)})
            self._synced_at_persisted = at

    # -- background follower -------------------------------------------------------------

    def start(self) -> LedgerMirror:
        """Start the follower thread (a :meth:`sync` round every ``poll_interval`` seconds)."""
        if self.source is None:
            raise MirrorError("this mirror has no event source")
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, name="ias-mirror", daemon=True)
            self._thread.start()
        return self

    def _follow(self) -> None:
        delay = self.poll_interval
        while not self._stop.is_set():
            try:
                self.sync()
                delay = self.poll_interval
            except MirrorSourceMismatch as e:
                log.error("mirror stopped following: %s", e)
                return
            except Exception:
                delay = min(delay * 2, MAX_RETRY_DELAY)
                log.warning("mirror sync failed (%s); retrying in %.2fs", self._last_error, delay)
            self._stop.wait(delay)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the follower thread (the database stays open)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_for_cursor(self, cursor: int, timeout: float) -> bool:
        """Block until the mirror has applied the event at ``cursor`` (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cursor_changed:
            while self._cursor < cursor:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cursor_changed.wait(left)
        return True

    def close(self) -> None:
        """Stop following and close the database (a temporary one is deleted)."""
        if self._closed:
            return
        self.stop()
        with self._sync_lock:
            self._closed = True
            with self._readers_lock:
                for conn in self._readers:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                self._readers.clear()
            self._writer.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> LedgerMirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- freshness -----------------------------------------------------------------------

    def freshness(self) -> Freshness:
        synced = self._synced_at
        age = None if synced is None else max(0.0, self._clock() - synced)
        bound = self.max_staleness
        stale = self._fatal is not None or (bound is not None and (age is None or age > bound))
        return Freshness(
            chain_id=self._chain_id,
            registry_address=self._registry,
            cursor=self._cursor,
            source_cursor=self._source_cursor,
            last_synced_at=synced,
            age=age,
            max_staleness=bound,
            stale=stale,
            last_error=self._last_error,
        )

    def check_fresh(self) -> None:
        """Raise :class:`MirrorStale` unless the mirror was in sync within ``max_staleness``."""
        if self._fatal is not None:
            raise MirrorStale(f"the mirror stopped following its source: {self._fatal}", None)
        bound = self.max_staleness
        if bound is None:
            return
        synced = self._synced_at
        if synced is None:
            raise MirrorStale("the mirror has never been in sync with the ledger", None)
        age = self._clock() - synced
        if age > bound:
            detail = f"; last error: {self._last_error}" if self._last_error else ""
            raise MirrorStale(
                f"the mirror was last in sync {age:.1f}s ago (bound {bound:g}s){detail}", age
            )

    # -- lookups (local only, never the ledger) ------------------------------------------

    def trust_anchor(self, anchor_hash: bytes) -> TrustAnchorRecord | None:
        """The trust anchor record (live or removed), if the registry ever had it."""
        return self._anchors.get(anchor_hash)

    def live_anchor(self, anchor_hash: bytes, kind: int) -> TrustAnchorRecord | None:
        """The anchor if it is currently a trust anchor of ``kind`` (1 CA, 2 operator)."""
        a = self._anchors.get(anchor_hash)
        if a is None or not a.active or a.kind != kind:
            return None
        return a

    def trust_anchors(self, *, live_only: bool = True) -> list[TrustAnchorRecord]:
        return [a for a in self._anchors.values() if a.active or not live_only]

    def validator(self, address: bytes) -> ValidatorRecord | None:
        return self._validators.get(address)

    def validators(self, *, active_only: bool = True) -> list[ValidatorRecord]:
        return [v for v in self._validators.values() if v.active or not active_only]

    def batch(self, batch_id: int) -> BatchRecord | None:
        """The anchored batch (batches never change once anchored, so they are cached)."""
        b = self._batches.get(batch_id)
        if b is not None:
            return b
        if not 0 < batch_id < 2**63:
            return None
        row = (
            self._reader()
            .execute(
                "SELECT root, size, ca_cert_hash, anchored_at FROM batches WHERE batch_id = ?",
                (batch_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        b = BatchRecord(batch_id, bytes(row[0]), int(row[1]), bytes(row[2]), float(row[3]))
        if len(self._batches) >= _BATCH_CACHE_MAX:
            self._batches.clear()
        self._batches[batch_id] = b
        return b

    def status(self, ca_cert_hash: bytes, cert_hash: bytes) -> CertificateStatus | None:
        """The recorded status of ``cert_hash`` under issuing CA ``ca_cert_hash`` (0402)."""
        statuses = self._statuses
        if statuses is not None:
            return statuses.get((ca_cert_hash, cert_hash))
        row = (
            self._reader()
            .execute(
                "SELECT state, reason, updated_at, batch_id, changed_by, cursor FROM statuses "
                "WHERE ca_cert_hash = ? AND cert_hash = ?",
                (ca_cert_hash, cert_hash),
            )
            .fetchone()
        )
        if row is None:
            return None
        return _status_of((ca_cert_hash, cert_hash, *row))

    def counts(self) -> dict[str, int]:
        """Row counts (for status output)."""
        conn = self._reader()
        out = {"batches": int(conn.execute("SELECT COUNT(*) FROM batches").fetchone()[0])}
        for name, state in (("suspended", store.STATE_SUSPENDED), ("revoked", store.STATE_REVOKED)):
            row = conn.execute("SELECT COUNT(*) FROM statuses WHERE state = ?", (state,)).fetchone()
            out[name] = int(row[0])
        out["ca_anchors"] = sum(1 for a in self._anchors.values() if a.active and a.kind == 1)
        out["operator_anchors"] = sum(1 for a in self._anchors.values() if a.active and a.kind == 2)
        out["validators"] = sum(1 for v in self._validators.values() if v.active)
        return out


def _status_of(row: Sequence[Any]) -> CertificateStatus:
    """A ``statuses`` row (all eight columns, in table order) as a record."""
    return CertificateStatus(
        bytes(row[0]),
        bytes(row[1]),
        int(row[2]),
        int(row[3]),
        float(row[4]),
        int(row[5]),
        bytes(row[6]),
        int(row[7]),
    )
