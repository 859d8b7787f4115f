"""ceIssuance load generator shared by the issuance and ledger benchmarks (decision 0007).

:class:`ServerProcesses` starts the CA and CMS nodes (and, for the ledger benchmark, a ledger
node the CA anchors on) as separate OS processes on 127.0.0.1 with TLS; :func:`drive` runs many
concurrent asyncio CMA clients, each doing the full ceIssuance against the CMS.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench._common import percentile
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
from mpkix.rpc.tls import TlsConfig, channel_credentials, channel_options
from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc

OPERATOR = "310-260"

# Called with each successful enrollment's answer as soon as the client has it.
OnEnrolled = Callable[[enrollment_pb2.SubmitPpCsrResponse], None]


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
    started_wall: float = 0.0  # time.time() when the timed section started
    skipped: int = 0  # never attempted because the time limit was reached


def spawn(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``python -m mpkix ARGS`` and return it with the port from its first stdout line."""
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
    """CA and CMS nodes as separate OS processes (so they do not share the client's GIL).

    ``ledger=True`` first starts a ledger node (``mpkix ledger serve``, genesis from the cluster's
    CA and CMS keys); the CA anchors every issued ppCert there in batches of
    ``anchor_window_ms``, and the CMS uses it for lifecycle requests.
    """

    def __init__(
        self, work: Path, hss: Path, *, ledger: bool = False, anchor_window_ms: int = 200
    ) -> None:
        self.work = work
        self.cluster = LocalCluster(work, [OperatorSpec(OPERATOR, hss)], with_ledger=ledger)
        self.cluster.prepare()
        self.with_ledger = ledger
        self.anchor_window_ms = anchor_window_ms
        self.procs: list[subprocess.Popen[bytes]] = []
        self.named: dict[str, subprocess.Popen[bytes]] = {}
        self.ca_port = 0
        self.cms_port = 0
        self.ledger_port = 0

    @property
    def ca_state_dir(self) -> Path:
        return self.work / "ca"

    @property
    def ledger_target(self) -> str:
        return f"127.0.0.1:{self.ledger_port}"

    def _start(self, name: str, args: list[str]) -> int:
        proc, port = spawn(args, self.work / f"{name}.log")
        self.procs.append(proc)
        self.named[name] = proc
        return port

    def __enter__(self) -> ServerProcesses:
        try:
            self._start_all()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_all(self) -> None:
        tls = str(self.cluster.tls_dir)
        ledger: list[str] = []
        if self.with_ledger:
            node = self.cluster.ledger_node_name
            self.ledger_port = self._start(
                "ledger",
                ["ledger", "serve", "--state-dir", str(self.work / "ledger"), "--genesis",
                 str(self.cluster.genesis_path), "--tls-cert", f"{tls}/{node}.pem",
                 "--tls-key", f"{tls}/{node}.key", "--tls-ca", f"{tls}/ca.pem",
                 "--listen", "127.0.0.1:0"],
            )
            ledger = ["--ledger", self.ledger_target]
        self.ca_port = self._start(
            "ca",
            ["ca", "serve", "--state-dir", str(self.ca_state_dir), "--tls-dir", tls,
             "--node-name", "ca-1", "--listen", "127.0.0.1:0", *ledger,
             *(["--anchor-window-ms", str(self.anchor_window_ms)] if ledger else [])],
        )
        op = self.cluster.operators[0]
        self.cms_port = self._start(
            "cms",
            ["cms", "serve", "--state-dir", str(self.cluster.cms_dir(op)), "--hss",
             str(op.hss_db), "--tls-dir", tls, "--node-name", op.node_name,
             "--ca", f"127.0.0.1:{self.ca_port}", "--operator-id", OPERATOR,
             "--listen", "127.0.0.1:0", *ledger],
        )

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.named.clear()


def make_hss(path: Path, count: int, seed: int = 7) -> None:
    """A synthetic HSS of ``count`` subscribers at ``path`` (kept if it already exists)."""
    if path.exists():
        return
    store = SqliteSubscriberStore(path)
    try:
        populate(store, count, seed, mnc="260")
    finally:
        store.close()


def subscribers(hss: Path, n: int) -> list[Subscriber]:
    """The first ``n`` subscribers of the HSS at ``hss``."""
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


def _flow(s: Subscriber) -> EnrollmentFlow:
    return EnrollmentFlow(
        usim=EmulatedUsim(s.imsi, s.k, s.opc, UsimSqnState()),
        attributes=canonical_values(s),
        key=generate_key(),
    )


async def drive(
    target: str,
    tls_ca: bytes,
    subs: list[Subscriber],
    concurrency: int,
    *,
    on_enrolled: OnEnrolled | None = None,
    time_limit_s: float | None = None,
) -> IssuanceRun:
    """Enroll every subscriber of ``subs`` (the first 8 as untimed warm-up) with ``concurrency``
    workers over two HTTP/2 connections. Workers take no new enrollment after ``time_limit_s``."""
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
    deadline = float("inf")

    async def worker(i: int) -> None:
        stub = stubs[i % len(stubs)]
        while time.perf_counter() < deadline:
            try:
                s = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            try:
                flow = _flow(s)
                timing: dict[str, Any] = {}
                resp = await enroll_async(stub, flow, timing=timing)
            except Exception as e:  # counted and sampled, the run goes on
                errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            lat.append(time.perf_counter() - t0)
            if on_enrolled is not None:
                on_enrolled(resp)
            t1.append(timing["t_client"])
            st = timing.get("server_timing") or {}
            if "validate" in st:
                t2.append(st["validate"] / 1000)
            if "issue" in st:
                t3.append(st["issue"] / 1000)

    # warm-up: a few enrollments outside the timed section
    warm = [queue.get_nowait() for _ in range(min(8, queue.qsize()))]
    for s in warm:
        await enroll_async(stubs[0], _flow(s))
    n = queue.qsize()
    started_wall = time.time()
    start = time.perf_counter()
    if time_limit_s is not None:
        deadline = start + time_limit_s
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
        started_wall=started_wall,
        skipped=queue.qsize(),
    )
