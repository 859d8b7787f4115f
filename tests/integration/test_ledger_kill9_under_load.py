"""``kill -9`` of the ledger node under issuance load (ARCHITECTURE §2.4; issue #3).

The ledger node runs as its own process (``python -m ledger``); the CA and CMS nodes of a local
cluster point at it. Many enrollments run concurrently through the CMS while the node is killed
with SIGKILL and restarted on the same port and state directory. Afterwards:

* every enrollment the client saw succeed carries an inclusion proof whose batch is on the
  restarted ledger (same root, size and issuer) and verifies, also through the IAS SDK;
* every batch the CA recorded as anchored is on chain exactly once, and the CA re-anchored the
  batches that were cut off by the crash (none is left pending);
* no acknowledged anchor or revocation is lost;
* an IAS mirror that followed the ledger and was itself restarted during the outage resumes
  from its cursor: it fetches every event once, in order, and ends equal to the ledger.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from cma import lifecycle
from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from deploy.local import LocalCluster, OperatorSpec
from ias_sdk import LedgerMirror, Reason, VerificationError, verify
from ledger.backends.base import BackendStatus, RegistryEvent
from ledger.backends.embedded import EmbeddedBackend
from ledger.status import STATE_NAMES, Action, change_status, current_status
from ledger.validator_key import ensure_validator_key
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.merkle import verify_inclusion
from mpkix.rpc.tls import secure_channel
from mpkix.v1 import common_pb2, lifecycle_pb2
from tests.conftest import OPERATOR, subscribers

REPO = Path(__file__).resolve().parents[2]
CLIENTS = 12  # concurrent CMA clients
BEFORE_KILL = 24  # successful enrollments before the kill
AFTER_RESTART = 12  # successful enrollments that start after the restart
PROFILE = "mss:mpkix:authn:loa3:app"


# --- the ledger node process -------------------------------------------------------------------


@dataclass
class LedgerProcess:
    """``python -m ledger`` on 127.0.0.1 with mutual TLS, state under ``state_dir``."""

    state_dir: Path
    genesis: Path
    tls_dir: Path
    node_name: str
    port_file: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int = 0, timeout: float = 60.0) -> int:
        self.port_file.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "ledger",
                    "--state-dir", str(self.state_dir),
                    "--genesis", str(self.genesis),
                    "--listen", f"127.0.0.1:{port}",
                    "--tls-cert", str(self.tls_dir / f"{self.node_name}.pem"),
                    "--tls-key", str(self.tls_dir / f"{self.node_name}.key"),
                    "--tls-ca", str(self.tls_dir / "ca.pem"),
                    "--port-file", str(self.port_file),
                    "--grace", "1",
                    "--log-level", "WARNING",
                ],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"ledger node exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("ledger node did not start")
            time.sleep(0.01)
        return int(self.port_file.read_text())

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# --- clients -----------------------------------------------------------------------------------


@dataclass
class Attempt:
    index: int
    started: float
    ended: float
    flow: EnrollmentFlow
    bundle: common_pb2.CertificateBundle | None  # None: the client saw a failure
    error: str = ""


@dataclass
class Load:
    """Concurrent CMA clients enrolling distinct subscribers until told to stop."""

    cluster: LocalCluster
    first_index: int
    last_index: int
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._next = itertools.count(self.first_index)

    def start(self, clients: int) -> None:
        for i in range(clients):
            t = threading.Thread(target=self._client, name=f"cma-{i}", daemon=True)
            t.start()
            self.threads.append(t)

    def _client(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                index = next(self._next)
            if index > self.last_index:
                return
            flow = make_flow(self.cluster, index)
            started = time.monotonic()
            bundle: common_pb2.CertificateBundle | None = None
            error = ""
            try:
                with cms_channel(self.cluster) as ch:
                    _, resp = enroll(ch, flow, timeout=30)
                bundle = resp.bundle
            except grpc.RpcError as e:
                error = f"{e.code()}: {e.details()}"  # type: ignore[attr-defined]
            except Exception as e:  # e.g. the CMA refused the answer: fails the test below
                error = f"unexpected {e!r}"
            with self.lock:
                self.attempts.append(Attempt(index, started, time.monotonic(), flow, bundle, error))

    def successes(self, started_after: float = 0.0) -> list[Attempt]:
        with self.lock:
            return [a for a in self.attempts if a.bundle is not None and a.started > started_after]

    def wait_for(self, n: int, started_after: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.successes(started_after)) < n:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"only {len(self.successes(started_after))} of {n} enrollments succeeded "
                    f"in {timeout:.0f} s; errors: {[a.error for a in self.attempts][-5:]}"
                )
            time.sleep(0.02)

    def join(self, timeout: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "a client never returned"


def make_flow(cluster: LocalCluster, index: int) -> EnrollmentFlow:
    sub = subscribers(cluster.operators[0].hss_db, 1, offset=index)[0]
    return EnrollmentFlow(
        usim=EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()),
        attributes=canonical_values(sub),
        key=generate_key(),
    )


def cms_channel(cluster: LocalCluster) -> grpc.Channel:
    ch = secure_channel(f"127.0.0.1:{cluster.cms_ports[OPERATOR]}", cluster.client_tls())
    return ch


def enroll_one(
    cluster: LocalCluster, index: int
) -> tuple[EnrollmentFlow, common_pb2.CertificateBundle]:
    flow = make_flow(cluster, index)
    with cms_channel(cluster) as ch:
        _, resp = enroll(ch, flow, timeout=30)
    return flow, resp.bundle


# --- the IAS side ------------------------------------------------------------------------------


class RecordingSource:
    """A real event source that records the cursors it hands to the mirror (a test spy)."""

    def __init__(self, inner: EmbeddedBackend) -> None:
        self.inner = inner
        self.fetched: list[int] = []
        self._lock = threading.Lock()

    def status(self) -> BackendStatus:
        return self.inner.status()

    def events_after(self, cursor: int, limit: int = 1000) -> list[RegistryEvent]:
        events = self.inner.events_after(cursor, limit)
        with self._lock:
            self.fetched.extend(e.cursor for e in events)
        return events

    def close(self) -> None:
        """The wrapped connection is shared; its owner closes it."""


# --- CA state ----------------------------------------------------------------------------------


def ca_batches(cluster: LocalCluster) -> dict[bytes, tuple[str, int | None, bytes]]:
    """root → (state, ledger batch id, anchor tx hash) from the CA's database."""
    conn = sqlite3.connect(f"file:{cluster.workdir / 'ca' / 'issued.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT root, state, ledger_batch, tx_hash FROM batches").fetchall()
    finally:
        conn.close()
    return {
        bytes(r[0]): (str(r[1]), None if r[2] is None else int(r[2]), bytes(r[3] or b""))
        for r in rows
    }


