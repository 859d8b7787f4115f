"""The ledger benchmark at tiny sizes on a real cluster: the section it writes has every key with
plausible values (not a timing assertion)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import ledger
from bench._common import read_results

PUBLIC_KEYS = (
    "anchored_per_s",
    "anchor_delay_p99_ms",
    "sdk_verify_per_s",
    "revocation_visibility_p99_ms",
)
COUNT, REVOCATIONS = 24, 4


def test_ledger_bench_writes_a_plausible_section(tmp_path: Path) -> None:
    results = tmp_path / "latest.json"
    results.write_text(json.dumps({"issuance": {"kept": True}}))
    rc = ledger.main(
        [
            "--count", str(COUNT), "--concurrency", "8", "--revocations", str(REVOCATIONS),
            "--verify-rounds", "2", "--time-limit", "120",
            "--results", str(results), "--workdir", str(tmp_path / "work"),
        ]
    )
    assert rc == 0
    document = read_results(results)
    assert document["issuance"] == {"kept": True}  # other sections untouched
    s = document["ledger"]
    for key in (*PUBLIC_KEYS, "anchor_delay_p50_ms", "revocation_visibility_p50_ms",
                "issued_per_s", "sdk_verify_first_sight_per_s"):
        assert isinstance(s[key], float) and s[key] > 0, key
    assert s["anchor_delay_p99_ms"] >= s["anchor_delay_p50_ms"]
    assert s["revocation_visibility_p99_ms"] >= s["revocation_visibility_p50_ms"]
    assert s["bundle_delay_p50_ms"] >= s["anchor_delay_p50_ms"]  # the ack precedes every bundle
    assert 0 < s["anchored_to_issued_ratio"] <= 1.0
    assert s["count"] == s["ok"] == s["delivered"] == s["issued"] == s["anchored"] == COUNT
    assert s["errors"] == s["skipped"] == s["inconsistent"] == 0
    assert s["batches"] >= 1 and s["batch_size_max"] <= COUNT
    assert s["sdk_verify_certificates"] == COUNT and s["sdk_verify_errors"] == 0
    assert s["revocations"] == s["revocations_seen"] == REVOCATIONS
    assert s["revocation_timeouts"] == 0
    assert s["sdk_verify_target_per_s"] == 5000
    assert s["revocation_visibility_target_p99_ms"] == 2000
    assert isinstance(s["sdk_verify_target_met"], bool)
    assert isinstance(s["revocation_visibility_target_met"], bool)
    assert s["machine"]["cpu_count"] >= 1 and s["machine"]["finished_at"]
