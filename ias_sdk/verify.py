"""Verifying a ppCert against the ledger mirror (ARCHITECTURE §2.5; decision records 0804–0806).

``verify(bundle)`` accepts a :class:`~mpkix.v1.common_pb2.CertificateBundle` (object or
serialized bytes), or a certificate (PEM, optionally followed by its CA chain; DER; or a
``cryptography`` certificate) and checks, all locally:

1. the input decodes (``MALFORMED``) and the mirror is fresh (``MIRROR_STALE``);
2. an inclusion proof is present (``NOT_ANCHORED``): a bare certificate carries no audit path,
   so it verifies only if this verifier saw the same certificate's bundle before;
3. the bundle names the mirror's ledger, when it names one (``WRONG_LEDGER``);
4. the issuing CA certificate (the first of the chain) has a SHA-256 that is a live CA trust
   anchor in the mirror (``UNTRUSTED_ISSUER``), is a CA and links to the rest of the chain
   (``BAD_CHAIN``), and is within its validity (``EXPIRED`` / ``NOT_YET_VALID``);
5. the certificate is signed by that CA (``BAD_SIGNATURE``), is a ppCert (``MALFORMED``) and is
   within its validity (``EXPIRED`` / ``NOT_YET_VALID``);
6. the batch is anchored (``UNKNOWN_BATCH``) under the same CA (``BATCH_ISSUER_MISMATCH``) and
   the RFC 9162 audit path leads from ``SHA-256(0x00 ‖ SHA-256(cert DER) ‖ operator key hash)``
   to the batch's root, with the tree size and root taken from the mirror (``BAD_PROOF``);
7. the operator key hash is a live operator trust anchor (``UNTRUSTED_OPERATOR``) owned by the
   validator whose label is the certificate's operator id (``OPERATOR_MISMATCH``);
8. no revocation or suspension is recorded under (issuing CA, certificate) (``REVOKED``,
   ``SUSPENDED``);
9. the certificate's signature profile satisfies ``required_profile`` under ``profile_mode``
   (``PROFILE_MISMATCH``).

Work that does not depend on the ledger's state (decoding, signatures, ppCert fields, the
Merkle path) is cached per CA chain and per certificate; every verification still reads the
mirror's current anchors, batch and status, so a revocation applies to the next call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf.message import DecodeError

from ias_sdk._internal.certs import IssuerInfo, LeafInfo, analyze_issuer, analyze_leaf
from ias_sdk.mirror import (
    ROLE_CA,
    ROLE_OPERATOR,
    LedgerMirror,
    MirrorStale,
)
from mpkix.profile.signature_profiles import (
    COMPARISON_MODES,
    ComparisonMode,
    parse_mss_uri,
    satisfies,
)
from mpkix.v1 import common_pb2

__all__ = [
    "MAX_INPUT_BYTES",
    "Reason",
    "VerificationError",
    "VerifiedSubject",
    "Verifier",
    "check_requirement",
    "verifier_for",
    "verify",
]

#: Largest input accepted (a bundle with a 64-hash audit path and a 3-certificate chain is ~6 KB).
MAX_INPUT_BYTES: Final = 64 * 1024
MAX_CHAIN_LENGTH: Final = 8
MAX_AUDIT_PATH: Final = 64
#: Certificates whose ledger-independent checks are cached (~10 KB each, parsed certificate
#: and ppCert fields included).
DEFAULT_CACHE_ENTRIES: Final = 10_000
#: Distinct CA chains cached (a deployment has a handful of CAs).
MAX_CACHED_CHAINS: Final = 256
NO_OPERATOR: Final = bytes(32)
_PEM_MARK: Final = b"-----BEGIN"
_REVOCATION_REASONS: Final[Mapping[int, str]] = {
    0: "unspecified",
    1: "keyCompromise",
    2: "cACompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    6: "certificateHold",
    8: "removeFromCRL",
    9: "privilegeWithdrawn",
    10: "aACompromise",
}


class Reason(StrEnum):
    """Stable reason codes of :class:`VerificationError` (decision 0804)."""

    MALFORMED = "MALFORMED"
    MIRROR_STALE = "MIRROR_STALE"
    NOT_ANCHORED = "NOT_ANCHORED"
    WRONG_LEDGER = "WRONG_LEDGER"
    UNTRUSTED_ISSUER = "UNTRUSTED_ISSUER"
    BAD_CHAIN = "BAD_CHAIN"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    NOT_YET_VALID = "NOT_YET_VALID"
    EXPIRED = "EXPIRED"
    UNKNOWN_BATCH = "UNKNOWN_BATCH"
    BATCH_ISSUER_MISMATCH = "BATCH_ISSUER_MISMATCH"
    BAD_PROOF = "BAD_PROOF"
    UNTRUSTED_OPERATOR = "UNTRUSTED_OPERATOR"
    OPERATOR_MISMATCH = "OPERATOR_MISMATCH"
    REVOKED = "REVOKED"
    SUSPENDED = "SUSPENDED"
    PROFILE_MISMATCH = "PROFILE_MISMATCH"


class VerificationError(Exception):
    """The certificate is not acceptable; ``reason`` is a stable :class:`Reason` code."""

    def __init__(self, reason: Reason | str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = Reason(reason)
        self.message = message


@dataclass(frozen=True, slots=True)
class VerifiedSubject:
    """A verified ppCert holder: pseudonymous identity and what the certificate states."""

    subject_id: str
    cms_address: str
    operator_id: str
    signature_profile: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    sealed_attribute_ids: tuple[str, ...]
    ca_cert_hash: bytes
    batch_id: int
    cert_hash: bytes
    operator_key_hash: bytes
    certificate: x509.Certificate = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (hashes in hex, times in ISO 8601, serial in hex)."""
        return {
            "subject_id": self.subject_id,
            "cms_address": self.cms_address,
            "operator_id": self.operator_id,
            "signature_profile": self.signature_profile,
            "serial": format(self.serial, "x"),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sealed_attribute_ids": list(self.sealed_attribute_ids),
            "ca_cert_hash": self.ca_cert_hash.hex(),
            "batch_id": self.batch_id,
            "cert_hash": self.cert_hash.hex(),
            "operator_key_hash": self.operator_key_hash.hex(),
        }


