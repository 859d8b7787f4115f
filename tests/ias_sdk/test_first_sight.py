"""First sight of a certificate (decision 0810): what the faster path reuses never vouches for
different bytes, the signed bytes and names are sliced exactly, odd inputs get a verdict, and
``parse_ppcert`` behaves as it did before it was made faster."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID, NameOID

from ca_node.keys import CaMaterial, build_ca
from ias_sdk import LedgerMirror, Reason, VerificationError, Verifier
from ias_sdk._internal.certs import analyze_issuer, analyze_leaf, tbs_parts
from ledger.contracts import certificate_leaf_entry
from mpkix.merkle import MerkleTree
from mpkix.profile.extensions import (
    DerError,
    decode_ppcert_info,
    der_bit_string,
    der_sequence,
    encode_tlv,
    read_header,
)
from mpkix.profile.oids import ID_MPKIX_AD_CMS_GRPC, ID_MPKIX_CE_PPCERT_INFO, ID_MPKIX_CP
from mpkix.profile.ppcert import PpCertError, PpCertView, parse_ppcert
from mpkix.profile.ppcsr import PpCsrError, subject_id_from_name
from mpkix.profile.signature_profiles import PROFILES, PROFILES_BY_POLICY, profile_for_policy
from mpkix.v1 import common_pb2
from tests.ias_sdk.support import Issued, World, der
from tests.mpkix.profile.helpers import TbsParts, on_profile_parts, sign_with_throwaway

# -- DER surgery on real certificates ----------------------------------------------------------


def _split(cert_der: bytes) -> tuple[bytes, bytes, bytes]:
    """(tbsCertificate, signatureAlgorithm, signatureValue) TLVs."""
    _, start, _ = read_header(cert_der)
    _, _, tbs_end = read_header(cert_der, start)
    _, _, alg_end = read_header(cert_der, tbs_end)
    return cert_der[start:tbs_end], cert_der[tbs_end:alg_end], cert_der[alg_end:]


def _signed(tbs: bytes, alg: bytes, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    """``tbs`` signed with the (P-256) CA key ``key`` under ecdsa-with-SHA256 ``alg``."""
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return der_sequence(tbs, alg, der_bit_string(key.sign(tbs, ec.ECDSA(hashes.SHA256()))))


def _ppcert_info(cert: x509.Certificate) -> bytes:
    value = cert.extensions.get_extension_for_oid(ID_MPKIX_CE_PPCERT_INFO).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


def _tbs_fields(tbs: bytes) -> list[bytes]:
    _, pos, end = read_header(tbs)
    out = []
    while pos < end:
        _, _, nxt = read_header(tbs, pos)
        out.append(tbs[pos:nxt])
        pos = nxt
    return out


def _replaced(tbs: bytes, old: bytes, new: bytes) -> bytes:
    """``tbs`` with its field ``old`` (a whole TLV, e.g. the issuer Name) replaced by ``new``."""
    fields = _tbs_fields(tbs)
    assert fields.count(old) == 1
    return der_sequence(*(new if f == old else f for f in fields))


def _extensions(tbs: bytes) -> list[bytes]:
    wrapped = next(f for f in _tbs_fields(tbs) if f[0] == 0xA3)
    _, seq_start, _ = read_header(wrapped)
    _, pos, end = read_header(wrapped, seq_start)
    out = []
    while pos < end:
        _, _, nxt = read_header(wrapped, pos)
        out.append(wrapped[pos:nxt])
        pos = nxt
    return out


def _with_extensions(tbs: bytes, extensions: list[bytes]) -> bytes:
    fields = [
        encode_tlv(0xA3, der_sequence(*extensions)) if f[0] == 0xA3 else f for f in _tbs_fields(tbs)
    ]
    return der_sequence(*fields)


def _anchored(world: World, mirror: LedgerMirror, cert_der: bytes) -> common_pb2.CertificateBundle:
    """A one-certificate batch anchored by ca1, as a bundle (for certificates built here)."""
    entry = certificate_leaf_entry(hashlib.sha256(cert_der).digest(), world.operator_key_hash)
    tree = MerkleTree([entry])
    assert world.ca1.backend is not None
    out = world.ca1.backend.transact("anchor_batch", tree.root, 1, world.ca1.cert_hash)
    assert out.success, out.revert_reason
    batch_id = next(int(e.args["batch_id"]) for e in out.events if e.name == "BatchAnchored")
    mirror.sync()
    return common_pb2.CertificateBundle(
        certificate_der=cert_der,
        ca_chain_der=world.ca1.chain_der,
        inclusion=common_pb2.MerkleInclusion(
            batch_id=batch_id,
            leaf_index=0,
            operator_key_hash=world.operator_key_hash,
            chain_id=world.chain_id,
            registry_address=world.registry,
        ),
    )


def _refused(verifier: Verifier, item: object) -> Reason:
    with pytest.raises(VerificationError) as info:
        verifier.verify(item)  # type: ignore[arg-type]
    return info.value.reason


def _with_cert(
    bundle: common_pb2.CertificateBundle, cert_der: bytes
) -> common_pb2.CertificateBundle:
    out = common_pb2.CertificateBundle()
    out.CopyFrom(bundle)
    out.certificate_der = cert_der
    return out


@pytest.fixture(scope="module")
def issued(world: World) -> list[Issued]:
    return world.issue_batch(4)


# -- the caches never vouch for other bytes ----------------------------------------------------


def test_a_cached_certificate_vouches_only_for_its_exact_bytes(
    world: World, issued: list[Issued], mirror: LedgerMirror
) -> None:
    good = issued[0]
    verifier = Verifier(mirror)
    subject = verifier.verify(good.bundle)  # cached: chain, signature, ppCert fields, proof
    tbs, alg, sig = _split(good.cert_der)
    info = _ppcert_info(subject.certificate)
    at = tbs.index(info) + len(info) - 5  # inside the last sealed value
    edited_tbs = tbs[:at] + bytes([tbs[at] ^ 0x01]) + tbs[at + 1 :]
    sig_bytes = bytearray(sig)
    sig_bytes[-3] ^= 0x01  # inside s of the ECDSA signature
    forgeries = {
        # the same tbsCertificate (serial, issuer, subject, key, extensions) signed by another key
        "re-signed by a rogue key": _signed(tbs, alg, world.rogue.material.issuing_key),
        # one sealed byte changed, the genuine signature kept
        "edited, genuine signature": der_sequence(edited_tbs, alg, sig),
        # the genuine tbsCertificate with a corrupted signature value
        "corrupted signature": der_sequence(tbs, alg, bytes(sig_bytes)),
    }
    genuine = x509.load_der_x509_certificate(good.cert_der)
    for name, forged in forgeries.items():
        cert = x509.load_der_x509_certificate(forged)
        assert (cert.serial_number, cert.issuer) == (genuine.serial_number, genuine.issuer), name
        for _ in range(2):  # first sight, then the cached refusal
            assert _refused(verifier, _with_cert(good.bundle, forged)) is Reason.BAD_SIGNATURE, name
        # A bare forgery does not inherit the genuine certificate's remembered inclusion.
        assert _refused(verifier, forged) is Reason.NOT_ANCHORED, name
    # The genuine certificate, cached under ca1, is refused with a chain it was not issued by.
    other_chain = common_pb2.CertificateBundle()
    other_chain.CopyFrom(good.bundle)
    del other_chain.ca_chain_der[:]
    other_chain.ca_chain_der.extend(world.ca2.chain_der)
    assert _refused(verifier, other_chain) is Reason.BAD_CHAIN
    assert verifier.verify(good.bundle) == subject


def test_first_sight_reports_what_parse_ppcert_reads(
    issued: list[Issued], mirror: LedgerMirror
) -> None:
    verifier = Verifier(mirror)
    for item in issued:
        subject = verifier.verify(item.bundle.SerializeToString())
        view = parse_ppcert(x509.load_der_x509_certificate(item.cert_der))
        assert (
            subject.subject_id,
            subject.cms_address,
            subject.operator_id,
            subject.signature_profile,
            subject.serial,
            subject.not_before,
            subject.not_after,
            subject.sealed_attribute_ids,
        ) == (
            view.subject_id,
            view.cms_address,
            view.operator_id,
            view.signature_profile,
            view.serial_number,
            view.not_before,
            view.not_after,
            tuple(sorted(view.sealed)),
        )
        # The certificate handed out is complete (its extensions decode on demand).
        assert der(subject.certificate) == item.cert_der
        assert list(subject.certificate.extensions) == list(view.certificate.extensions)
        assert verifier.verify(item.bundle) == subject


# -- the signed bytes and the names are sliced exactly -----------------------------------------


def test_tbs_parts_are_the_signed_bytes_and_the_names(world: World, issued: list[Issued]) -> None:
    ders = [i.cert_der for i in issued] + world.ca1.chain_der + world.ca2.chain_der
    for d in ders:
        cert = x509.load_der_x509_certificate(d)
        assert tbs_parts(d) == (
            cert.tbs_certificate_bytes,
            cert.issuer.public_bytes(),
            cert.subject.public_bytes(),
        )
    # A v1 certificate has no [0] version field.
    tbs, alg, _ = _split(issued[0].cert_der)
    v1_tbs = der_sequence(*(f for f in _tbs_fields(tbs) if f[0] not in (0xA0, 0xA3)))
    v1 = _signed(v1_tbs, alg, world.ca1.material.issuing_key)
    cert = x509.load_der_x509_certificate(v1)
    assert cert.version is x509.Version.v1
    assert tbs_parts(v1) == (
        cert.tbs_certificate_bytes,
        cert.issuer.public_bytes(),
        cert.subject.public_bytes(),
    )
    for garbage in (
        b"",
        b"\x30\x00",
        b"\x31\x03\x02\x01\x00",
        b"\x30\x03\x02\x01\x00",
        v1 + b"\x00",
    ):
        with pytest.raises(DerError):
            tbs_parts(garbage)


def test_issuer_name_encoded_otherwise_is_compared_as_a_name(
    world: World, issued: list[Issued], mirror: LedgerMirror
) -> None:
    """The DER comparison is a shortcut: an equal name in other string types still matches (as
    before 0810), a different name does not."""
    ca = world.ca1.material
    tbs, alg, _ = _split(issued[1].cert_der)
    issuer_der = tbs_parts(issued[1].cert_der)[1]
    printable = x509.Name(
        [
            x509.NameAttribute(a.oid, a.value, _type=_ASN1Type.PrintableString)
            for a in ca.issuing_cert.subject
        ]
    ).public_bytes()
    assert printable != issuer_der
    respelled = _signed(_replaced(tbs, issuer_der, printable), alg, ca.issuing_key)
    assert x509.load_der_x509_certificate(respelled).issuer == ca.issuing_cert.subject
    issuer = analyze_issuer(tuple(world.ca1.chain_der))
    assert analyze_leaf(respelled, issuer).problem is None
    subject = Verifier(mirror).verify(_anchored(world, mirror, respelled))
    assert subject.cert_hash == hashlib.sha256(respelled).digest()

    other = x509.Name(
        [
            x509.NameAttribute(a.oid, f"{a.value!s}!") if a.oid == NameOID.COMMON_NAME else a
            for a in ca.issuing_cert.subject
        ]
    ).public_bytes()
    renamed = _signed(_replaced(tbs, issuer_der, other), alg, ca.issuing_key)
    problem = analyze_leaf(renamed, issuer).problem
    assert problem is not None and problem[0] == "BAD_CHAIN" and "another issuer" in problem[1]


# -- odd certificates get a verdict, not an exception -------------------------------------------


def test_unknown_signature_algorithm_is_bad_signature(
    world: World, issued: list[Issued], mirror: LedgerMirror
) -> None:
    ecdsa_sha256 = bytes.fromhex("06082a8648ce3d040302")
    assert issued[2].cert_der.count(ecdsa_sha256) == 2  # tbs signature and signatureAlgorithm
    unknown = issued[2].cert_der.replace(ecdsa_sha256, bytes.fromhex("06082a8648ce3d040309"))
    with pytest.raises(UnsupportedAlgorithm):
        _ = x509.load_der_x509_certificate(unknown).signature_hash_algorithm
    with pytest.raises(VerificationError) as info:  # before 0810: UnsupportedAlgorithm escaped
        Verifier(mirror).verify(_with_cert(issued[2].bundle, unknown))
    assert info.value.reason is Reason.BAD_SIGNATURE
    assert "1.2.840.10045.4.3.9 does not fit" in info.value.message


def _duplicated_extension(tbs: bytes, cert: x509.Certificate) -> bytes:
    exts = _extensions(tbs)
    (info_ext,) = (e for e in exts if _ppcert_info(cert) in e)
    return _with_extensions(tbs, [*exts, info_ext])


def _subject_point(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


_P256 = bytes.fromhex("06082a8648ce3d030107")


@pytest.mark.parametrize(
    ("case", "edit", "raised", "message"),
    [
        ("duplicate extension", _duplicated_extension, x509.DuplicateExtension, "Duplicate"),
        (
            "subject key off the curve",
            lambda tbs, cert: tbs.replace(
                _subject_point(cert),
                _subject_point(cert)[:-1] + bytes([_subject_point(cert)[-1] ^ 1]),
            ),
            ValueError,
            "Invalid key",
        ),
        (
            "subject key on an unknown curve",
            lambda tbs, cert: tbs.replace(_P256, bytes.fromhex("06082a8648ce3d030109")),
            UnsupportedAlgorithm,
            "not supported",
        ),
    ],
)
def test_ca_signed_oddities_are_malformed(
    world: World,
    issued: list[Issued],
    mirror: LedgerMirror,
    case: str,
    edit: Callable[[bytes, x509.Certificate], bytes],
    raised: type[Exception],
    message: str,
) -> None:
    """A certificate the trusted CA signed but cryptography cannot read as a ppCert is refused
    with ``MALFORMED`` (before 0810 cryptography's exception escaped ``verify``)."""
    tbs, alg, _ = _split(issued[3].cert_der)
    cert = x509.load_der_x509_certificate(issued[3].cert_der)
    edited = edit(tbs, cert)
    assert edited != tbs, case
    odd = _signed(edited, alg, world.ca1.material.issuing_key)
    with pytest.raises(raised):
        parse_ppcert(x509.load_der_x509_certificate(odd))
    verifier = Verifier(mirror)
    for _ in range(2):  # first sight, then the cached refusal
        with pytest.raises(VerificationError) as info:
            verifier.verify(_with_cert(issued[3].bundle, odd))
        assert info.value.reason is Reason.MALFORMED, case
        assert message in info.value.message, case


# -- parse_ppcert: the same answers as before it was made faster --------------------------------


def _cms_uri_before_0810(extensions: x509.Extensions) -> str:
    try:
        sia = extensions.get_extension_for_class(x509.SubjectInformationAccess).value
    except x509.ExtensionNotFound:
        raise PpCertError("no Subject Information Access extension") from None
    uris = [
        d.access_location.value
        for d in sia
        if d.access_method == ID_MPKIX_AD_CMS_GRPC
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]
    if len(uris) != 1:
        raise PpCertError("Subject Information Access must name exactly one MPKIX CMS endpoint")
    return uris[0]


def _parse_ppcert_before_0810(cert: x509.Certificate) -> PpCertView:
    """``mpkix.profile.ppcert.parse_ppcert`` as it was before decision 0810 (the reference)."""
    try:
        subject_id = subject_id_from_name(cert.subject)
        extensions = cert.extensions
        ext = extensions.get_extension_for_oid(ID_MPKIX_CE_PPCERT_INFO).value
    except PpCsrError as exc:
        raise PpCertError(str(exc)) from None
    except x509.ExtensionNotFound:
        raise PpCertError("no MPKIX ppCertInfo extension") from None
    except ValueError as exc:
        raise PpCertError(f"malformed extensions: {exc}") from None
    if not isinstance(ext, x509.UnrecognizedExtension):
        raise PpCertError("MPKIX ppCertInfo extension has an unexpected type")
    try:
        info = decode_ppcert_info(ext.value)
    except DerError as exc:
        raise PpCertError(f"MPKIX ppCertInfo: {exc}") from None
    try:
        policies = extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        raise PpCertError("no certificatePolicies extension") from None
    policy_oids = tuple(p.policy_identifier for p in policies)
    profile = profile_for_policy(next((o for o in policy_oids if o != ID_MPKIX_CP), ID_MPKIX_CP))
    if profile is None or profile.uri_text != info.signature_profile:
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
        cms_address=_cms_uri_before_0810(extensions),
        public_key=public_key,
        policy_oids=policy_oids,
        sealed=info.sealed,
    )


