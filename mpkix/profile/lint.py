"""In-process ppCert profile linter, run on every certificate before the CA signs it (Boulder's
"lint before signing"; decision record 0307).

``lint_ppcert`` checks every rule of the ppCert profile (``mpkix.profile.ppcert``) and returns one
``Finding`` per violation; an empty list means the certificate is exactly on profile. Pass the
issuing CA certificate to also check issuer name, AKI, signature algorithm and validity window
against it. pkilint's RFC 5280 linter runs on sample certificates in the tests; this linter is the
fast, MPKIX-specific gate on the issuance hot path.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID, SignatureAlgorithmOID

from mpkix.profile.extensions import (
    TAG_INTEGER,
    TAG_SEQUENCE,
    DerError,
    PpCertInfo,
    decode_ppcert_info,
    read_header,
)
from mpkix.profile.oids import ID_MPKIX_AD_CMS_GRPC, ID_MPKIX_CE_PPCERT_INFO, ID_MPKIX_CP
from mpkix.profile.ppcert import MAX_VALIDITY_DAYS, PpCertError, key_family, normalize_cms_address
from mpkix.profile.ppcsr import PpCsrError, check_public_key, is_subject_id
from mpkix.profile.signature_profiles import profile_for_uri

MAX_SERIAL_OCTETS: Final = 20
MIN_SERIAL_BITS: Final = 64

_SIGNATURE_ALGORITHMS: Final = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "EC",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "RSA",
}
_CRITICAL: Final = {ExtensionOID.KEY_USAGE}
_REQUIRED_EXTENSIONS: Final = (
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.SUBJECT_INFORMATION_ACCESS,
    ID_MPKIX_CE_PPCERT_INFO,
)
#: Subject attributes that identify a person or a subscription: named in findings.
_IDENTIFYING_ATTRIBUTES: Final = {
    NameOID.GIVEN_NAME: "givenName",
    NameOID.SURNAME: "surname",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.STREET_ADDRESS: "streetAddress",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.LOCALITY_NAME: "localityName",
    NameOID.STATE_OR_PROVINCE_NAME: "stateOrProvinceName",
    NameOID.COUNTRY_NAME: "countryName",
    NameOID.ORGANIZATION_NAME: "organizationName",
    NameOID.USER_ID: "uid",
    x509.ObjectIdentifier("2.5.4.20"): "telephoneNumber",
}


@dataclass(frozen=True, slots=True)
class _IssuerFacts:
    subject_der: bytes
    key_identifier: bytes
    key_family: str
    not_before: datetime.datetime
    not_after: datetime.datetime


@functools.lru_cache(maxsize=32)
def _issuer_facts(issuer: x509.Certificate) -> _IssuerFacts:
    public_key = issuer.public_key()
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
    return _IssuerFacts(
        issuer.subject.public_bytes(),
        ski,
        key_family(public_key),
        issuer.not_valid_before_utc,
        issuer.not_valid_after_utc,
    )


@dataclass(frozen=True, slots=True)
class Finding:
    """One profile violation: a stable dotted code and a human-readable message."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class LintError(Exception):
    """Raised by the CA when a certificate it was about to sign has lint findings."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = list(findings)
        super().__init__("; ".join(str(f) for f in self.findings) or "lint failed")


def _top_level_elements(tbs_der: bytes) -> list[tuple[int, int]]:
    """(tag, content length) of each tbsCertificate element, reading headers only."""
    tag, offset, end = read_header(tbs_der)
    if tag != TAG_SEQUENCE or end != len(tbs_der):
        raise DerError("tbsCertificate is not one SEQUENCE")
    elements = []
    while offset < end:
        tag, start, offset = read_header(tbs_der, offset)
        elements.append((tag, offset - start))
    return elements


def _lint_tbs_structure(cert: x509.Certificate, out: list[Finding]) -> None:
    """Version, serial encoding, no unique identifiers (read from the TBS DER itself)."""
    if cert.version != x509.Version.v3:
        out.append(Finding("version", "ppCerts are X.509 v3"))
    try:
        elements = _top_level_elements(cert.tbs_certificate_bytes)
    except DerError as exc:
        out.append(Finding("tbs.malformed", str(exc)))
        return
    serial_index = 1 if elements and elements[0][0] == 0xA0 else 0
    if len(elements) <= serial_index or elements[serial_index][0] != TAG_INTEGER:
        out.append(Finding("serial.malformed", "no serialNumber INTEGER"))
    elif elements[serial_index][1] > MAX_SERIAL_OCTETS:
        octets = elements[serial_index][1]
        out.append(Finding("serial.too_long", f"serialNumber is {octets} octets (max 20)"))
    if any(tag in (0x81, 0x82) for tag, _ in elements):
        out.append(Finding("unique_id.present", "issuer/subject unique identifiers are forbidden"))
    serial = cert.serial_number
    if serial <= 0:
        out.append(Finding("serial.not_positive", "serialNumber must be positive"))
    elif serial.bit_length() < MIN_SERIAL_BITS:
        out.append(
            Finding("serial.low_entropy", f"serialNumber has fewer than {MIN_SERIAL_BITS} bits")
        )


def _lint_subject(cert: x509.Certificate, out: list[Finding]) -> None:
    try:
        rdns = cert.subject.rdns
    except ValueError as exc:
        out.append(Finding("subject.malformed", str(exc)))
        return
    attrs = [a for rdn in rdns for a in rdn]
    for attr in attrs:
        if attr.oid != NameOID.COMMON_NAME:
            label = _IDENTIFYING_ATTRIBUTES.get(attr.oid, attr.oid.dotted_string)
            out.append(Finding("subject.forbidden_attribute", f"subject carries {label}"))
    cns = [a for a in attrs if a.oid == NameOID.COMMON_NAME]
    if len(rdns) != 1 or len(attrs) != 1 or len(cns) != 1:
        out.append(Finding("subject.shape", "subject must be exactly one RDN: CN=<subject id>"))
    for cn in cns:
        if not isinstance(cn.value, str) or not is_subject_id(cn.value):
            out.append(Finding("subject.not_pseudonymous", "subject CN is not a subject id"))


def _lint_key_and_signature(
    cert: x509.Certificate, public_key: object, issuer: _IssuerFacts | None, out: list[Finding]
) -> None:
    try:
        check_public_key(public_key)
    except PpCsrError as exc:
        out.append(Finding("spki.unsupported", str(exc)))
    family = _SIGNATURE_ALGORITHMS.get(cert.signature_algorithm_oid)
    if family is None:
        out.append(
            Finding(
                "signature.algorithm",
                f"signature algorithm {cert.signature_algorithm_oid.dotted_string} not allowed",
            )
        )
    elif issuer is not None and family != issuer.key_family:
        out.append(Finding("signature.issuer_key_mismatch", "algorithm does not fit the CA key"))


def _lint_validity(cert: x509.Certificate, issuer: _IssuerFacts | None, out: list[Finding]) -> None:
    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    if na <= nb:
        out.append(Finding("validity.inverted", "notAfter is not after notBefore"))
    elif na - nb > datetime.timedelta(days=MAX_VALIDITY_DAYS):
        out.append(Finding("validity.too_long", f"validity exceeds {MAX_VALIDITY_DAYS} days"))
    if issuer is not None:
        if nb < issuer.not_before:
            out.append(Finding("validity.before_issuer", "notBefore precedes the CA's notBefore"))
        if na > issuer.not_after:
            out.append(Finding("validity.after_issuer", "notAfter exceeds the CA's notAfter"))


_AnyExtension = x509.Extension[x509.ExtensionType]


def _check_key_usage(ku: x509.KeyUsage, out: list[Finding]) -> None:
    others = (
        ku.content_commitment,
        ku.key_encipherment,
        ku.data_encipherment,
        ku.key_agreement,
        ku.key_cert_sign,
        ku.crl_sign,
    )
    if not ku.digital_signature or any(others):
        out.append(Finding("key_usage.bits", "keyUsage must be exactly digitalSignature"))


def _check_ski(ski: x509.SubjectKeyIdentifier, public_key: object, out: list[Finding]) -> None:
    try:
        expected = x509.SubjectKeyIdentifier.from_public_key(public_key)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return  # the SPKI check reports the key
    if ski.digest != expected.digest:
        out.append(Finding("ski.mismatch", "SKI is not the RFC 5280 method-1 key hash"))


def _check_aki(
    aki: x509.AuthorityKeyIdentifier, issuer: _IssuerFacts | None, out: list[Finding]
) -> None:
    if aki.key_identifier is None or aki.authority_cert_issuer or aki.authority_cert_serial_number:
        out.append(Finding("aki.form", "AKI must hold exactly a keyIdentifier"))
    elif issuer is not None and aki.key_identifier != issuer.key_identifier:
        out.append(Finding("aki.mismatch", "AKI does not match the issuing CA's SKI"))


def _check_sia(sia: x509.SubjectInformationAccess, out: list[Finding]) -> None:
    descriptions = list(sia)
    if len(descriptions) != 1 or descriptions[0].access_method != ID_MPKIX_AD_CMS_GRPC:
        out.append(Finding("sia.shape", "SIA must hold exactly the MPKIX CMS gRPC endpoint"))
        return
    location = descriptions[0].access_location
    if not isinstance(location, x509.UniformResourceIdentifier):
        out.append(Finding("sia.location", "CMS endpoint must be a URI"))
        return
    try:
        canonical = normalize_cms_address(location.value)
    except PpCertError as exc:
        out.append(Finding("sia.location", str(exc)))
        return
    if canonical != location.value:
        out.append(Finding("sia.location", "CMS endpoint must be a canonical grpcs:// URI"))


def _check_ppcert_info(ext: _AnyExtension | None, out: list[Finding]) -> PpCertInfo | None:
    if ext is None:
        return None
    if not isinstance(ext.value, x509.UnrecognizedExtension):
        out.append(Finding("mpkix_info.malformed", "unexpected extension value type"))
        return None
    try:
        info = decode_ppcert_info(ext.value.value)
    except DerError as exc:
        out.append(Finding("mpkix_info.malformed", str(exc)))
        return None
    if profile_for_uri(info.signature_profile) is None:
        out.append(
            Finding("mpkix_info.profile", f"profile {info.signature_profile} is not registered")
        )
        return None
    return info


def _check_policies(
    policies: x509.CertificatePolicies, info: PpCertInfo | None, out: list[Finding]
) -> None:
    oids = [p.policy_identifier for p in policies]
    if any(p.policy_qualifiers for p in policies):
        out.append(Finding("policies.qualifiers", "certificatePolicies must carry no qualifiers"))
    if len(set(oids)) != len(oids):
        out.append(Finding("policies.duplicate", "duplicate policy identifiers"))
    profile = profile_for_uri(info.signature_profile) if info is not None else None
    if profile is None:
        if ID_MPKIX_CP not in oids:
            out.append(Finding("policies.mpkix_missing", "MPKIX certificate policy absent"))
        return
    if set(oids) != {ID_MPKIX_CP, profile.policy_oid}:
        out.append(
            Finding(
                "policies.set",
                "certificatePolicies must be exactly the MPKIX policy and the policy of "
                f"{profile.uri_text}",
            )
        )


def _lint_extensions(
    cert: x509.Certificate, public_key: object, issuer: _IssuerFacts | None, out: list[Finding]
) -> None:
    try:
        extensions = cert.extensions
    except (ValueError, x509.DuplicateExtension) as exc:
        out.append(Finding("extensions.malformed", str(exc)))
        return
    by_oid = {e.oid: e for e in extensions}
    for oid, ext in by_oid.items():
        if oid not in _REQUIRED_EXTENSIONS:
            out.append(Finding("extensions.unexpected", f"extension {oid.dotted_string} present"))
        elif ext.critical != (oid in _CRITICAL):
            want = "critical" if oid in _CRITICAL else "non-critical"
            out.append(Finding("extensions.criticality", f"{oid.dotted_string} must be {want}"))
    for oid in _REQUIRED_EXTENSIONS:
        if oid not in by_oid:
            out.append(Finding("extensions.missing", f"extension {oid.dotted_string} absent"))
    for ext in by_oid.values():
        value = ext.value
        if isinstance(value, x509.KeyUsage):
            _check_key_usage(value, out)
        elif isinstance(value, x509.ExtendedKeyUsage):
            if list(value) != [ExtendedKeyUsageOID.CLIENT_AUTH]:
                out.append(Finding("eku.purposes", "extendedKeyUsage must be exactly clientAuth"))
        elif isinstance(value, x509.SubjectKeyIdentifier):
            _check_ski(value, public_key, out)
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            _check_aki(value, issuer, out)
        elif isinstance(value, x509.SubjectInformationAccess):
            _check_sia(value, out)
    info = _check_ppcert_info(by_oid.get(ID_MPKIX_CE_PPCERT_INFO), out)
    policies = by_oid.get(ExtensionOID.CERTIFICATE_POLICIES)
    if policies is not None and isinstance(policies.value, x509.CertificatePolicies):
        _check_policies(policies.value, info, out)


def lint_ppcert(cert: x509.Certificate, issuer: x509.Certificate | None = None) -> list[Finding]:
    """Every ppCert-profile violation of ``cert`` (empty list: on profile)."""
    out: list[Finding] = []
    facts = _issuer_facts(issuer) if issuer is not None else None
    try:
        public_key: object = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        out.append(Finding("spki.unsupported", f"unparseable public key: {exc}"))
        public_key = None
    _lint_tbs_structure(cert, out)
    _lint_subject(cert, out)
    _lint_key_and_signature(cert, public_key, facts, out)
    _lint_validity(cert, facts, out)
    _lint_extensions(cert, public_key, facts, out)
    if facts is not None and cert.issuer.public_bytes() != facts.subject_der:
        out.append(Finding("issuer.name", "issuer DN is not byte-equal to the CA's subject DN"))
    return out
