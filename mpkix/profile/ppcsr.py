"""ppCSR: the privacy-preserving PKCS#10 request (RFC 2986; paper §4.1.2, Fig. 4; ARCHITECTURE
§2.1 step 2; decision record 0304).

* subject: one RDN holding only ``commonName = <pseudonymous subject id>`` (``pp-`` + 128 random
  bits in base32), never a name, IMSI, MSISDN or IMEI;
* the sealed attributes in a PKCS#9 extensionRequest (RFC 2985 §5.4.2) holding exactly one
  non-critical ``id-mpkix-ce-sealedAttributes`` extension;
* self-signed by the new key (proof of possession): ECDSA P-256 with SHA-256 by default, or
  sha256WithRSAEncryption with an RSA key of 2048..4096 bits (exponent 65537).

``parse_ppcsr`` is what the CMS and the CA run on untrusted bytes: it accepts exactly this shape
and reports every other input as ``PpCsrError``.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from mpkix.profile.extensions import DerError, decode_sealed_attributes, encode_sealed_attributes
from mpkix.profile.oids import ID_MPKIX_CE_SEALED_ATTRIBUTES

SUBJECT_ID_PREFIX: Final = "pp-"
#: 26 base32 characters carry 130 bits; the last one's 2 spare bits are zero in canonical form,
#: so it is one of the characters with value 0 mod 4.
SUBJECT_ID_RE: Final = re.compile(r"pp-[a-z2-7]{25}[aeimquy4]")
#: Upper bound on the DER size of a ppCSR (an RSA-4096 ppCSR with 32 attributes is ~3.5 KiB).
MAX_PPCSR_DER: Final = 8192
MIN_RSA_BITS: Final = 2048
MAX_RSA_BITS: Final = 4096
RSA_EXPONENT: Final = 65537
#: PKCS#9 extensionRequest (RFC 2985 §5.4.2).
EXTENSION_REQUEST: Final = x509.ObjectIdentifier("1.2.840.113549.1.9.14")

SubjectPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
SubjectPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class PpCsrError(ValueError):
    """A ppCSR that cannot be built or must be rejected; ``str()`` says why."""


def new_subject_id() -> str:
    """A fresh pseudonymous subject id: ``pp-`` + 128 random bits as 26 lower-case base32 chars."""
    return SUBJECT_ID_PREFIX + base64.b32encode(os.urandom(16)).decode("ascii").rstrip("=").lower()


def is_subject_id(value: str) -> bool:
    """True iff ``value`` is a canonical subject id as ``new_subject_id`` makes them."""
    return isinstance(value, str) and SUBJECT_ID_RE.fullmatch(value) is not None


def subject_name(subject_id: str) -> x509.Name:
    """The ppCSR/ppCert subject: one RDN, ``CN=<subject id>``."""
    if not is_subject_id(subject_id):
        raise PpCsrError(f"not a pseudonymous subject id: {subject_id!r}")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_id)])


def check_public_key(key: object) -> str:
    """Accept an EC P-256 or RSA 2048..4096/65537 public key; returns ``"P-256"`` or ``"RSA-n"``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise PpCsrError(f"unsupported EC curve {key.curve.name} (only P-256)")
        return "P-256"
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < MIN_RSA_BITS or bits > MAX_RSA_BITS or bits % 8:
            raise PpCsrError(f"unsupported RSA key size {bits} (2048..4096, multiple of 8)")
        if key.public_numbers().e != RSA_EXPONENT:
            raise PpCsrError("unsupported RSA public exponent (only 65537)")
        return f"RSA-{bits}"
    raise PpCsrError(f"unsupported key type {type(key).__name__} (only P-256 and RSA)")


def build_ppcsr(
    private_key: SubjectPrivateKey, subject_id: str, sealed: Mapping[str, bytes]
) -> x509.CertificateSigningRequest:
    """Build and self-sign a ppCSR (ECDSA-SHA256 for P-256, sha256WithRSAEncryption for RSA)."""
    check_public_key(private_key.public_key())
    try:
        ext_der = encode_sealed_attributes(sealed)
    except DerError as exc:
        raise PpCsrError(f"sealed attributes: {exc}") from None
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_name(subject_id))
        .add_extension(
            x509.UnrecognizedExtension(ID_MPKIX_CE_SEALED_ATTRIBUTES, ext_der), critical=False
        )
    )
    return builder.sign(private_key, hashes.SHA256())


