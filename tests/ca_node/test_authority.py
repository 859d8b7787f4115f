from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from ca_node.authority import CertificateAuthority, IssuanceRefused
from ca_node.keys import (
    CHAIN_FILE,
    ISSUING_CERT_FILE,
    ISSUING_KEY_FILE,
    ROOT_KEY_FILE,
    CaKeyError,
    CaMaterial,
    build_ca,
    create_ca,
    load_ca,
    load_certificates,
    load_private_key,
    save_certificates,
    save_private_key,
)
from mpkix.profile.lint import LintError, lint_ppcert
from mpkix.profile.ppcert import PpCertParams, build_tbs, parse_ppcert
from mpkix.profile.ppcsr import PpCsr
from tests.mpkix.profile.helpers import make_ppcsr, on_profile_parts

PARAMS = PpCertParams(operator_id="310-260", cms_address="cms.op-a.example:8443")


@pytest.fixture(scope="module")
def material() -> CaMaterial:
    return build_ca()


@pytest.fixture(scope="module")
def authority(material: CaMaterial) -> CertificateAuthority:
    return CertificateAuthority(material.issuing_key, material.chain)


def test_issue_returns_a_linted_verifiable_ppcert(
    authority: CertificateAuthority, material: CaMaterial
) -> None:
    csr = make_ppcsr()
    cert = authority.issue(csr, PARAMS)
    cert.verify_directly_issued_by(material.issuing_cert)
    material.issuing_cert.verify_directly_issued_by(material.root_cert)
    assert lint_ppcert(cert, material.issuing_cert) == []
    view = parse_ppcert(cert)
    assert view.subject_id == csr.subject_id
    assert dict(view.sealed) == dict(csr.sealed)
    assert authority.certificate == material.issuing_cert
    assert authority.chain == (material.issuing_cert, material.root_cert)


def test_serials_are_unique(authority: CertificateAuthority) -> None:
    csr = make_ppcsr()
    serials = {authority.issue(csr, PARAMS).serial_number for _ in range(50)}
    assert len(serials) == 50


def test_refuses_a_subject_with_a_name(authority: CertificateAuthority) -> None:
    parts = on_profile_parts(authority.certificate)
    parts.subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Scott Jordan"),
            x509.NameAttribute(NameOID.SURNAME, "Jordan"),
        ]
    )
    with pytest.raises(LintError) as excinfo:
        authority.sign_linted(parts.builder())
    found = {f.code for f in excinfo.value.findings}
    assert {"subject.forbidden_attribute", "subject.not_pseudonymous"} <= found


def test_refuses_a_forged_ppcsr_subject(authority: CertificateAuthority) -> None:
    # A PpCsr object whose subject id was replaced after parsing (e.g. by a buggy caller).
    good = make_ppcsr()
    bad = PpCsr(good.der, "Scott Jordan", good.public_key, good.key_type, good.sealed, True)
    with pytest.raises(LintError) as excinfo:
        authority.issue(bad, PARAMS)
    assert "subject.not_pseudonymous" in {f.code for f in excinfo.value.findings}


def test_refuses_validity_beyond_the_ca() -> None:
    short = build_ca(issuing_days=10)
    ca = CertificateAuthority(short.issuing_key, short.chain)
    with pytest.raises(LintError) as excinfo:
        ca.issue(make_ppcsr(), PARAMS)  # 365 days > 10 days left
    assert {f.code for f in excinfo.value.findings} == {"validity.after_issuer"}
    ok = PpCertParams(operator_id="310-260", cms_address="cms.op-a.example:8443", validity_days=5)
    assert ca.issue(make_ppcsr(), ok).not_valid_after_utc <= short.issuing_cert.not_valid_after_utc


def test_refuses_an_unverified_ppcsr(authority: CertificateAuthority) -> None:
    good = make_ppcsr()
    unverified = PpCsr(
        good.der, good.subject_id, good.public_key, good.key_type, good.sealed, False
    )
    with pytest.raises(IssuanceRefused):
        authority.issue(unverified, PARAMS)


def test_refuses_a_low_entropy_serial(authority: CertificateAuthority) -> None:
    with pytest.raises(LintError) as excinfo:
        authority.issue(make_ppcsr(), PARAMS, serial=42)
    assert {f.code for f in excinfo.value.findings} == {"serial.low_entropy"}


def test_issued_tbs_is_the_linted_tbs(authority: CertificateAuthority) -> None:
    # Same inputs (serial and time fixed) give the same TBS whether signed or only built.
    csr = make_ppcsr()
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    serial = (1 << 127) | 777
    cert = authority.issue(csr, PARAMS, serial=serial, now=now)
    tbs = build_tbs(authority.certificate, csr, PARAMS, serial=serial, now=now)
    reference = tbs.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    assert cert.tbs_certificate_bytes == reference.tbs_certificate_bytes


