"""Certificate work that does not depend on the ledger, computed once and cached (decision 0805).

* :func:`analyze_issuer` — the bundle's CA chain (issuing CA first): the issuing certificate
  must be a CA (basicConstraints cA, keyCertSign when keyUsage is present), and each further
  certificate, when the bundle carries one, must have issued the one below it. The *trust*
  decision is not made here: it is the ledger's (the issuing CA certificate's SHA-256 must be a
  live CA trust anchor in the mirror), checked on every verification.
* :func:`analyze_leaf` — the end-entity certificate: DER decoding, the issuing CA's signature
  (RFC 5280 §6.1.3 (a)(1)) and issuer name, and the ppCert fields (``parse_ppcert``).

Both return records carrying either the parsed result or the failure (reason, message), so a
bad input is rejected as cheaply the second time as a good one is accepted.

First sight of a certificate is the expensive case (decision 0810): the signature is checked over
the ``tbsCertificate`` bytes sliced from the DER (what the CA signed; no re-encoding), the issuer
name is compared as DER with the CA's subject before falling back to the decoded names, and the
cached record holds plain values rather than the decoded extension objects (fewer objects for
the garbage collector to walk on every later verification).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from ias_sdk._internal.ppder import read_ppcert
from mpkix.profile.extensions import TAG_SEQUENCE, DerError, read_header
from mpkix.profile.ppcert import parse_ppcert

Problem = tuple[str, str]  # (reason code, message)

# Signature algorithms a CA key may use, with their (immutable, shared) parameters.
_ECDSA: Final[Mapping[x509.ObjectIdentifier, ec.ECDSA]] = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: ec.ECDSA(hashes.SHA256()),
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: ec.ECDSA(hashes.SHA384()),
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: ec.ECDSA(hashes.SHA512()),
}
_RSA_PKCS1: Final[Mapping[x509.ObjectIdentifier, hashes.HashAlgorithm]] = {
    SignatureAlgorithmOID.RSA_WITH_SHA256: hashes.SHA256(),
    SignatureAlgorithmOID.RSA_WITH_SHA384: hashes.SHA384(),
    SignatureAlgorithmOID.RSA_WITH_SHA512: hashes.SHA512(),
}
_PKCS1: Final = padding.PKCS1v15()
_TAG_VERSION: Final = 0xA0  # [0] EXPLICIT Version


def tbs_parts(der: bytes) -> tuple[bytes, bytes, bytes]:
    """``(tbsCertificate, issuer, subject)`` as DER slices of certificate ``der`` (RFC 5280
    §4.1); raises ``DerError`` if ``der`` does not have that shape."""
    tag, pos, end = read_header(der)
    if tag != TAG_SEQUENCE or end != len(der):
        raise DerError("a certificate is one SEQUENCE")
    tbs_start = pos
    tag, pos, tbs_end = read_header(der, pos)
    if tag != TAG_SEQUENCE:
        raise DerError("tbsCertificate is a SEQUENCE")
    tag, _, pos = read_header(der, pos)  # version, or serialNumber when v1
    if tag == _TAG_VERSION:
        _, _, pos = read_header(der, pos)  # serialNumber
    _, _, pos = read_header(der, pos)  # signature
    issuer_start = pos
    _, _, pos = read_header(der, pos)  # issuer
    issuer_end = pos
    _, _, pos = read_header(der, pos)  # validity
    subject_start = pos
    _, _, pos = read_header(der, pos)  # subject
    if pos > tbs_end:
        raise DerError("tbsCertificate fields run past its end")
    return der[tbs_start:tbs_end], der[issuer_start:issuer_end], der[subject_start:pos]


@dataclass(frozen=True, slots=True)
class IssuerInfo:
    """The issuing CA of a chain, or why the chain is unusable."""

    ca_hash: bytes
    certificate: x509.Certificate | None
    not_before: float
    not_after: float
    problem: Problem | None = None
    # Parsed once per CA: decoding an EC public key (point validation) costs as much as a hash.
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None = None
    subject: x509.Name | None = None
    chain: tuple[bytes, ...] = ()  # the chain analysed, shared by everything that refers to it
    subject_der: bytes | None = None  # the issuing CA's subject Name as DER


@dataclass(frozen=True, slots=True)
class LeafView:
    """The ppCert fields a verification reports (from ``parse_ppcert``), as plain values."""

    subject_id: str
    cms_address: str
    operator_id: str
    signature_profile: str
    serial_number: int
    not_before: dt.datetime
    not_after: dt.datetime
    sealed_attribute_ids: tuple[str, ...]


@dataclass(slots=True)
class LeafInfo:
    """A certificate checked against one issuing CA, or why it fails."""

    cert_hash: bytes
    certificate: x509.Certificate | None
    view: LeafView | None
    not_before: float
    not_after: float
    problem: Problem | None = None
    # Last inclusion proof computed for this leaf: (operator key hash, index, size, path) → root.
    proof_key: tuple[bytes, int, int, tuple[bytes, ...]] | None = field(default=None)
    proof_root: bytes | None = field(default=None)


def _name(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or "certificate"
    except ValueError:  # decoded lazily; a message must not raise (escaped before 0812)
        return "certificate with an undecodable subject"


def _is_ca(cert: x509.Certificate) -> str | None:
    """None when ``cert`` may issue certificates (RFC 5280 §4.2.1.9, §4.2.1.3), else why not."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return f"{_name(cert)} has no basicConstraints: it is not a CA certificate"
    if not bc.ca:
        return f"{_name(cert)} is not a CA certificate (basicConstraints cA is false)"
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not ku.key_cert_sign:
        return f"{_name(cert)} may not sign certificates (keyUsage lacks keyCertSign)"
    return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> Problem | None:
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return "BAD_SIGNATURE", f"{_name(cert)} carries no valid signature of {_name(issuer)}"
    except (ValueError, TypeError) as e:
        return "BAD_CHAIN", f"{_name(cert)} was not issued by {_name(issuer)}: {e}"
    return None


