"""Ledger benchmark (issue #3; ARCHITECTURE §2.4–2.5): ``mpkix bench ledger``.

One run on a real cluster on 127.0.0.1 (ledger, CA and CMS nodes as separate processes, TLS):

1. **Anchoring under issuance load** — the issuance benchmark's load generator enrolls
   ``count`` CMAs while the CA anchors every ppCert in batches; certificates anchored per
   second and the delay from signing to the anchor acknowledgement (``bench/ledger_anchoring``).
2. **SDK verifications per second** on one pinned core, against a mirror synced with that ledger,
   over the certificates the run issued (``bench/ledger_sdk``).
3. **Revocation visibility** — the running CA node revokes certificates one by one (its
   ``CaAdmin.ChangeStatus`` RPC, as ``mpkix ca revoke`` does); time from that call returning
   until a mirror following the ledger at its default polling interval makes ``verify`` answer
   ``REVOKED``.

Writes the ``"ledger"`` section of ``bench/results/latest.json`` (decision records 0602, 0603).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509

from bench._common import (
    LATEST_RESULTS,
    MachineContext,
    merge_results,
    percentile,
    print_table,
    process_cpu_seconds,
    self_cpu_seconds,
)
from bench._load import ServerProcesses, drive, make_hss, subscribers
from bench.ledger_anchoring import DeliveryLog, anchoring_stats, read_ca_records, summary
from bench.ledger_sdk import revocation_visibility, verify_throughput
from deploy.local import ADMIN_NODE
from deploy.pki import init_cluster_pki
from ias_sdk import LedgerMirror
from ledger.backends.embedded import EmbeddedBackend
from mpkix.rpc.tls import TlsConfig, secure_channel
from mpkix.v1 import ca_admin_pb2, ca_admin_pb2_grpc, common_pb2, lifecycle_pb2

SDK_VERIFY_TARGET_PER_S = 5000
REVOCATION_VISIBILITY_TARGET_P99_MS = 2000
IAS_NODE = "ias-bench"  # the mirror's TLS client name in the cluster PKI
KEY_COMPROMISE = 1  # RFC 5280 CRLReason


def _p(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 2) if values else None


def _sdk_phase(
    servers: ServerProcesses,
    bundles: list[common_pb2.CertificateBundle],
    work: Path,
    revocations: int,
    verify_rounds: int,
) -> dict[str, Any]:
    """Verification throughput and revocation visibility against the cluster's ledger node."""
    tls_dir = servers.cluster.tls_dir
    init_cluster_pki(tls_dir, [IAS_NODE])
    out: dict[str, Any] = {}
    with EmbeddedBackend.connect(
        servers.ledger_target, TlsConfig.from_dir(tls_dir, IAS_NODE), timeout=20
    ) as source:
        mirror = LedgerMirror(work / "ias-mirror.sqlite", source)
        try:
            t = time.perf_counter()
            mirror.sync()
            out["mirror_sync_s"] = round(time.perf_counter() - t, 3)
            out["mirror_events"] = mirror.events_applied
            v = verify_throughput(mirror, bundles, verify_rounds)
            out.update(
                sdk_verify_per_s=v.repeat_per_s,
                sdk_verify_first_sight_per_s=v.first_sight_per_s,
                sdk_verify_repeat_objects_per_s=v.repeat_objects_per_s,
                sdk_verify_presented_first_sight_per_s=v.presented_first_sight_per_s,
                sdk_verify_presented_repeat_per_s=v.presented_repeat_per_s,
                sdk_verify_certificates=v.certificates,
                sdk_verify_rounds=v.rounds,
                sdk_verify_cpu=v.cpu,
                sdk_verify_errors=v.errors,
                sdk_verify_error_samples=v.error_samples,
            )
            with secure_channel(
                f"127.0.0.1:{servers.ca_port}", servers.cluster.tls(ADMIN_NODE)
            ) as admin:
                stub = ca_admin_pb2_grpc.CaAdminStub(admin)

                def revoke(bundle: common_pb2.CertificateBundle) -> None:
                    cert = x509.load_der_x509_certificate(bundle.certificate_der)
                    st = stub.ChangeStatus(
                        ca_admin_pb2.CaChangeStatusRequest(
                            serial=format(cert.serial_number, "x"),
                            action=lifecycle_pb2.REVOKE,
                            reason=KEY_COMPROMISE,
                        ),
                        timeout=30,
                    )
                    if st.state != "revoked":
                        raise RuntimeError(f"revocation left the certificate {st.state}")

                step = len(bundles) / revocations
                picks = [bundles[int(i * step)] for i in range(revocations)]
                rev = revocation_visibility(mirror, picks, revoke)
        finally:
            mirror.close()
    total = [call + seen for call, seen in zip(rev.call_ms, rev.visible_ms, strict=True)]
    out.update(
        revocation_visibility_p50_ms=rev.p(50),
        revocation_visibility_p99_ms=rev.p(99),
        revocation_visibility_max_ms=rev.p(100),
        revocation_call_p50_ms=_p(rev.call_ms, 50),
        revocation_from_call_p50_ms=_p(total, 50),
        revocation_from_call_p99_ms=_p(total, 99),
        revocations=rev.revocations,
        revocations_seen=len(rev.visible_ms),
        revocation_timeouts=rev.timeouts,
        revocation_error_samples=rev.error_samples,
        mirror_poll_interval_s=rev.poll_interval_s,
    )
    return out


