"""``mpkix cma …`` as a person runs it: provision, enroll, list, revoke (suspend, resume, revoke)
against real CMS, CA and ledger nodes; every failure exits non-zero with a message to act on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from deploy.local import LocalCluster
from tests.conftest import OPERATOR, subscribers

REPO = Path(__file__).resolve().parents[2]
PIN = "cli-pin-2468"


def cma(*args: str, pin: str | None = PIN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MPKIX_TEST_PIN"}
    if pin is not None:
        env["MPKIX_TEST_PIN"] = pin
    return subprocess.run(
        [sys.executable, "-m", "mpkix", "cma", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO, env=env,
        stdin=subprocess.DEVNULL,
    )


def _cms(c: LocalCluster) -> list[str]:
    return ["--cms", f"127.0.0.1:{c.cms_ports[OPERATOR]}", "--tls-ca", str(c.tls_dir / "ca.pem")]


def test_provision_enroll_list_and_life_cycle(ledger_cluster: LocalCluster, tmp_path: Path) -> None:
    c = ledger_cluster
    sub = subscribers(c.operators[0].hss_db, 1, offset=80)[0]
    phone, out = tmp_path / "phone", tmp_path / "certs"
    done = cma("provision", "--dir", str(phone), "--hss", str(c.operators[0].hss_db),
               "--imsi", sub.imsi)
    assert done.returncode == 0, done.stderr
    assert sub.imsi not in done.stdout  # the IMSI is not printed whole

    root = c.workdir / "ca" / "ca" / "root-ca.cert.pem"
    done = cma("enroll", "--dir", str(phone), *_cms(c), "--pin-env", "MPKIX_TEST_PIN",
               "--out", str(out), "--label", "alice", "--trust-ca", str(root))
    assert done.returncode == 0, done.stderr
    enrolled = json.loads(done.stdout)
    cert = x509.load_pem_x509_certificate((out / "ppcert-alice.pem").read_bytes())
    assert format(cert.serial_number, "x") == enrolled["serial"]
    key = serialization.load_pem_private_key((out / "key-alice.pem").read_bytes(), PIN.encode())
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    with pytest.raises((TypeError, ValueError)):  # the exported key is encrypted under the PIN
        serialization.load_pem_private_key((out / "key-alice.pem").read_bytes(), None)

    done = cma("list", "--dir", str(phone))
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [r["subject_id"] for r in listed] == [enrolled["subject_id"]]
    assert listed[0]["operator"] == OPERATOR

    subject = enrolled["subject_id"]
    for extra, state, reason in (
        (["--suspend"], "suspended", 6),
        (["--resume"], "active", 8),
        (["--reason", "1"], "revoked", 1),
    ):
        done = cma("revoke", "--dir", str(phone), *_cms(c), "--subject", subject, *extra)
        assert done.returncode == 0, done.stderr
        [row] = json.loads(done.stdout)
        assert (row["subject_id"], row["state"], row["reason"]) == (subject, state, reason)
        assert row["tx"]
    done = cma("revoke", "--dir", str(phone), *_cms(c), "--subject", subject, "--resume")
    assert done.returncode == 1 and "FAILED_PRECONDITION" in done.stderr


def test_cli_failures_say_what_to_fix(ledger_cluster: LocalCluster, tmp_path: Path) -> None:
    c = ledger_cluster
    hss = str(c.operators[0].hss_db)
    p0 = str(tmp_path / "p0")
    done = cma("provision", "--dir", p0, "--hss", hss, "--imsi", "001019999999999")
    assert done.returncode == 1 and "is not in" in done.stderr

    sub = subscribers(c.operators[0].hss_db, 1, offset=81)[0]
    phone = tmp_path / "phone"
    assert cma("provision", "--dir", str(phone), "--hss", hss, "--imsi", sub.imsi).returncode == 0
    enroll = ["enroll", "--dir", str(phone), *_cms(c), "--pin-env", "MPKIX_TEST_PIN"]
    done = cma(*enroll, pin=None)
    assert done.returncode != 0 and "MPKIX_TEST_PIN is not set" in done.stderr
    done = cma(*enroll, "--attribute", "shoe-size")
    assert done.returncode == 1 and "unknown attribute 'shoe-size'" in done.stderr
    done = cma("enroll", "--dir", str(tmp_path / "nowhere"), *_cms(c), "--pin-env",
               "MPKIX_TEST_PIN")
    assert done.returncode == 1 and "mpkix cma enroll" in done.stderr
    done = cma("revoke", "--dir", str(phone), *_cms(c), "--subject", "pp-not-mine")
    assert done.returncode == 1 and "NOT_FOUND" in done.stderr
    # Nothing half-done: the failed enrollments installed nothing.
    done = cma("list", "--dir", str(phone))
    assert done.returncode == 0 and json.loads(done.stdout) == []
