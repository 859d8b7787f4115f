"""Shared benchmark helpers: percentiles, timing, CPU accounting, machine context, results file.

Every benchmark writes one section of ``bench/results/latest.json`` (ARCHITECTURE.md §5: the
baseline and MPKIX are compared within one run, so each section carries the machine context it
was measured under: cores, load average, CPU busy from other work).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATEST_RESULTS = RESULTS_DIR / "latest.json"

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 ≤ q ≤ 100) of ``values`` by linear interpolation.

    Same definition as numpy's default (Hyndman–Fan type 7): rank ``(n - 1) * q / 100``
    interpolated between the two nearest order statistics.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if math.isnan(q) or not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within [0, 100], got {q!r}")
    ordered = sorted(values)
    if any(math.isnan(v) for v in ordered):
        raise ValueError("percentile input contains NaN")
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    fraction = rank - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


# --------------------------------------------------------------------------- timing


class Stopwatch:
    """Monotonic wall-clock timer (``time.perf_counter``); usable as a context manager."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._stop: float | None = None

    def start(self) -> Stopwatch:
        self._start = time.perf_counter()
        self._stop = None
        return self

    def stop(self) -> float:
        """Stop the timer and return the elapsed seconds."""
        if self._start is None:
            raise RuntimeError("Stopwatch.stop() before start()")
        self._stop = time.perf_counter()
        return self._stop - self._start

    @property
    def elapsed(self) -> float:
        """Seconds since start (up to stop, if stopped)."""
        if self._start is None:
            raise RuntimeError("Stopwatch not started")
        end = self._stop if self._stop is not None else time.perf_counter()
        return end - self._start

    def __enter__(self) -> Stopwatch:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def rate(count: int, seconds: float) -> float:
    """Events per second; ``0.0`` for a zero-length interval rather than a division error."""
    return count / seconds if seconds > 0 else 0.0


# --------------------------------------------------------------------------- CPU accounting


def self_cpu_seconds() -> float:
    """User + system CPU seconds consumed so far by this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (from ``/proc/<pid>/stat``); None if unreadable."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may contain spaces: split after it.
    fields = raw[raw.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True)
class SystemCpuSample:
    """Aggregate busy and total jiffies from the ``cpu`` line of ``/proc/stat``."""

    busy: int
    total: int

    @classmethod
    def take(cls) -> SystemCpuSample | None:
        try:
            with open("/proc/stat") as stat:
                first = stat.readline().split()
        except OSError:
            return None
        if not first or first[0] != "cpu":
            return None
        numbers = [int(x) for x in first[1:]]
        idle = numbers[3] + (numbers[4] if len(numbers) > 4 else 0)  # idle + iowait
        # guest time is already included in user/nice: count only the first 8 fields.
        total = sum(numbers[:8])
        return cls(busy=total - idle, total=total)

    def busy_cores_since(self, earlier: SystemCpuSample, cpu_count: int) -> float:
        """Average number of busy cores between ``earlier`` and this sample."""
        total = self.total - earlier.total
        if total <= 0:
            return 0.0
        return (self.busy - earlier.busy) / total * cpu_count


# --------------------------------------------------------------------------- machine context


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass
class MachineContext:
    """Where and under what load a benchmark ran: recorded with every results section."""

    started_at: str
    cpu_count: int
    usable_cpus: int
    python: str
    platform: str
    loadavg_start: list[float] | None
    loadavg_end: list[float] | None = None
    finished_at: str | None = None
    system_busy_cores: float | None = None
    _cpu_start: SystemCpuSample | None = field(default=None, repr=False)

    @classmethod
    def start(cls) -> MachineContext:
        return cls(
            started_at=_utc_now(),
            cpu_count=os.cpu_count() or 1,
            usable_cpus=_usable_cpus(),
            python=f"{platform.python_implementation()} {platform.python_version()}",
            platform=platform.platform(),
            loadavg_start=_loadavg(),
            _cpu_start=SystemCpuSample.take(),
        )

    def finish(self) -> MachineContext:
        """Record the end of the run: load average, time and average busy cores since start."""
        self.loadavg_end = _loadavg()
        self.finished_at = _utc_now()
        end = SystemCpuSample.take()
        if end is not None and self._cpu_start is not None:
            self.system_busy_cores = round(end.busy_cores_since(self._cpu_start, self.cpu_count), 3)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "cpu_count": self.cpu_count,
            "usable_cpus": self.usable_cpus,
            "python": self.python,
            "platform": self.platform,
            "loadavg_start": self.loadavg_start,
            "loadavg_end": self.loadavg_end,
            "system_busy_cores": self.system_busy_cores,
        }


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- results file


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Exclusive advisory ``flock`` on ``directory`` itself (no stray lock file), so two
    benchmark processes never lose each other's section."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_results(path: Path = LATEST_RESULTS) -> dict[str, Any]:
    """The results document at ``path``; ``{}`` if absent. Raises ValueError if it is not a JSON
    object (rather than silently overwriting other benchmarks' sections)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); refusing to overwrite it") from exc
    if not isinstance(document, dict):
        raise ValueError(f"{path} holds a JSON {type(document).__name__}, expected an object")
    return document


def merge_results(path: Path, section: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Replace only ``section`` of the results document at ``path`` and write it atomically.

    The file is rewritten through a temporary file in the same directory and ``os.replace``
    (atomic on POSIX), under an ``flock`` on the directory. Returns the merged document.
    """
    if not section:
        raise ValueError("results section name must not be empty")
    payload = json.loads(json.dumps(data))  # fail before touching the file if not serialisable
    with _locked(path.parent):
        document = read_results(path)
        document[section] = payload
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as tmp:
                json.dump(document, tmp, indent=2, sort_keys=True)
                tmp.write("\n")
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
    return document


# --------------------------------------------------------------------------- tables


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if magnitude < 0.01 and value != 0 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, object]]) -> str:
    """Plain-text table: columns are the union of the rows' keys in first-seen order; numbers
    right-aligned, text left-aligned, missing cells shown as ``-``."""
    if not rows:
        return "(no rows)"
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    numeric = [
        all(isinstance(row.get(column), int | float) or row.get(column) is None for row in rows)
        for column in columns
    ]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]

    def render(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [render(columns), "  ".join("-" * width for width in widths)]
    lines.extend(render(line) for line in cells)
    return "\n".join(lines)


def print_table(rows: Sequence[Mapping[str, object]], file: TextIO | None = None) -> None:
    """Print :func:`format_table` of ``rows`` (to stdout unless ``file`` is given)."""
    print(format_table(rows), file=file if file is not None else sys.stdout)
