from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from mpkix.profile.extensions import (
    der_bit_string,
    der_octet_string,
    der_sequence,
    der_utf8string,
    read_tlv,
)
from mpkix.profile.oids import ID_MPKIX_CE_SEALED_ATTRIBUTES
from mpkix.profile.ppcsr import (
    MAX_PPCSR_DER,
    PpCsrError,
    build_ppcsr,
    is_subject_id,
    new_subject_id,
    parse_ppcsr,
)
from mpkix.profile.sealing import Sealer
from tests.mpkix.profile.helpers import ATTRIBUTES, der, sealed_attributes

SEALER = Sealer(bytes(range(16)), bytes(range(32)))
SEALED = sealed_attributes(SEALER)


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_subject_ids() -> None:
    ids = {new_subject_id() for _ in range(200)}
    assert len(ids) == 200
    for sid in ids:
        assert sid.startswith("pp-") and len(sid) == 29
        assert is_subject_id(sid)
    sid = next(iter(ids))
    assert not is_subject_id(sid.upper())
    assert not is_subject_id(sid[:-1])
    assert not is_subject_id(sid[:-1] + "b")  # spare bits of the last character set
    assert not is_subject_id("Scott Jordan")
    assert not is_subject_id("310260123456789")  # an IMSI is not a subject id


def test_build_and_parse_p256(p256: ec.EllipticCurvePrivateKey) -> None:
    sid = new_subject_id()
    csr = build_ppcsr(p256, sid, SEALED)
    assert csr.is_signature_valid
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha256"
    assert csr.subject.rfc4514_string() == f"CN={sid}"
    ext = csr.extensions.get_extension_for_oid(ID_MPKIX_CE_SEALED_ATTRIBUTES)
    assert not ext.critical
    parsed = parse_ppcsr(der(csr))
    assert parsed.subject_id == sid
    assert parsed.key_type == "P-256"
    assert parsed.public_key == p256.public_key()
    assert dict(parsed.sealed) == SEALED
    assert parsed.signature_valid
    assert parsed.der == der(csr)
    # The CMS can check every sealed attribute against the subscriber record.
    for attr_id, value in ATTRIBUTES.items():
        assert SEALER.verify(attr_id, value, parsed.sealed[attr_id])


def test_build_and_parse_rsa2048() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    parsed = parse_ppcsr(der(build_ppcsr(key, new_subject_id(), SEALED)))
    assert parsed.key_type == "RSA-2048"
    assert parsed.public_key == key.public_key()


def test_build_refuses_bad_inputs(p256: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(PpCsrError, match="subject id"):
        build_ppcsr(p256, "Scott Jordan", SEALED)
    with pytest.raises(PpCsrError, match="sealed attributes"):
        build_ppcsr(p256, new_subject_id(), {})
    with pytest.raises(PpCsrError, match="sealed attributes"):
        build_ppcsr(p256, new_subject_id(), {"name": b"plaintext name"})
    with pytest.raises(PpCsrError, match="curve"):
        build_ppcsr(ec.generate_private_key(ec.SECP384R1()), new_subject_id(), SEALED)


def _raw_csr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    subject: x509.Name | None = None,
    extensions: list[tuple[x509.ExtensionType, bool]] | None = None,
    algorithm: hashes.SHA256 | hashes.SHA384 | None = None,
    attributes: list[tuple[x509.ObjectIdentifier, bytes]] | None = None,
) -> bytes:
    """A PKCS#10 request built without the ppCSR builder's checks."""
    if subject is None:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, new_subject_id())])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if extensions is None:
        sealed_ext = x509.UnrecognizedExtension(ID_MPKIX_CE_SEALED_ATTRIBUTES, _ext(SEALED))
        extensions = [(sealed_ext, False)]
    for ext_value, critical in extensions:
        builder = builder.add_extension(ext_value, critical)
    for oid, attr_value in attributes or []:
        builder = builder.add_attribute(oid, attr_value)
    return der(builder.sign(key, algorithm or hashes.SHA256()))


def _ext(sealed: dict[str, bytes]) -> bytes:
    return der_sequence(
        *(der_sequence(der_utf8string(a), der_octet_string(v)) for a, v in sealed.items())
    )


def test_raw_builder_produces_acceptable_csr(p256: ec.EllipticCurvePrivateKey) -> None:
    # The negative tests below differ from this one in exactly one respect.
    assert dict(parse_ppcsr(_raw_csr(p256)).sealed) == SEALED


def _swap_signature(csr_der: bytes, signer: ec.EllipticCurvePrivateKey) -> bytes:
    """Re-sign the request's exact TBS with another key: a syntactically perfect CSR whose
    signature does not match the public key it carries."""
    outer, _ = read_tlv(csr_der)
    tbs, offset = read_tlv(outer.content)
    algorithm, _ = read_tlv(outer.content, offset)
    signature = signer.sign(tbs.encoded, ec.ECDSA(hashes.SHA256()))
    return der_sequence(tbs.encoded, algorithm.encoded, der_bit_string(signature))


