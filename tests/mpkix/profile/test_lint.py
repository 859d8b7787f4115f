from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from ca_node.keys import CaMaterial, build_ca
from mpkix.profile.extensions import (
    PpCertInfo,
    der_integer,
    der_sequence,
    encode_ppcert_info,
    encode_tlv,
    iter_tlvs,
    read_tlv,
)
from mpkix.profile.lint import Finding, LintError, lint_ppcert
from mpkix.profile.oids import ID_MPKIX_AD_CMS_GRPC, ID_MPKIX_CE_PPCERT_INFO, ID_MPKIX_CP
from mpkix.profile.ppcert import PpCertParams, issue_ppcert
from mpkix.profile.signature_profiles import get_profile
from tests.mpkix.profile.helpers import (
    TbsParts,
    der,
    make_ppcsr,
    on_profile_parts,
    sign_with_throwaway,
)


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def test_issued_certificate_is_clean(ca: CaMaterial, rsa_ca: CaMaterial) -> None:
    params = PpCertParams(operator_id="310-260", cms_address="cms.op-a.example:8443")
    cert = issue_ppcert(ca.issuing_key, ca.issuing_cert, make_ppcsr(), params)
    assert lint_ppcert(cert, ca.issuing_cert) == []
    assert lint_ppcert(cert) == []
    cert2 = issue_ppcert(rsa_ca.issuing_key, rsa_ca.issuing_cert, make_ppcsr(), params)
    assert lint_ppcert(cert2, rsa_ca.issuing_cert) == []


def test_on_profile_parts_are_clean(ca: CaMaterial) -> None:
    # Baseline for every negative case below: each one changes exactly one thing.
    assert (
        lint_ppcert(
            sign_with_throwaway(on_profile_parts(ca.issuing_cert).builder()), ca.issuing_cert
        )
        == []
    )


def _ku(**bits: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: bits.get(n, False) for n in names})


def _policies(
    *oids: x509.ObjectIdentifier, qualifier: str | None = None
) -> x509.CertificatePolicies:
    return x509.CertificatePolicies(
        [x509.PolicyInformation(o, [qualifier] if qualifier else None) for o in oids]
    )


PROFILE_OID = get_profile("mss:mpkix:authn:loa3:app").policy_oid
NAME_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.GIVEN_NAME, "Scott"),
        x509.NameAttribute(NameOID.SURNAME, "Jordan"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Scott Jordan"),
    ]
)


def _set_ext(
    oid: x509.ObjectIdentifier, value: x509.ExtensionType, critical: bool = False
) -> Callable[[TbsParts], None]:
    def change(p: TbsParts) -> None:
        p.extensions[oid] = (value, critical)

    return change


def _drop_ext(oid: x509.ObjectIdentifier) -> Callable[[TbsParts], None]:
    def change(p: TbsParts) -> None:
        del p.extensions[oid]

    return change


def _set(field: str, value: object) -> Callable[[TbsParts], None]:
    def change(p: TbsParts) -> None:
        setattr(p, field, value)

    return change


def _info(profile: str = "mss:mpkix:authn:loa3:app") -> x509.UnrecognizedExtension:
    sealed = {"name": bytes(60)}
    return x509.UnrecognizedExtension(
        ID_MPKIX_CE_PPCERT_INFO, encode_ppcert_info(PpCertInfo(profile, "310-260", sealed))
    )


def _sia(
    uri: str, method: x509.ObjectIdentifier = ID_MPKIX_AD_CMS_GRPC
) -> x509.SubjectInformationAccess:
    return x509.SubjectInformationAccess(
        [x509.AccessDescription(method, x509.UniformResourceIdentifier(uri))]
    )


