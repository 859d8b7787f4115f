"""The strict ppCert reader (decision 0812) against the cryptography-based path: whatever it
accepts, ``parse_ppcert`` accepts with the same fields and ``tbs_parts`` slices the same bytes;
and ``analyze_leaf`` gives the same verdict, message and view with the reader as without it, on
real ppCerts and the CA's certificates, every single-byte edit, truncation, trailing bytes and
random edits of them (edited ppCerts re-signed by the CA too, so edits reach the ppCert checks)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID, NameOID

from ca_node.authority import CertificateAuthority
from ca_node.keys import CaMaterial, build_ca
from ias_sdk._internal import certs
from ias_sdk._internal.certs import IssuerInfo, LeafInfo, analyze_issuer, analyze_leaf, tbs_parts
from ias_sdk._internal.ppder import P256_SPKI_PREFIX, PpCertFields, oid_der, read_ppcert
from mpkix.profile.extensions import der_bit_string, der_sequence, read_header
from mpkix.profile.oids import ID_MPKIX_AD_CMS_GRPC, ID_MPKIX_CE_PPCERT_INFO, ID_MPKIX_CP
from mpkix.profile.ppcert import PpCertParams, parse_ppcert
from mpkix.profile.signature_profiles import PROFILES
from tests.mpkix.profile.helpers import TbsParts, der, make_ppcsr, on_profile_parts

# Edits may make the serial non-positive; cryptography warns when it loads such a certificate.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Parsed a serial number:cryptography.utils.CryptographyDeprecationWarning"
)

EDIT_VALUES: tuple[Callable[[int], int], ...] = (
    lambda b: 0x00,
    lambda b: 0x01,
    lambda b: 0x7F,
    lambda b: 0x80,
    lambda b: 0x81,
    lambda b: 0x82,
    lambda b: 0xFF,
    lambda b: b ^ 0x01,
    lambda b: b ^ 0x80,
)


@pytest.fixture(scope="module")
def ca() -> CaMaterial:
    return build_ca(name="Reader CA")


@pytest.fixture(scope="module")
def issuer(ca: CaMaterial) -> IssuerInfo:
    info = analyze_issuer(tuple(der(c) for c in ca.chain))
    assert info.problem is None
    return info


@pytest.fixture(scope="module")
def ppcerts(ca: CaMaterial) -> list[bytes]:
    """Real ppCerts from the CA's issuance path, one per registered profile."""
    authority = CertificateAuthority(ca.issuing_key, ca.chain)
    out = []
    for uri in sorted(PROFILES):
        params = PpCertParams("310-260", "cms.op-a.example:8443", signature_profile=uri)
        key = ec.generate_private_key(ec.SECP256R1())
        out.append(der(authority.issue(make_ppcsr(key), params)))
    return out


def _oracle_fields(cert_der: bytes) -> tuple[object, ...]:
    view = parse_ppcert(x509.load_der_x509_certificate(cert_der))
    return (
        view.subject_id,
        view.cms_address,
        view.operator_id,
        view.signature_profile,
        tuple(sorted(view.sealed)),
    )


def _fields(f: PpCertFields) -> tuple[object, ...]:
    return (f.subject_id, f.cms_address, f.operator_id, f.signature_profile, f.sealed_attribute_ids)


def _agrees(cert_der: bytes) -> bool:
    """Reader vs cryptography on ``cert_der``; True when the reader accepted it."""
    try:
        x509.load_der_x509_certificate(cert_der)
    except (ValueError, x509.InvalidVersion):
        return False  # analyze_leaf stops before the reader
    fields = read_ppcert(cert_der)
    if fields is None:
        return False  # handed over: the cryptography path decides
    assert _fields(fields) == _oracle_fields(cert_der)
    tbs, issuer_name, _ = tbs_parts(cert_der)
    assert (fields.tbs, fields.issuer) == (tbs, issuer_name)
    return True


def _outcome(info: LeafInfo) -> tuple[object, ...]:
    cert = info.certificate
    return (
        info.cert_hash,
        info.problem,
        info.view,
        info.not_before,
        info.not_after,
        None if cert is None else cert.serial_number,
    )


