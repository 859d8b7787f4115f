"""Generate the Python protobuf/gRPC modules and their typed stubs from ``protos/``.

protoc runs from the repository root with ``-I protos`` so generated modules import each
other as ``mpkix.v1.x_pb2`` (the package path mirrors the proto package ``mpkix.v1``).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "protos"


def proto_files() -> list[Path]:
    """All ``.proto`` sources, sorted for reproducible output."""
    return sorted(PROTO_ROOT.glob("mpkix/v1/*.proto"))


def generate(out_dir: Path) -> None:
    """Run protoc (grpc_tools) with the mypy-protobuf plugins into ``out_dir``."""
    import grpc_tools
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}")


def generated_files(root: Path) -> dict[str, bytes]:
    """Map of relative path -> content for every generated file under ``root/mpkix/v1``."""
    base = root / "mpkix" / "v1"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(base.iterdir())
        if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"))
    }


def main() -> int:
    generate(REPO_ROOT)
    init = REPO_ROOT / "mpkix" / "v1" / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated protobuf and gRPC modules (do not edit; `make proto`)."""\n')
    print(f"generated {len(generated_files(REPO_ROOT))} files from {len(proto_files())} protos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