def _key_change(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> Callable[[TbsParts], None]:
    def change(p: TbsParts) -> None:
        p.public_key = key
        p.extensions[ExtensionOID.SUBJECT_KEY_IDENTIFIER] = (
            x509.SubjectKeyIdentifier.from_public_key(key),
            False,
        )

    return change


def _validity(days_before: float, days_after: float) -> Callable[[TbsParts], None]:
    def change(p: TbsParts) -> None:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        p.not_before = now + datetime.timedelta(days=days_before)
        p.not_after = now + datetime.timedelta(days=days_after)

    return change


OTHER_ISSUER_KEY = ec.generate_private_key(ec.SECP256R1()).public_key()

CASES: list[tuple[str, Callable[[TbsParts], None], set[str]]] = [
    (
        "subject with a name",
        _set("subject", NAME_SUBJECT),
        {"subject.forbidden_attribute", "subject.shape", "subject.not_pseudonymous"},
    ),
    (
        "subject CN is a phone number",
        _set("subject", x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "+11234567789")])),
        {"subject.not_pseudonymous"},
    ),
    (
        "subject adds a serialNumber (IMEI)",
        _set(
            "subject",
            x509.Name(
                [
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, "490154203237518"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "pp-" + "a" * 26),
                ]
            ),
        ),
        {"subject.forbidden_attribute", "subject.shape"},
    ),
    ("small serial", _set("serial", 1), {"serial.low_entropy"}),
    (
        "RSA-1024 key",
        _key_change(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()),
        {"spki.unsupported"},
    ),
    (
        "P-384 key",
        _key_change(ec.generate_private_key(ec.SECP384R1()).public_key()),
        {"spki.unsupported"},
    ),
    ("validity too long", _validity(0, 900), {"validity.too_long"}),
    ("inverted validity", _validity(1, 0.5), {"validity.inverted"}),
    ("before the CA", _validity(-2, 10), {"validity.before_issuer"}),
    (
        "keyUsage not critical",
        _set_ext(ExtensionOID.KEY_USAGE, _ku(digital_signature=True), False),
        {"extensions.criticality"},
    ),
    (
        "keyUsage keyEncipherment",
        _set_ext(ExtensionOID.KEY_USAGE, _ku(digital_signature=True, key_encipherment=True), True),
        {"key_usage.bits"},
    ),
    (
        "keyUsage certSign",
        _set_ext(ExtensionOID.KEY_USAGE, _ku(digital_signature=True, key_cert_sign=True), True),
        {"key_usage.bits"},
    ),
    ("no keyUsage", _drop_ext(ExtensionOID.KEY_USAGE), {"extensions.missing"}),
    (
        "EKU serverAuth",
        _set_ext(
            ExtensionOID.EXTENDED_KEY_USAGE,
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ),
        {"eku.purposes"},
    ),
    (
        "EKU critical",
        _set_ext(
            ExtensionOID.EXTENDED_KEY_USAGE,
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
            True,
        ),
        {"extensions.criticality"},
    ),
    ("no SIA", _drop_ext(ExtensionOID.SUBJECT_INFORMATION_ACCESS), {"extensions.missing"}),
    (
        "SIA http URI",
        _set_ext(ExtensionOID.SUBJECT_INFORMATION_ACCESS, _sia("http://cms.example:80")),
        {"sia.location"},
    ),
    (
        "SIA non-canonical",
        _set_ext(ExtensionOID.SUBJECT_INFORMATION_ACCESS, _sia("grpcs://CMS.example:443")),
        {"sia.location"},
    ),
    (
        "SIA other method",
        _set_ext(
            ExtensionOID.SUBJECT_INFORMATION_ACCESS,
            _sia("grpcs://cms.example:443", x509.ObjectIdentifier("1.3.6.1.5.5.7.48.5")),
        ),
        {"sia.shape"},
    ),
    (
        "policy with CPS qualifier",
        _set_ext(
            ExtensionOID.CERTIFICATE_POLICIES,
            _policies(ID_MPKIX_CP, PROFILE_OID, qualifier="mss:mpkix:authn:loa3:app"),
        ),
        {"policies.qualifiers"},
    ),
    (
        "profile policy missing",
        _set_ext(ExtensionOID.CERTIFICATE_POLICIES, _policies(ID_MPKIX_CP)),
        {"policies.set"},
    ),
    (
        "policy of another profile",
        _set_ext(
            ExtensionOID.CERTIFICATE_POLICIES,
            _policies(ID_MPKIX_CP, get_profile("mss:mpkix:authn:loa4:sim").policy_oid),
        ),
        {"policies.set"},
    ),
    (
        "duplicate policy",
        _set_ext(
            ExtensionOID.CERTIFICATE_POLICIES, _policies(ID_MPKIX_CP, PROFILE_OID, ID_MPKIX_CP)
        ),
        {"policies.duplicate"},
    ),
    ("no policies", _drop_ext(ExtensionOID.CERTIFICATE_POLICIES), {"extensions.missing"}),
    (
        "MPKIX extension critical",
        _set_ext(ID_MPKIX_CE_PPCERT_INFO, _info(), True),
        {"extensions.criticality"},
    ),
    ("MPKIX extension missing", _drop_ext(ID_MPKIX_CE_PPCERT_INFO), {"extensions.missing"}),
    (
        "MPKIX extension garbage",
        _set_ext(
            ID_MPKIX_CE_PPCERT_INFO,
            x509.UnrecognizedExtension(ID_MPKIX_CE_PPCERT_INFO, b"\x30\x00"),
        ),
        {"mpkix_info.malformed"},
    ),
    (
        "unregistered profile",
        _set_ext(ID_MPKIX_CE_PPCERT_INFO, _info("mss:other:authn:loa3:app")),
        {"mpkix_info.profile"},
    ),
    (
        "basicConstraints added",
        _set_ext(
            ExtensionOID.BASIC_CONSTRAINTS, x509.BasicConstraints(ca=False, path_length=None), True
        ),
        {"extensions.unexpected"},
    ),
    (
        "SAN with an e-mail address",
        _set_ext(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
            x509.SubjectAlternativeName([x509.RFC822Name("scott@example.com")]),
        ),
        {"extensions.unexpected"},
    ),
    (
        "SKI of another key",
        _set_ext(
            ExtensionOID.SUBJECT_KEY_IDENTIFIER,
            x509.SubjectKeyIdentifier.from_public_key(OTHER_ISSUER_KEY),
        ),
        {"ski.mismatch"},
    ),
    (
        "AKI of another CA",
        _set_ext(
            ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
            x509.AuthorityKeyIdentifier.from_issuer_public_key(OTHER_ISSUER_KEY),
        ),
        {"aki.mismatch"},
    ),
    (
        "AKI with issuer and serial",
        _set_ext(
            ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
            x509.AuthorityKeyIdentifier(b"\x01" * 20, [x509.DirectoryName(NAME_SUBJECT)], 5),
        ),
        {"aki.form"},
    ),
]


