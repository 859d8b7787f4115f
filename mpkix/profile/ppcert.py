"""ppCert: the privacy-preserving end-entity certificate (RFC 5280; paper §4.1.3, Fig. 4;
ARCHITECTURE §2.1 "ppCert profile"; decision records 0305 and 0306).

Profile, field by field:

* version v3; serial = 128 random bits with the top bit forced to 1 (127 bits of entropy, always
  17 DER octets, within RFC 5280's 20);
* signature ecdsa-with-SHA256 (P-256 CA, default) or sha256WithRSAEncryption (RSA CA);
* subject ``CN=<pseudonymous subject id>`` only — no unique-identifier fields (RFC 5280 §4.1.2.8
  forbids them, the subject id plays the paper's "Unique Subject ID");
* validity ``[now - backdate, notBefore + days - 1 s]`` (inclusive, so exactly ``days`` long);
* extensions: keyUsage digitalSignature (critical); extendedKeyUsage clientAuth; SKI (RFC 5280
  method 1); AKI keyIdentifier = issuer SKI; certificatePolicies {MPKIX policy, profile policy}
  without qualifiers; subjectInfoAccess {id-mpkix-ad-cmsGrpc → ``grpcs://host:port``};
  id-mpkix-ce-ppCertInfo (non-critical) with the ``mss:`` URI, operator id and sealed attributes.
  No basicConstraints: RFC 5280 §4.2.1.9 lets end-entity certificates omit it, and keyUsage
  without keyCertSign already rules out certificate signing.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID

from mpkix.profile.extensions import (
    TAG_SEQUENCE,
    DerError,
    PpCertInfo,
    decode_ppcert_info,
    der_bit_string,
    der_sequence,
    encode_ppcert_info,
    read_header,
)
from mpkix.profile.oids import ID_MPKIX_AD_CMS_GRPC, ID_MPKIX_CE_PPCERT_INFO, ID_MPKIX_CP
from mpkix.profile.ppcsr import (
    PpCsr,
    PpCsrError,
    SubjectPublicKey,
    subject_id_from_name,
)
from mpkix.profile.signature_profiles import (
    DEFAULT_PROFILE_URI,
    PROFILES,
    SignatureProfileError,
    get_profile,
    profile_for_policy,
)

DEFAULT_VALIDITY_DAYS: Final = 365
MAX_VALIDITY_DAYS: Final = 825
DEFAULT_BACKDATE_SECONDS: Final = 300
MAX_BACKDATE_SECONDS: Final = 86400
SERIAL_BITS: Final = 128
CMS_URI_SCHEME: Final = "grpcs"

CaPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_DNS_LABEL: Final = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DNS_NAME_RE: Final = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_ADDRESS_RE: Final = re.compile(r"(?:grpcs://)?(\[[0-9A-Fa-f:.]+\]|[^:/\[\]@?#]+):([0-9]{1,5})")


class PpCertError(ValueError):
    """A certificate or parameters that do not follow the ppCert profile."""


def normalize_cms_address(address: str) -> str:
    """``host:port`` or ``grpcs://host:port`` → canonical ``grpcs://host:port`` (lower-case host).

    Hosts are DNS names, IPv4 addresses or bracketed IPv6 addresses; no user info, path, query or
    fragment. Results are cached.
    """
    if not isinstance(address, str) or len(address) > 300:
        raise PpCertError(f"CMS address must be [grpcs://]host:port, got {address!r}")
    return _normalize_cms_address(address)


@functools.lru_cache(maxsize=1024)
def _normalize_cms_address(address: str) -> str:
    match = _ADDRESS_RE.fullmatch(address)
    if match is None:
        raise PpCertError(f"CMS address must be [grpcs://]host:port, got {address!r}")
    host, port_text = match.group(1), match.group(2)
    port = int(port_text)
    if not 1 <= port <= 65535 or port_text != str(port):
        raise PpCertError(f"invalid CMS port {port_text!r}")
    if host.startswith("["):
        try:
            ip6 = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise PpCertError(f"invalid IPv6 address {host!r}") from None
        host = f"[{ip6.compressed}]"
    else:
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError:
            if len(host) > 253 or _DNS_NAME_RE.fullmatch(host) is None or host[-1].isdigit():
                raise PpCertError(f"invalid CMS host name {host!r}") from None
            host = host.lower()
    return f"{CMS_URI_SCHEME}://{host}:{port}"


@dataclass(frozen=True, slots=True)
class PpCertParams:
    """What the CA adds to a ppCSR: operator, CMS endpoint, signature profile, validity."""

    operator_id: str
    cms_address: str
    signature_profile: str = DEFAULT_PROFILE_URI
    validity_days: int = DEFAULT_VALIDITY_DAYS
    backdate_seconds: int = DEFAULT_BACKDATE_SECONDS

    def __post_init__(self) -> None:
        try:
            profile = get_profile(self.signature_profile)
        except SignatureProfileError as exc:
            raise PpCertError(str(exc)) from None
        object.__setattr__(self, "signature_profile", profile.uri_text)
        object.__setattr__(self, "cms_address", normalize_cms_address(self.cms_address))
        # Checked through the DER encoder's own rules (one regex, one place).
        try:
            encode_ppcert_info(PpCertInfo(profile.uri_text, self.operator_id, {"x": bytes(60)}))
        except DerError as exc:
            raise PpCertError(str(exc)) from None
        if not 1 <= self.validity_days <= MAX_VALIDITY_DAYS:
            raise PpCertError(f"validity_days must be 1..{MAX_VALIDITY_DAYS}")
        if not 0 <= self.backdate_seconds <= MAX_BACKDATE_SECONDS:
            raise PpCertError(f"backdate_seconds must be 0..{MAX_BACKDATE_SECONDS}")


def random_serial() -> int:
    """128-bit serial with the top bit set: 127 random bits, DER length always 17 octets."""
    return int.from_bytes(os.urandom(SERIAL_BITS // 8), "big") | (1 << (SERIAL_BITS - 1))


@dataclass(frozen=True, slots=True)
class IssuerContext:
    """What building a ppCert needs from the issuing CA certificate, computed once per CA."""

    name: x509.Name
    authority_key_identifier: x509.AuthorityKeyIdentifier
    not_before: datetime.datetime
    not_after: datetime.datetime


@functools.lru_cache(maxsize=32)
def issuer_context(ca_cert: x509.Certificate) -> IssuerContext:
    """The cached ``IssuerContext`` of ``ca_cert`` (AKI from its SKI, or computed from its key)."""
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key())
    return IssuerContext(
        ca_cert.subject,
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
        ca_cert.not_valid_before_utc,
        ca_cert.not_valid_after_utc,
    )


_KEY_USAGE: Final = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_EXTENDED_KEY_USAGE: Final = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])


@functools.lru_cache(maxsize=64)
def _policies(profile_uri: str) -> x509.CertificatePolicies:
    profile = get_profile(profile_uri)
    return x509.CertificatePolicies(
        [
            x509.PolicyInformation(ID_MPKIX_CP, None),
            x509.PolicyInformation(profile.policy_oid, None),
        ]
    )


@functools.lru_cache(maxsize=1024)
def _subject_information_access(cms_uri: str) -> x509.SubjectInformationAccess:
    return x509.SubjectInformationAccess(
        [x509.AccessDescription(ID_MPKIX_AD_CMS_GRPC, x509.UniformResourceIdentifier(cms_uri))]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def build_tbs(
    ca_cert: x509.Certificate,
    csr: PpCsr,
    params: PpCertParams,
    *,
    serial: int | None = None,
    now: datetime.datetime | None = None,
) -> x509.CertificateBuilder:
    """The unsigned ppCert for ``csr`` as a ``CertificateBuilder`` (sign it, or lint a precert).

    ``notBefore`` is ``now - backdate`` but never before the CA's own ``notBefore``. Nothing here
    re-validates ``csr``: the linter is the gate (``ca_node.authority``).
    """
    issuer = issuer_context(ca_cert)
    start = (now or _now()).astimezone(datetime.UTC).replace(microsecond=0)
    not_before = max(start - datetime.timedelta(seconds=params.backdate_seconds), issuer.not_before)
    not_after = not_before + datetime.timedelta(days=params.validity_days, seconds=-1)
    info = encode_ppcert_info(PpCertInfo(params.signature_profile, params.operator_id, csr.sealed))
    return (
        x509.CertificateBuilder(
            issuer_name=issuer.name,
            subject_name=x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, csr.subject_id)]),
            public_key=csr.public_key,
            serial_number=random_serial() if serial is None else serial,
            not_valid_before=not_before,
            not_valid_after=not_after,
        )
        .add_extension(_KEY_USAGE, critical=True)
        .add_extension(_EXTENDED_KEY_USAGE, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key), critical=False)
        .add_extension(issuer.authority_key_identifier, critical=False)
        .add_extension(_policies(params.signature_profile), critical=False)
        .add_extension(_subject_information_access(params.cms_address), critical=False)
        .add_extension(x509.UnrecognizedExtension(ID_MPKIX_CE_PPCERT_INFO, info), critical=False)
    )


def issue_ppcert(
    ca_key: CaPrivateKey,
    ca_cert: x509.Certificate,
    csr: PpCsr,
    params: PpCertParams,
    serial: int | None = None,
    *,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """Build and sign a ppCert without linting (``ca_node.authority`` lints before signing)."""
    return build_tbs(ca_cert, csr, params, serial=serial, now=now).sign(ca_key, hashes.SHA256())


_SIGNATURE_FOR_KEY: Final = {
    "EC": SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    "RSA": SignatureAlgorithmOID.RSA_WITH_SHA256,
}


def key_family(key: object) -> str:
    """``"EC"`` or ``"RSA"`` for a public or private key."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "EC"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA"
    raise PpCertError(f"unsupported CA key type {type(key).__name__}")