class _Proof(NamedTuple):
    """The bundle's MerkleInclusion as plain values (a protobuf sub-message would keep the
    whole bundle alive in the remembered-inclusion cache). A tuple: cheaper to build."""

    batch_id: int
    leaf_index: int
    audit_path: tuple[bytes, ...]
    root: bytes
    operator_key_hash: bytes
    chain_id: int
    registry_address: bytes

    @classmethod
    def of(cls, inc: common_pb2.MerkleInclusion) -> _Proof:
        return cls(
            int(inc.batch_id),
            int(inc.leaf_index),
            tuple(inc.audit_path),
            bytes(inc.root),
            bytes(inc.operator_key_hash),
            int(inc.chain_id),
            bytes(inc.registry_address),
        )


class _Parts(NamedTuple):
    cert_der: bytes
    chain: tuple[bytes, ...]
    inclusion: _Proof | None


def _audit_root(leaf: bytes, index: int, size: int, path: tuple[bytes, ...]) -> bytes | None:
    """``mpkix.merkle.root_from_inclusion_path`` (RFC 9162 §2.1.3.2) inlined for 32-byte
    ``leaf`` and path entries (the caller checks their lengths); None where it raises."""
    if size < 1 or not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    sha256 = hashlib.sha256
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def _fail(reason: Reason, message: str) -> VerificationError:
    return VerificationError(reason, message)


