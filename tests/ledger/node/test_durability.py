"""Crash safety of a real node process (``python -m ledger``): every acknowledged transaction
survives ``kill -9`` mid-stream, a restart applies nothing twice, and resubmitting every
transaction afterwards is safe (acknowledged ones return their receipt)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from ledger.node.client import LedgerClient
from ledger.node.signer import LocalSigner, SignedTx
from mpkix.rpc.tls import TlsConfig
from mpkix.v1 import ledger_pb2
from tests.ledger.node.conftest import ACTORS, genesis_doc

REPO = Path(__file__).resolve().parents[3]


@dataclass
class NodeProcess:
    state: Path
    genesis: Path
    pki: Path
    port_file: Path
    proc: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0

    def start(self) -> int:
        self.port_file.unlink(missing_ok=True)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger",
                "--state-dir",
                str(self.state),
                "--genesis",
                str(self.genesis),
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                str(self.pki / "ledger.pem"),
                "--tls-key",
                str(self.pki / "ledger.key"),
                "--tls-ca",
                str(self.pki / "ca.pem"),
                "--port-file",
                str(self.port_file),
                "--log-level",
                "WARNING",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not self.port_file.exists():
            if self.proc.poll() is not None:
                raise AssertionError(self.proc.stderr.read().decode())  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError("ledger node did not start")
            time.sleep(0.01)
        self.started_in = time.monotonic() - t0
        return int(self.port_file.read_text())

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@dataclass
class Ledgerbook:
    """What the submitters sent and what the node acknowledged."""

    sent: dict[bytes, SignedTx] = field(default_factory=dict)
    acked: dict[bytes, ledger_pb2.LedgerReceipt] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def submitter(
    client: LedgerClient, signer: LocalSigner, ca: bytes, book: Ledgerbook, stop: threading.Event
) -> None:
    i = 0
    while not stop.is_set():
        root = hashlib.sha256(signer.address + b"%d-%d" % (threading.get_ident(), i)).digest()
        i += 1
        tx = signer.build("anchor_batch", root, 1, ca)
        with book.lock:
            book.sent[tx.tx_hash] = tx
        try:
            r = client.submit(tx, retries=0)
        except grpc.RpcError:
            return  # the node died under us
        assert r.success
        with book.lock:
            book.acked[tx.tx_hash] = r


@pytest.mark.timeout(180)
def test_kill9_mid_stream_then_restart(tmp_path: Path, pki: Path) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps(genesis_doc()))
    node = NodeProcess(tmp_path / "state", genesis, pki, tmp_path / "port")
    tls = TlsConfig.from_dir(pki, "ca-node")
    port = node.start()
    client = LedgerClient.connect(f"127.0.0.1:{port}", tls, timeout=10)
    signers = [
        (client.signer(ACTORS.ca1.key, gas=300_000), ACTORS.ca1_cert_hash),
        (client.signer(ACTORS.ca2.key, gas=300_000), ACTORS.ca2_cert_hash),
    ]
    book = Ledgerbook()
    stop = threading.Event()
    threads = [
        threading.Thread(target=submitter, args=(client, s, ca, book, stop), daemon=True)
        for s, ca in signers
        for _ in range(3)  # several transactions of each account in flight
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(book.acked) < 60 and time.monotonic() < deadline:
        time.sleep(0.005)
    node.kill9()  # mid-stream: submissions are in flight
    stop.set()
    for t in threads:
        t.join(15)
    client.close()
    acked = dict(book.acked)
    assert len(acked) >= 60
    assert len(book.sent) > len(acked)  # some were in flight when the node died

    port = node.start()
    client = LedgerClient.connect(f"127.0.0.1:{port}", tls, timeout=10)
    # every acknowledged transaction is there, exactly as acknowledged
    for h, r in acked.items():
        assert client.receipt(h) == r
    found = {h: client.receipt(h) for h in book.sent}
    on_chain = {h: r for h, r in found.items() if r is not None}
    # nothing twice: per sender, the nonces on chain are 0..n-1, each once
    for s, _ in signers:
        nonces = sorted(r.nonce for r in on_chain.values() if r.sender == s.address)
        assert nonces == list(range(len(nonces)))
        assert client.nonce(s.address)[0] == len(nonces)
    events = list(client.events(0))
    assert [e.cursor for e in events] == list(range(1, len(events) + 1))
    assert client.view("batch_count") == (len(on_chain),)
    assert client.status().head_block == max(r.block_number for r in on_chain.values())

    # resubmit everything in nonce order: acknowledged ones answer with their receipt,
    # the ones lost in flight are applied now, and each lands exactly once
    for tx in sorted(book.sent.values(), key=lambda t: (t.sender, t.nonce)):
        r = client.submit(tx)
        assert r.success
        if tx.tx_hash in on_chain:
            assert r == on_chain[tx.tx_hash]
    assert client.view("batch_count") == (len(book.sent),)
    events = list(client.events(0, names=["BatchAnchored"]))
    assert sorted(json.loads(e.args_json)["batch_id"] for e in events) == list(
        range(1, len(book.sent) + 1)
    )
    client.close()
    assert node.terminate() == 0  # graceful stop on SIGTERM


@pytest.mark.timeout(120)
def test_restart_is_fast_and_refuses_a_second_process(tmp_path: Path, pki: Path) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps(genesis_doc()))
    node = NodeProcess(tmp_path / "state", genesis, pki, tmp_path / "port")
    port = node.start()
    tls = TlsConfig.from_dir(pki, "ca-node")
    with LedgerClient.connect(f"127.0.0.1:{port}", tls) as c:
        s = c.signer(ACTORS.ca1.key)
        for i in range(20):
            c.send(s, "anchor_batch", hashlib.sha256(b"%d" % i).digest(), 1, ACTORS.ca1_cert_hash)
    # a second process on the same state directory is refused, the first keeps serving
    second = subprocess.run(
        [sys.executable, "-m", "ledger", "--state-dir", str(node.state), "--genesis", str(genesis)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2 and "in use by another ledger node" in second.stdout
    node.kill9()
    port = node.start()
    with LedgerClient.connect(f"127.0.0.1:{port}", tls) as c:
        assert c.status().head_block == 20
        assert c.view("batch_count") == (20,)
    assert node.terminate() == 0
    # restart cost does not grow with the chain: no replay, just open the database
    assert node.started_in < 30