def sign_precertificate(precert: x509.Certificate, ca_key: CaPrivateKey) -> x509.Certificate:
    """Re-sign the exact ``tbsCertificate`` of ``precert`` (signed by a throwaway key) with
    ``ca_key``: what was linted is byte for byte what gets signed (decision record 0307)."""
    expected = _SIGNATURE_FOR_KEY[key_family(ca_key)]
    if precert.signature_algorithm_oid != expected:
        raise PpCertError("precertificate signature algorithm does not match the CA key")
    der = precert.public_bytes(serialization.Encoding.DER)
    try:
        tag, tbs_start, _ = read_header(der)
        _, _, tbs_end = read_header(der, tbs_start)
        _, _, algorithm_end = read_header(der, tbs_end)
    except DerError as exc:  # pragma: no cover - cryptography produced this DER
        raise PpCertError(f"cannot split precertificate: {exc}") from None
    if tag != TAG_SEQUENCE:  # pragma: no cover - cryptography produced this DER
        raise PpCertError("precertificate is not a SEQUENCE")
    tbs = der[tbs_start:tbs_end]
    if isinstance(ca_key, ec.EllipticCurvePrivateKey):
        signature = ca_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    else:
        signature = ca_key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    return x509.load_der_x509_certificate(
        der_sequence(tbs, der[tbs_end:algorithm_end], der_bit_string(signature))
    )