def analyze_issuer(chain_der: tuple[bytes, ...]) -> IssuerInfo:
    """Check the structure of ``chain_der`` (issuing CA first) and describe its issuing CA."""
    if not chain_der:
        return IssuerInfo(b"", None, 0.0, 0.0, ("UNTRUSTED_ISSUER", "the bundle has no CA chain"))
    ca_hash = hashlib.sha256(chain_der[0]).digest()
    try:
        certs = [x509.load_der_x509_certificate(d) for d in chain_der]
    except (ValueError, x509.InvalidVersion) as e:
        return IssuerInfo(
            ca_hash, None, 0.0, 0.0, ("MALFORMED", f"undecodable CA certificate: {e}")
        )
    issuing = certs[0]
    problem: Problem | None = None
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None = None
    reason = _is_ca(issuing)
    if reason is not None:
        problem = ("BAD_CHAIN", reason)
    else:
        key = issuing.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            public_key = key
        else:
            problem = ("BAD_CHAIN", "the issuing CA key is neither ECDSA nor RSA")
    for lower, upper in itertools.pairwise(certs):
        if problem is not None:
            break
        why = _is_ca(upper)
        if why is not None:
            problem = ("BAD_CHAIN", why)
            break
        found = _issued_by(lower, upper)
        if found is not None:
            problem = ("BAD_CHAIN", found[1])
    top = certs[-1]
    if problem is None and top.issuer == top.subject:
        found = _issued_by(top, top)
        if found is not None:
            problem = ("BAD_CHAIN", f"self-signed {_name(top)} has a bad signature")
    try:
        not_before = issuing.not_valid_before_utc.timestamp()
        not_after = issuing.not_valid_after_utc.timestamp()
    except ValueError as e:  # pragma: no cover - cryptography parsed these at load time
        return IssuerInfo(ca_hash, None, 0.0, 0.0, ("MALFORMED", str(e)))
    try:
        subject_der: bytes | None = tbs_parts(chain_der[0])[2]
    except DerError:  # pragma: no cover - cryptography parsed it; names are then compared decoded
        subject_der = None
    return IssuerInfo(
        ca_hash,
        issuing,
        not_before,
        not_after,
        problem,
        public_key,
        issuing.subject,
        chain_der,
        subject_der,
    )