def _same_leaf(cert_der: bytes, issuer: IssuerInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    with_reader = _outcome(analyze_leaf(cert_der, issuer))
    with monkeypatch.context() as m:
        m.setattr(certs, "read_ppcert", lambda _: None)
        without = _outcome(analyze_leaf(cert_der, issuer))
    assert with_reader == without


def _split(cert_der: bytes) -> tuple[bytes, bytes]:
    """(tbsCertificate, signatureAlgorithm) TLVs."""
    _, start, _ = read_header(cert_der)
    _, _, tbs_end = read_header(cert_der, start)
    _, _, alg_end = read_header(cert_der, tbs_end)
    return cert_der[start:tbs_end], cert_der[tbs_end:alg_end]


def _resigned(tbs: bytes, alg: bytes, ca: CaMaterial) -> bytes:
    key = ca.issuing_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return der_sequence(tbs, alg, der_bit_string(key.sign(tbs, ec.ECDSA(hashes.SHA256()))))


# -- the reader itself ---------------------------------------------------------------------------


def test_real_ppcerts_are_read_and_ca_certificates_handed_over(
    ca: CaMaterial, ppcerts: list[bytes]
) -> None:
    for cert_der in ppcerts:
        assert _agrees(cert_der)
    for cert in ca.chain:
        assert read_ppcert(der(cert)) is None


def test_constants_are_what_cryptography_writes(ppcerts: list[bytes]) -> None:
    cert = x509.load_der_x509_certificate(ppcerts[0])
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert spki.startswith(P256_SPKI_PREFIX) and len(spki) == len(P256_SPKI_PREFIX) + 64
    for oid in (ID_MPKIX_CP, ID_MPKIX_AD_CMS_GRPC, ID_MPKIX_CE_PPCERT_INFO):
        assert oid_der(oid) in ppcerts[0]
    assert oid_der(x509.ObjectIdentifier("1.2.840.10045.4.3.2")) == bytes.fromhex(
        "06082a8648ce3d040302"
    )


@pytest.mark.parametrize("which", ["ppcert", "issuing CA", "root CA"])
def test_every_single_byte_edit_truncation_and_extension(
    ca: CaMaterial, ppcerts: list[bytes], which: str
) -> None:
    base = {"ppcert": ppcerts[0], "issuing CA": der(ca.issuing_cert), "root CA": der(ca.root_cert)}[
        which
    ]
    for i in range(len(base)):
        for value in {f(base[i]) for f in EDIT_VALUES}:
            _agrees(base[:i] + bytes([value]) + base[i + 1 :])
    for cut in range(len(base)):
        _agrees(base[:cut])
    for extra in (b"\x00", b"\x30\x00", b"\x04\x00", base[-5:]):
        _agrees(base + extra)


def test_random_edits(ca: CaMaterial, ppcerts: list[bytes]) -> None:
    rng = random.Random(812)
    for base in (*ppcerts, der(ca.issuing_cert)):
        for _ in range(1500):
            b = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            _agrees(bytes(b))


# -- analyze_leaf with and without the reader ---------------------------------------------------


def test_edits_signed_by_the_ca_get_the_same_verdict(
    ca: CaMaterial, issuer: IssuerInfo, ppcerts: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every byte of the TBS edited (two values each) and re-signed by the trusted CA, so the
    edit reaches the ppCert checks: same problem (reason and message) or same view."""
    tbs, alg = _split(ppcerts[0])
    read = 0
    for i in range(len(tbs)):
        for value in (tbs[i] ^ 0x01, tbs[i] ^ 0x80):
            cert_der = _resigned(tbs[:i] + bytes([value]) + tbs[i + 1 :], alg, ca)
            _same_leaf(cert_der, issuer, monkeypatch)
            read += _agrees(cert_der)
    assert read > 100  # edits of the serial, validity, key ids, sealed values, ... stay readable


def test_random_edits_signed_by_the_ca(
    ca: CaMaterial, issuer: IssuerInfo, ppcerts: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(8120)
    tbs, alg = _split(ppcerts[1])
    for _ in range(600):
        b = bytearray(tbs)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        cert_der = _resigned(bytes(b), alg, ca)
        _same_leaf(cert_der, issuer, monkeypatch)
        _agrees(cert_der)


def test_unedited_and_foreign_certificates(
    ca: CaMaterial, issuer: IssuerInfo, ppcerts: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    for cert_der in (*ppcerts, der(ca.issuing_cert), der(ca.root_cert)):
        _same_leaf(cert_der, issuer, monkeypatch)
    other = build_ca(name="Other CA")
    authority = CertificateAuthority(other.issuing_key, other.chain)
    params = PpCertParams("310-260", "cms.op-a.example:8443")
    foreign = der(authority.issue(make_ppcsr(ec.generate_private_key(ec.SECP256R1())), params))
    assert _agrees(foreign)
    _same_leaf(foreign, issuer, monkeypatch)  # BAD_CHAIN / BAD_SIGNATURE either way


def _variants(ca: CaMaterial) -> dict[str, TbsParts]:
    def parts(**changes: object) -> TbsParts:
        p = on_profile_parts(ca.issuing_cert)
        for k, v in changes.items():
            setattr(p, k, v)
        return p

    def critical(oid: x509.ObjectIdentifier, flag: bool) -> TbsParts:
        p = parts()
        p.extensions[oid] = (p.extensions[oid][0], flag)
        return p

    def reordered() -> TbsParts:
        p = parts()
        p.extensions = dict(reversed(list(p.extensions.items())))
        return p

    def extra() -> TbsParts:
        p = parts()
        p.extensions[ExtensionOID.BASIC_CONSTRAINTS] = (x509.BasicConstraints(False, None), True)
        return p

    def policies(*oids: x509.ObjectIdentifier) -> TbsParts:
        p = parts()
        value = x509.CertificatePolicies([x509.PolicyInformation(o, None) for o in oids])
        p.extensions[ExtensionOID.CERTIFICATE_POLICIES] = (value, False)
        return p

    authn = PROFILES["mss:mpkix:authn:loa3:app"].policy_oid
    sign = PROFILES["mss:mpkix:sign:loa3:app"].policy_oid
    qualified = parts()
    qualified.extensions[ExtensionOID.CERTIFICATE_POLICIES] = (
        x509.CertificatePolicies(
            [
                x509.PolicyInformation(ID_MPKIX_CP, ["https://cps.example"]),
                x509.PolicyInformation(authn, None),
            ]
        ),
        False,
    )
    out = {
        "on profile": parts(),
        "RSA subject key": parts(public_key=rsa.generate_private_key(65537, 2048).public_key()),
        "P-384 subject key": parts(public_key=ec.generate_private_key(ec.SECP384R1()).public_key()),
        "extensions reversed": reordered(),
        "extra basicConstraints": extra(),
        "keyUsage not critical": critical(ExtensionOID.KEY_USAGE, False),
        "ppCertInfo critical": critical(ID_MPKIX_CE_PPCERT_INFO, True),
        "SIA critical": critical(ExtensionOID.SUBJECT_INFORMATION_ACCESS, True),
        "policies swapped": policies(authn, ID_MPKIX_CP),
        "policy of another profile": policies(ID_MPKIX_CP, sign),
        "three policies": policies(ID_MPKIX_CP, authn, sign),
        "policy qualifier": qualified,
        "subject with two attributes": parts(
            subject=x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "pp-aaaaaaaaaaaaaaaaaaaaaaaaaa"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "y"),
                ]
            )
        ),
        "subject not a subject id": parts(
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Alice")])
        ),
    }
    return out


def test_off_profile_variants_signed_by_the_ca(
    ca: CaMaterial, issuer: IssuerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = set()
    for name, parts in _variants(ca).items():
        cert_der = der(parts.builder().sign(ca.issuing_key, hashes.SHA256()))
        _same_leaf(cert_der, issuer, monkeypatch)
        if _agrees(cert_der):
            read.add(name)
    # Only the exact profile shape (extensions in any order) is read; the rest is handed over.
    assert read == {"on profile", "extensions reversed"}


def test_points_off_the_curve_are_handed_over(
    ca: CaMaterial, issuer: IssuerInfo, ppcerts: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A P-256 SPKI whose point is off the curve, or has a coordinate ≥ p, is MALFORMED as
    before (cryptography refuses the key), never read."""
    tbs, alg = _split(ppcerts[0])
    at = tbs.index(P256_SPKI_PREFIX) + len(P256_SPKI_PREFIX)
    p = 2**256 - 2**224 + 2**192 + 2**96 - 1
    x = int.from_bytes(tbs[at : at + 32], "big")
    y = int.from_bytes(tbs[at + 32 : at + 64], "big")
    points = {
        "y + 1": (x, y + 1),
        "x + p": (x + p, y) if x + p < 2**256 else (x, y + p),
        "y + p": (x, y + p) if y + p < 2**256 else (x + p, y),
        "zero": (0, 0),
    }
    for name, (px, py) in points.items():
        if px >= 2**256 or py >= 2**256:
            continue
        point = px.to_bytes(32, "big") + py.to_bytes(32, "big")
        cert_der = _resigned(tbs[:at] + point + tbs[at + 64 :], alg, ca)
        assert read_ppcert(cert_der) is None, name
        _same_leaf(cert_der, issuer, monkeypatch)
        info = analyze_leaf(cert_der, issuer)
        assert info.problem is not None and info.problem[0] == "MALFORMED", name


def test_single_byte_edits_reach_a_verdict_with_and_without_the_reader(
    issuer: IssuerInfo, ppcerts: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unsigned edits (most break the signature): the same record either way, never an
    exception out of ``analyze_leaf``."""
    base = ppcerts[2]
    for i in range(len(base)):
        for value in {0x00, base[i] ^ 0x01, base[i] ^ 0x80}:
            _same_leaf(base[:i] + bytes([value]) + base[i + 1 :], issuer, monkeypatch)


# -- the inlined audit-path check ----------------------------------------------------------------


def test_inlined_audit_path_is_root_from_inclusion_path() -> None:
    """``verify._audit_root`` equals ``mpkix.merkle.root_from_inclusion_path`` (None where it
    raises) for every leaf of trees of 1..33 leaves, with the right and wrong sizes and indices,
    and with paths one entry short, one too long and with one entry replaced."""
    import hashlib

    from ias_sdk.verify import _audit_root
    from mpkix.merkle import MerkleTree, root_from_inclusion_path

    def reference(leaf: bytes, index: int, size: int, path: tuple[bytes, ...]) -> bytes | None:
        try:
            return root_from_inclusion_path(leaf, index, size, path)
        except ValueError:
            return None

    junk = hashlib.sha256(b"junk").digest()
    for n in range(1, 34):
        leaves = [bytes([n, i]) * 20 for i in range(n)]
        tree = MerkleTree(leaves)
        for i in range(n):
            leaf = hashlib.sha256(b"\x00" + leaves[i]).digest()
            path = tuple(tree.audit_path(i))
            assert _audit_root(leaf, i, n, path) == tree.root
            cases = [(i, n, path), (i, n, path[:-1]), (i, n, (*path, junk)), (i, n + 1, path)]
            cases += [(i, n - 1, path), (i + 1, n, path), (-1, n, path), (i, 0, path)]
            cases += [(i, n, (junk, *path[1:]))] if path else []
            for index, size, p in cases:
                assert _audit_root(leaf, index, size, p) == reference(leaf, index, size, p)


def test_what_escaped_verify_before_is_malformed(
    ca: CaMaterial, issuer: IssuerInfo, ppcerts: list[bytes]
) -> None:
    """Version v2 (``InvalidVersion``, not a ValueError) and a lazily decoded issuer or subject
    Name that does not decode: a verdict, not an exception (found by the edit tests above)."""
    from ias_sdk import Reason, VerificationError
    from ias_sdk.verify import Verifier

    base = ppcerts[0]
    v2 = base.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x01", 1)
    info = analyze_leaf(v2, issuer)
    assert info.problem is not None and info.problem[0] == "MALFORMED"
    with pytest.raises(VerificationError) as raised:
        Verifier._decode(Verifier.__new__(Verifier), v2)
    assert raised.value.reason is Reason.MALFORMED
    tbs, alg = _split(base)
    issuer_der = tbs_parts(base)[1]
    at = tbs.index(issuer_der)
    found = 0
    for i in range(at, at + len(issuer_der)):
        edited = _resigned(tbs[:i] + bytes([tbs[i] ^ 0x01]) + tbs[i + 1 :], alg, ca)
        try:
            cert = x509.load_der_x509_certificate(edited)
        except (ValueError, x509.InvalidVersion):
            continue  # refused at load: "undecodable certificate"
        try:
            str(cert.issuer)
        except ValueError:
            found += 1
            info = analyze_leaf(edited, issuer)
            assert info.problem is not None and info.problem[0] == "MALFORMED", info.problem
            assert "undecodable issuer name" in info.problem[1]
    assert found


@pytest.mark.parametrize("serial", [b"\x00", b"\xff", b"\x80" + b"\x11" * 15])
def test_ca_signed_certificate_with_a_non_positive_serial_is_malformed(
    ca: CaMaterial, issuer: IssuerInfo, ppcerts: list[bytes], serial: bytes
) -> None:
    """RFC 5280 §4.1.2.2: serials are positive. Zero or negative, even under the CA's signature,
    is MALFORMED on both paths (the strict reader and cryptography's)."""
    tbs, alg = _split(ppcerts[0])
    # tbsCertificate: SEQUENCE { [0] version, INTEGER serial, ... }: replace the serial's TLV.
    _, body, body_end = read_header(tbs)
    _, _, version_end = read_header(tbs, body)
    tag, _, serial_end = read_header(tbs, version_end)
    assert tag == 0x02  # INTEGER
    new_serial = bytes([0x02, len(serial)]) + serial
    edited = _resigned(
        der_sequence(tbs[body:version_end], new_serial, tbs[serial_end:body_end]), alg, ca
    )
    info = analyze_leaf(edited, issuer)
    assert info.problem == ("MALFORMED", "the serial number is not positive (RFC 5280 §4.1.2.2)")
