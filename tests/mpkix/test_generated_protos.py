"""The committed generated code in mpkix/v1 must match what protoc makes from protos/ now."""

from __future__ import annotations

from pathlib import Path

from mpkix._internal.protogen import REPO_ROOT, generate, generated_files


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = generated_files(tmp_path)
    committed = generated_files(REPO_ROOT)
    assert fresh, "protoc generated nothing"
    stale = sorted(p for p in fresh if committed.get(p) != fresh[p])
    extra = sorted(set(committed) - set(fresh))
    assert not stale, f"stale generated files, run `make proto`: {stale}"
    assert not extra, f"generated files without a .proto: {extra}"


def test_generated_modules_import_by_package_path() -> None:
    from mpkix.v1 import enrollment_pb2, issuance_pb2_grpc

    assert enrollment_pb2.DESCRIPTOR.package == "mpkix.v1"
    assert hasattr(issuance_pb2_grpc, "IssuanceStub")