def test_rsa_ca_issues() -> None:
    material = build_ca(key_type="rsa2048")
    ca = CertificateAuthority(material.issuing_key, material.chain)
    cert = ca.issue(make_ppcsr(), PARAMS)
    cert.verify_directly_issued_by(material.issuing_cert)
    assert lint_ppcert(cert, material.issuing_cert) == []


def test_constructor_checks(material: CaMaterial) -> None:
    with pytest.raises(ValueError, match="chain"):
        CertificateAuthority(material.issuing_key, [])
    with pytest.raises(ValueError, match="does not match"):
        CertificateAuthority(ec.generate_private_key(ec.SECP256R1()), material.chain)


# --- keys.py -----------------------------------------------------------------------------------


def test_ca_certificates_profile(material: CaMaterial) -> None:
    root, issuing = material.root_cert, material.issuing_cert
    assert root.issuer == root.subject
    root.verify_directly_issued_by(root)
    bc = root.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and bc.value.ca and bc.value.path_length is None  # type: ignore[attr-defined]
    ibc = issuing.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    assert ibc.critical and ibc.value.ca and ibc.value.path_length == 0  # type: ignore[attr-defined]
    for cert in (root, issuing):
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and not ku.value.digital_signature
    aki = issuing.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert issuing.not_valid_after_utc <= root.not_valid_after_utc


def test_create_and_load_with_passphrase(tmp_path: Path) -> None:
    created = create_ca(tmp_path / "ca", passphrase=b"correct horse")
    for name in (ISSUING_KEY_FILE, ROOT_KEY_FILE):
        path = tmp_path / "ca" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    loaded = load_ca(tmp_path / "ca", b"correct horse", load_root_key=True)
    assert loaded.issuing_cert == created.issuing_cert
    assert loaded.root_cert == created.root_cert
    assert loaded.root_key is not None
    assert loaded.issuing_key.public_key() == created.issuing_key.public_key()
    assert load_certificates(tmp_path / "ca" / CHAIN_FILE) == created.chain
    ca = CertificateAuthority.load(tmp_path / "ca", b"correct horse")
    ca.issue(make_ppcsr(), PARAMS).verify_directly_issued_by(created.issuing_cert)
    with pytest.raises(CaKeyError):
        load_ca(tmp_path / "ca", b"wrong")
    with pytest.raises(CaKeyError):
        load_ca(tmp_path / "ca", None)


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    create_ca(tmp_path)
    with pytest.raises(FileExistsError):
        create_ca(tmp_path)
    create_ca(tmp_path, overwrite=True)


def test_load_detects_mismatched_material(tmp_path: Path) -> None:
    create_ca(tmp_path / "a")
    create_ca(tmp_path / "b")
    # Key of CA b with certificates of CA a.
    (tmp_path / "a" / ISSUING_KEY_FILE).write_bytes(
        (tmp_path / "b" / ISSUING_KEY_FILE).read_bytes()
    )
    with pytest.raises(CaKeyError, match="does not match"):
        load_ca(tmp_path / "a")
    # Issuing certificate of CA b under the root of CA a.
    create_ca(tmp_path / "c")
    (tmp_path / "c" / ISSUING_KEY_FILE).write_bytes(
        (tmp_path / "b" / ISSUING_KEY_FILE).read_bytes()
    )
    (tmp_path / "c" / ISSUING_CERT_FILE).write_bytes(
        (tmp_path / "b" / ISSUING_CERT_FILE).read_bytes()
    )
    with pytest.raises(CaKeyError, match="root"):
        load_ca(tmp_path / "c")


def test_key_and_certificate_files(tmp_path: Path, material: CaMaterial) -> None:
    save_private_key(tmp_path / "k.pem", material.issuing_key)
    assert b"BEGIN PRIVATE KEY" in (tmp_path / "k.pem").read_bytes()
    assert load_private_key(tmp_path / "k.pem").public_key() == material.issuing_key.public_key()
    p384 = ec.generate_private_key(ec.SECP384R1())
    save_private_key(tmp_path / "p384.pem", p384)
    with pytest.raises(CaKeyError, match="P-256"):
        load_private_key(tmp_path / "p384.pem")
    (tmp_path / "junk.pem").write_bytes(b"not a key")
    with pytest.raises(CaKeyError):
        load_private_key(tmp_path / "junk.pem")
    save_certificates(tmp_path / "two.pem", material.chain)
    assert load_certificates(tmp_path / "two.pem") == material.chain
    with pytest.raises(CaKeyError):
        load_certificates(tmp_path / "k.pem")
