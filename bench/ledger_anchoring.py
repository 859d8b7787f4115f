"""Anchoring under issuance load: what the CA's database and the clients saw, per certificate.

Times come from one host clock (``time.time()``) in two processes:

* ``issued_at`` — the CA's issued store, written right after the certificate was signed and
  linted (``ca_node/store.py``);
* ``created_at`` — the CA's batch table, when the batch holding it was built and made durable;
* the anchor acknowledgement — not stored with sub-second precision by the CA (its
  ``anchored_at`` is the block timestamp, whole seconds), so it is bounded from above by the
  moment the *first* client of that batch had its bundle with the inclusion proof: the CA can
  only build the proof after the ledger acknowledged the anchor transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from bench._common import percentile
from mpkix.v1 import common_pb2, enrollment_pb2


@dataclass
class Delivery:
    """A bundle as a client received it."""

    serial: str
    batch_id: int
    received_at: float


@dataclass
class DeliveryLog:
    """Collects bundles (the load generator's ``on_enrolled`` callback) with arrival times."""

    deliveries: list[Delivery] = field(default_factory=list)
    bundles: list[common_pb2.CertificateBundle] = field(default_factory=list)

    def __call__(self, resp: enrollment_pb2.SubmitPpCsrResponse) -> None:
        now = time.time()
        self.bundles.append(resp.bundle)
        cert = x509.load_der_x509_certificate(resp.bundle.certificate_der)
        self.deliveries.append(
            Delivery(format(cert.serial_number, "x"), resp.bundle.inclusion.batch_id, now)
        )


@dataclass(frozen=True)
class CaRecord:
    issued_at: float
    batch_created_at: float | None
    ledger_batch: int | None
    anchored: bool


def read_ca_records(db: Path) -> dict[str, CaRecord]:
    """Every certificate of the CA's ``issued.sqlite`` with its batch (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT i.serial, i.issued_at, b.created_at, b.ledger_batch, b.state "
            "FROM issued i LEFT JOIN batch_leaves l ON l.serial = i.serial "
            "LEFT JOIN batches b ON b.local_id = l.local_id"
        ).fetchall()
    finally:
        conn.close()
    return {
        str(r[0]): CaRecord(
            float(r[1]),
            None if r[2] is None else float(r[2]),
            None if r[3] is None else int(r[3]),
            r[4] == "anchored",
        )
        for r in rows
    }


@dataclass
class AnchoringStats:
    delivered: int
    issued: int
    anchored: int
    batches: int
    batch_size_mean: float
    batch_size_max: int
    issued_per_s: float
    anchored_per_s: float
    anchor_delay_ms: list[float]
    bundle_delay_ms: list[float]
    batch_wait_ms: list[float]
    inconsistent: int  # delivered but unknown to the CA, unanchored, or in another batch


def _ms(values: Sequence[float], q: float) -> float | None:
    return round(percentile(values, q), 2) if values else None


def anchoring_stats(
    deliveries: Sequence[Delivery], records: dict[str, CaRecord], started_wall: float
) -> AnchoringStats:
    """Rates and per-certificate delays of the timed enrollments.

    ``issued_per_s``: delivered certificates / (last CA signing − start of the load);
    ``anchored_per_s``: those in an anchored batch / (last anchor acknowledgement − start).
    Both count the same certificates from the same instant, so their ratio is how far anchoring
    trails issuance (1.0: it keeps up; the last batch's delay alone keeps it a little below).
    """
    ack: dict[int, float] = {}
    for d in deliveries:
        ack[d.batch_id] = min(ack.get(d.batch_id, d.received_at), d.received_at)
    anchor_delay: list[float] = []
    bundle_delay: list[float] = []
    batch_wait: list[float] = []
    issued_times: list[float] = []
    ack_times: list[float] = []
    sizes: dict[int, int] = {}
    inconsistent = 0
    for d in deliveries:
        rec = records.get(d.serial)
        if rec is None:
            inconsistent += 1
            continue
        issued_times.append(rec.issued_at)
        if not rec.anchored or rec.ledger_batch != d.batch_id:
            inconsistent += 1
            continue
        sizes[d.batch_id] = sizes.get(d.batch_id, 0) + 1
        ack_times.append(ack[d.batch_id])
        anchor_delay.append((ack[d.batch_id] - rec.issued_at) * 1000)
        bundle_delay.append((d.received_at - rec.issued_at) * 1000)
        if rec.batch_created_at is not None:
            batch_wait.append((rec.batch_created_at - rec.issued_at) * 1000)

    def per_s(n: int, last: list[float]) -> float:
        span = max(last) - started_wall if last else 0.0
        return round(n / span, 1) if span > 0 else 0.0

    return AnchoringStats(
        delivered=len(deliveries),
        issued=len(issued_times),
        anchored=len(anchor_delay),
        batches=len(sizes),
        batch_size_mean=round(sum(sizes.values()) / len(sizes), 1) if sizes else 0.0,
        batch_size_max=max(sizes.values(), default=0),
        issued_per_s=per_s(len(issued_times), issued_times),
        anchored_per_s=per_s(len(anchor_delay), ack_times),
        anchor_delay_ms=anchor_delay,
        bundle_delay_ms=bundle_delay,
        batch_wait_ms=batch_wait,
        inconsistent=inconsistent,
    )


def summary(stats: AnchoringStats) -> dict[str, object]:
    """The ``anchor…``/``issued…`` keys of the results section."""
    ratio = stats.anchored_per_s / stats.issued_per_s if stats.issued_per_s else None
    return {
        "issued_per_s": stats.issued_per_s,
        "anchored_per_s": stats.anchored_per_s,
        "anchored_to_issued_ratio": None if ratio is None else round(ratio, 3),
        "anchor_delay_p50_ms": _ms(stats.anchor_delay_ms, 50),
        "anchor_delay_p99_ms": _ms(stats.anchor_delay_ms, 99),
        "anchor_delay_max_ms": _ms(stats.anchor_delay_ms, 100),
        "bundle_delay_p50_ms": _ms(stats.bundle_delay_ms, 50),
        "bundle_delay_p99_ms": _ms(stats.bundle_delay_ms, 99),
        "batch_wait_p50_ms": _ms(stats.batch_wait_ms, 50),
        "batch_wait_p99_ms": _ms(stats.batch_wait_ms, 99),
        "delivered": stats.delivered,
        "issued": stats.issued,
        "anchored": stats.anchored,
        "inconsistent": stats.inconsistent,
        "batches": stats.batches,
        "batch_size_mean": stats.batch_size_mean,
        "batch_size_max": stats.batch_size_max,
    }
