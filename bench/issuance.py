"""ceIssuance load generator (paper §7.1; ARCHITECTURE §5).

Starts a real CA node and CMS node as separate processes on 127.0.0.1 with TLS, then runs many
CMA clients concurrently, each doing the full ceIssuance: key generation, EAP-AKA' (two round
trips), ppCSR sealing, CMS validation and endorsement, CA issuance, and the CMA's verification
of the answer. In the same run, the same number of CSRs is signed by ``cfssl serve`` as the
baseline. Reports ppCerts/min, latency p50/p99 and the paper's T1/T2/T3 split:

* T1 — CMA side: EAP-AKA' round trips and ppCSR preparation (client-observed);
* T2 — CMS validation + endorsement (server-timing trailer from the CMS);
* T3 — CA issuance as seen by the CMS (the IssueStream round trip, from the same trailer).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench._common import (
    LATEST_RESULTS,
    MachineContext,
    merge_results,
    percentile,
    print_table,
    process_cpu_seconds,
    self_cpu_seconds,
)
from cma.client import enroll_async
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from cms_node.hss.generator import populate
from cms_node.hss.model import Subscriber
from cms_node.hss.sqlite_store import SqliteSubscriberStore
from deploy.local import LocalCluster, OperatorSpec
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.rpc.tls import channel_credentials, channel_options
from mpkix.v1 import enrollment_pb2_grpc

OPERATOR = "310-260"
_TIMING_RE = re.compile(r"(\w+);dur=([0-9.]+)")


@dataclass
class IssuanceRun:
    count: int
    ok: int
    errors: int
    elapsed_s: float
    per_s: float
    p50_ms: float
    p99_ms: float
    t1_p50_ms: float
    t2_p50_ms: float | None
    t3_p50_ms: float | None
    error_samples: list[str]


def _spawn(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    f = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpkix", *args], stdout=subprocess.PIPE, stderr=f
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    m = re.search(r"serving on port (\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}; see {log}")
    return proc, int(m.group(1))


class ServerProcesses:
    """CA and CMS nodes as separate OS processes (so they do not share the client's GIL)."""

    def __init__(self, work: Path, hss: Path) -> None:
        self.work = work
        self.cluster = LocalCluster(work, [OperatorSpec(OPERATOR, hss)])
        self.cluster.prepare()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.cms_port = 0

    def __enter__(self) -> ServerProcesses:
        tls = str(self.cluster.tls_dir)
        ca, ca_port = _spawn(
            ["ca", "serve", "--state-dir", str(self.work / "ca"), "--tls-dir", tls,
             "--node-name", "ca-1", "--listen", "127.0.0.1:0"],
            self.work / "ca.log",
        )
        self.procs.append(ca)
        op = self.cluster.operators[0]
        cms, self.cms_port = _spawn(
            ["cms", "serve", "--state-dir", str(self.cluster.cms_dir(op)), "--hss",
             str(op.hss_db), "--tls-dir", tls, "--node-name", op.node_name,
             "--ca", f"127.0.0.1:{ca_port}", "--operator-id", OPERATOR,
             "--listen", "127.0.0.1:0"],
            self.work / "cms.log",
        )
        self.procs.append(cms)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def _subscribers(hss: Path, n: int) -> list[Subscriber]:
    store = SqliteSubscriberStore(hss, create=False)
    try:
        out: list[Subscriber] = []
        for s in store.iter_all():
            out.append(s)
            if len(out) == n:
                break
        return out
    finally:
        store.close()


async def _drive(
    target: str, tls_ca: bytes, subs: list[Subscriber], concurrency: int
) -> IssuanceRun:
    from mpkix.rpc.tls import TlsConfig

    channels = [
        grpc.aio.secure_channel(
            target, channel_credentials(TlsConfig(ca=tls_ca)), options=channel_options()
        )
        for _ in range(2)
    ]
    stubs = [enrollment_pb2_grpc.EnrollmentStub(c) for c in channels]
    queue: asyncio.Queue[Subscriber] = asyncio.Queue()
    for s in subs:
        queue.put_nowait(s)
    lat: list[float] = []
    t1: list[float] = []
    t2: list[float] = []
    t3: list[float] = []
    errors: list[str] = []

    async def worker(i: int) -> None:
        stub = stubs[i % len(stubs)]
        while True:
            try:
                s = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            try:
                flow = EnrollmentFlow(
                    usim=EmulatedUsim(s.imsi, s.k, s.opc, UsimSqnState()),
                    attributes=canonical_values(s),
                    key=generate_key(),
                )
                timing: dict[str, Any] = {}
                await enroll_async(stub, flow, timing=timing)
            except Exception as e:  # counted and sampled, the run goes on
                errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            lat.append(time.perf_counter() - t0)
            t1.append(timing["t_client"])
            st = timing.get("server_timing") or {}
            if "validate" in st:
                t2.append(st["validate"] / 1000)
            if "issue" in st:
                t3.append(st["issue"] / 1000)

    # warm-up: a few enrollments outside the timed section
    warm = [queue.get_nowait() for _ in range(min(8, queue.qsize()))]
    for s in warm:
        flow = EnrollmentFlow(
            usim=EmulatedUsim(s.imsi, s.k, s.opc, UsimSqnState()),
            attributes=canonical_values(s),
            key=generate_key(),
        )
        await enroll_async(stubs[0], flow)
    n = queue.qsize()
    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    for c in channels:
        await c.close(None)
    ok = len(lat)

    def p(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1000, 2) if values else float("nan")

    return IssuanceRun(
        count=n,
        ok=ok,
        errors=len(errors),
        elapsed_s=round(elapsed, 3),
        per_s=round(ok / elapsed, 1) if elapsed else 0.0,
        p50_ms=p(lat, 50),
        p99_ms=p(lat, 99),
        t1_p50_ms=p(t1, 50),
        t2_p50_ms=p(t2, 50) if t2 else None,
        t3_p50_ms=p(t3, 50) if t3 else None,
        error_samples=errors[:5],
    )


def run_issuance_bench(
    count: int = 3000, concurrency: int = 64, workdir: Path | None = None, cfssl: bool = True
) -> dict[str, Any]:
    work = workdir or Path(".bench-tmp") / f"issuance-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    hss = work / "hss.sqlite"
    if not hss.exists():
        store = SqliteSubscriberStore(hss)
        try:
            populate(store, count + 16, 7, mnc="260")
        finally:
            store.close()
    subs = _subscribers(hss, count + 8)
    machine = MachineContext.start()
    baseline: dict[str, Any] | None = None
    if cfssl:
        from bench.cfssl_baseline import run_cfssl_baseline

        base = run_cfssl_baseline(count, concurrency=8, workdir=work / "cfssl")
        baseline = base.as_dict()
    with ServerProcesses(work / "cluster", hss) as servers:
        pids = {"ca": servers.procs[0].pid, "cms": servers.procs[1].pid}
        cpu0 = {k: process_cpu_seconds(p) or 0.0 for k, p in pids.items()}
        client0 = self_cpu_seconds()
        run = asyncio.run(
            _drive(
                f"127.0.0.1:{servers.cms_port}",
                (servers.cluster.tls_dir / "ca.pem").read_bytes(),
                subs,
                concurrency,
            )
        )
        cpu = {k: (process_cpu_seconds(p) or 0.0) - cpu0[k] for k, p in pids.items()}
        cpu["client"] = self_cpu_seconds() - client0
    # CPU milliseconds spent per issued ppCert by each process (warm-up included, ~0.3%).
    cpu_ms = {k: round(v / max(run.ok, 1) * 1000, 3) for k, v in cpu.items()}
    mpkix_per_min = round(run.per_s * 60, 0)
    result: dict[str, Any] = {
        "mpkix_per_min": mpkix_per_min,
        "mpkix_per_s": run.per_s,
        "p50_ms": run.p50_ms,
        "p99_ms": run.p99_ms,
        "t1_p50_ms": run.t1_p50_ms,
        "t2_p50_ms": run.t2_p50_ms,
        "t3_p50_ms": run.t3_p50_ms,
        "count": run.count,
        "ok": run.ok,
        "errors": run.errors,
        "error_samples": run.error_samples,
        "concurrency": concurrency,
        "paper_target_per_min": 130_000,
        "cpu_ms_per_cert": cpu_ms,
    }
    if baseline is not None:
        result["cfssl_per_min"] = baseline["cfssl_per_min"]
        result["ratio_vs_cfssl"] = (
            round(mpkix_per_min / baseline["cfssl_per_min"], 3) if baseline["cfssl_per_min"] else None
        )
        result["cfssl"] = baseline
    result["machine"] = machine.finish().as_dict()
    return result


def main(count: int, concurrency: int, cfssl: bool = True) -> int:
    result = run_issuance_bench(count, concurrency, cfssl=cfssl)
    merge_results(LATEST_RESULTS, "issuance", result)
    print_table(
        [
            {"system": "MPKIX full ceIssuance", "per_min": result["mpkix_per_min"],
             "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
             "T1_ms": result["t1_p50_ms"], "T2_ms": result["t2_p50_ms"],
             "T3_ms": result["t3_p50_ms"], "errors": result["errors"]},
            *(
                [{"system": "cfssl serve (CSR signing)", "per_min": result["cfssl_per_min"],
                  "p50_ms": result["cfssl"]["p50_ms"], "p99_ms": result["cfssl"]["p99_ms"]}]
                if "cfssl" in result else []
            ),
        ]
    )
    print(f"CPU ms per ppCert: {result['cpu_ms_per_cert']}")
    if "ratio_vs_cfssl" in result:
        print(f"ratio vs cfssl: {result['ratio_vs_cfssl']} (target >= 1.0); "
              f"paper: 130,000/min")
    return 0 if result["errors"] == 0 else 1
