"""The follower's in-memory statuses (decision 0811) never answer differently from the SQLite
table: after revocations, suspensions and resumptions, after a rolled-back page, after a restart,
and for a certificate the verifier had already cached as valid."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

import pytest

from ias_sdk import LedgerMirror, MirrorError, Reason, VerificationError, Verifier
from ias_sdk.mirror import CertificateStatus
from ledger.backends.base import RegistryEvent
from tests.ias_sdk.support import FaultySource, Issued, World


def table(path: Path) -> dict[tuple[bytes, bytes], CertificateStatus]:
    """The statuses rows, read independently of the mirror."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT ca_cert_hash, cert_hash, state, reason, updated_at, batch_id, changed_by, "
            "cursor FROM statuses"
        ).fetchall()
    finally:
        conn.close()
    return {
        (bytes(r[0]), bytes(r[1])): CertificateStatus(
            bytes(r[0]), bytes(r[1]), r[2], r[3], float(r[4]), r[5], bytes(r[6]), r[7]
        )
        for r in rows
    }


def assert_consistent(m: LedgerMirror, path: Path, probes: list[Issued], ca: bytes) -> None:
    rows = table(path)
    assert m._statuses == rows  # the whole table, nothing more
    for issued in probes:
        assert m.status(ca, issued.cert_hash) == rows.get((ca, issued.cert_hash))


def reason(v: Verifier, issued: Issued) -> Reason | None:
    try:
        v.verify(issued.bundle.SerializeToString())
    except VerificationError as e:
        return e.reason
    return None


def test_memory_follows_every_status_change(world: World, tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    a, b, c = world.issue_batch(3)
    m = LedgerMirror(path, world.source())
    m.sync()
    v = Verifier(m)
    assert [reason(v, x) for x in (a, b, c)] == [None, None, None]  # all cached as valid
    ca = world.ca1.cert_hash
    world.status_change("revoke", a, 1)
    world.status_change("suspend", b, by=world.op_backend)
    m.sync()
    assert_consistent(m, path, [a, b, c], ca)
    assert [reason(v, x) for x in (a, b, c)] == [Reason.REVOKED, Reason.SUSPENDED, None]
    world.status_change("resume", b)
    m.sync()
    assert_consistent(m, path, [a, b, c], ca)
    status = m.status(ca, b.cert_hash)
    assert status is not None and (status.state, status.reason) == (0, 8)
    assert [reason(v, x) for x in (a, b, c)] == [Reason.REVOKED, None, None]
    m.close()


def test_rolled_back_page_changes_no_status(world: World, tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    first, second = world.issue_batch(2)
    m = LedgerMirror(path, world.source())
    m.sync()
    v = Verifier(m)
    assert reason(v, first) is None and reason(v, second) is None
    ca = world.ca1.cert_hash
    world.status_change("revoke", first, 1)  # applied, then rolled back with its page
    world.status_change("revoke", second, 1)  # the corrupted event of that page
    bad = world.source().status().event_cursor

    def corrupt(ev: RegistryEvent) -> RegistryEvent:
        return dataclasses.replace(ev, args={**ev.args, "cert_hash": b"short"})

    m.source = FaultySource(world.source(), bad, corrupt)
    before = m.cursor
    with pytest.raises(MirrorError, match=f"event {bad}"):
        m.sync()
    assert m.cursor == before
    assert (ca, first.cert_hash) not in table(path)
    assert_consistent(m, path, [first, second], ca)
    assert m.status(ca, first.cert_hash) is None
    assert reason(v, first) is None and reason(v, second) is None
    m.source = world.source()  # the healthy ledger: both revocations apply
    m.sync()
    assert_consistent(m, path, [first, second], ca)
    assert reason(v, first) is Reason.REVOKED and reason(v, second) is Reason.REVOKED
    m.close()


def test_restart_and_readers_without_a_source(world: World, tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    [issued, other] = world.issue_batch(2)
    ca = world.ca1.cert_hash
    m = LedgerMirror(path, world.source())
    m.sync()
    reader = LedgerMirror(path)  # no source: another process's view, reads SQLite each time
    rv = Verifier(reader)
    assert reason(rv, issued) is None  # cached as valid in this verifier
    world.status_change("suspend", issued, by=world.op_backend)
    m.sync()
    assert reader._statuses is None
    assert reason(rv, issued) is Reason.SUSPENDED  # the follower's commit, seen at once
    m.close()
    reader.close()
    # Restarted follower: statuses loaded from the database before any sync.
    restarted = LedgerMirror(path, world.source())
    assert_consistent(restarted, path, [issued, other], ca)
    v = Verifier(restarted)
    assert reason(v, issued) is Reason.SUSPENDED and reason(v, other) is None
    restarted.close()


def test_a_database_edited_behind_a_closed_follower_is_reread(world: World, tmp_path: Path) -> None:
    """What the table says when the follower opens is what it answers (no stale memory)."""
    path = tmp_path / "m.sqlite"
    [issued] = world.issue_batch(1)
    ca = world.ca1.cert_hash
    m = LedgerMirror(path, world.source())
    m.sync()
    m.close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO statuses VALUES (?, ?, 2, 1, 1.0, 1, ?, 1)",
        (ca, issued.cert_hash, os.urandom(20)),
    )
    conn.commit()
    conn.close()
    reopened = LedgerMirror(path, world.source())
    assert_consistent(reopened, path, [issued], ca)
    assert reason(Verifier(reopened), issued) is Reason.REVOKED
    reopened.close()
