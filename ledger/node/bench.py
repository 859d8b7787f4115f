"""Measure a real ledger node process: submission throughput (sequential and concurrent),
view-call latency, event streaming rate and restart time (ARCHITECTURE §2.4 numbers to beat).

    python -m ledger.node.bench [--sequential 200] [--clients 4] [--depth 8] [--per-client 300]
                                [--out results.json]

The node runs as ``python -m ledger`` with mutual TLS on 127.0.0.1; clients are separate
processes (one validator key each) that pipeline ``depth`` submissions over one channel.
Every transaction anchors one batch root (``anchor_batch``), the registry's main write.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from deploy.pki import init_cluster_pki
from ledger.node.client import LedgerClient
from mpkix.rpc.tls import TlsConfig
from mpkix.v1 import ledger_pb2

CHAIN_ID = 7_777


def _key(i: int) -> bytes:
    return hashlib.sha256(b"mpkix-ledger-bench:%d" % i).digest()


def _ca_hash(i: int) -> bytes:
    return hashlib.sha256(b"bench CA certificate %d" % i).digest()


def _genesis(n: int) -> dict[str, Any]:
    addrs = [Account.from_key(_key(i)).address for i in range(n)]
    return {
        "chain_id": CHAIN_ID,
        "validators": [
            {"address": a, "role": "ca", "label": f"ca-{i}"} for i, a in enumerate(addrs)
        ],
        "trust_anchors": [
            {"hash": "0x" + _ca_hash(i).hex(), "owner": a} for i, a in enumerate(addrs)
        ],
    }


class _Node:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> tuple[int, float]:
        port_file = self.work / "port"
        port_file.unlink(missing_ok=True)
        pki = self.work / "pki"
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger",
                "--state-dir",
                str(self.work / "state"),
                "--genesis",
                str(self.work / "genesis.json"),
                "--tls-cert",
                str(pki / "ledger.pem"),
                "--tls-key",
                str(pki / "ledger.key"),
                "--tls-ca",
                str(pki / "ca.pem"),
                "--port-file",
                str(port_file),
                "--max-block-txs",
                "1000",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
        )
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError("ledger node exited")
            time.sleep(0.005)
        port = int(port_file.read_text())
        with LedgerClient.connect(f"127.0.0.1:{port}", self.tls()) as c:
            c.status()
        return port, time.perf_counter() - t0

    def tls(self) -> TlsConfig:
        return TlsConfig.from_dir(self.work / "pki", "bench-client")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _client_proc(work: str, port: int, index: int, count: int, depth: int, q: Any) -> None:
    """One validator: pipeline ``count`` anchor transactions, ``depth`` in flight."""
    tls = TlsConfig.from_dir(Path(work) / "pki", "bench-client")
    client = LedgerClient.connect(f"127.0.0.1:{port}", tls, timeout=120)
    signer = client.signer(_key(index), gas=300_000)
    txs = [
        signer.build(
            "anchor_batch", hashlib.sha256(b"%d-%d-%f" % (index, i, time.time())).digest(), 1,
            _ca_hash(index),
        )
        for i in range(count)
    ]  # fmt: skip
    t0 = time.perf_counter()
    inflight: list[Any] = []
    ok = 0
    for tx in txs:
        inflight.append(
            client.stub.SubmitTransaction.future(
                ledger_pb2.SubmitTransactionRequest(raw_transaction=tx.raw), timeout=120
            )
        )
        if len(inflight) >= depth:
            ok += inflight.pop(0).result().success
    for f in inflight:
        ok += f.result().success
    q.put(("done", index, ok, t0, time.perf_counter()))
    client.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine_cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        work = Path(tmp)
        init_cluster_pki(work / "pki", ["ledger", "bench-client"])
        (work / "genesis.json").write_text(json.dumps(_genesis(max(1, args.clients))))
        node = _Node(work)
        port, first_start = node.start()
        results["first_start_s"] = round(first_start, 3)
        try:
            client = LedgerClient.connect(f"127.0.0.1:{port}", node.tls(), timeout=60)
            signer = client.signer(_key(0), gas=300_000)
            # sequential: one submitter that waits for each receipt
            lat = []
            t0 = time.perf_counter()
            for i in range(args.sequential):
                t = time.perf_counter()
                client.send(
                    signer, "anchor_batch", hashlib.sha256(b"seq%d" % i).digest(), 1, _ca_hash(0)
                )
                lat.append(time.perf_counter() - t)
            dt = time.perf_counter() - t0
            results["sequential"] = {
                "txs": args.sequential,
                "tx_per_s": round(args.sequential / dt, 1),
                "latency_ms_p50": round(_pct(lat, 0.5) * 1000, 2),
                "latency_ms_p99": round(_pct(lat, 0.99) * 1000, 2),
            }
            # concurrent: separate processes, pipelined
            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            procs = [
                ctx.Process(
                    target=_client_proc,
                    args=(tmp, port, i, args.per_client, args.depth, q),
                )
                for i in range(args.clients)
            ]
            head0 = client.status().head_block
            for p in procs:
                p.start()
            done: list[Any] = []
            while len(done) < args.clients:
                msg = q.get(timeout=600)
                if msg[0] == "done":
                    done.append(msg)
            for p in procs:
                p.join()
            start = min(m[3] for m in done)
            end = max(m[4] for m in done)
            total = sum(m[2] for m in done)
            blocks = client.status().head_block - head0
            results["concurrent"] = {
                "clients": args.clients,
                "depth": args.depth,
                "txs": total,
                "tx_per_s": round(total / (end - start), 1),
                "blocks": blocks,
                "txs_per_block": round(total / max(1, blocks), 1),
            }
            # view calls through gRPC
            data = client.abi.encode("batch", 1)
            lat = []
            for _ in range(args.calls):
                t = time.perf_counter()
                client.call(data)
                lat.append(time.perf_counter() - t)
            results["view_call_grpc_ms"] = {
                "p50": round(_pct(lat, 0.5) * 1000, 3),
                "p99": round(_pct(lat, 0.99) * 1000, 3),
                "mean": round(statistics.fmean(lat) * 1000, 3),
            }
            lat = []
            for _ in range(args.calls):
                t = time.perf_counter()
                client.batch(1)
                lat.append(time.perf_counter() - t)
            results["get_batch_grpc_ms"] = {
                "p50": round(_pct(lat, 0.5) * 1000, 3),
                "p99": round(_pct(lat, 0.99) * 1000, 3),
            }
            # event replay rate
            t = time.perf_counter()
            n = sum(1 for _ in client.events(0))
            dt = time.perf_counter() - t
            results["events_stream"] = {"events": n, "events_per_s": round(n / dt, 1)}
            head = client.status().head_block
            client.close()
            # restart after kill -9
            node.kill9()
            port, restart = node.start()
            results["restart_after_kill9"] = {"blocks": head, "seconds": round(restart, 3)}
        finally:
            node.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ledger.node.bench", description=__doc__)
    p.add_argument("--sequential", type=int, default=200)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--per-client", type=int, default=300)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    results = run(args)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
