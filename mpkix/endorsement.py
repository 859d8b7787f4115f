"""Operator endorsement of a ppCSR (paper §4.1.2, §5.2 step 4; ARCHITECTURE §2.1 step 3).

The CMS signs a serialized :class:`EndorsementBody` (ppCSR hash, operator id, time, profile,
CMS address, transaction id) with its operator endorsement key; the CA checks the signature
against a key registered for that operator (:class:`OperatorKeyRegistry`: a static file here,
the ledger's trust anchors once the ledger backs it). Key ids are SHA-256 of the key's
SubjectPublicKeyInfo DER, the same hash the ledger records as a trust anchor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from google.protobuf.message import DecodeError

from mpkix.v1 import issuance_pb2

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class EndorsementError(Exception):
    """The endorsement is malformed, unknown or does not verify."""


def key_id(public_key: PublicKey) -> bytes:
    """SHA-256 of the SubjectPublicKeyInfo DER (the ledger trust-anchor hash)."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def _sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return key.sign(
        data,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


def _verify(key: PublicKey, signature: bytes, data: bytes) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    else:
        key.verify(
            signature,
            data,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )


def sign_endorsement(
    key: PrivateKey,
    *,
    csr_der: bytes,
    operator_id: str,
    signature_profile: str,
    cms_address: str,
    transaction_id: str,
    now: dt.datetime | None = None,
) -> issuance_pb2.Endorsement:
    body = issuance_pb2.EndorsementBody(
        csr_sha256=hashlib.sha256(csr_der).digest(),
        operator_id=operator_id,
        signature_profile=signature_profile,
        cms_address=cms_address,
        transaction_id=transaction_id,
    )
    body.endorsed_at.FromDatetime(now or dt.datetime.now(dt.UTC))
    raw = body.SerializeToString(deterministic=True)
    return issuance_pb2.Endorsement(
        body=raw, signature=_sign(key, raw), key_id=key_id(key.public_key())
    )


@dataclass(frozen=True)
class OperatorKey:
    operator_id: str
    public_key: PublicKey


class OperatorKeyRegistry(Protocol):
    """Where the CA looks up operator endorsement keys (ledger trust anchors in production)."""

    def lookup(self, key_id: bytes) -> OperatorKey | None: ...


class StaticOperatorKeys:
    """Operator keys from a JSON file.

    Format: ``{"operators": [{"operator_id", "endorsement_keys": [PEM]}]}``.
    """

    def __init__(self, keys: list[OperatorKey]) -> None:
        self._by_id = {key_id(k.public_key): k for k in keys}

    @classmethod
    def from_file(cls, path: Path) -> StaticOperatorKeys:
        doc = json.loads(path.read_text())
        keys = []
        for op in doc.get("operators", []):
            for pem in op["endorsement_keys"]:
                pub = serialization.load_pem_public_key(pem.encode())
                if not isinstance(pub, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
                    raise ValueError(f"unsupported endorsement key type for {op['operator_id']}")
                keys.append(OperatorKey(op["operator_id"], pub))
        return cls(keys)

    @staticmethod
    def write(path: Path, entries: dict[str, list[PublicKey]]) -> None:
        doc = {
            "operators": [
                {
                    "operator_id": op,
                    "endorsement_keys": [
                        k.public_bytes(
                            serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo,
                        ).decode()
                        for k in keys
                    ],
                }
                for op, keys in sorted(entries.items())
            ]
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(path)

    def lookup(self, key_id: bytes) -> OperatorKey | None:
        return self._by_id.get(key_id)


def verify_endorsement(
    registry: OperatorKeyRegistry,
    endorsement: issuance_pb2.Endorsement,
    csr_der: bytes,
    *,
    max_age: dt.timedelta = dt.timedelta(minutes=5),
    now: dt.datetime | None = None,
) -> tuple[OperatorKey, issuance_pb2.EndorsementBody]:
    """Check an endorsement; returns the operator key and the decoded body.

    Raises :class:`EndorsementError` with a message naming what failed: unknown key, bad
    signature, operator mismatch, a body over a different ppCSR, or a stale/future time.
    """
    op = registry.lookup(bytes(endorsement.key_id))
    if op is None:
        raise EndorsementError(
            f"endorsement key {bytes(endorsement.key_id).hex()[:16]}… is not a registered "
            "operator endorsement key"
        )
    try:
        _verify(op.public_key, bytes(endorsement.signature), bytes(endorsement.body))
    except InvalidSignature:
        raise EndorsementError("endorsement signature does not verify") from None
    body = issuance_pb2.EndorsementBody()
    try:
        body.ParseFromString(endorsement.body)
    except DecodeError:
        raise EndorsementError("endorsement body is not a valid EndorsementBody") from None
    if body.operator_id != op.operator_id:
        raise EndorsementError(
            f"endorsement names operator {body.operator_id!r} but is signed by a key of "
            f"{op.operator_id!r}"
        )
    if body.csr_sha256 != hashlib.sha256(csr_der).digest():
        raise EndorsementError("endorsement covers a different ppCSR than the one submitted")
    now = now or dt.datetime.now(dt.UTC)
    at = body.endorsed_at.ToDatetime(tzinfo=dt.UTC)
    if at > now + dt.timedelta(seconds=30):
        raise EndorsementError("endorsement time is in the future")
    if now - at > max_age:
        raise EndorsementError(f"endorsement is older than {int(max_age.total_seconds())} s")
    return op, body
