from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID

from ca_node.keys import CaMaterial
from mpkix.profile.oids import ID_MPKIX_AD_CMS_GRPC, ID_MPKIX_CE_PPCERT_INFO, ID_MPKIX_CP
from mpkix.profile.ppcert import (
    PpCertError,
    PpCertParams,
    build_tbs,
    issue_ppcert,
    normalize_cms_address,
    parse_ppcert,
    random_serial,
    sign_precertificate,
)
from mpkix.profile.signature_profiles import get_profile
from tests.mpkix.profile.helpers import der, make_ppcsr

PARAMS = PpCertParams(operator_id="310-260", cms_address="cms.op-a.example:8443")


def test_random_serial_shape() -> None:
    serials = {random_serial() for _ in range(100)}
    assert len(serials) == 100
    for s in serials:
        assert s.bit_length() == 128  # top bit set: 17 DER octets, well under 20


def test_issue_profile_fields(ca: CaMaterial) -> None:
    csr = make_ppcsr()
    now = datetime.datetime(2027, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
    cert = issue_ppcert(ca.issuing_key, ca.issuing_cert, csr, PARAMS, now=now)
    cert.verify_directly_issued_by(ca.issuing_cert)
    assert cert.version == x509.Version.v3
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert cert.subject.rfc4514_string() == f"CN={csr.subject_id}"
    assert cert.issuer == ca.issuing_cert.subject
    assert cert.serial_number.bit_length() == 128
    assert cert.not_valid_before_utc == now - datetime.timedelta(minutes=5)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(
        days=365, seconds=-1
    )
    exts = {e.oid: e for e in cert.extensions}
    assert set(exts) == {
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.SUBJECT_INFORMATION_ACCESS,
        ID_MPKIX_CE_PPCERT_INFO,
    }
    assert [e.oid for e in cert.extensions if e.critical] == [ExtensionOID.KEY_USAGE]
    ku = exts[ExtensionOID.KEY_USAGE].value
    assert isinstance(ku, x509.KeyUsage) and ku.digital_signature and not ku.key_cert_sign
    assert list(exts[ExtensionOID.EXTENDED_KEY_USAGE].value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = x509.SubjectKeyIdentifier.from_public_key(csr.public_key)
    assert exts[ExtensionOID.SUBJECT_KEY_IDENTIFIER].value == ski
    ca_ski = ca.issuing_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = exts[ExtensionOID.AUTHORITY_KEY_IDENTIFIER].value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert aki.key_identifier == ca_ski.digest and aki.authority_cert_issuer is None
    policies = exts[ExtensionOID.CERTIFICATE_POLICIES].value
    assert isinstance(policies, x509.CertificatePolicies)
    assert [p.policy_identifier for p in policies] == [
        ID_MPKIX_CP,
        get_profile("mss:mpkix:authn:loa3:app").policy_oid,
    ]
    assert all(p.policy_qualifiers is None for p in policies)
    sia = exts[ExtensionOID.SUBJECT_INFORMATION_ACCESS].value
    assert isinstance(sia, x509.SubjectInformationAccess)
    assert [(d.access_method, d.access_location.value) for d in sia] == [
        (ID_MPKIX_AD_CMS_GRPC, "grpcs://cms.op-a.example:8443")
    ]
    # No name, IMSI or MSISDN anywhere: the plaintext attribute values never reach the cert.
    blob = der(cert)
    for plaintext in (b"Scott", b"Jordan", b"1990-01-02", b"7789", b"Water"):
        assert plaintext not in blob


def test_parse_ppcert_view(ca: CaMaterial) -> None:
    csr = make_ppcsr()
    params = PpCertParams(
        operator_id="op-b.example",
        cms_address="grpcs://[2001:db8::1]:443",
        signature_profile="mss:mpkix:sign:loa3:app",
        validity_days=30,
    )
    cert = issue_ppcert(ca.issuing_key, ca.issuing_cert, csr, params, serial=(1 << 127) | 12345)
    view = parse_ppcert(cert)
    assert view.subject_id == csr.subject_id
    assert dict(view.sealed) == dict(csr.sealed)
    assert view.signature_profile == "mss:mpkix:sign:loa3:app"
    assert view.operator_id == "op-b.example"
    assert view.cms_address == "grpcs://[2001:db8::1]:443"
    assert view.serial_number == (1 << 127) | 12345
    assert view.not_after - view.not_before == datetime.timedelta(days=30, seconds=-1)
    assert view.public_key == csr.public_key
    assert view.policy_oids[0] == ID_MPKIX_CP


def test_parse_ppcert_rejects_other_certificates(ca: CaMaterial) -> None:
    with pytest.raises(PpCertError):
        parse_ppcert(ca.issuing_cert)
    with pytest.raises(PpCertError):
        parse_ppcert(ca.root_cert)


def test_not_before_never_precedes_the_ca(ca: CaMaterial) -> None:
    early = ca.issuing_cert.not_valid_before_utc + datetime.timedelta(seconds=10)
    cert = issue_ppcert(ca.issuing_key, ca.issuing_cert, make_ppcsr(), PARAMS, now=early)
    assert cert.not_valid_before_utc == ca.issuing_cert.not_valid_before_utc


def test_rsa_subject_and_rsa_ca(
    ca: CaMaterial, rsa_ca: CaMaterial, rsa_subject_key: rsa.RSAPrivateKey
) -> None:
    csr = make_ppcsr(rsa_subject_key)
    cert = issue_ppcert(ca.issuing_key, ca.issuing_cert, csr, PARAMS)
    assert parse_ppcert(cert).public_key == rsa_subject_key.public_key()
    cert2 = issue_ppcert(rsa_ca.issuing_key, rsa_ca.issuing_cert, make_ppcsr(), PARAMS)
    assert cert2.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    cert2.verify_directly_issued_by(rsa_ca.issuing_cert)


def test_sign_precertificate_signs_the_linted_tbs(ca: CaMaterial, rsa_ca: CaMaterial) -> None:
    for material, throwaway in (
        (ca, ec.generate_private_key(ec.SECP256R1())),
        (rsa_ca, rsa.generate_private_key(public_exponent=65537, key_size=1024)),
    ):
        tbs = build_tbs(material.issuing_cert, make_ppcsr(), PARAMS)
        precert = tbs.sign(throwaway, hashes.SHA256())
        with pytest.raises(InvalidSignature):
            precert.verify_directly_issued_by(material.issuing_cert)
        final = sign_precertificate(precert, material.issuing_key)
        assert final.tbs_certificate_bytes == precert.tbs_certificate_bytes
        final.verify_directly_issued_by(material.issuing_cert)


def test_sign_precertificate_refuses_algorithm_mismatch(ca: CaMaterial, rsa_ca: CaMaterial) -> None:
    precert = build_tbs(ca.issuing_cert, make_ppcsr(), PARAMS).sign(
        ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()
    )
    with pytest.raises(PpCertError, match="algorithm"):
        sign_precertificate(precert, rsa_ca.issuing_key)


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ("cms.op-a.example:8443", "grpcs://cms.op-a.example:8443"),
        ("grpcs://CMS.Op-A.Example:443", "grpcs://cms.op-a.example:443"),
        ("127.0.0.1:50051", "grpcs://127.0.0.1:50051"),
        ("[::1]:50051", "grpcs://[::1]:50051"),
        ("grpcs://[2001:0db8:0:0::1]:1", "grpcs://[2001:db8::1]:1"),
        ("localhost:65535", "grpcs://localhost:65535"),
    ],
)
def test_normalize_cms_address(address: str, canonical: str) -> None:
    assert normalize_cms_address(address) == canonical


