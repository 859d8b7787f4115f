"""LedgerMirror against the real ledger node: state, resume, crash consistency, source identity,
freshness."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from ias_sdk import (
    LedgerMirror,
    MirrorError,
    MirrorSourceMismatch,
    MirrorStale,
    Reason,
    VerificationError,
    verify,
)
from ledger.backends.base import RegistryEvent
from ledger.backends.embedded import EmbeddedBackend
from tests.ias_sdk.support import CountingSource, FaultySource, World, account
from tests.ledger.node.conftest import RunningServer, node_config, start_server

REPO = Path(__file__).resolve().parents[2]


def dump(path: Path) -> dict[str, Any]:
    """Every row the mirror keeps, for comparing two mirrors."""
    conn = sqlite3.connect(path)
    try:
        out: dict[str, Any] = {}
        for table in ("validators", "trust_anchors", "batches", "statuses"):
            out[table] = sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        out["meta"] = {k: meta.get(k) for k in ("cursor", "checkpoint_tx", "chain_id", "threshold")}
        return out
    finally:
        conn.close()


def anchor_random_batches(world: World, n: int, backend: EmbeddedBackend | None = None) -> None:
    backend = backend or world.ca1.backend
    assert backend is not None
    with ThreadPoolExecutor(16) as pool:
        outs = list(
            pool.map(
                lambda _: backend.transact("anchor_batch", os.urandom(32), 1, world.ca1.cert_hash),
                range(n),
            )
        )
    assert all(o.success for o in outs), [o.revert_reason for o in outs if not o.success]


@pytest.fixture
def second_node(world: World, tmp_path: Path) -> Iterator[RunningServer]:
    """Another ledger node from the *same* genesis file: same chain id and registry address,
    its own history."""
    rs = start_server(node_config(tmp_path / "node2", world.work / "genesis.json", world.pki))
    yield rs
    rs.runner.stop(grace=0.5)


def test_mirror_holds_the_registry_state(world: World, mirror: LedgerMirror) -> None:
    assert mirror.identity == (world.chain_id, world.registry)
    for ca in (world.ca1, world.ca2, world.ca3):
        anchor = mirror.trust_anchor(ca.cert_hash)
        assert anchor is not None and anchor.kind == 1
    op = mirror.live_anchor(world.operator_key_hash, 2)
    assert op is not None
    owner = mirror.validator(op.owner)
    assert owner is not None and owner.label_text == "310-260" and owner.role == 2
    assert mirror.live_anchor(world.operator_key_hash, 1) is None  # kind matters
    assert mirror.live_anchor(world.rogue.cert_hash, 1) is None
    [issued] = world.issue_batch(1)
    mirror.sync()
    b = mirror.batch(issued.inclusion.batch_id)
    on_chain = world.source().client.batch(issued.inclusion.batch_id)
    assert b is not None
    assert (b.root, b.size, b.ca_cert_hash) == (on_chain.root, on_chain.size, on_chain.ca_cert_hash)
    assert b.anchored_at == on_chain.anchored_at.seconds
    assert mirror.batch(10**9) is None and mirror.batch(0) is None
    counts = mirror.counts()
    assert counts["ca_anchors"] >= 2 and counts["operator_anchors"] == 1
    assert counts["validators"] == 3 and counts["batches"] >= 1


def test_restart_resumes_from_its_cursor(world: World, tmp_path: Path) -> None:
    path = tmp_path / "mirror.sqlite"
    first = CountingSource(world.source())
    m = LedgerMirror(path, first)
    m.sync()
    cursor = m.cursor
    assert first.fetched == list(range(1, cursor + 1))  # every event once, in order
    m.close()

    [issued] = world.issue_batch(2)[:1]
    head = world.source().status().event_cursor
    second = CountingSource(world.source())
    m2 = LedgerMirror(path, second)
    assert m2.cursor == cursor
    assert m2.sync() == head - cursor
    # Only the checkpoint event (to check it is the same ledger) and the new ones.
    assert second.fetched == [cursor, *range(cursor + 1, head + 1)]
    assert verify(issued.bundle, mirror=m2).cert_hash == issued.cert_hash
    m2.close()


def test_mirror_refuses_a_ledger_with_another_identity(
    world: World, tmp_path: Path, mirror: LedgerMirror
) -> None:
    doc = json.loads((world.work / "genesis.json").read_text())
    doc["chain_id"] = world.chain_id + 1
    genesis = tmp_path / "other-genesis.json"
    genesis.write_text(json.dumps(doc))
    other = start_server(node_config(tmp_path / "other", genesis, world.pki))
    try:
        src = EmbeddedBackend.connect(other.target, world.tls())
        m = LedgerMirror(mirror.path, src)
        with pytest.raises(MirrorSourceMismatch, match="follows chain"):
            m.sync()
        with pytest.raises(MirrorSourceMismatch):
            m.sync()  # stays refused
        assert m.freshness().stale
        with pytest.raises(MirrorStale):
            m.check_fresh()
        m.close()
        src.close()
    finally:
        other.runner.stop(grace=0.5)


def test_mirror_notices_another_history_behind_the_same_identity(
    world: World, tmp_path: Path, second_node: RunningServer
) -> None:
    path = tmp_path / "mirror.sqlite"
    genesis_events = sum(1 for e in world.source().events_after(0, 100) if e.block_number == 0)
    assert genesis_events > 0
    anchor_random_batches(world, 2)
    m = LedgerMirror(path, CountingSource(world.source(), stop_at=genesis_events + 2))
    m.sync()
    assert m.cursor == genesis_events + 2
    m.close()

    src = EmbeddedBackend.connect(second_node.target, world.tls())
    shorter = LedgerMirror(path, src)
    with pytest.raises(MirrorSourceMismatch, match="another \\(or a reset\\) ledger"):
        shorter.sync()
    shorter.close()

    ca1_there = EmbeddedBackend.connect(
        second_node.target, world.tls("ca-node"), private_key=account("ca1").key
    )
    anchor_random_batches(world, 3, backend=ca1_there)
    different = LedgerMirror(path, src)
    with pytest.raises(MirrorSourceMismatch, match="not the one this mirror applied"):
        different.sync()
    different.close()
    ca1_there.close()
    src.close()


def test_malformed_event_rolls_back_its_whole_page(world: World, tmp_path: Path) -> None:
    anchor_random_batches(world, 3)
    events = world.source().events_after(0, 10_000)
    batch_events = [e.cursor for e in events if e.name == "BatchAnchored"]
    bad = batch_events[2]
    page = 4

    def corrupt(ev: RegistryEvent) -> RegistryEvent:
        return dataclasses.replace(ev, args={**ev.args, "root": b"short"})

    path = tmp_path / "mirror.sqlite"
    m = LedgerMirror(path, FaultySource(world.source(), bad, corrupt), page_size=page)
    with pytest.raises(MirrorError, match=f"event {bad}"):
        m.sync()
    # Everything up to the last full page before the bad event, nothing of the bad page.
    expected_cursor = ((bad - 1) // page) * page
    assert m.cursor == expected_cursor
    assert m.last_error is not None
    m.close()
    reference_path = tmp_path / "reference.sqlite"
    ref = LedgerMirror(reference_path, CountingSource(world.source(), stop_at=expected_cursor))
    ref.sync()
    ref.close()
    assert dump(path) == dump(reference_path)
    # A good source continues from there.
    healed = LedgerMirror(path, world.source())
    healed.sync()
    assert healed.cursor == world.source().status().event_cursor
    healed.close()


def test_out_of_order_events_are_refused(world: World, tmp_path: Path) -> None:
    class Replaying(CountingSource):
        def events_after(self, cursor: int, limit: int = 1000) -> list[RegistryEvent]:
            return self.inner.events_after(max(0, cursor - 1), limit)  # repeats one event

    m = LedgerMirror(tmp_path / "m.sqlite", Replaying(world.source()), page_size=3)
    m.sync(max_pages=1)
    with pytest.raises(MirrorError, match="not after"):
        m.sync()
    assert m.cursor == 3
    m.close()


def _db_cursor(path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def test_killed_mid_stream_leaves_a_consistent_mirror(world: World, tmp_path: Path) -> None:
    anchor_random_batches(world, 120)
    head = world.source().status().event_cursor
    path = tmp_path / "mirror.sqlite"
    pki = world.pki
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mpkix",
            "ias",
            "mirror-sync",
            "--ledger",
            world.target,
            "--tls-ca",
            str(pki / "ca.pem"),
            "--tls-cert",
            str(pki / "ias.pem"),
            "--tls-key",
            str(pki / "ias.key"),
            "--mirror-db",
            str(path),
            "--page-size",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while _db_cursor(path) < 40 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""

    killed = LedgerMirror(path)  # no source: just open what the killed process left
    cursor = killed.cursor
    killed.close()
    assert 40 <= cursor < head, "the process was not killed mid-stream"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    reference = tmp_path / "reference.sqlite"
    ref = LedgerMirror(reference, CountingSource(world.source(), stop_at=cursor))
    ref.sync()
    ref.close()
    assert dump(path) == dump(reference)

    resumed_source = CountingSource(world.source())
    resumed = LedgerMirror(path, resumed_source)
    resumed.sync()
    assert min(resumed_source.fetched) == cursor  # only the checkpoint is fetched again
    assert resumed.cursor >= head
    resumed.close()


def test_follower_thread_applies_new_batches_and_revocations(world: World, tmp_path: Path) -> None:
    m = LedgerMirror(tmp_path / "m.sqlite", world.source(), poll_interval=0.02).start()
    try:
        [issued] = world.issue_batch(1)
        assert m.wait_for_cursor(world.source().status().event_cursor, timeout=10)
        assert verify(issued.bundle, mirror=m).cert_hash == issued.cert_hash
        world.status_change("revoke", issued, 4)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            try:
                verify(issued.bundle, mirror=m)
            except VerificationError as e:
                assert e.reason is Reason.REVOKED
                break
            time.sleep(0.002)
        else:
            pytest.fail("the revocation never reached the mirror")
        assert not m.wait_for_cursor(10**9, timeout=0.05)
    finally:
        m.close()


def test_freshness_bound(world: World, tmp_path: Path) -> None:
    now = [1_000_000.0]
    path = tmp_path / "m.sqlite"
    m = LedgerMirror(path, world.source(), max_staleness=5, clock=lambda: now[0])
    [issued] = world.issue_batch(1)
    with pytest.raises(MirrorStale, match="never"):
        m.check_fresh()
    with pytest.raises(VerificationError) as info:
        verify(issued.bundle, mirror=m)
    assert info.value.reason is Reason.MIRROR_STALE
    m.sync()
    assert verify(issued.bundle, mirror=m).cert_hash == issued.cert_hash
    now[0] += 6
    f = m.freshness()
    assert f.stale and f.age == pytest.approx(6) and f.lag_events == 0
    with pytest.raises(VerificationError) as info:
        verify(issued.bundle, mirror=m)
    assert info.value.reason is Reason.MIRROR_STALE
    m.sync()
    assert not m.freshness().stale
    synced_at = m.last_synced_at
    m.close()
    # A restarted verifier knows when its database was last in sync.
    reopened = LedgerMirror(path, max_staleness=5, clock=lambda: now[0] + 1)
    assert reopened.last_synced_at == synced_at
    reopened.check_fresh()
    now[0] += 10
    with pytest.raises(MirrorStale):
        reopened.check_fresh()
    with pytest.raises(MirrorError, match="no event source"):
        reopened.sync()
    reopened.close()


def test_unreachable_ledger_makes_the_mirror_stale(world: World, mirror: LedgerMirror) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    path = mirror.path
    mirror.close()
    now = [time.time()]
    dead = EmbeddedBackend.connect(f"127.0.0.1:{port}", world.tls(), timeout=1)
    m = LedgerMirror(path, dead, max_staleness=2, poll_interval=0.02, clock=lambda: now[0])
    m.check_fresh()  # synced moments ago by the fixture
    with pytest.raises(grpc.RpcError):
        m.sync()
    assert m.last_error is not None and "UNAVAILABLE" in m.last_error
    m.start()
    time.sleep(0.2)
    m.stop()
    now[0] += 3
    with pytest.raises(MirrorStale, match="last error"):
        m.check_fresh()
    m.close()
    dead.close()


def test_invalid_configuration(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LedgerMirror(tmp_path / "a.sqlite", poll_interval=0)
    with pytest.raises(ValueError):
        LedgerMirror(tmp_path / "b.sqlite", page_size=0)
    with pytest.raises(ValueError):
        LedgerMirror(tmp_path / "c.sqlite", max_staleness=0)
    with pytest.raises(MirrorError, match="no event source"):
        LedgerMirror(tmp_path / "d.sqlite").start()
    bad = tmp_path / "e.sqlite"
    LedgerMirror(bad).close()
    conn = sqlite3.connect(bad)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(MirrorError, match="schema version"):
        LedgerMirror(bad)
    not_sqlite = tmp_path / "f.sqlite"
    not_sqlite.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MirrorError):
        LedgerMirror(not_sqlite)


def test_temporary_mirror_is_removed_on_close(world: World) -> None:
    m = LedgerMirror(None, world.source())
    m.sync()
    assert m.path.exists()
    m.close()
    assert not m.path.parent.exists()
    m.close()  # idempotent
