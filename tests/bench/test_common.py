"""Tests for bench/_common.py: percentiles, timing, CPU accounting, results merge, tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import pytest

from bench._common import (
    MachineContext,
    Stopwatch,
    SystemCpuSample,
    format_table,
    merge_results,
    percentile,
    print_table,
    process_cpu_seconds,
    rate,
    read_results,
    self_cpu_seconds,
)

# --------------------------------------------------------------------------- percentile


def test_percentile_matches_statistics_inclusive_quantiles() -> None:
    data = [float(x * x % 37) + x / 7 for x in range(53)]
    cuts = statistics.quantiles(data, n=100, method="inclusive")  # also Hyndman–Fan type 7
    for q, expected in zip(range(1, 100), cuts, strict=True):
        assert percentile(data, q) == pytest.approx(expected)


def test_percentile_ends_and_single_value() -> None:
    data = [5.0, 1.0, 3.0, 9.0]
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 9.0
    assert percentile(data, 50) == 4.0
    assert percentile([2.5], 99) == 2.5


def test_percentile_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)


@pytest.mark.parametrize("q", [-0.1, 100.1, float("nan")])
def test_percentile_rejects_q_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0, 2.0], q)


def test_percentile_rejects_nan_values() -> None:
    with pytest.raises(ValueError, match="NaN"):
        percentile([1.0, float("nan"), 2.0], 50)


# --------------------------------------------------------------------------- timing


def test_stopwatch_measures_a_sleep() -> None:
    with Stopwatch() as watch:
        time.sleep(0.02)
    assert 0.02 <= watch.elapsed < 1.0
    frozen = watch.elapsed
    time.sleep(0.005)
    assert watch.elapsed == frozen  # stopped: no longer advancing


def test_stopwatch_misuse_raises() -> None:
    with pytest.raises(RuntimeError, match="before start"):
        Stopwatch().stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = Stopwatch().elapsed


def test_rate_handles_zero_interval() -> None:
    assert rate(10, 2.0) == 5.0
    assert rate(10, 0.0) == 0.0


# --------------------------------------------------------------------------- CPU accounting


def _spin(cpu_seconds: float, wall_limit: float = 20.0) -> None:
    """Burn ``cpu_seconds`` of this process's CPU (not wall time: the machine may be busy)."""
    start, deadline = time.process_time(), time.perf_counter() + wall_limit
    while time.process_time() - start < cpu_seconds and time.perf_counter() < deadline:
        pass


def test_cpu_counters_advance_while_busy() -> None:
    own_before = process_cpu_seconds(os.getpid())
    self_before = self_cpu_seconds()
    system_before = SystemCpuSample.take()
    _spin(0.1)
    own_after = process_cpu_seconds(os.getpid())
    assert own_before is not None and own_after is not None
    assert own_after - own_before >= 0.05
    assert self_cpu_seconds() - self_before >= 0.05
    system_after = SystemCpuSample.take()
    assert system_before is not None and system_after is not None
    cores = os.cpu_count() or 1
    assert 0.0 < system_after.busy_cores_since(system_before, cores) <= cores


def test_process_cpu_seconds_of_missing_process_is_none() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert process_cpu_seconds(pid_max + 1) is None


def test_machine_context_records_start_and_end() -> None:
    context = MachineContext.start()
    _spin(0.02)
    record = context.finish().as_dict()
    assert record["cpu_count"] == os.cpu_count()
    assert 1 <= record["usable_cpus"] <= record["cpu_count"]
    assert record["python"].endswith(platform.python_version())
    assert len(record["loadavg_start"]) == 3 and len(record["loadavg_end"]) == 3
    assert record["started_at"] <= record["finished_at"]
    assert record["system_busy_cores"] is not None
    json.dumps(record)  # serialisable as it goes into the results file


# --------------------------------------------------------------------------- results file


def test_merge_results_creates_then_replaces_only_its_section(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    merge_results(path, "issuance", {"per_s": 1.0})
    merge_results(path, "cfssl_baseline", {"per_s": 2.0})
    merged = merge_results(path, "cfssl_baseline", {"per_s": 3.0, "runs": [1, 2]})
    on_disk = json.loads(path.read_text())
    assert (
        on_disk
        == merged
        == {"issuance": {"per_s": 1.0}, "cfssl_baseline": {"per_s": 3.0, "runs": [1, 2]}}
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json"]


def test_concurrent_merges_lose_no_section(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"

    def writer(worker: int) -> None:
        for round_ in range(5):
            merge_results(path, f"w{worker}-{round_}", {"worker": worker, "round": round_})

    threads = [threading.Thread(target=writer, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    document = read_results(path)
    assert len(document) == 40
    assert document["w7-4"] == {"worker": 7, "round": 4}


def test_merge_results_refuses_to_overwrite_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text('{"issuance": {"per_s": 1.0')  # truncated
    with pytest.raises(ValueError, match="not valid JSON"):
        merge_results(path, "cfssl_baseline", {"per_s": 2.0})
    assert path.read_text() == '{"issuance": {"per_s": 1.0'


def test_merge_results_refuses_non_object_document(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected an object"):
        merge_results(path, "cfssl_baseline", {"per_s": 2.0})
    assert path.read_text() == "[1, 2]"


def test_merge_results_unserialisable_data_leaves_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    merge_results(path, "issuance", {"per_s": 1.0})
    before = path.read_text()
    with pytest.raises(TypeError):
        merge_results(path, "cfssl_baseline", {"when": object()})
    assert path.read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".latest.json.")]


def test_merge_results_rejects_empty_section(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="section"):
        merge_results(tmp_path / "latest.json", "", {"x": 1})


def test_read_results_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_results(tmp_path / "absent.json") == {}


# --------------------------------------------------------------------------- tables


def test_format_table_aligns_and_unions_columns() -> None:
    table = format_table(
        [
            {"system": "cfssl serve", "per_s": 2812.4, "ok": 3000},
            {"system": "mpkix", "per_s": 7.25, "p99_ms": None, "extra": True},
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["system", "per_s", "ok", "p99_ms", "extra"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["cfssl", "serve", "2,812", "3,000", "-", "-"]
    assert lines[3].split() == ["mpkix", "7.25", "-", "-", "yes"]
    # numeric columns are right-aligned: the values end where the header ends
    per_s_end = lines[0].index("per_s") + len("per_s")
    assert lines[2][:per_s_end].endswith("2,812") and lines[3][:per_s_end].endswith("7.25")


def test_format_table_of_no_rows() -> None:
    assert format_table([]) == "(no rows)"


def test_print_table_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    print_table([{"a": 1}])
    assert capsys.readouterr().out.splitlines()[-1].strip() == "1"