def run_ledger_bench(
    count: int = 2000,
    concurrency: int = 64,
    *,
    workdir: Path,
    revocations: int = 40,
    anchor_window_ms: int = 200,
    verify_rounds: int = 5,
    time_limit_s: float = 600.0,
) -> dict[str, Any]:
    """Run the three measurements in ``workdir``; returns the ``"ledger"`` section."""
    if count < 2 or not 1 <= revocations <= count:
        raise ValueError("need count >= 2 and 1 <= revocations <= count")
    workdir.mkdir(parents=True, exist_ok=True)
    hss = workdir / "hss.sqlite"
    make_hss(hss, count + 16)
    subs = subscribers(hss, count + 8)
    machine = MachineContext.start()
    log = DeliveryLog()
    with ServerProcesses(
        workdir / "cluster", hss, ledger=True, anchor_window_ms=anchor_window_ms
    ) as servers:
        pids = {name: p.pid for name, p in servers.named.items()}
        cpu0 = {k: process_cpu_seconds(p) or 0.0 for k, p in pids.items()}
        client0 = self_cpu_seconds()
        run = asyncio.run(
            drive(
                f"127.0.0.1:{servers.cms_port}",
                (servers.cluster.tls_dir / "ca.pem").read_bytes(),
                subs,
                concurrency,
                on_enrolled=log,
                time_limit_s=time_limit_s,
            )
        )
        cpu = {k: (process_cpu_seconds(p) or 0.0) - cpu0[k] for k, p in pids.items()}
        cpu["client"] = self_cpu_seconds() - client0
        # The load is over: every delivered certificate is anchored, the CA's tables are final.
        stats = anchoring_stats(
            log.deliveries,
            read_ca_records(servers.ca_state_dir / "issued.sqlite"),
            run.started_wall,
        )
        if len(log.bundles) < max(2, revocations):
            raise RuntimeError(
                f"only {len(log.bundles)} enrollments succeeded ({run.error_samples}); "
                f"see the logs in {servers.work}"
            )
        sdk = _sdk_phase(servers, log.bundles, workdir, revocations, verify_rounds)
    cpu_ms = {k: round(v / max(stats.anchored, 1) * 1000, 3) for k, v in cpu.items()}
    verify_met = sdk["sdk_verify_per_s"] >= SDK_VERIFY_TARGET_PER_S
    p99 = sdk["revocation_visibility_p99_ms"]
    result: dict[str, Any] = {
        **summary(stats),
        "enrolled_per_s": run.per_s,
        "enroll_p50_ms": run.p50_ms,
        "enroll_p99_ms": run.p99_ms,
        "count": run.count,
        "ok": run.ok,
        "errors": run.errors,
        "skipped": run.skipped,
        "error_samples": run.error_samples,
        "concurrency": concurrency,
        "anchor_window_ms": anchor_window_ms,
        "load_elapsed_s": run.elapsed_s,
        "cpu_ms_per_cert": cpu_ms,
        **sdk,
        "sdk_verify_target_per_s": SDK_VERIFY_TARGET_PER_S,
        "sdk_verify_target_met": verify_met,
        "sdk_verify_first_sight_target_met": (
            sdk["sdk_verify_first_sight_per_s"] >= SDK_VERIFY_TARGET_PER_S
        ),
        "revocation_visibility_target_p99_ms": REVOCATION_VISIBILITY_TARGET_P99_MS,
        "revocation_visibility_target_met": (
            p99 is not None
            and sdk["revocation_timeouts"] == 0
            and p99 <= REVOCATION_VISIBILITY_TARGET_P99_MS
        ),
    }
    result["machine"] = machine.finish().as_dict()
    return result