def _timestamp(now: dt.datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, dt.datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return float(now)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _der_of_pem(data: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion) as e:
        raise _fail(Reason.MALFORMED, f"undecodable PEM: {e}") from None
    ders = [c.public_bytes(serialization.Encoding.DER) for c in certs]
    return ders[0], tuple(ders[1:])


def check_requirement(required_profile: str | None, profile_mode: str) -> None:
    """Raise ``ValueError`` for an unknown mode or a malformed ``mss:`` URI."""
    if profile_mode not in COMPARISON_MODES:
        raise ValueError(f"profile_mode must be one of {sorted(COMPARISON_MODES)}")
    if required_profile is not None:
        parse_mss_uri(required_profile)  # raises SignatureProfileError (a ValueError)


class Verifier:
    """Verifies ppCerts against one :class:`LedgerMirror`, caching ledger-independent work.

    ``remember_inclusions``: keep the chain and inclusion of every certificate verified from a
    full bundle, so a later *bare* certificate (e.g. the one a client presents in TLS without
    its bundle) can still be checked against its batch (decision 0806).
    """

    def __init__(
        self,
        mirror: LedgerMirror,
        *,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        remember_inclusions: bool = True,
    ) -> None:
        if cache_entries < 1:
            raise ValueError("cache_entries must be at least 1")
        self.mirror = mirror
        self.cache_entries = cache_entries
        self.remember_inclusions = remember_inclusions
        # Plain dicts (atomic get/set under the GIL); flushed when full.
        self._issuers: dict[tuple[bytes, ...], IssuerInfo] = {}
        self._leaves: dict[tuple[bytes, bytes], LeafInfo] = {}  # (cert hash, CA hash)
        self._inclusions: dict[bytes, tuple[tuple[bytes, ...], _Proof]] = {}

    # -- input -------------------------------------------------------------------------

    def _decode(self, item: object) -> _Parts:
        if isinstance(item, common_pb2.CertificateBundle):
            return self._from_bundle(item)
        if isinstance(item, x509.Certificate):
            return _Parts(item.public_bytes(serialization.Encoding.DER), (), None)
        if isinstance(item, str):
            item = item.encode("utf-8", "replace")
        if isinstance(item, bytearray | memoryview):
            item = bytes(item)
        if not isinstance(item, bytes):
            raise TypeError(
                "verify() takes a CertificateBundle, serialized bundle, PEM/DER certificate "
                f"or x509.Certificate, not {type(item).__name__}"
            )
        if not item:
            raise _fail(Reason.MALFORMED, "empty input")
        if len(item) > MAX_INPUT_BYTES:
            raise _fail(Reason.MALFORMED, f"input larger than {MAX_INPUT_BYTES} bytes")
        if item.lstrip()[: len(_PEM_MARK)] == _PEM_MARK:
            cert_der, chain = _der_of_pem(item)
            return _Parts(cert_der, chain, None)
        if item[0] == 0x30:  # DER SEQUENCE: a certificate (a serialized bundle starts 0x0a)
            try:
                x509.load_der_x509_certificate(item)
            except (ValueError, x509.InvalidVersion) as e:
                raise _fail(Reason.MALFORMED, f"undecodable certificate: {e}") from None
            return _Parts(item, (), None)
        try:
            bundle = common_pb2.CertificateBundle.FromString(item)
        except DecodeError as e:
            raise _fail(Reason.MALFORMED, f"undecodable CertificateBundle: {e}") from None
        return self._from_bundle(bundle)

    @staticmethod
    def _from_bundle(bundle: common_pb2.CertificateBundle) -> _Parts:
        if not bundle.certificate_der:
            raise _fail(Reason.MALFORMED, "the bundle carries no certificate")
        if bundle.ByteSize() > MAX_INPUT_BYTES:
            raise _fail(Reason.MALFORMED, f"bundle larger than {MAX_INPUT_BYTES} bytes")
        proof = None
        if bundle.HasField("inclusion") and bundle.inclusion.batch_id != 0:
            proof = _Proof.of(bundle.inclusion)
        return _Parts(bytes(bundle.certificate_der), tuple(bundle.ca_chain_der), proof)

    # -- cached work ---------------------------------------------------------------------

    def _issuer(self, chain: tuple[bytes, ...]) -> IssuerInfo:
        info = self._issuers.get(chain)
        if info is None:
            if len(chain) > MAX_CHAIN_LENGTH:
                raise _fail(Reason.MALFORMED, f"CA chain longer than {MAX_CHAIN_LENGTH}")
            info = analyze_issuer(chain)
            if len(self._issuers) >= MAX_CACHED_CHAINS:
                self._issuers.clear()
            self._issuers[chain] = info
        return info

    def _leaf(self, cert_der: bytes, cert_hash: bytes, issuer: IssuerInfo) -> LeafInfo:
        key = (cert_hash, issuer.ca_hash)
        info = self._leaves.get(key)
        if info is None:
            info = analyze_leaf(cert_der, issuer, cert_hash)
            if len(self._leaves) >= self.cache_entries:
                self._leaves.clear()
            self._leaves[key] = info
        return info

    @staticmethod
    def _proof_root(
        leaf: LeafInfo, operator_key_hash: bytes, index: int, size: int, path: tuple[bytes, ...]
    ) -> bytes | None:
        key = (operator_key_hash, index, size, path)
        if leaf.proof_key == key:
            return leaf.proof_root
        leaf_hash = hashlib.sha256(b"\x00" + leaf.cert_hash + operator_key_hash).digest()
        root = _audit_root(leaf_hash, index, size, path)
        leaf.proof_key, leaf.proof_root = key, root
        return root

    # -- verification --------------------------------------------------------------------

    def verify(
        self,
        item: common_pb2.CertificateBundle | bytes | str | x509.Certificate,
        *,
        required_profile: str | None = None,
        profile_mode: ComparisonMode | str = "minimum",
        now: dt.datetime | float | None = None,
    ) -> VerifiedSubject:
        """Verify a bundle or certificate; raises :class:`VerificationError` on any failure.

        ``required_profile``/``profile_mode`` (``exact | minimum | better``) are checked with
        :func:`mpkix.profile.signature_profiles.satisfies`; an invalid requirement is a
        ``ValueError`` (a configuration error, not a verdict). ``now`` (aware datetime or POSIX
        seconds) is the time the validity periods are checked at; freshness of the mirror is
        always judged on the mirror's clock.
        """
        check_requirement(required_profile, profile_mode)
        return self._verify(self._decode(item), required_profile, profile_mode, _timestamp(now))

    def verify_presented(
        self,
        certificate_der: bytes,
        bundle: common_pb2.CertificateBundle | bytes | None = None,
        *,
        required_profile: str | None = None,
        profile_mode: ComparisonMode | str = "minimum",
        now: dt.datetime | float | None = None,
    ) -> VerifiedSubject:
        """Verify a certificate a peer presented (e.g. in TLS) with the bundle it sent for it.

        The bundle must be for that very certificate (``MALFORMED`` otherwise); without a
        bundle, the inclusion remembered from an earlier verification is used.
        """
        check_requirement(required_profile, profile_mode)
        if bundle is None:
            parts = _Parts(certificate_der, (), None)
        else:
            parts = self._decode(bundle)
            if parts.cert_der != certificate_der:
                raise _fail(
                    Reason.MALFORMED, "the bundle is for another certificate than the one presented"
                )
        return self._verify(parts, required_profile, profile_mode, _timestamp(now))

    def _verify(
        self, parts: _Parts, required_profile: str | None, profile_mode: str, now: float
    ) -> VerifiedSubject:
        mirror = self.mirror
        try:
            mirror.check_fresh()
        except MirrorStale as e:
            raise _fail(Reason.MIRROR_STALE, str(e)) from None

        chain, inclusion = parts.chain, parts.inclusion
        cert_hash = hashlib.sha256(parts.cert_der).digest()
        if inclusion is None:
            remembered = self._inclusions.get(cert_hash)
            if remembered is None:
                raise _fail(
                    Reason.NOT_ANCHORED,
                    "no inclusion proof: a certificate is proven anchored only by its bundle "
                    "(batch id, leaf index, audit path, operator key hash); present the "
                    "CertificateBundle",
                )
            chain = chain or remembered[0]
            inclusion = remembered[1]

        identity = mirror.identity
        if identity is not None:
            chain_id, registry = identity
            if inclusion.chain_id and inclusion.chain_id != chain_id:
                raise _fail(
                    Reason.WRONG_LEDGER,
                    f"the bundle was anchored on chain {inclusion.chain_id}; this verifier "
                    f"follows chain {chain_id}",
                )
            if inclusion.registry_address and inclusion.registry_address != registry:
                raise _fail(
                    Reason.WRONG_LEDGER,
                    f"the bundle names registry 0x{inclusion.registry_address.hex()}; "
                    f"this verifier follows 0x{registry.hex()}",
                )

        # Issuing CA: structure (cached), trust and validity (every time).
        issuer = self._issuer(chain)
        if issuer.problem is not None and issuer.problem[0] in ("MALFORMED", "UNTRUSTED_ISSUER"):
            raise _fail(Reason(issuer.problem[0]), issuer.problem[1])
        ca_hash = issuer.ca_hash
        if mirror.live_anchor(ca_hash, ROLE_CA) is None:
            known = mirror.trust_anchor(ca_hash)
            if known is not None and not known.active:
                when = _iso(known.removed_at) if known.removed_at is not None else "?"
                msg = f"the issuing CA (0x{ca_hash.hex()}) was removed from the registry at {when}"
            else:
                msg = f"the issuing CA certificate 0x{ca_hash.hex()} is not a ledger trust anchor"
            raise _fail(Reason.UNTRUSTED_ISSUER, msg)
        if issuer.problem is not None:
            raise _fail(Reason(issuer.problem[0]), issuer.problem[1])
        if now < issuer.not_before:
            raise _fail(
                Reason.NOT_YET_VALID, f"the issuing CA is valid from {_iso(issuer.not_before)}"
            )
        if now > issuer.not_after:
            raise _fail(Reason.EXPIRED, f"the issuing CA expired at {_iso(issuer.not_after)}")

        # The certificate: signature and ppCert fields (cached), validity (every time).
        leaf = self._leaf(parts.cert_der, cert_hash, issuer)
        if leaf.problem is not None:
            raise _fail(Reason(leaf.problem[0]), leaf.problem[1])
        view = leaf.view
        assert view is not None and leaf.certificate is not None
        if now < leaf.not_before:
            raise _fail(
                Reason.NOT_YET_VALID, f"the certificate is valid from {_iso(leaf.not_before)}"
            )
        if now > leaf.not_after:
            raise _fail(Reason.EXPIRED, f"the certificate expired at {_iso(leaf.not_after)}")

        # Anchoring: batch from the mirror, proof against the mirror's root and size.
        batch_id = inclusion.batch_id
        batch = mirror.batch(batch_id)
        if batch is None:
            raise _fail(
                Reason.UNKNOWN_BATCH,
                f"batch {batch_id} is not anchored on the ledger (mirror at event {mirror.cursor})",
            )
        if batch.ca_cert_hash != ca_hash:
            raise _fail(
                Reason.BATCH_ISSUER_MISMATCH,
                f"batch {batch_id} was anchored by CA 0x{batch.ca_cert_hash.hex()}, not by the "
                f"certificate's issuer 0x{ca_hash.hex()}",
            )
        op_hash = inclusion.operator_key_hash
        if len(op_hash) != 32:
            raise _fail(Reason.MALFORMED, "the inclusion lacks a 32-byte operator_key_hash")
        path = inclusion.audit_path
        if len(path) > MAX_AUDIT_PATH or any(len(p) != 32 for p in path):
            raise _fail(
                Reason.BAD_PROOF, "the audit path is not a list of at most 64 SHA-256 hashes"
            )
        if inclusion.root and inclusion.root != batch.root:
            raise _fail(
                Reason.BAD_PROOF,
                f"the bundle names root 0x{inclusion.root.hex()} but batch {batch_id} "
                f"has root 0x{batch.root.hex()} on the ledger",
            )
        root = self._proof_root(leaf, op_hash, inclusion.leaf_index, batch.size, path)
        if root != batch.root:
            raise _fail(
                Reason.BAD_PROOF,
                f"the audit path does not lead from leaf {inclusion.leaf_index} to the root of "
                f"batch {batch_id} (size {batch.size})",
            )

        # Operator: a live operator trust anchor owned by the operator the certificate names.
        if op_hash == NO_OPERATOR:
            raise _fail(Reason.UNTRUSTED_OPERATOR, "the certificate was issued without an operator")
        op_anchor = mirror.live_anchor(op_hash, ROLE_OPERATOR)
        if op_anchor is None:
            raise _fail(
                Reason.UNTRUSTED_OPERATOR,
                f"operator key 0x{op_hash.hex()} is not a live operator trust anchor",
            )
        owner = mirror.validator(op_anchor.owner)
        if owner is None or owner.label_text != view.operator_id:
            label = owner.label_text if owner is not None else "?"
            raise _fail(
                Reason.OPERATOR_MISMATCH,
                f"the certificate names operator {view.operator_id!r} but its operator key "
                f"belongs to {label!r}",
            )

        # Status under (issuing CA, certificate), decision 0402.
        status = mirror.status(ca_hash, leaf.cert_hash)
        if status is not None and status.state != 0:
            when = _iso(status.updated_at)
            if status.state == 2:
                why = _REVOCATION_REASONS.get(status.reason, str(status.reason))
                raise _fail(Reason.REVOKED, f"revoked at {when} ({why})")
            raise _fail(Reason.SUSPENDED, f"suspended at {when}")

        if required_profile is not None and not satisfies(
            view.signature_profile,
            required_profile,
            profile_mode,  # type: ignore[arg-type]
        ):
            raise _fail(
                Reason.PROFILE_MISMATCH,
                f"signature profile {view.signature_profile} does not satisfy "
                f"{required_profile} ({profile_mode})",
            )

        if self.remember_inclusions and parts.inclusion is not None:
            if len(self._inclusions) >= self.cache_entries:
                self._inclusions.clear()
            self._inclusions[leaf.cert_hash] = (issuer.chain, inclusion)

        return VerifiedSubject(
            subject_id=view.subject_id,
            cms_address=view.cms_address,
            operator_id=view.operator_id,
            signature_profile=view.signature_profile,
            serial=view.serial_number,
            not_before=view.not_before,
            not_after=view.not_after,
            sealed_attribute_ids=view.sealed_attribute_ids,
            ca_cert_hash=ca_hash,
            batch_id=batch_id,
            cert_hash=leaf.cert_hash,
            operator_key_hash=op_hash,
            certificate=leaf.certificate,
        )


_VERIFIERS: weakref.WeakKeyDictionary[LedgerMirror, Verifier] = weakref.WeakKeyDictionary()


def verifier_for(mirror: LedgerMirror) -> Verifier:
    """The shared :class:`Verifier` (and its caches) of ``mirror``."""
    v = _VERIFIERS.get(mirror)
    if v is None:
        v = _VERIFIERS.setdefault(mirror, Verifier(mirror))
    return v


def verify(
    bundle_or_certificate: common_pb2.CertificateBundle | bytes | str | x509.Certificate,
    *,
    mirror: LedgerMirror,
    required_profile: str | None = None,
    profile_mode: ComparisonMode | str = "minimum",
    now: dt.datetime | float | None = None,
) -> VerifiedSubject:
    """Verify a ppCert bundle (or certificate) against ``mirror``; see :class:`Verifier`."""
    return verifier_for(mirror).verify(
        bundle_or_certificate,
        required_profile=required_profile,
        profile_mode=profile_mode,
        now=now,
    )