@dataclass(frozen=True, slots=True)
class PpCertView:
    """The MPKIX content of a ppCert, as the CMA, CMS and IAS SDK read it."""

    certificate: x509.Certificate
    subject_id: str
    serial_number: int
    not_before: datetime.datetime
    not_after: datetime.datetime
    signature_profile: str
    operator_id: str
    cms_address: str
    public_key: SubjectPublicKey
    policy_oids: tuple[x509.ObjectIdentifier, ...]
    sealed: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sealed", MappingProxyType(dict(self.sealed)))


def _cms_uri(sia: x509.Extension[x509.ExtensionType] | None) -> str:
    if sia is None or not isinstance(sia.value, x509.SubjectInformationAccess):
        raise PpCertError("no Subject Information Access extension")
    uris = [
        d.access_location.value
        for d in sia.value
        if d.access_method == ID_MPKIX_AD_CMS_GRPC
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]
    if len(uris) != 1:
        raise PpCertError("Subject Information Access must name exactly one MPKIX CMS endpoint")
    return uris[0]


def parse_ppcert(cert: x509.Certificate) -> PpCertView:
    """Read the MPKIX fields of ``cert``; raises ``PpCertError`` if they are absent or malformed.

    This reads, it does not judge: run ``mpkix.profile.lint.lint_ppcert`` for the full profile check
    and the IAS SDK for chain, ledger and revocation checks.
    """
    try:
        subject_id = subject_id_from_name(cert.subject)
        # One pass over the decoded extensions (cryptography rejects duplicates when decoding).
        by_oid = {e.oid: e for e in cert.extensions}
    except PpCsrError as exc:
        raise PpCertError(str(exc)) from None
    except ValueError as exc:
        raise PpCertError(f"malformed extensions: {exc}") from None
    found = by_oid.get(ID_MPKIX_CE_PPCERT_INFO)
    if found is None:
        raise PpCertError("no MPKIX ppCertInfo extension")
    ext = found.value
    if not isinstance(ext, x509.UnrecognizedExtension):
        raise PpCertError("MPKIX ppCertInfo extension has an unexpected type")
    try:
        info = decode_ppcert_info(ext.value)
    except DerError as exc:
        raise PpCertError(f"MPKIX ppCertInfo: {exc}") from None
    policies = by_oid.get(ExtensionOID.CERTIFICATE_POLICIES)
    if policies is None or not isinstance(policies.value, x509.CertificatePolicies):
        raise PpCertError("no certificatePolicies extension")
    policy_oids = tuple(p.policy_identifier for p in policies.value)
    profile = profile_for_policy(next((o for o in policy_oids if o != ID_MPKIX_CP), ID_MPKIX_CP))
    # PROFILES is keyed by each registered profile's canonical URI text.
    if profile is None or PROFILES.get(info.signature_profile) is not profile:
        raise PpCertError("profile policy OID does not match the mss: URI")
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise PpCertError("unsupported subject public key type")
    return PpCertView(
        certificate=cert,
        subject_id=subject_id,
        serial_number=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        signature_profile=info.signature_profile,
        operator_id=info.operator_id,
        cms_address=_cms_uri(by_oid.get(ExtensionOID.SUBJECT_INFORMATION_ACCESS)),
        public_key=public_key,
        policy_oids=policy_oids,
        sealed=info.sealed,
    )
