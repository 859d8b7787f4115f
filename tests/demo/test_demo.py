"""``mpkix demo`` (what ``make demo`` runs) on a small HSS: the whole story, and its artifacts
checked independently of what the demo says about itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from mpkix.profile.ppcert import parse_ppcert
from mpkix.v1 import common_pb2

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    done = subprocess.run(
        [sys.executable, "-m", "mpkix", "demo", "--out", str(out), "--subscribers", "3000"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _ias_verify(out: Path, label: str) -> tuple[int, dict[str, object]]:
    """Offline verification from the mirror the demo's ``mpkix ias verify`` left behind."""
    done = subprocess.run(
        [
            sys.executable, "-m", "mpkix", "ias", "verify", str(out / f"bundle-{label}.pb"),
            "--mirror-db", str(out / "ias-cli-mirror.sqlite"), "--max-staleness", "3600",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    return done.returncode, json.loads(done.stdout)


def test_artifacts_are_real_ppcerts_under_the_demo_ca(demo: Path) -> None:
    ca = x509.load_pem_x509_certificates((demo / "ca-chain.pem").read_bytes())
    assert [c.subject for c in x509.load_pem_x509_certificates((demo / "ca.pem").read_bytes())] == [
        ca[-1].subject
    ]
    issuing = ca[0]
    for label in ("adult", "minor"):
        cert = x509.load_pem_x509_certificate((demo / f"ppcert-{label}.pem").read_bytes())
        pub = issuing.public_key()
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        assert cert.signature_hash_algorithm is not None
        algo = ec.ECDSA(cert.signature_hash_algorithm)
        pub.verify(cert.signature, cert.tbs_certificate_bytes, algo)
        bundle = common_pb2.CertificateBundle.FromString((demo / f"bundle-{label}.pb").read_bytes())
        assert x509.load_der_x509_certificate(bundle.certificate_der) == cert
        assert bundle.HasField("inclusion") and bundle.inclusion.root
        assert parse_ppcert(cert).subject_id.startswith("pp-")


def test_story_and_summary(demo: Path) -> None:
    summary = json.loads((demo / "summary.json").read_text())
    ias = summary["ias"]
    assert ias["story_holds"] is True
    assert ias["adult_admitted_before"] is True and ias["adult_admitted_after"] is False
    assert "PERMISSION_DENIED" in ias["refusal"]
    assert [r["state"] for r in ias["revocation"]] == ["revoked"]
    assert summary["users"]["adult"]["age"] >= 18 > summary["users"]["minor"]["age"]
    assert not summary["users"]["adult"]["pii_in_certificate"]
    before = json.loads((demo / "verify-adult-before.json").read_text())
    after = json.loads((demo / "verify-adult-after.json").read_text())
    assert before["valid"] is True and after["valid"] is False and after["reason"] == "REVOKED"


def test_left_mirror_refuses_the_revoked_user_and_accepts_the_other(demo: Path) -> None:
    rc, verdict = _ias_verify(demo, "adult")
    assert (rc, verdict["reason"]) == (1, "REVOKED")
    rc, verdict = _ias_verify(demo, "minor")
    assert (rc, verdict["valid"]) == (0, True)
