"""Compile ``CertificateRegistry.vy`` with the ``vyper`` package and write or check the artifact.

Usage::

    python -m ledger.contracts.compile            # (re)write build/CertificateRegistry.json
    python -m ledger.contracts.compile --check    # exit 1 when the committed artifact is stale
    python -m ledger.contracts.compile --evm-version prague --output /tmp/registry.json

The artifact is JSON with sorted keys, so a fresh compile of unchanged source reproduces it
byte for byte (ARCHITECTURE.md §2.4: the committed ABI and bytecode must match the source).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from ledger.contracts import (
    ARTIFACT_PATH,
    CONTRACT_NAME,
    DEFAULT_EVM_VERSION,
    SOURCE_PATH,
)

__all__ = [
    "OPTIMIZE",
    "artifact_is_current",
    "build_artifact",
    "compile_source",
    "main",
    "render_artifact",
]

OPTIMIZE = "gas"


def compile_source(source: str, evm_version: str = DEFAULT_EVM_VERSION) -> dict[str, Any]:
    """Compile Vyper ``source`` for ``evm_version``: abi, deploy and runtime bytecode."""
    import vyper
    from vyper.compiler.settings import OptimizationLevel, Settings

    settings = Settings(evm_version=evm_version, optimize=OptimizationLevel.from_string(OPTIMIZE))
    out: dict[str, Any] = vyper.compile_code(
        source,
        output_formats=["abi", "bytecode", "bytecode_runtime"],
        settings=settings,
    )
    return out


def build_artifact(
    source_path: Path = SOURCE_PATH, evm_version: str = DEFAULT_EVM_VERSION
) -> dict[str, Any]:
    """The artifact document for the contract at ``source_path``."""
    import vyper

    source_bytes = source_path.read_bytes()
    out = compile_source(source_bytes.decode("utf-8"), evm_version)
    return {
        "contract_name": CONTRACT_NAME,
        "source_path": f"ledger/contracts/{source_path.name}",
        "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
        "compiler": "vyper",
        "vyper_version": vyper.__version__,
        "evm_version": evm_version,
        "optimize": OPTIMIZE,
        "abi": out["abi"],
        "bytecode": out["bytecode"],
        "bytecode_runtime": out["bytecode_runtime"],
    }


def render_artifact(artifact: dict[str, Any]) -> str:
    """Deterministic JSON text of an artifact (sorted keys, two-space indent, final newline)."""
    return json.dumps(artifact, sort_keys=True, indent=2) + "\n"


def artifact_is_current(path: Path, fresh_text: str) -> bool:
    """Whether the artifact file at ``path`` is byte for byte ``fresh_text``."""
    try:
        return path.read_text(encoding="utf-8") == fresh_text
    except FileNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ledger.contracts.compile``."""
    parser = argparse.ArgumentParser(
        prog="python -m ledger.contracts.compile",
        description=f"Compile {SOURCE_PATH.name} and write or check its JSON artifact.",
    )
    parser.add_argument("--evm-version", default=DEFAULT_EVM_VERSION, help="EVM target fork")
    parser.add_argument("--source", type=Path, default=SOURCE_PATH, help="Vyper source file")
    parser.add_argument("--output", type=Path, default=ARTIFACT_PATH, help="artifact path")
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare a fresh compile with the artifact instead of writing it; exit 1 on a diff",
    )
    args = parser.parse_args(argv)

    text = render_artifact(build_artifact(args.source, args.evm_version))
    output: Path = args.output
    if args.check:
        if not artifact_is_current(output, text):
            print(
                f"{output} is stale: run `python -m ledger.contracts.compile` and commit it",
                file=sys.stderr,
            )
            return 1
        print(f"{output} matches {args.source.name}")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