def test_rejects_signature_by_another_key(p256: ec.EllipticCurvePrivateKey) -> None:
    good = der(build_ppcsr(p256, new_subject_id(), SEALED))
    forged = _swap_signature(good, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(PpCsrError, match="self-signature"):
        parse_ppcsr(forged)
    # Re-signing with the right key makes the same bytes acceptable again.
    assert parse_ppcsr(_swap_signature(good, p256)).subject_id
    lenient = parse_ppcsr(forged, require_valid_signature=False)
    assert lenient.signature_valid is False


def test_rejects_mutated_signature_byte(p256: ec.EllipticCurvePrivateKey) -> None:
    good = bytearray(der(build_ppcsr(p256, new_subject_id(), SEALED)))
    # Flip a bit inside the ECDSA r value (the last bytes are the signature's s).
    good[-5] ^= 0x01
    with pytest.raises(PpCsrError):
        parse_ppcsr(bytes(good))


def test_rejects_mutated_sealed_value(p256: ec.EllipticCurvePrivateKey) -> None:
    good = der(build_ppcsr(p256, new_subject_id(), SEALED))
    value = SEALED["name"]
    mutated = good.replace(value, bytes([value[0] ^ 1]) + value[1:])
    assert mutated != good
    with pytest.raises(PpCsrError, match="self-signature"):
        parse_ppcsr(mutated)


@pytest.mark.parametrize(
    "data",
    [b"", b"not der", b"\x30\x03\x02\x01\x00", bytes(MAX_PPCSR_DER + 1)],
)
def test_rejects_malformed(data: bytes) -> None:
    with pytest.raises(PpCsrError):
        parse_ppcsr(data)


def test_rejects_non_bytes_and_trailing_data(p256: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(PpCsrError):
        parse_ppcsr("MIIB...")  # type: ignore[arg-type]
    with pytest.raises(PpCsrError):
        parse_ppcsr(der(build_ppcsr(p256, new_subject_id(), SEALED)) + b"\x00")


def test_rejects_wrong_key_types() -> None:
    keys: list[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey] = [
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP256K1()),
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        rsa.generate_private_key(public_exponent=3, key_size=2048),
    ]
    for key in keys:
        with pytest.raises(PpCsrError, match="unsupported"):
            parse_ppcsr(_raw_csr(key))


def test_rejects_ed25519() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, new_subject_id())])
    )
    csr = builder.add_extension(
        x509.UnrecognizedExtension(ID_MPKIX_CE_SEALED_ATTRIBUTES, _ext(SEALED)), False
    ).sign(key, None)
    with pytest.raises(PpCsrError, match="unsupported"):
        parse_ppcsr(der(csr))


def test_rejects_other_hash(p256: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(PpCsrError, match="signature algorithm"):
        parse_ppcsr(_raw_csr(p256, algorithm=hashes.SHA384()))


def test_rejects_duplicate_attribute_ids(p256: ec.EllipticCurvePrivateKey) -> None:
    dup = der_sequence(
        der_sequence(der_utf8string("name"), der_octet_string(SEALED["name"])),
        der_sequence(der_utf8string("name"), der_octet_string(SEALED["birthday"])),
    )
    ext = x509.UnrecognizedExtension(ID_MPKIX_CE_SEALED_ATTRIBUTES, dup)
    with pytest.raises(PpCsrError, match="duplicate"):
        parse_ppcsr(_raw_csr(p256, extensions=[(ext, False)]))


def test_rejects_oversized_value(p256: ec.EllipticCurvePrivateKey) -> None:
    big = _ext({"name": SEALED["name"] + b"\x00" * 200})
    ext = x509.UnrecognizedExtension(ID_MPKIX_CE_SEALED_ATTRIBUTES, big)
    with pytest.raises(PpCsrError, match="bytes"):
        parse_ppcsr(_raw_csr(p256, extensions=[(ext, False)]))


@pytest.mark.parametrize(
    "subject",
    [
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Scott Jordan")]),
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.COMMON_NAME, "pp-" + "a" * 26),
            ]
        ),
        x509.Name([x509.NameAttribute(NameOID.PSEUDONYM, "pp-" + "a" * 26)]),
        x509.Name([]),
        x509.Name(
            [
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, "pp-" + "a" * 26),
                        x509.NameAttribute(NameOID.SURNAME, "Jordan"),
                    ]
                )
            ]
        ),
    ],
)
def test_rejects_identifying_subjects(p256: ec.EllipticCurvePrivateKey, subject: x509.Name) -> None:
    with pytest.raises(PpCsrError, match="subject"):
        parse_ppcsr(_raw_csr(p256, subject=subject))


def test_rejects_extra_or_critical_extensions(p256: ec.EllipticCurvePrivateKey) -> None:
    sealed_ext = x509.UnrecognizedExtension(ID_MPKIX_CE_SEALED_ATTRIBUTES, _ext(SEALED))
    san = x509.SubjectAlternativeName([x509.RFC822Name("scott@example.com")])
    with pytest.raises(PpCsrError, match="exactly"):
        parse_ppcsr(_raw_csr(p256, extensions=[(sealed_ext, False), (san, False)]))
    with pytest.raises(PpCsrError, match="non-critical"):
        parse_ppcsr(_raw_csr(p256, extensions=[(sealed_ext, True)]))
    with pytest.raises(PpCsrError, match="unexpected requested extension"):
        parse_ppcsr(_raw_csr(p256, extensions=[(san, False)]))
    with pytest.raises(PpCsrError, match="exactly"):
        parse_ppcsr(_raw_csr(p256, extensions=[]))


def test_rejects_other_csr_attributes(p256: ec.EllipticCurvePrivateKey) -> None:
    challenge = x509.oid.AttributeOID.CHALLENGE_PASSWORD
    with pytest.raises(PpCsrError, match="attribute"):
        parse_ppcsr(_raw_csr(p256, attributes=[(challenge, b"secret")]))


def test_subject_id_is_random_per_request(p256: ec.EllipticCurvePrivateKey) -> None:
    a = parse_ppcsr(der(build_ppcsr(p256, new_subject_id(), SEALED)))
    b = parse_ppcsr(der(build_ppcsr(p256, new_subject_id(), SEALED)))
    assert a.subject_id != b.subject_id