def _signed_by(
    cert: x509.Certificate,
    cert_der: bytes,
    issuer: IssuerInfo,
    sliced: tuple[bytes, bytes] | None = None,
) -> Problem | None:
    """RFC 5280 §6.1.3 (a)(1), (a)(4): issuer name and signature, with the cached CA key.

    ``sliced``: ``(tbsCertificate, issuer Name)`` of ``cert_der`` when already sliced."""
    assert issuer.certificate is not None and issuer.public_key is not None
    if sliced is not None:
        tbs, issuer_der = sliced
    else:
        try:
            tbs, issuer_der, _ = tbs_parts(cert_der)
        except DerError:  # pragma: no cover - cryptography parsed it; use its re-encoding
            tbs, issuer_der = cert.tbs_certificate_bytes, b""
    # Equal DER means equal names; otherwise the decoded names decide (as before 0810).
    if issuer_der != issuer.subject_der:
        try:
            other = cert.issuer != issuer.subject
        except ValueError as e:  # cryptography decodes names lazily (escaped before 0812)
            return "MALFORMED", f"undecodable issuer name: {e}"
        if other:
            return (
                "BAD_CHAIN",
                f"{_name(cert)} names another issuer than {_name(issuer.certificate)}",
            )
    oid = cert.signature_algorithm_oid
    key = issuer.public_key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and oid in _ECDSA:
            key.verify(cert.signature, tbs, _ECDSA[oid])
        elif isinstance(key, rsa.RSAPublicKey) and oid in _RSA_PKCS1:
            key.verify(cert.signature, tbs, _PKCS1, _RSA_PKCS1[oid])
        else:
            return (
                "BAD_SIGNATURE",
                f"signature algorithm {oid.dotted_string} does not fit the CA key",
            )
    except InvalidSignature:
        return "BAD_SIGNATURE", f"{_name(cert)} carries no valid signature of its issuing CA"
    return None


def _serial_is_positive(cert_der: bytes) -> bool | None:
    """RFC 5280 §4.1.2.2 from the DER alone (no global warning filters on the verify path):
    True/False, or None when the header does not parse (the loader then gives the verdict)."""
    try:
        _, cert_body, _ = read_header(cert_der)
        _, pos, _ = read_header(cert_der, cert_body)  # into tbsCertificate
        tag, start, end = read_header(cert_der, pos)
        if tag == 0xA0:  # [0] version
            tag, start, end = read_header(cert_der, end)
    except DerError:
        return None
    if tag != 0x02 or end <= start:
        return None
    return cert_der[start] < 0x80 and any(cert_der[start:end])


def analyze_leaf(cert_der: bytes, issuer: IssuerInfo, cert_hash: bytes | None = None) -> LeafInfo:
    """Decode ``cert_der``, check ``issuer``'s signature on it and read its ppCert fields.

    ``cert_hash`` is ``SHA-256(cert_der)`` when the caller has it already.
    """
    if cert_hash is None:
        cert_hash = hashlib.sha256(cert_der).digest()
    # Before loading: cryptography warns on (and will refuse) a serial that is not positive.
    if _serial_is_positive(cert_der) is False:
        return LeafInfo(
            cert_hash, None, None, 0.0, 0.0,
            ("MALFORMED", "the serial number is not positive (RFC 5280 §4.1.2.2)"),
        )
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        valid_from = cert.not_valid_before_utc
        valid_to = cert.not_valid_after_utc
    except (ValueError, x509.InvalidVersion) as e:  # InvalidVersion: v2 (escaped before 0812)
        return LeafInfo(
            cert_hash, None, None, 0.0, 0.0, ("MALFORMED", f"undecodable certificate: {e}")
        )
    not_before, not_after = valid_from.timestamp(), valid_to.timestamp()
    # The exact ppCert shape is read straight from the DER (decision 0812); anything else takes
    # the cryptography-based path below, which gives every verdict and message.
    fields = read_ppcert(cert_der)
    if fields is not None:
        problem = _signed_by(cert, cert_der, issuer, (fields.tbs, fields.issuer))
        if problem is not None:
            return LeafInfo(cert_hash, cert, None, not_before, not_after, problem)
        view = LeafView(
            fields.subject_id,
            fields.cms_address,
            fields.operator_id,
            fields.signature_profile,
            cert.serial_number,
            valid_from,
            valid_to,
            fields.sealed_attribute_ids,
        )
        return LeafInfo(cert_hash, cert, view, not_before, not_after)
    problem = _signed_by(cert, cert_der, issuer)
    if problem is not None:
        return LeafInfo(cert_hash, cert, None, not_before, not_after, problem)
    # Read the ppCert fields from a second, throwaway decoding: the cached certificate then does
    # not keep cryptography's decoded extension objects alive (decision 0810).
    try:
        full = parse_ppcert(x509.load_der_x509_certificate(cert_der))
    except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension) as e:
        # PpCertError, and what cryptography raises outside it: a subject key that does not
        # decode (ValueError) or is on an unknown curve, a duplicated extension.
        return LeafInfo(
            cert_hash, cert, None, not_before, not_after, ("MALFORMED", f"not a ppCert: {e}")
        )
    view = LeafView(
        full.subject_id,
        full.cms_address,
        full.operator_id,
        full.signature_profile,
        full.serial_number,
        full.not_before,
        full.not_after,
        tuple(sorted(full.sealed)),
    )
    return LeafInfo(cert_hash, cert, view, not_before, not_after)
