"""A strict reader of the ppCert fields the IAS SDK reports, straight from the DER (decision 0812).

:func:`read_ppcert` accepts only the exact shape a ppCert CA writes (``mpkix.profile.ppcert``):
a v3 ``tbsCertificate`` whose subject is one ``CN`` UTF8String, whose key is an uncompressed
P-256 point (checked to lie on the curve), and whose extensions are exactly the seven profile
extensions, each once, in their canonical encodings (keyUsage and extendedKeyUsage byte for
byte; SKI and AKI as 20-byte key identifiers; certificatePolicies {MPKIX policy, one
registered profile policy} without qualifiers; one subjectInfoAccess CMS URI; a non-critical
ppCertInfo that ``decode_ppcert_info`` accepts and whose ``mss:`` URI is the profile policy's).

For such a certificate it returns what ``parse_ppcert`` would report, without building
cryptography's name, extension and key objects. For anything else it returns ``None``, and the
caller runs the cryptography-based path, which gives the verdict and message it always gave.
It never *refuses* a certificate; so whatever it accepts, ``parse_ppcert`` accepts with the same
fields (``tests/ias_sdk/test_ppder.py`` checks this on every single-byte edit, truncation and
extension, and on random edits, of real ppCerts and CA certificates).

It runs only after ``x509.load_der_x509_certificate`` accepted the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cryptography import x509

from mpkix.profile.extensions import DerError, decode_ppcert_info
from mpkix.profile.oids import ID_MPKIX_AD_CMS_GRPC, ID_MPKIX_CE_PPCERT_INFO, ID_MPKIX_CP
from mpkix.profile.ppcsr import is_subject_id
from mpkix.profile.signature_profiles import PROFILES, PROFILES_BY_POLICY, SignatureProfile

# NIST P-256 (FIPS 186-4 D.1.2.3): y² = x³ - 3x + b over GF(p).
_P: Final = 2**256 - 2**224 + 2**192 + 2**96 - 1
_B: Final = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
#: SubjectPublicKeyInfo of an uncompressed P-256 key up to the point's 64 coordinate bytes.
P256_SPKI_PREFIX: Final = bytes.fromhex(
    "3059301306072a8648ce3d020106082a8648ce3d030107034200" + "04"
)
_VERSION_V3: Final = b"\xa0\x03\x02\x01\x02"
_CN_PREFIX: Final = b"\x06\x03\x55\x04\x03\x0c"  # id-at-commonName, then a UTF8String
# The fixed extensions, whole (extnID, critical, extnValue).
_KEY_USAGE: Final = bytes.fromhex("300e0603551d0f0101ff0404030207" + "80")
_EXT_KEY_USAGE: Final = bytes.fromhex("30130603551d25040c300a06082b06010505070302")
# Extensions with a 20-byte key identifier: the bytes before it.
_SKI_PREFIX: Final = bytes.fromhex("301d0603551d0e04160414")
_AKI_PREFIX: Final = bytes.fromhex("301f0603551d230418301680" + "14")
_ID_CE_POLICIES: Final = bytes.fromhex("0603551d20")
_ID_PE_SIA: Final = bytes.fromhex("06082b0601050507010b")


def oid_der(oid: x509.ObjectIdentifier) -> bytes:
    """The DER TLV of ``oid`` (X.690 §8.19)."""
    arcs = [int(a) for a in oid.dotted_string.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    if len(body) >= 0x80:  # pragma: no cover - every OID here is short
        raise ValueError("OID too long for this reader")
    return bytes((0x06, len(body))) + bytes(body)


_CP_DER: Final = oid_der(ID_MPKIX_CP)
_CMS_GRPC_DER: Final = oid_der(ID_MPKIX_AD_CMS_GRPC)
_PPCERT_INFO_DER: Final = oid_der(ID_MPKIX_CE_PPCERT_INFO)
#: Registered profiles by the DER of their policy OID.
_PROFILE_BY_POLICY_DER: Final[dict[bytes, SignatureProfile]] = {
    oid_der(oid): profile for oid, profile in PROFILES_BY_POLICY.items()
}


@dataclass(frozen=True, slots=True)
class PpCertFields:
    """What ``parse_ppcert`` reports of a certificate, and the slices the signature check uses."""

    tbs: bytes
    issuer: bytes  # the issuer Name, DER
    subject_id: str
    cms_address: str
    operator_id: str
    signature_profile: str
    sealed_attribute_ids: tuple[str, ...]  # sorted


def _span(der: bytes, pos: int, limit: int) -> tuple[int, int]:
    """(content start, content end) of the strict-DER length at ``pos``; ``ValueError`` if it is
    not minimal or the element does not end within ``limit``."""
    first = der[pos]
    if first < 0x80:
        start = pos + 1
        end = start + first
    elif first == 0x81 and der[pos + 1] >= 0x80:
        start = pos + 2
        end = start + der[pos + 1]
    elif first == 0x82 and der[pos + 1]:
        start = pos + 3
        end = start + (der[pos + 1] << 8 | der[pos + 2])
    else:
        raise ValueError
    if end > limit:
        raise ValueError
    return start, end


def _skip(der: bytes, pos: int, limit: int) -> int:
    """The offset after the element at ``pos`` (its tag a low-number one)."""
    if der[pos] & 0x1F == 0x1F:
        raise ValueError
    return _span(der, pos + 1, limit)[1]


def _on_p256(point: bytes) -> bool:
    x = int.from_bytes(point[:32], "big")
    y = int.from_bytes(point[32:], "big")
    return x < _P and y < _P and (y * y - x * x * x + 3 * x - _B) % _P == 0


def _policies(der: bytes, pos: int, end: int) -> SignatureProfile:
    """The profile of certificatePolicies ``{MPKIX policy, profile policy}`` (no qualifiers)."""
    if der[pos] != 0x30:
        raise ValueError
    pos, seq_end = _span(der, pos + 1, end)
    if seq_end != end:
        raise ValueError
    oids = []
    while pos < end:
        if der[pos] != 0x30:
            raise ValueError
        start, info_end = _span(der, pos + 1, end)
        oid = der[start:info_end]  # a PolicyInformation with a qualifier is no known OID
        oids.append(oid)
        pos = info_end
    if len(oids) != 2 or oids[0] != _CP_DER:
        raise ValueError
    return _PROFILE_BY_POLICY_DER[oids[1]]


def _cms_uri(der: bytes, pos: int, end: int) -> str:
    """The one AccessDescription {id-mpkix-ad-cmsGrpc, URI} of subjectInfoAccess."""
    if der[pos] != 0x30:
        raise ValueError
    pos, seq_end = _span(der, pos + 1, end)
    if seq_end != end or der[pos] != 0x30:
        raise ValueError
    pos, item_end = _span(der, pos + 1, end)
    if item_end != end or der[pos : pos + len(_CMS_GRPC_DER)] != _CMS_GRPC_DER:
        raise ValueError
    pos += len(_CMS_GRPC_DER)
    if der[pos] != 0x86:  # [6] IMPLICIT IA5String uniformResourceIdentifier
        raise ValueError
    start, uri_end = _span(der, pos + 1, end)
    uri = der[start:uri_end]
    if uri_end != end or not uri.isascii():
        raise ValueError
    return uri.decode("ascii")


def read_ppcert(der: bytes) -> PpCertFields | None:
    """The ppCert fields of certificate ``der`` if it has exactly the profile's shape, else None."""
    try:
        return _read(der)
    except (ValueError, IndexError, KeyError):
        return None