def _outcome(parse: Callable[[x509.Certificate], PpCertView], cert: x509.Certificate) -> object:
    try:
        return parse(cert)
    except PpCertError as e:
        return ("PpCertError", str(e))


def _policies(*oids: x509.ObjectIdentifier) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(o, None) for o in oids])


def _cms(*locations: x509.GeneralName) -> x509.SubjectInformationAccess:
    return x509.SubjectInformationAccess(
        [x509.AccessDescription(ID_MPKIX_AD_CMS_GRPC, loc) for loc in locations]
    )


@pytest.fixture(scope="module")
def profile_ca() -> CaMaterial:
    return build_ca(name="Profile CA")


def _variants(ca: CaMaterial) -> dict[str, TbsParts]:
    def parts(**changes: object) -> TbsParts:
        p = on_profile_parts(ca.issuing_cert)
        for k, v in changes.items():
            setattr(p, k, v)
        return p

    def without(oid: x509.ObjectIdentifier) -> TbsParts:
        p = parts()
        del p.extensions[oid]
        return p

    def replaced(
        oid: x509.ObjectIdentifier, value: x509.ExtensionType, critical: bool = False
    ) -> TbsParts:
        p = parts()
        p.extensions[oid] = (value, critical)
        return p

    other_policy = PROFILES["mss:mpkix:sign:loa3:app"].policy_oid
    return {
        "on profile": parts(),
        "RSA subject key": parts(public_key=rsa.generate_private_key(65537, 2048).public_key()),
        "Ed25519 subject key": parts(public_key=ed25519.Ed25519PrivateKey.generate().public_key()),
        "no ppCertInfo": without(ID_MPKIX_CE_PPCERT_INFO),
        "ppCertInfo garbage": replaced(
            ID_MPKIX_CE_PPCERT_INFO,
            x509.UnrecognizedExtension(ID_MPKIX_CE_PPCERT_INFO, b"\x30\x00"),
        ),
        "ppCertInfo critical": replaced(
            ID_MPKIX_CE_PPCERT_INFO,
            on_profile_parts(ca.issuing_cert).extensions[ID_MPKIX_CE_PPCERT_INFO][0],
            True,
        ),
        "no certificatePolicies": without(ExtensionOID.CERTIFICATE_POLICIES),
        "policy of another profile": replaced(
            ExtensionOID.CERTIFICATE_POLICIES, _policies(ID_MPKIX_CP, other_policy)
        ),
        "only the MPKIX policy": replaced(
            ExtensionOID.CERTIFICATE_POLICIES, _policies(ID_MPKIX_CP)
        ),
        "no SIA": without(ExtensionOID.SUBJECT_INFORMATION_ACCESS),
        "two CMS endpoints": replaced(
            ExtensionOID.SUBJECT_INFORMATION_ACCESS,
            _cms(
                x509.UniformResourceIdentifier("grpcs://a.example:1"),
                x509.UniformResourceIdentifier("grpcs://b.example:1"),
            ),
        ),
        "CMS endpoint not a URI": replaced(
            ExtensionOID.SUBJECT_INFORMATION_ACCESS, _cms(x509.DNSName("cms.example"))
        ),
        "subject not a subject id": parts(
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Alice")])
        ),
        "two subject attributes": parts(
            subject=x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "x"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "y"),
                ]
            )
        ),
    }