def failures(result: dict[str, Any]) -> int:
    """Everything that went wrong in a run (not targets missed)."""
    return int(
        result["errors"]
        + result["skipped"]
        + result["inconsistent"]
        + result["sdk_verify_errors"]
        + result["revocation_timeouts"]
        + len(result["revocation_error_samples"])
    )


def print_result(result: dict[str, Any]) -> None:
    print_table(
        [
            {"measure": "issued (CA signing, with anchoring)", "per_s": result["issued_per_s"],
             "count": result["issued"]},
            {"measure": "anchored (issue → anchor ack)", "per_s": result["anchored_per_s"],
             "p50_ms": result["anchor_delay_p50_ms"], "p99_ms": result["anchor_delay_p99_ms"],
             "count": result["anchored"]},
            {"measure": "SDK verify, 1 core, seen before", "per_s": result["sdk_verify_per_s"],
             "count": result["sdk_verify_certificates"],
             "target": f">= {result['sdk_verify_target_per_s']}/s",
             "met": result["sdk_verify_target_met"]},
            {"measure": "SDK verify, 1 core, first sight",
             "per_s": result["sdk_verify_first_sight_per_s"],
             "count": result["sdk_verify_certificates"] - 1,
             "target": f">= {result['sdk_verify_target_per_s']}/s",
             "met": result["sdk_verify_first_sight_target_met"]},
            {"measure": "revocation visible in mirror",
             "p50_ms": result["revocation_visibility_p50_ms"],
             "p99_ms": result["revocation_visibility_p99_ms"],
             "count": result["revocations_seen"],
             "target": f"p99 <= {result['revocation_visibility_target_p99_ms']} ms",
             "met": result["revocation_visibility_target_met"]},
        ]
    )
    print(
        f"anchored/issued = {result['anchored_to_issued_ratio']} over "
        f"{result['batches']} batches (mean {result['batch_size_mean']} certificates, window "
        f"{result['anchor_window_ms']} ms); enrollment p50 {result['enroll_p50_ms']} ms; "
        f"CPU ms per ppCert: {result['cpu_ms_per_cert']}"
    )


def _parser() -> argparse.ArgumentParser:
    from bench.cli import add_ledger_arguments

    p = argparse.ArgumentParser(prog="mpkix bench ledger", description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    add_ledger_arguments(p)
    return p


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run the benchmark (options of ``mpkix bench ledger``), write the section, print a table."""
    ns = args if isinstance(args, argparse.Namespace) else _parser().parse_args(args)
    results = Path(getattr(ns, "results", None) or LATEST_RESULTS)
    given = getattr(ns, "workdir", None)
    if given is None:
        Path(".bench-tmp").mkdir(exist_ok=True)
    with (
        contextlib.nullcontext(str(given))
        if given is not None
        else tempfile.TemporaryDirectory(prefix="ledger-", dir=".bench-tmp")
    ) as work:
        result = run_ledger_bench(
            ns.count,
            ns.concurrency,
            workdir=Path(work),
            revocations=getattr(ns, "revocations", 40),
            anchor_window_ms=getattr(ns, "anchor_window_ms", 200),
            verify_rounds=getattr(ns, "verify_rounds", 5),
            time_limit_s=getattr(ns, "time_limit", 600.0),
        )
    merge_results(results, "ledger", result)
    print_result(result)
    print(f"results: {results} (section \"ledger\")")
    return 0 if failures(result) == 0 else 1