@dataclass(frozen=True, slots=True)
class PpCsr:
    """A parsed ppCSR."""

    der: bytes
    subject_id: str
    public_key: SubjectPublicKey
    key_type: str
    sealed: Mapping[str, bytes] = field(default_factory=dict)
    signature_valid: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "sealed", MappingProxyType(dict(self.sealed)))


_EXPECTED_SIGNATURE: Final = {
    "EC": SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    "RSA": SignatureAlgorithmOID.RSA_WITH_SHA256,
}


def subject_id_from_name(name: x509.Name) -> str:
    rdns = name.rdns
    if len(rdns) != 1 or len(rdns[0]) != 1:
        raise PpCsrError("subject must be exactly one RDN with one attribute (CN=subject id)")
    (attr,) = rdns[0]
    if attr.oid != NameOID.COMMON_NAME:
        raise PpCsrError(f"forbidden subject attribute {attr.oid.dotted_string}")
    value = attr.value
    if not isinstance(value, str) or not is_subject_id(value):
        raise PpCsrError("subject CN is not a pseudonymous subject id")
    return value


def _sealed_of(csr: x509.CertificateSigningRequest) -> dict[str, bytes]:
    try:
        extensions = csr.extensions
    except (ValueError, x509.DuplicateExtension) as exc:
        raise PpCsrError(f"malformed extension request: {exc}") from None
    if len(extensions) != 1:
        raise PpCsrError("the extension request must hold exactly the sealed-attributes extension")
    (ext,) = extensions
    if ext.oid != ID_MPKIX_CE_SEALED_ATTRIBUTES:
        raise PpCsrError(f"unexpected requested extension {ext.oid.dotted_string}")
    if ext.critical:
        raise PpCsrError("the sealed-attributes extension must be non-critical")
    if not isinstance(ext.value, x509.UnrecognizedExtension):
        raise PpCsrError("sealed-attributes extension has an unexpected type")
    try:
        return decode_sealed_attributes(ext.value.value)
    except DerError as exc:
        raise PpCsrError(f"sealed attributes: {exc}") from None


def parse_ppcsr(der: bytes, *, require_valid_signature: bool = True) -> PpCsr:
    """Parse and check a DER ppCSR; every deviation from the profile raises ``PpCsrError``."""
    if not isinstance(der, bytes | bytearray | memoryview):
        raise PpCsrError("ppCSR must be DER bytes")
    der = bytes(der)
    if len(der) > MAX_PPCSR_DER:
        raise PpCsrError(f"ppCSR larger than {MAX_PPCSR_DER} bytes")
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError as exc:
        raise PpCsrError(f"malformed PKCS#10 request: {exc}") from None
    if csr.public_bytes(serialization.Encoding.DER) != der:
        raise PpCsrError("ppCSR is not a single canonical DER request")
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PpCsrError(f"unsupported subject public key: {exc}") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise PpCsrError(f"unsupported key type {type(public_key).__name__}")
    key_type = check_public_key(public_key)
    family = "EC" if key_type == "P-256" else "RSA"
    if csr.signature_algorithm_oid != _EXPECTED_SIGNATURE[family]:
        raise PpCsrError(
            f"unsupported signature algorithm {csr.signature_algorithm_oid.dotted_string}"
        )
    subject_id = subject_id_from_name(csr.subject)
    for attribute in csr.attributes:
        if attribute.oid != EXTENSION_REQUEST:
            raise PpCsrError(f"unexpected CSR attribute {attribute.oid.dotted_string}")
    sealed = _sealed_of(csr)
    signature_valid = csr.is_signature_valid
    if require_valid_signature and not signature_valid:
        raise PpCsrError("ppCSR self-signature does not verify with its public key")
    return PpCsr(der, subject_id, public_key, key_type, sealed, signature_valid)