def built_since(cluster: LocalCluster, since: float) -> set[bytes]:
    """Roots of batches the CA persisted after ``since`` (unix time) and has not anchored."""
    conn = sqlite3.connect(f"file:{cluster.workdir / 'ca' / 'issued.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT root FROM batches WHERE state = 'built' AND created_at > ?", (since,)
        ).fetchall()
    finally:
        conn.close()
    return {bytes(r[0]) for r in rows}


def ca_pending(cluster: LocalCluster) -> int:
    return sum(1 for s, _, _ in ca_batches(cluster).values() if s != "anchored")


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- the test ----------------------------------------------------------------------------------


@pytest.fixture
def setup(tmp_path: Path, hss_template: Path) -> Iterator[tuple[LocalCluster, LedgerProcess]]:
    hss = tmp_path / "hss.sqlite"
    hss.write_bytes(hss_template.read_bytes())
    cluster = LocalCluster(
        tmp_path / "cluster", [OperatorSpec(OPERATOR, hss)], with_ledger=True, anchor_window_s=0.05
    )
    cluster.prepare()  # cluster PKI, CA, operator key and the ledger genesis
    node = LedgerProcess(
        state_dir=tmp_path / "ledger-state",
        genesis=cluster.genesis_path,
        tls_dir=cluster.tls_dir,
        node_name=cluster.ledger_node_name,
        port_file=tmp_path / "ledger.port",
        log=tmp_path / "ledger.log",
    )
    port = node.start()
    cluster.external_ledger_target = f"127.0.0.1:{port}"
    try:
        cluster.start()
        try:
            yield cluster, node
        finally:
            cluster.stop()
    finally:
        node.stop()


