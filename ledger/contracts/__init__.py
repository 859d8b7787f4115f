"""The ``CertificateRegistry`` contract: committed build artifact, loader and shared constants.

The Vyper source is ``CertificateRegistry.vy``; ``python -m ledger.contracts.compile`` writes
``build/CertificateRegistry.json`` (ABI, deploy and runtime bytecode, compiler and EVM version,
source SHA-256). ``load_artifact()`` reads that file without needing the compiler.

Batch entries (docs/decisions/0401): a CA's Merkle tree (RFC 9162, ``mpkix.merkle``) has one
leaf per issued certificate whose entry is ``cert_hash ‖ operator_key_hash``
(``certificate_leaf_entry``): the SHA-256 of the certificate DER and the SHA-256 of the
endorsing operator key's SubjectPublicKeyInfo DER (32 zero bytes when no operator).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "ARTIFACT_PATH",
    "CONTRACT_NAME",
    "DEFAULT_EVM_VERSION",
    "MAX_PROOF_LENGTH",
    "MAX_TRUST_ANCHORS",
    "MAX_VALIDATORS",
    "NO_OPERATOR",
    "SOURCE_PATH",
    "CertState",
    "ContractArtifact",
    "ProposalKind",
    "RevocationReason",
    "Role",
    "certificate_leaf_entry",
    "load_artifact",
    "sha256",
]

CONTRACT_NAME = "CertificateRegistry"
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_PATH = PACKAGE_DIR / f"{CONTRACT_NAME}.vy"
ARTIFACT_PATH = PACKAGE_DIR / "build" / f"{CONTRACT_NAME}.json"
# Runs on py-evm 0.12.1b1 (latest fork Prague), anvil 1.7.1 and Besu; vyper 0.4.3 emits the same
# code for cancun and prague (docs/decisions/0404).
DEFAULT_EVM_VERSION = "cancun"

# Bounds fixed in the contract source.
MAX_VALIDATORS = 64
MAX_TRUST_ANCHORS = 256
MAX_PROOF_LENGTH = 64

NO_OPERATOR = bytes(32)


class Role(IntEnum):
    """Validator role; a trust anchor's kind is its owner's role."""

    NONE = 0
    CA = 1
    OPERATOR = 2


class CertState(IntEnum):
    """``status_of(...).state``."""

    GOOD = 0
    SUSPENDED = 1
    REVOKED = 2


class RevocationReason(IntEnum):
    """RFC 5280 §5.3.1 CRLReason."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    CERTIFICATE_HOLD = 6
    REMOVE_FROM_CRL = 8
    PRIVILEGE_WITHDRAWN = 9
    AA_COMPROMISE = 10


class ProposalKind(IntEnum):
    """Governance proposal kinds."""

    ADD_VALIDATOR = 1
    REMOVE_VALIDATOR = 2
    ADD_TRUST_ANCHOR = 3
    REMOVE_TRUST_ANCHOR = 4
    SET_THRESHOLD = 5


@dataclass(frozen=True)
class ContractArtifact:
    """A compiled contract as committed in ``build/``."""

    contract_name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    runtime_bytecode: bytes
    vyper_version: str
    evm_version: str
    optimize: str
    source_sha256: str

    def matches_source(self, source_path: Path = SOURCE_PATH) -> bool:
        """Whether the artifact was built from the current source text."""
        return hashlib.sha256(source_path.read_bytes()).hexdigest() == self.source_sha256


def _from_hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _parse(doc: dict[str, Any]) -> ContractArtifact:
    return ContractArtifact(
        contract_name=str(doc["contract_name"]),
        abi=list(doc["abi"]),
        bytecode=_from_hex(doc["bytecode"]),
        runtime_bytecode=_from_hex(doc["bytecode_runtime"]),
        vyper_version=str(doc["vyper_version"]),
        evm_version=str(doc["evm_version"]),
        optimize=str(doc["optimize"]),
        source_sha256=str(doc["source_sha256"]),
    )


@cache
def _load_default() -> ContractArtifact:
    return _parse(json.loads(ARTIFACT_PATH.read_text(encoding="utf-8")))


def load_artifact(path: Path | None = None) -> ContractArtifact:
    """Load the committed artifact (cached), or the one at ``path``."""
    if path is None:
        return _load_default()
    return _parse(json.loads(Path(path).read_text(encoding="utf-8")))


def sha256(data: bytes) -> bytes:
    """SHA-256 digest: certificate hashes are ``sha256(DER)``, key hashes ``sha256(SPKI DER)``."""
    return hashlib.sha256(data).digest()


def certificate_leaf_entry(cert_hash: bytes, operator_key_hash: bytes | None = None) -> bytes:
    """The 64-byte batch tree entry ``cert_hash ‖ operator_key_hash`` (decision 0401).

    Its RFC 9162 leaf hash, ``mpkix.merkle.leaf_hash(entry)``, is what the contract recomputes
    from ``revoke``/``suspend``/``resume`` arguments before checking the inclusion proof.
    """
    op = NO_OPERATOR if operator_key_hash is None else operator_key_hash
    if len(cert_hash) != 32 or len(op) != 32:
        raise ValueError("certificate and operator key hashes must be 32 bytes")
    if cert_hash == NO_OPERATOR:
        raise ValueError("certificate hash is zero")
    return bytes(cert_hash) + bytes(op)
