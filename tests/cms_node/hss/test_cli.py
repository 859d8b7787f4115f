"""``mpkix hss generate | show | stats`` (cms_node.hss.cli)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cms_node.hss.cli import register
from cms_node.hss.generator import default_op, generate
from cms_node.hss.sqlite_store import SqliteSubscriberStore
from mpkix.aka.milenage import compute_opc

COUNT = 500
SEED = 314

# The same entry point mpkix.cli.main uses, reduced to this group (cms_node.cli wires it).
_RUNNER = """
import argparse, sys
from cms_node.hss.cli import register
parser = argparse.ArgumentParser(prog="mpkix")
register(parser.add_subparsers(dest="group", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mpkix")
    register(parser.add_subparsers(dest="group", required=True))
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "hss.sqlite"
    assert run("hss", "generate", "--count", str(COUNT), "--seed", str(SEED), "--db", str(path),
               "--no-progress") == 0  # fmt: skip
    return path


def test_generate_writes_complete_database(db: Path) -> None:
    assert not Path(str(db) + ".tmp").exists()
    assert not Path(str(db) + "-wal").exists()  # closed and checkpointed before the rename
    store = SqliteSubscriberStore(db, create=False)
    try:
        assert store.count() == COUNT
        assert list(store.iter_all()) == sorted(generate(COUNT, SEED), key=lambda s: s.imsi)
        assert store.get_meta("seed") == str(SEED) and store.get_meta("mnc") == "260"
    finally:
        store.close()


def test_generate_prints_summary_and_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.sqlite"
    assert run("hss", "generate", "--count", "120", "--seed", "1", "--db", str(path)) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("generated 120 subscribers into")
    assert "seed=1" in lines[0] and "mnc=260" in lines[0]
    assert "generating" in err and "120/120" in err  # the tqdm bar goes to stderr


def test_refuses_to_overwrite_populated_database(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sha256(db)
    assert run("hss", "generate", "--count", "10", "--seed", "9", "--db", str(db),
               "--no-progress") == 1  # fmt: skip
    assert "already holds 500 subscribers" in capsys.readouterr().err
    assert sha256(db) == before


def test_force_replaces_database(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite"
    assert run("hss", "generate", "--count", "50", "--seed", "1", "--db", str(path),
               "--no-progress") == 0  # fmt: skip
    # Leave a live WAL behind, as a crashed CMS would: it must not be replayed into the new file.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("UPDATE subscribers SET sqn = sqn + 32")
    conn.commit()
    wal = Path(str(path) + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    saved_wal = wal.read_bytes()
    conn.close()  # (closing checkpoints; put the WAL back to simulate the crash)
    wal.write_bytes(saved_wal)
    assert run("hss", "generate", "--count", "30", "--seed", "2", "--db", str(path),
               "--no-progress", "--force") == 0  # fmt: skip
    store = SqliteSubscriberStore(path, create=False)
    try:
        assert store.count() == 30
        assert list(store.iter_all()) == sorted(generate(30, 2), key=lambda s: s.imsi)
    finally:
        store.close()


def test_refuses_non_hss_file_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("precious data\n" * 100)
    assert run("hss", "generate", "--count", "5", "--seed", "1", "--db", str(path)) == 1
    assert "not an HSS database" in capsys.readouterr().err
    assert path.read_text() == "precious data\n" * 100


def test_empty_database_may_be_filled(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    SqliteSubscriberStore(path).close()  # schema, no subscribers
    assert run("hss", "generate", "--count", "5", "--seed", "1", "--db", str(path),
               "--no-progress") == 0  # fmt: skip


def test_explicit_op_and_mnc(tmp_path: Path) -> None:
    path = tmp_path / "op.sqlite"
    op = "cdc202d5123e20f62b6d676ac72cb318"
    assert run("hss", "generate", "--count", "20", "--seed", "5", "--db", str(path), "--op", op,
               "--mnc", "41", "--no-progress") == 0  # fmt: skip
    store = SqliteSubscriberStore(path, create=False)
    try:
        subs = list(store.iter_all())
    finally:
        store.close()
    assert all(s.imsi.startswith("31041") for s in subs)
    assert all(s.opc == compute_opc(s.k, bytes.fromhex(op)) for s in subs)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--count", "0"], "--count"),
        (["--count", "-5"], "--count"),
        (["--count", "999999999"], "--count"),
        (["--mnc", "26a"], "--mnc"),
        (["--mnc", "2600"], "--mnc"),
        (["--op", "zz" * 16], "--op"),
        (["--op", "00" * 15], "--op"),
        (["--reference-date", "2025-13-01"], "--reference-date"),
    ],
)
def test_generate_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    path = tmp_path / "bad.sqlite"
    assert run("hss", "generate", "--seed", "1", "--db", str(path), *extra) == 2
    assert message in capsys.readouterr().err
    assert not path.exists() and not Path(str(path) + ".tmp").exists()


def test_generate_path_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("hss", "generate", "--count", "5", "--seed", "1", "--db", str(tmp_path)) == 2
    assert "is a directory" in capsys.readouterr().err
    missing = tmp_path / "no" / "such" / "dir" / "x.sqlite"
    assert run("hss", "generate", "--count", "5", "--seed", "1", "--db", str(missing)) == 2
    assert "does not exist" in capsys.readouterr().err


def test_generate_requires_seed_and_db(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run("hss", "generate", "--db", "x.sqlite")
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        run("hss", "generate", "--seed", "1")
    with pytest.raises(SystemExit):
        run("hss", "generate", "--seed", "one", "--db", "x.sqlite")
    capsys.readouterr()


def test_killed_generation_leaves_nothing_half_written(tmp_path: Path) -> None:
    path = tmp_path / "killed.sqlite"
    tmp = Path(str(path) + ".tmp")
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, "hss", "generate", "--count", "2000000", "--seed", "1",
         "--db", str(path), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        wal = Path(str(tmp) + "-wal")
        while sum(f.stat().st_size for f in (tmp, wal) if f.exists()) < 1_000_000:  # chunks in
            assert proc.poll() is None, "generator exited early"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not path.exists()  # nothing at the real path
    # The next run cleans up the leftovers and succeeds.
    assert run("hss", "generate", "--count", "10", "--seed", "1", "--db", str(path),
               "--no-progress") == 0  # fmt: skip
    assert not tmp.exists() and not Path(str(tmp) + "-wal").exists()
    store = SqliteSubscriberStore(path, create=False)
    try:
        assert store.count() == 10
    finally:
        store.close()


def test_show(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = list(generate(3, SEED))[2]
    assert run("hss", "show", "--db", str(db), "--imsi", expected.imsi) == 0
    record = json.loads(capsys.readouterr().out)
    assert record == expected.to_json_dict()
    assert len(record["k"]) == 32 and bytes.fromhex(record["opc"]) == expected.opc
    assert bytes.fromhex(record["opc"]) == compute_opc(bytes.fromhex(record["k"]), default_op(SEED))


def test_show_failures(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("hss", "show", "--db", str(db), "--imsi", "310260999999999") == 1
    assert "no subscriber" in capsys.readouterr().err
    assert run("hss", "show", "--db", str(db), "--imsi", "31026") == 2
    assert "15 digits" in capsys.readouterr().err
    missing = tmp_path / "missing.sqlite"
    assert run("hss", "show", "--db", str(missing), "--imsi", "310260999999999") == 1
    assert "no database" in capsys.readouterr().err
    assert not missing.exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"\x00junk" * 1000)
    assert run("hss", "show", "--db", str(junk), "--imsi", "310260999999999") == 1
    assert "not an SQLite database" in capsys.readouterr().err


def test_stats(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("hss", "stats", "--db", str(db), "--as-of", "2025-01-01") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == COUNT
    assert sum(summary["gender"].values()) == COUNT
    assert sum(summary["age_bands"].values()) == COUNT
    assert summary["meta"]["seed"] == str(SEED)
    assert 0.15 < summary["minors_share"] < 0.30


def test_stats_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("hss", "stats", "--db", str(tmp_path / "none.sqlite")) == 1
    assert "no database" in capsys.readouterr().err
    assert run("hss", "stats", "--db", str(tmp_path / "none.sqlite"), "--as-of", "soon") == 2
    assert "--as-of" in capsys.readouterr().err