def test_parse_ppcert_answers_as_before(profile_ca: CaMaterial) -> None:
    accepted = 0
    for name, parts in _variants(profile_ca).items():
        cert = sign_with_throwaway(parts.builder())
        now, before = _outcome(parse_ppcert, cert), _outcome(_parse_ppcert_before_0810, cert)
        assert now == before, name
        accepted += isinstance(now, PpCertView)
    assert accepted == 3  # on profile, RSA key, critical ppCertInfo (parse_ppcert reads only)
    for cert in (profile_ca.issuing_cert, profile_ca.root_cert):
        assert _outcome(parse_ppcert, cert) == _outcome(_parse_ppcert_before_0810, cert)


def test_profiles_are_keyed_by_their_canonical_uri() -> None:
    """``parse_ppcert`` matches the policy's profile to the mss: URI by registry identity."""
    for profile in PROFILES_BY_POLICY.values():
        assert PROFILES[profile.uri_text] is profile
    assert len(PROFILES) == len(PROFILES_BY_POLICY)


def test_expiry_of_a_cached_certificate_still_applies(
    issued: list[Issued], mirror: LedgerMirror
) -> None:
    verifier = Verifier(mirror)
    subject = verifier.verify(issued[0].bundle)
    later = subject.not_after + dt.timedelta(seconds=1)
    with pytest.raises(VerificationError) as info:
        verifier.verify(issued[0].bundle, now=later)
    assert info.value.reason is Reason.EXPIRED
