"""Benchmark of the IAS SDK (not a test): verifications per second on one core and the delay
from a revocation transaction to the mirror refusing the certificate.

    PYTHONPATH=. .venv/bin/python -m tests.ias_sdk.bench_verify [--certs 2000] [--revocations 20]

Runs a real ledger node in-process (mutual TLS), issues real ppCerts in anchored batches and
prints one JSON document. Decision record 0809 explains what is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ias_sdk import LedgerMirror, Reason, VerificationError, Verifier
from tests.ias_sdk.support import Issued, World, build_world


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def throughput(world: World, issued: list[Issued], work: Path) -> dict[str, Any]:
    mirror = LedgerMirror(work / "bench-mirror.sqlite", world.source())
    mirror.sync()
    serialized = [i.bundle.SerializeToString() for i in issued]
    out: dict[str, Any] = {"certificates": len(issued)}
    try:
        # First sight of every certificate (its CA chain already analysed once).
        v = Verifier(mirror)
        v.verify(serialized[0])
        t = time.perf_counter()
        for raw in serialized[1:]:
            v.verify(raw)
        out["first_sight_per_s"] = _rate(len(serialized) - 1, time.perf_counter() - t)
        # The same certificates again: ledger lookups every time, certificate work cached.
        rounds = 5
        t = time.perf_counter()
        for _ in range(rounds):
            for raw in serialized:
                v.verify(raw)
        out["repeat_per_s"] = _rate(rounds * len(serialized), time.perf_counter() - t)
        # Protobuf objects instead of bytes (no parsing of the bundle).
        bundles = [i.bundle for i in issued]
        t = time.perf_counter()
        for _ in range(rounds):
            for b in bundles:
                v.verify(b)
        out["repeat_objects_per_s"] = _rate(rounds * len(bundles), time.perf_counter() - t)
        # The interceptor's path: TLS certificate DER + bundle bytes from metadata.
        pairs = [(i.cert_der, raw) for i, raw in zip(issued, serialized, strict=True)]
        fresh = Verifier(mirror)
        fresh.verify(serialized[0])
        t = time.perf_counter()
        for cert_der, raw in pairs[1:]:
            fresh.verify_presented(cert_der, raw)
        out["presented_first_sight_per_s"] = _rate(len(pairs) - 1, time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(rounds):
            for cert_der, raw in pairs:
                fresh.verify_presented(cert_der, raw)
        out["presented_repeat_per_s"] = _rate(rounds * len(pairs), time.perf_counter() - t)
    finally:
        mirror.close()
    return out


def revocation_delay(
    world: World, issued: list[Issued], work: Path, poll_interval: float
) -> dict[str, Any]:
    mirror = LedgerMirror(
        work / f"delay-{poll_interval}.sqlite", world.source(), poll_interval=poll_interval
    )
    mirror.sync()
    mirror.start()
    verifier = Verifier(mirror)
    after_ack: list[float] = []
    from_submit: list[float] = []
    try:
        for who in issued:
            verifier.verify(who.bundle)
            t0 = time.perf_counter()
            world.status_change("revoke", who, 1)
            t1 = time.perf_counter()
            while True:
                try:
                    verifier.verify(who.bundle)
                except VerificationError as e:
                    assert e.reason is Reason.REVOKED
                    break
                time.sleep(0.0005)
            t2 = time.perf_counter()
            after_ack.append((t2 - t1) * 1000)
            from_submit.append((t2 - t0) * 1000)
            time.sleep(poll_interval * 0.37)  # decorrelate from the poll phase
    finally:
        mirror.close()

    def summary(xs: list[float]) -> dict[str, float]:
        xs = sorted(xs)
        return {
            "mean_ms": round(statistics.mean(xs), 1),
            "p50_ms": round(xs[len(xs) // 2], 1),
            "max_ms": round(xs[-1], 1),
        }

    return {
        "poll_interval_s": poll_interval,
        "revocations": len(issued),
        "after_tx_ack": summary(after_ack),
        "from_tx_submit": summary(from_submit),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--certs", type=int, default=2000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--revocations", type=int, default=20)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        world = build_world(work)
        try:
            issued: list[Issued] = []
            t = time.perf_counter()
            while len(issued) < args.certs:
                issued += world.issue_batch(min(args.batch, args.certs - len(issued)))
            issue_s = time.perf_counter() - t
            cpu = sorted(os.sched_getaffinity(0))[0]
            os.sched_setaffinity(0, {cpu})  # this thread on one core; the node runs elsewhere
            result: dict[str, Any] = {
                "setup": {"issue_and_anchor_s": round(issue_s, 2), "cpu": cpu},
                "throughput": throughput(world, issued, work),
            }
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            rev = world.issue_batch(2 * args.revocations)
            result["revocation_visibility"] = [
                revocation_delay(world, rev[: args.revocations], work, 0.1),
                revocation_delay(world, rev[args.revocations :], work, 0.02),
            ]
        finally:
            world.close()
            world.server.runner.stop(grace=0.5)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
