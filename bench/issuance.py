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
from pathlib import Path
from typing import Any

from bench._common import (
    LATEST_RESULTS,
    MachineContext,
    merge_results,
    print_table,
    process_cpu_seconds,
    self_cpu_seconds,
)
from bench._load import ServerProcesses, drive, make_hss, subscribers


def run_issuance_bench(
    count: int = 3000, concurrency: int = 64, workdir: Path | None = None, cfssl: bool = True
) -> dict[str, Any]:
    work = workdir or Path(".bench-tmp") / f"issuance-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    hss = work / "hss.sqlite"
    make_hss(hss, count + 16)
    subs = subscribers(hss, count + 8)
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
            drive(
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
        cfssl_per_min = baseline["cfssl_per_min"]
        result["ratio_vs_cfssl"] = (
            round(mpkix_per_min / cfssl_per_min, 3) if cfssl_per_min else None
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
