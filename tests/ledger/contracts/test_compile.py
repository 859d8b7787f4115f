"""The committed artifact matches a fresh compile of the Vyper source (ARCHITECTURE §2.4)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import vyper

import ledger.contracts.compile as compile_module
from ledger.contracts import (
    ARTIFACT_PATH,
    DEFAULT_EVM_VERSION,
    SOURCE_PATH,
    load_artifact,
)
from ledger.contracts.compile import (
    artifact_is_current,
    build_artifact,
    compile_source,
    main,
    render_artifact,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def fresh_text() -> str:
    return render_artifact(build_artifact())


def test_committed_artifact_equals_a_fresh_compile(fresh_text: str) -> None:
    assert ARTIFACT_PATH.read_text(encoding="utf-8") == fresh_text


def test_staleness_check_spots_any_difference(tmp_path: Path, fresh_text: str) -> None:
    assert artifact_is_current(ARTIFACT_PATH, fresh_text)
    doc = json.loads(fresh_text)
    doc["bytecode"] = doc["bytecode"][:-2] + ("00" if doc["bytecode"][-2:] != "00" else "01")
    stale = tmp_path / "stale.json"
    stale.write_text(render_artifact(doc), encoding="utf-8")
    assert not artifact_is_current(stale, fresh_text)
    assert not artifact_is_current(tmp_path / "missing.json", fresh_text)
    # same content, different formatting: still stale (the artifact is byte-for-byte)
    stale.write_text(json.dumps(json.loads(fresh_text)), encoding="utf-8")
    assert not artifact_is_current(stale, fresh_text)


def test_artifact_names_its_source_by_hash(tmp_path: Path) -> None:
    edited = tmp_path / "CertificateRegistry.vy"
    edited.write_text(SOURCE_PATH.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert load_artifact().matches_source()
    assert not load_artifact().matches_source(edited)


def test_module_entry_point_check(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "ledger.contracts.compile", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr


def test_write_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "build" / "shanghai.json"
    assert main(["--evm-version", "shanghai", "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    art = load_artifact(out)
    assert art.evm_version == "shanghai"
    assert art.bytecode != load_artifact().bytecode  # shanghai has no MCOPY
    assert artifact_is_current(out, out.read_text(encoding="utf-8"))


def test_check_exit_codes(
    tmp_path: Path,
    fresh_text: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # reuse the module's fresh compile instead of compiling again for every case
    monkeypatch.setattr(compile_module, "build_artifact", lambda *a: json.loads(fresh_text))
    out = tmp_path / "a.json"
    assert main(["--check", "--output", str(out)]) == 1  # missing
    assert "stale" in capsys.readouterr().err
    assert main(["--output", str(out)]) == 0
    assert main(["--check", "--output", str(out)]) == 0
    assert "matches" in capsys.readouterr().out
    out.write_text(fresh_text.replace('"gas"', '"codesize"'), encoding="utf-8")
    assert main(["--check", "--output", str(out)]) == 1


def test_unknown_evm_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="frontier"):
        compile_source("# pragma version 0.4.3\n", "frontier")


def test_loader_reads_the_committed_artifact() -> None:
    art = load_artifact()
    assert art is load_artifact()  # cached
    assert art.contract_name == "CertificateRegistry"
    assert art.vyper_version == vyper.__version__ == "0.4.3"
    assert art.evm_version == DEFAULT_EVM_VERSION == "cancun"
    assert art.optimize == "gas"
    assert art.source_sha256 == hashlib.sha256(SOURCE_PATH.read_bytes()).hexdigest()
    assert art.matches_source()
    assert art.runtime_bytecode and art.bytecode.startswith(art.bytecode[:4])
    assert art.runtime_bytecode in art.bytecode
    # EIP-170: deployed code must stay under 24,576 bytes
    assert len(art.runtime_bytecode) < 24_576
    names = {e.get("name") for e in art.abi}
    for name in (
        "anchor_batch",
        "batch_of_root",
        "batch",
        "revoke",
        "suspend",
        "resume",
        "status_of",
        "is_validator",
        "is_trust_anchor",
        "propose_add_validator",
        "approve",
        "BatchAnchored",
        "CertificateRevoked",
        "CertificateSuspended",
        "CertificateResumed",
        "ValidatorAdded",
        "ValidatorRemoved",
        "TrustAnchorAdded",
        "TrustAnchorRemoved",
        "ProposalCreated",
        "ProposalApproved",
        "ProposalExecuted",
        "ThresholdChanged",
    ):
        assert name in names, name
    # no overloaded functions: every name is unique, so callers can select by name
    fn_names = [e["name"] for e in art.abi if e.get("type") == "function"]
    assert len(fn_names) == len(set(fn_names))


def test_loader_rejects_a_malformed_artifact(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"abi": []}', encoding="utf-8")
    with pytest.raises(KeyError):
        load_artifact(bad)