@pytest.mark.timeout(150)
def test_kill9_of_the_ledger_under_issuance_load(
    setup: tuple[LocalCluster, LedgerProcess], tmp_path: Path
) -> None:
    cluster, node = setup
    assert cluster.ledger is None  # no in-process ledger: the CA and CMS use the process
    port = int(cluster.ledger_target.rsplit(":", 1)[1])
    tls = cluster.tls(cluster.ca_node_name)
    ca_key, _ = ensure_validator_key(cluster.workdir / "ca")

    # Acknowledged status changes before the load: by the CA, and by the user through the CMS.
    _, by_ca = enroll_one(cluster, 0)
    by_user_flow, by_user = enroll_one(cluster, 1)
    suspended_flow, suspended = enroll_one(cluster, 2)
    with EmbeddedBackend.connect(cluster.ledger_target, tls, private_key=ca_key) as ca_backend:
        ca_result = change_status(  # the CA's own authority, with the CA node's validator key
            ca_backend, Action.REVOKE, by_ca.certificate_der, by_ca.inclusion, 4
        )
    assert ca_result.state == "revoked" and ca_result.tx_hash
    with cms_channel(cluster) as ch:
        user_result = lifecycle.change_status(
            ch, by_user_flow.usim, lifecycle_pb2.REVOKE, subject_id=by_user_flow.subject_id,
            reason=1,
        )  # fmt: skip
    [user_cert] = user_result.certificates
    assert (user_cert.state, user_cert.reason) == ("revoked", 1) and user_cert.tx_hash
    expected_status = {
        hashlib.sha256(by_ca.certificate_der).digest(): ("revoked", 4),
        hashlib.sha256(by_user.certificate_der).digest(): ("revoked", 1),
        hashlib.sha256(suspended.certificate_der).digest(): ("suspended", 6),
    }
    acked_txs = [ca_result.tx_hash, bytes(user_cert.tx_hash)]

    # An IAS follows the ledger; it is restarted during the outage.
    mirror_path = tmp_path / "ias-mirror.sqlite"
    ias_backend = EmbeddedBackend.connect(cluster.ledger_target, tls, timeout=10)
    first_source = source = RecordingSource(ias_backend)
    mirror = LedgerMirror(mirror_path, first_source, poll_interval=0.05).start()
    load = Load(cluster, first_index=10, last_index=290)
    late = Load(cluster, first_index=3, last_index=3)  # starts during the outage
    try:
        load.start(CLIENTS)
        try:
            load.wait_for(BEFORE_KILL, 0.0, timeout=60)
            # One more acknowledged status change while the load runs, right before the kill.
            with cms_channel(cluster) as ch:
                susp = lifecycle.change_status(
                    ch, suspended_flow.usim, lifecycle_pb2.SUSPEND,
                    subject_id=suspended_flow.subject_id,
                )  # fmt: skip
            [susp_cert] = susp.certificates
            assert susp_cert.state == "suspended" and susp_cert.tx_hash
            acked_txs.append(bytes(susp_cert.tx_hash))
            anchored_before = {
                root: b
                for root, (state, b, _) in ca_batches(cluster).items()
                if state == "anchored"
            }

            killed_at = time.monotonic()
            node.kill9()
            killed_wall = time.time()  # the node is gone: nothing later can reach it
            mirror.close()
            cursor_at_restart = mirror.cursor
            # The outage: enrollments keep coming (one more client starts now, in case all of
            # the others wait for their batch) and the CA builds batches it cannot anchor. One
            # built after the kill failed its first attempt (nothing listens on the port): only
            # the CA's own retry can anchor it.
            late.start(1)
            wait_until(
                lambda: built_since(cluster, killed_wall), 15, "a batch built during the outage"
            )
            time.sleep(0.3)
            cut_off = built_since(cluster, killed_wall)
            assert node.start(port) == port
            restarted_at = time.monotonic()
            source = RecordingSource(ias_backend)
            mirror = LedgerMirror(mirror_path, source, poll_interval=0.05)
            assert mirror.cursor == cursor_at_restart
            mirror.start()
            load.wait_for(AFTER_RESTART, restarted_at, timeout=60)
        finally:
            load.join(timeout=70)
            late.join(timeout=70)
        # The CA re-anchors every batch the crash cut off: none stays pending.
        wait_until(lambda: ca_pending(cluster) == 0, 40, "the CA to anchor its pending batches")

        unexpected = [a.error for a in load.attempts if a.error.startswith("unexpected")]
        assert not unexpected
        in_flight = [a for a in load.attempts if a.started < killed_at < a.ended]
        assert in_flight, "no enrollment was in flight when the ledger node was killed"
        # Enrollments that waited for their batch during the outage were answered after it.
        assert any(a.bundle is not None and a.ended > restarted_at for a in in_flight)
        [during] = late.attempts
        assert during.bundle is not None and during.ended > restarted_at, during.error
        given = [a.bundle for a in [*load.attempts, during] if a.bundle is not None]

        batches = ca_batches(cluster)
        anchored = {root: b for root, (state, b, _) in batches.items() if state == "anchored"}
        assert len(anchored) == len(batches) and cut_off <= set(anchored)
        # No anchor acknowledged before the kill is lost or renumbered.
        assert {r: anchored[r] for r in anchored_before} == anchored_before

        # A fresh connection to the restarted node (the IAS's one may still be backing off).
        with EmbeddedBackend.connect(cluster.ledger_target, tls, timeout=10) as backend:
            # Every batch the CA believes anchored is on chain exactly once (one CA, one ledger).
            events = [e for e in backend.events_after(0, 100_000) if e.name == "BatchAnchored"]
            roots_on_chain = collections.Counter(bytes(e.args["root"]) for e in events)
            assert max(roots_on_chain.values()) == 1, "a root was anchored twice"
            assert set(roots_on_chain) == set(anchored)
            assert backend.call("batch_count") == len(anchored) == len(events)
            for root, batch_id in anchored.items():
                assert backend.call("batch_of_root", root) == batch_id
            for _, _, tx_hash in batches.values():
                if tx_hash:  # the anchor transactions the CA saw acknowledged are on chain
                    r = backend.client.receipt(tx_hash)
                    assert r is not None and r.success

            # Every enrollment the client saw succeed: its batch is on chain and its proof verifies.
            ca_hash = hashlib.sha256(by_ca.ca_chain_der[0]).digest()
            for bundle in [*given, by_ca, by_user, suspended]:
                inc = bundle.inclusion
                root, size, issuer, _ = backend.call("batch", inc.batch_id)
                assert (bytes(root), int(size), bytes(issuer)) == (inc.root, inc.tree_size, ca_hash)
                entry = hashlib.sha256(bundle.certificate_der).digest() + inc.operator_key_hash
                assert verify_inclusion(
                    entry, inc.leaf_index, inc.tree_size, list(inc.audit_path), bytes(root)
                )
            # No acknowledged revocation or suspension is lost.
            for tx_hash in acked_txs:
                r = backend.client.receipt(tx_hash)
                assert r is not None and r.success
            for cert_hash, (state, reason) in expected_status.items():
                st, rs, _ = current_status(backend, ca_hash, cert_hash)
                assert (STATE_NAMES[st], rs) == (state, reason)

            # The restarted IAS caught up from its cursor without replaying or skipping an event:
            # before the restart events 1..c, after it the checkpoint c (same ledger?) then c+1...
            head = backend.status().event_cursor
            assert mirror.wait_for_cursor(head, timeout=30)
            c = cursor_at_restart
            assert c > 0 and first_source.fetched == list(range(1, c + 1))
            assert source.fetched == [c, *range(c + 1, head + 1)]
            assert mirror.counts()["batches"] == len(anchored)
            # ... and accepts what the clients were given, with the status changes in place.
            for bundle in given:
                verify(bundle, mirror=mirror, required_profile=PROFILE)
            refused = [
                (by_ca, Reason.REVOKED), (by_user, Reason.REVOKED), (suspended, Reason.SUSPENDED)
            ]  # fmt: skip
            for bundle, why in refused:
                with pytest.raises(VerificationError) as info:
                    verify(bundle, mirror=mirror)
                assert info.value.reason is why
    finally:
        mirror.close()
        ias_backend.close()
