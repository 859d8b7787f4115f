"""Genesis of a cluster's ledger from its nodes' state directories (ARCHITECTURE §2.4).

Validators: every CA node (role CA) and every operator CMS node (role OPERATOR), by the address
of its ``ledger.key``. Trust anchors: each CA's issuing certificate hash, owned by that CA
validator, and each operator's endorsement-key hash (SHA-256 of its SPKI, the key id of
decision 0005), owned by that operator's validator.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from eth_utils.address import to_canonical_address

from ca_node.keys import ISSUING_CERT_FILE
from cms_node.node import load_endorsement_key
from ledger.contracts import Role
from ledger.node.genesis import GenesisAnchor, GenesisConfig, GenesisValidator
from ledger.validator_key import ensure_validator_key
from mpkix.endorsement import key_id


def _label(text: str) -> bytes:
    raw = text.encode()[:32]
    return raw.ljust(32, b"\x00")


def issuing_ca_hash(ca_state_dir: Path) -> bytes:
    cert = x509.load_pem_x509_certificate((ca_state_dir / "ca" / ISSUING_CERT_FILE).read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def cluster_genesis(
    ca_dirs: list[Path],
    operator_dirs: dict[str, Path],
    *,
    chain_id: int = 6063,
    threshold: int = 0,
) -> GenesisConfig:
    validators: list[GenesisValidator] = []
    anchors: list[GenesisAnchor] = []
    for i, d in enumerate(ca_dirs):
        _, address = ensure_validator_key(d)
        owner = to_canonical_address(address)
        validators.append(GenesisValidator(owner, Role.CA, _label(f"ca-{i + 1}")))
        anchors.append(GenesisAnchor(issuing_ca_hash(d), owner))
    for op_id, d in sorted(operator_dirs.items()):
        _, address = ensure_validator_key(d)
        owner = to_canonical_address(address)
        validators.append(GenesisValidator(owner, Role.OPERATOR, _label(op_id)))
        anchors.append(GenesisAnchor(key_id(load_endorsement_key(d).public_key()), owner))
    return GenesisConfig(
        chain_id=chain_id,
        validators=tuple(validators),
        trust_anchors=tuple(anchors),
        threshold=threshold,
    )
