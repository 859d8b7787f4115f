"""IAS SDK side of the ledger benchmark: verifications per second on one core with a warm mirror,
and revocation visibility (revoke call returned → the following mirror refuses the ppCert).

Moved here from ``tests/ias_sdk/bench_verify.py``; it now runs on the certificates a real
cluster issued and anchored (decision 0603).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench._common import percentile, rate
from ias_sdk import LedgerMirror, Reason, VerificationError, Verifier
from mpkix.v1 import common_pb2

# Poll the verifier this often while waiting for a revocation to show (well below the mirror's
# 100 ms follower interval, so it adds at most ~0.6 ms to a measured delay).
CHECK_EVERY_S = 0.0005


@contextlib.contextmanager
def one_core() -> Iterator[int]:
    """Pin the calling thread to its lowest usable CPU for the block; yields that CPU."""
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


@dataclass
class VerifyResult:
    certificates: int
    rounds: int
    cpu: int
    first_sight_per_s: float
    repeat_per_s: float
    repeat_objects_per_s: float
    presented_first_sight_per_s: float
    presented_repeat_per_s: float
    errors: int
    error_samples: list[str] = field(default_factory=list)


def _timed(
    fn: Callable[[Any], object], items: Sequence[Any], rounds: int, errors: list[str]
) -> float:
    """Call ``fn`` on every item ``rounds`` times; verifications per second (failures count)."""
    t = time.perf_counter()
    for _ in range(rounds):
        for item in items:
            try:
                fn(item)
            except VerificationError as e:
                errors.append(f"{e.reason.name}: {e}"[:200])
    return rate(rounds * len(items), time.perf_counter() - t)


def verify_throughput(
    mirror: LedgerMirror, bundles: Sequence[common_pb2.CertificateBundle], rounds: int = 5
) -> VerifyResult:
    """Throughput of :class:`Verifier` on one pinned core against a synced mirror.

    First sight: every certificate once (only the CA chain already analysed). Repeat: the same
    certificates ``rounds`` times (mirror lookups every call; certificate work cached), as bundle
    bytes, as protobuf objects, and through the interceptor's ``verify_presented``.
    """
    if len(bundles) < 2:
        raise ValueError("verify_throughput needs at least 2 certificates")
    serialized = [b.SerializeToString() for b in bundles]
    pairs = [(bytes(b.certificate_der), raw) for b, raw in zip(bundles, serialized, strict=True)]
    errors: list[str] = []
    with one_core() as cpu:
        v = Verifier(mirror)
        v.verify(serialized[0])  # the CA chain, analysed once
        first = _timed(v.verify, serialized[1:], 1, errors)
        repeat = _timed(v.verify, serialized, rounds, errors)
        objects = _timed(v.verify, list(bundles), rounds, errors)
        fresh = Verifier(mirror)
        fresh.verify(serialized[0])

        def presented(pair: tuple[bytes, bytes]) -> object:
            return fresh.verify_presented(*pair)

        presented_first = _timed(presented, pairs[1:], 1, errors)
        presented_repeat = _timed(presented, pairs, rounds, errors)
    return VerifyResult(
        certificates=len(bundles),
        rounds=rounds,
        cpu=cpu,
        first_sight_per_s=round(first, 1),
        repeat_per_s=round(repeat, 1),
        repeat_objects_per_s=round(objects, 1),
        presented_first_sight_per_s=round(presented_first, 1),
        presented_repeat_per_s=round(presented_repeat, 1),
        errors=len(errors),
        error_samples=errors[:5],
    )


@dataclass
class RevocationResult:
    revocations: int
    poll_interval_s: float
    visible_ms: list[float]  # revoke call returned → verify says REVOKED
    call_ms: list[float]  # duration of the revoke call itself (transaction acknowledged)
    timeouts: int
    error_samples: list[str] = field(default_factory=list)

    def p(self, q: float) -> float | None:
        return round(percentile(self.visible_ms, q), 2) if self.visible_ms else None


def _wait_for_refusal(
    verifier: Verifier, bundle: common_pb2.CertificateBundle, deadline: float
) -> tuple[Reason, float] | None:
    """Verify ``bundle`` every :data:`CHECK_EVERY_S` until refused: (reason, perf_counter time);
    None if it still verifies at ``deadline``."""
    while time.perf_counter() < deadline:
        try:
            verifier.verify(bundle)
        except VerificationError as e:
            return e.reason, time.perf_counter()
        time.sleep(CHECK_EVERY_S)
    return None


def revocation_visibility(
    mirror: LedgerMirror,
    bundles: Sequence[common_pb2.CertificateBundle],
    revoke: Callable[[common_pb2.CertificateBundle], None],
    *,
    timeout_s: float = 10.0,
    seed: int = 3,
) -> RevocationResult:
    """Revoke each bundle's ppCert one after another with ``revoke`` (which returns once the
    ledger acknowledged the transaction) while ``mirror`` follows the ledger at its own polling
    interval, and time until :class:`Verifier` refuses the certificate with ``REVOKED``.

    Between revocations a random pause in [0, poll interval) spreads the revocations over the
    follower's polling phase (a fixed pause would measure the same phase every time).
    """
    rng = random.Random(seed)
    verifier = Verifier(mirror)
    visible: list[float] = []
    calls: list[float] = []
    errors: list[str] = []
    timeouts = 0
    mirror.start()
    try:
        for bundle in bundles:
            try:
                verifier.verify(bundle)
            except VerificationError as e:
                errors.append(f"before revocation: {e.reason.name}: {e}"[:200])
                continue
            t0 = time.perf_counter()
            revoke(bundle)
            t1 = time.perf_counter()
            refusal = _wait_for_refusal(verifier, bundle, t1 + timeout_s)
            if refusal is None:
                timeouts += 1
            elif refusal[0] is not Reason.REVOKED:
                errors.append(f"after revocation: {refusal[0].name}")
            else:
                visible.append((refusal[1] - t1) * 1000)
                calls.append((t1 - t0) * 1000)
            time.sleep(rng.uniform(0, mirror.poll_interval))
    finally:
        mirror.stop()
    return RevocationResult(
        revocations=len(bundles),
        poll_interval_s=mirror.poll_interval,
        visible_ms=visible,
        call_ms=calls,
        timeouts=timeouts,
        error_samples=errors[:5],
    )