def _read(der: bytes) -> PpCertFields | None:
    n = len(der)
    if der[0] != 0x30:
        return None
    pos, cert_end = _span(der, 1, n)
    if cert_end != n or der[pos] != 0x30:
        return None
    tbs_start = pos
    pos, tbs_end = _span(der, pos + 1, n)
    if der[pos : pos + 5] != _VERSION_V3:
        return None
    pos = _skip(der, pos + 5, tbs_end)  # serialNumber
    pos = _skip(der, pos, tbs_end)  # signature
    issuer_start = pos
    pos = _skip(der, pos, tbs_end)
    issuer_end = pos
    pos = _skip(der, pos, tbs_end)  # validity
    # subject: SEQUENCE { SET { SEQUENCE { id-at-commonName, UTF8String } } }, nothing else
    if der[pos] != 0x30:
        return None
    rdn, subject_end = _span(der, pos + 1, tbs_end)
    if der[rdn] != 0x31:
        return None
    atv, rdn_end = _span(der, rdn + 1, subject_end)
    if rdn_end != subject_end or der[atv] != 0x30:
        return None
    pos, atv_end = _span(der, atv + 1, rdn_end)
    if atv_end != rdn_end or der[pos : pos + 6] != _CN_PREFIX:
        return None
    start, cn_end = _span(der, pos + 6, atv_end)
    if cn_end != atv_end:
        return None
    subject_id = der[start:cn_end].decode("utf-8")  # UnicodeDecodeError is a ValueError
    if not is_subject_id(subject_id):
        return None
    pos = subject_end
    # subjectPublicKeyInfo: an uncompressed P-256 point on the curve
    if (
        pos + 91 > tbs_end
        or der[pos : pos + 27] != P256_SPKI_PREFIX
        or not _on_p256(der[pos + 27 : pos + 91])
    ):
        return None
    pos += 91
    # [3] EXPLICIT Extensions, the last field
    if der[pos] != 0xA3:
        return None
    pos, exts_end = _span(der, pos + 1, tbs_end)
    if exts_end != tbs_end or der[pos] != 0x30:
        return None
    pos, seq_end = _span(der, pos + 1, exts_end)
    if seq_end != exts_end:
        return None
    seen = 0
    profile: SignatureProfile | None = None
    cms_address = ""
    info_der = b""
    while pos < exts_end:
        if der[pos] != 0x30:
            return None
        body, ext_end = _span(der, pos + 1, exts_end)
        ext = der[pos:ext_end]
        if ext == _KEY_USAGE:
            bit = 1
        elif ext == _EXT_KEY_USAGE:
            bit = 2
        elif len(ext) == 31 and ext[:11] == _SKI_PREFIX:
            bit = 4
        elif len(ext) == 33 and ext[:13] == _AKI_PREFIX:
            bit = 8
        else:
            # extnID, then (no critical flag) the extnValue OCTET STRING
            oid_end = _skip(der, body, ext_end)
            oid = der[body:oid_end]
            if der[oid_end] != 0x04:
                return None
            value, value_end = _span(der, oid_end + 1, ext_end)
            if value_end != ext_end:
                return None
            if oid == _ID_CE_POLICIES:
                bit = 16
                profile = _policies(der, value, value_end)
            elif oid == _ID_PE_SIA:
                bit = 32
                cms_address = _cms_uri(der, value, value_end)
            elif oid == _PPCERT_INFO_DER:
                bit = 64
                info_der = der[value:value_end]
            else:
                return None
        if seen & bit:
            return None
        seen |= bit
        pos = ext_end
    if seen != 127:
        return None
    try:
        info = decode_ppcert_info(info_der)
    except DerError:
        return None
    if PROFILES.get(info.signature_profile) is not profile:
        return None
    return PpCertFields(
        der[tbs_start:tbs_end],
        der[issuer_start:issuer_end],
        subject_id,
        cms_address,
        info.operator_id,
        info.signature_profile,
        tuple(sorted(info.sealed)),
    )