@pytest.mark.parametrize(("label", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_findings_for_bad_tbs(
    ca: CaMaterial, label: str, change: Callable[[TbsParts], None], expected: set[str]
) -> None:
    parts = on_profile_parts(ca.issuing_cert)
    change(parts)
    findings = lint_ppcert(sign_with_throwaway(parts.builder()), ca.issuing_cert)
    assert codes(findings) == expected, (label, findings)


def test_validity_beyond_the_ca() -> None:
    short = build_ca(issuing_days=20)
    parts = on_profile_parts(short.issuing_cert)
    _validity(0, 30)(parts)
    findings = lint_ppcert(sign_with_throwaway(parts.builder()), short.issuing_cert)
    assert codes(findings) == {"validity.after_issuer"}


def test_issuer_checks(ca: CaMaterial, rsa_ca: CaMaterial) -> None:
    cert = sign_with_throwaway(on_profile_parts(ca.issuing_cert).builder())
    other = build_ca(name="Other")
    found = codes(lint_ppcert(cert, other.issuing_cert))
    assert {"issuer.name", "aki.mismatch"} <= found
    # ECDSA signature under a CA whose key is RSA.
    assert "signature.issuer_key_mismatch" in codes(lint_ppcert(cert, rsa_ca.issuing_cert))


def test_signature_hash_must_be_sha256(ca: CaMaterial) -> None:
    builder = on_profile_parts(ca.issuing_cert).builder()
    cert = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA384())
    assert codes(lint_ppcert(cert, ca.issuing_cert)) == {"signature.algorithm"}


def _rebuild_tbs(
    cert: x509.Certificate, edit: Callable[[list[bytes]], list[bytes]]
) -> x509.Certificate:
    """Edit the top-level tbsCertificate elements of ``cert`` and re-wrap (signature is stale;
    the linter does not verify signatures)."""
    outer, _ = read_tlv(der(cert))
    elements = list(iter_tlvs(outer.content))
    tbs_fields = [t.encoded for t in iter_tlvs(elements[0].content)]
    tbs = der_sequence(*edit(tbs_fields))
    return x509.load_der_x509_certificate(
        der_sequence(tbs, elements[1].encoded, elements[2].encoded)
    )


def test_serial_longer_than_20_octets(ca: CaMaterial) -> None:
    cert = sign_with_throwaway(on_profile_parts(ca.issuing_cert).builder())
    long_serial = der_integer(1 << 167)  # 22 octets

    def edit(fields: list[bytes]) -> list[bytes]:
        return [fields[0], long_serial, *fields[2:]]

    try:
        mutated = _rebuild_tbs(cert, edit)
    except ValueError:
        pytest.skip("this cryptography build refuses to parse serials over 20 octets")
    assert "serial.too_long" in codes(lint_ppcert(mutated, ca.issuing_cert))


def test_unique_identifiers_are_flagged(ca: CaMaterial) -> None:
    cert = sign_with_throwaway(on_profile_parts(ca.issuing_cert).builder())
    subject_unique_id = encode_tlv(0x82, b"\x00\x01\x02")

    def edit(fields: list[bytes]) -> list[bytes]:
        return [*fields[:7], subject_unique_id, *fields[7:]]

    mutated = _rebuild_tbs(cert, edit)
    assert codes(lint_ppcert(mutated, ca.issuing_cert)) == {"unique_id.present"}


def test_lint_error_carries_findings() -> None:
    err = LintError([Finding("a.b", "one"), Finding("c.d", "two")])
    assert [f.code for f in err.findings] == ["a.b", "c.d"]
    assert "a.b: one" in str(err) and "c.d: two" in str(err)
