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
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from mpkix.profile.ppcert import PpCertError, PpCertView, parse_ppcert

Problem = tuple[str, str]  # (reason code, message)

_ECDSA = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    }
)
_RSA_PKCS1 = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
    }
)


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


@dataclass(slots=True)
class LeafInfo:
    """A certificate checked against one issuing CA, or why it fails."""

    cert_hash: bytes
    certificate: x509.Certificate | None
    view: PpCertView | None
    not_before: float
    not_after: float
    problem: Problem | None = None
    # Last inclusion proof computed for this leaf: (operator key hash, index, size, path) → root.
    proof_key: tuple[bytes, int, int, tuple[bytes, ...]] | None = field(default=None)
    proof_root: bytes | None = field(default=None)


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "certificate"


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
    except ValueError as e:
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
    return IssuerInfo(
        ca_hash, issuing, not_before, not_after, problem, public_key, issuing.subject, chain_der
    )


def _signed_by(cert: x509.Certificate, issuer: IssuerInfo) -> Problem | None:
    """RFC 5280 §6.1.3 (a)(1), (a)(4): issuer name and signature, with the cached CA key."""
    assert issuer.certificate is not None and issuer.public_key is not None
    if cert.issuer != issuer.subject:
        return "BAD_CHAIN", f"{_name(cert)} names another issuer than {_name(issuer.certificate)}"
    oid = cert.signature_algorithm_oid
    digest = cert.signature_hash_algorithm
    key = issuer.public_key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and oid in _ECDSA and digest is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPublicKey) and oid in _RSA_PKCS1 and digest is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), digest)
        else:
            return (
                "BAD_SIGNATURE",
                f"signature algorithm {oid.dotted_string} does not fit the CA key",
            )
    except InvalidSignature:
        return "BAD_SIGNATURE", f"{_name(cert)} carries no valid signature of its issuing CA"
    return None


def analyze_leaf(cert_der: bytes, issuer: IssuerInfo) -> LeafInfo:
    """Decode ``cert_der``, check ``issuer``'s signature on it and read its ppCert fields."""
    cert_hash = hashlib.sha256(cert_der).digest()
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        not_before = cert.not_valid_before_utc.timestamp()
        not_after = cert.not_valid_after_utc.timestamp()
    except ValueError as e:
        return LeafInfo(
            cert_hash, None, None, 0.0, 0.0, ("MALFORMED", f"undecodable certificate: {e}")
        )
    problem = _signed_by(cert, issuer)
    if problem is not None:
        return LeafInfo(cert_hash, cert, None, not_before, not_after, problem)
    try:
        view = parse_ppcert(cert)
    except PpCertError as e:
        return LeafInfo(
            cert_hash, cert, None, not_before, not_after, ("MALFORMED", f"not a ppCert: {e}")
        )
    return LeafInfo(cert_hash, cert, view, not_before, not_after)
