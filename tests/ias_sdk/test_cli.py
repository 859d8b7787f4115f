"""``mpkix ias …`` against the real ledger node: verdicts as JSON and exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mpkix.cli import main
from tests.ias_sdk.support import Issued, World

REPO = Path(__file__).resolve().parents[2]


def ledger_args(world: World) -> list[str]:
    pki = world.pki
    return [
        "--ledger",
        world.target,
        "--tls-ca",
        str(pki / "ca.pem"),
        "--tls-cert",
        str(pki / "ias.pem"),
        "--tls-key",
        str(pki / "ias.key"),
    ]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    rc = main(["ias", *argv])
    out, err = capsys.readouterr()
    doc = json.loads(out) if out.strip() else None
    return rc, doc, err


@pytest.fixture(scope="module")
def issued(world: World) -> list[Issued]:
    return world.issue_batch(3)


def write_bundle(tmp_path: Path, who: Issued, name: str = "bundle.pb") -> Path:
    p = tmp_path / name
    p.write_bytes(who.bundle.SerializeToString())
    return p


def test_valid_bundle_exits_0(
    world: World, issued: list[Issued], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = write_bundle(tmp_path, issued[0])
    db = tmp_path / "mirror.sqlite"
    rc, doc, _ = run(capsys, "verify", str(bundle), *ledger_args(world), "--mirror-db", str(db))
    assert rc == 0
    assert doc["valid"] is True and doc["reason"] is None
    assert doc["subject"]["cert_hash"] == issued[0].cert_hash.hex()
    assert doc["subject"]["operator_id"] == "310-260"
    assert doc["mirror"]["chain_id"] == world.chain_id and doc["mirror"]["stale"] is False
    # Offline against the database just synced.
    rc, doc, _ = run(capsys, "verify", str(bundle), "--mirror-db", str(db))
    assert rc == 0 and doc["valid"] is True
    # Without a database the mirror is temporary and synced from scratch.
    rc, doc, _ = run(capsys, "verify", str(bundle), *ledger_args(world))
    assert rc == 0 and doc["valid"] is True


def test_invalid_verdicts_exit_1(
    world: World, issued: list[Issued], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "mirror.sqlite"
    pem = tmp_path / "cert.pem"
    pem.write_bytes(issued[1].tls_chain_pem())
    rc, doc, _ = run(capsys, "verify", str(pem), *ledger_args(world), "--mirror-db", str(db))
    assert (rc, doc["valid"], doc["reason"]) == (1, False, "NOT_ANCHORED")

    bundle = write_bundle(tmp_path, issued[1])
    rc, doc, _ = run(
        capsys,
        "verify",
        str(bundle),
        "--mirror-db",
        str(db),
        "--required-profile",
        "mss:mpkix:authn:loa4:sim",
        "--profile-mode",
        "minimum",
    )
    assert (rc, doc["reason"]) == (1, "PROFILE_MISMATCH")
    rc, doc, _ = run(
        capsys,
        "verify",
        str(bundle),
        "--mirror-db",
        str(db),
        "--required-profile",
        "mss:mpkix:authn:loa3:app",
        "--profile-mode",
        "exact",
    )
    assert rc == 0

    world.status_change("revoke", issued[2], 5)
    revoked = write_bundle(tmp_path, issued[2], "revoked.pb")
    rc, doc, _ = run(capsys, "verify", str(revoked), *ledger_args(world), "--mirror-db", str(db))
    assert (rc, doc["reason"]) == (1, "REVOKED") and doc["subject"] is None
    assert "cessationOfOperation" in doc["message"]

    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\x0a\xff\xff\xff")
    rc, doc, _ = run(capsys, "verify", str(junk), "--mirror-db", str(db))
    assert (rc, doc["reason"]) == (1, "MALFORMED")

    time.sleep(0.05)
    rc, doc, _ = run(
        capsys, "verify", str(bundle), "--mirror-db", str(db), "--max-staleness", "0.01"
    )
    assert (rc, doc["reason"]) == (1, "MIRROR_STALE")


def test_usage_errors_exit_2(
    world: World, issued: list[Issued], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = write_bundle(tmp_path, issued[0])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    pki = world.pki
    cases: list[list[str]] = [
        ["verify", str(tmp_path / "missing.pb"), *ledger_args(world)],
        ["verify", str(bundle)],  # neither --ledger nor --mirror-db
        ["verify", str(bundle), "--mirror-db", str(tmp_path / "none.sqlite")],
        ["verify", str(bundle), "--ledger", world.target],  # no TLS choice
        ["verify", str(bundle), "--ledger", world.target, "--plaintext", "--tls-ca", "x"],
        ["verify", str(bundle), *ledger_args(world), "--required-profile", "mss:x:y"],
        ["verify", str(bundle), *ledger_args(world), "--max-staleness", "0"],
        ["verify", str(bundle), *ledger_args(world), "--page-size", "0"],
        [
            "verify",
            str(bundle),
            "--ledger",
            world.target,
            "--tls-ca",
            str(pki / "ca.pem"),
            "--tls-cert",
            str(pki / "ias.pem"),
        ],
        [
            "verify",
            str(bundle),
            "--ledger",
            dead,
            "--tls-ca",
            str(pki / "ca.pem"),
            "--tls-cert",
            str(pki / "ias.pem"),
            "--tls-key",
            str(pki / "ias.key"),
            "--timeout",
            "2",
        ],
        ["mirror-sync", "--mirror-db", str(tmp_path / "x.sqlite")],
        ["mirror-status"],
    ]
    for argv in cases:
        rc, doc, err = run(capsys, *argv)
        assert rc == 2, argv
        assert doc is None and err.startswith("mpkix ias: "), (argv, err)
    with pytest.raises(SystemExit) as info:
        main(["ias", "verify", str(bundle), "--profile-mode", "sometimes"])
    assert info.value.code == 2


def test_mirror_sync_and_status(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "mirror.sqlite"
    rc, doc, _ = run(capsys, "mirror-sync", *ledger_args(world), "--mirror-db", str(db))
    assert rc == 0 and doc["cursor"] == world.source().status().event_cursor
    rc, doc, _ = run(capsys, "mirror-status", "--mirror-db", str(db))
    assert rc == 0
    assert doc["registry_address"] == "0x" + world.registry.hex()
    assert doc["counts"]["ca_anchors"] >= 2 and doc["counts"]["validators"] == 3
    assert doc["age_seconds"] is not None and doc["last_error"] is None
    time.sleep(0.05)
    rc, doc, _ = run(capsys, "mirror-status", "--mirror-db", str(db), "--max-staleness", "0.01")
    assert rc == 1 and doc["stale"] is True


def test_verify_as_a_process(world: World, issued: list[Issued], tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, issued[0])
    proc = subprocess.run(
        [sys.executable, "-m", "mpkix", "ias", "verify", str(bundle), *ledger_args(world)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["valid"] is True