@pytest.mark.parametrize(
    "address",
    [
        "cms.example",
        "cms.example:0",
        "cms.example:65536",
        "cms.example:08443",
        "http://cms.example:80",
        "grpcs://cms.example:443/path",
        "grpcs://user@cms.example:443",
        "cms_example.com:443",
        "-cms.example:443",
        "[zz::1]:443",
        "256.1.1.1:443",
        "cms.example:443?x=1",
        "",
        "a" * 400 + ":1",
    ],
)
def test_normalize_cms_address_rejects(address: str) -> None:
    with pytest.raises(PpCertError):
        normalize_cms_address(address)


def test_params_validation() -> None:
    assert PARAMS.cms_address == "grpcs://cms.op-a.example:8443"
    with pytest.raises(PpCertError, match="registered"):
        PpCertParams(
            operator_id="op", cms_address="a.b:1", signature_profile="mss:x:authn:loa3:app"
        )
    with pytest.raises(PpCertError):
        PpCertParams(operator_id="op", cms_address="a.b:1", signature_profile="urn:x")
    with pytest.raises(PpCertError, match="operator"):
        PpCertParams(operator_id="AT&T", cms_address="a.b:1")
    with pytest.raises(PpCertError, match="validity"):
        PpCertParams(operator_id="op", cms_address="a.b:1", validity_days=0)
    with pytest.raises(PpCertError, match="validity"):
        PpCertParams(operator_id="op", cms_address="a.b:1", validity_days=826)
    with pytest.raises(PpCertError, match="backdate"):
        PpCertParams(operator_id="op", cms_address="a.b:1", backdate_seconds=-1)
