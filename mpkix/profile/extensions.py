"""DER encoding of the MPKIX private extensions (ITU-T X.690 DER; decision record 0303).

A deliberately tiny, strict DER codec (low tag numbers only, definite minimal lengths, minimal
INTEGERs, exact consumption) plus the two MPKIX structures::

    SealedAttribute  ::= SEQUENCE {
        attrId       UTF8String (SIZE (1..64)),   -- e.g. "birthday"; see sealing.ATTR_ID_RE
        sealedValue  OCTET STRING (SIZE (60)) }   -- nonce ‖ AES-128-GCM(K_encr, HMAC digest)
    SealedAttributes ::= SEQUENCE SIZE (1..32) OF SealedAttribute   -- ids unique, sorted on encode

    -- id-mpkix-ce-sealedAttributes (ppCSR, in the PKCS#9 extensionRequest): SealedAttributes
    -- id-mpkix-ce-ppCertInfo (ppCert, non-critical):
    PpCertInfo ::= SEQUENCE {
        version           INTEGER { v1(1) },
        signatureProfile  IA5String,               -- mss: URI (signature_profiles)
        operatorId        UTF8String (SIZE (1..64)),
        sealedAttributes  SealedAttributes }

pyasn1 is only a pkilint (dev) dependency, hence the hand-written codec.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from mpkix.profile.sealing import ATTR_ID_RE, SEALED_LEN
from mpkix.profile.signature_profiles import SignatureProfileError, parse_mss_uri

TAG_INTEGER: Final = 0x02
TAG_BIT_STRING: Final = 0x03
TAG_OCTET_STRING: Final = 0x04
TAG_OID: Final = 0x06
TAG_UTF8STRING: Final = 0x0C
TAG_IA5STRING: Final = 0x16
TAG_SEQUENCE: Final = 0x30

MAX_SEALED_ATTRIBUTES: Final = 32
PPCERT_INFO_VERSION: Final = 1
#: Operator identifiers, e.g. a PLMN id "310-260" or a name such as "op-a.example".
OPERATOR_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class DerError(ValueError):
    """Input that is not strict DER of the expected shape."""


# --- encoder -----------------------------------------------------------------------------------


def encode_length(length: int) -> bytes:
    """DER definite length (short form below 128, minimal long form otherwise)."""
    if length < 0:
        raise DerError("negative length")
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(body) > 4:
        raise DerError("length too large")
    return bytes((0x80 | len(body),)) + body


def encode_tlv(tag: int, content: bytes) -> bytes:
    """One TLV with a low-number tag."""
    if not 0 <= tag <= 0xFF or tag & 0x1F == 0x1F:
        raise DerError(f"unsupported tag 0x{tag:02x}")
    return bytes((tag,)) + encode_length(len(content)) + content


def der_sequence(*encoded_items: bytes) -> bytes:
    return encode_tlv(TAG_SEQUENCE, b"".join(encoded_items))


def der_integer(value: int) -> bytes:
    """Two's-complement minimal INTEGER."""
    length = (value if value >= 0 else ~value).bit_length() // 8 + 1  # room for the sign bit
    return encode_tlv(TAG_INTEGER, value.to_bytes(length, "big", signed=True))


def der_octet_string(value: bytes) -> bytes:
    return encode_tlv(TAG_OCTET_STRING, value)


def der_bit_string(value: bytes, unused_bits: int = 0) -> bytes:
    if not 0 <= unused_bits <= 7 or (unused_bits and not value):
        raise DerError("invalid BIT STRING unused-bits count")
    return encode_tlv(TAG_BIT_STRING, bytes((unused_bits,)) + value)


def der_utf8string(value: str) -> bytes:
    return encode_tlv(TAG_UTF8STRING, value.encode("utf-8"))


def der_ia5string(value: str) -> bytes:
    if not value.isascii():
        raise DerError("IA5String must be ASCII")
    return encode_tlv(TAG_IA5STRING, value.encode("ascii"))


# --- decoder -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tlv:
    """One decoded element: its tag, its content, and the full encoding."""

    tag: int
    content: bytes
    encoded: bytes


def read_tlv(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Decode the TLV at ``offset``; returns it and the offset just past it."""
    tag, start, end = read_header(data, offset)
    return Tlv(tag, data[start:end], data[offset:end]), end


def read_header(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Check the TLV header at ``offset``: (tag, content start, content end); nothing copied."""
    end = len(data)
    if offset + 2 > end:
        raise DerError("truncated TLV header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not supported")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length is not DER")
    else:
        count = first & 0x7F
        if count > 4 or pos + count > end:
            raise DerError("bad long-form length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if data[pos] == 0 or length < 0x80:
            raise DerError("non-minimal length encoding")
        pos += count
    if pos + length > end:
        raise DerError("content runs past the end of the input")
    return tag, pos, pos + length


def iter_tlvs(data: bytes) -> Iterator[Tlv]:
    """Every TLV of a concatenation, which must be consumed exactly."""
    offset = 0
    while offset < len(data):
        tlv, offset = read_tlv(data, offset)
        yield tlv


def decode_single(data: bytes, tag: int) -> Tlv:
    """The one TLV making up all of ``data``, with the expected tag."""
    tlv, end = read_tlv(data)
    if end != len(data):
        raise DerError("trailing data after DER element")
    return expect_tag(tlv, tag)


def expect_tag(tlv: Tlv, tag: int) -> Tlv:
    if tlv.tag != tag:
        raise DerError(f"expected tag 0x{tag:02x}, found 0x{tlv.tag:02x}")
    return tlv


def decode_integer(tlv: Tlv) -> int:
    c = expect_tag(tlv, TAG_INTEGER).content
    if not c:
        raise DerError("empty INTEGER")
    if len(c) > 1 and ((c[0] == 0 and c[1] < 0x80) or (c[0] == 0xFF and c[1] >= 0x80)):
        raise DerError("non-minimal INTEGER")
    return int.from_bytes(c, "big", signed=True)


def decode_utf8string(tlv: Tlv) -> str:
    try:
        return expect_tag(tlv, TAG_UTF8STRING).content.decode("utf-8")
    except UnicodeDecodeError:
        raise DerError("UTF8String is not valid UTF-8") from None


def decode_ia5string(tlv: Tlv) -> str:
    c = expect_tag(tlv, TAG_IA5STRING).content
    if not c.isascii():
        raise DerError("IA5String is not ASCII")
    return c.decode("ascii")


# --- MPKIX structures --------------------------------------------------------------------------


def _check_sealed_entry(attr_id: str, sealed: bytes) -> None:
    if ATTR_ID_RE.fullmatch(attr_id) is None:
        raise DerError(f"invalid attribute identifier {attr_id!r}")
    if len(sealed) != SEALED_LEN:
        raise DerError(f"sealed value for {attr_id!r} is {len(sealed)} bytes, not {SEALED_LEN}")


def _encode_sealed_attributes(sealed: Mapping[str, bytes]) -> bytes:
    if not 1 <= len(sealed) <= MAX_SEALED_ATTRIBUTES:
        raise DerError(f"need 1..{MAX_SEALED_ATTRIBUTES} sealed attributes, got {len(sealed)}")
    items = []
    for attr_id in sorted(sealed):
        value = sealed[attr_id]
        _check_sealed_entry(attr_id, value)
        items.append(der_sequence(der_utf8string(attr_id), der_octet_string(value)))
    return der_sequence(*items)


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(tag, content start, content end) of each element in ``data[start:end]``."""
    out = []
    while start < end:
        tag, content_start, start = read_header(data, start)
        if start > end:
            raise DerError("element runs past its enclosing SEQUENCE")
        out.append((tag, content_start, start))
    return out


def _utf8(data: bytes, start: int, end: int) -> str:
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise DerError("UTF8String is not valid UTF-8") from None


def _decode_sealed_attributes(data: bytes, start: int, end: int) -> dict[str, bytes]:
    result: dict[str, bytes] = {}
    for tag, s, e in _children(data, start, end):
        if tag != TAG_SEQUENCE:
            raise DerError("SealedAttribute must be a SEQUENCE")
        fields = _children(data, s, e)
        if len(fields) != 2 or fields[0][0] != TAG_UTF8STRING or fields[1][0] != TAG_OCTET_STRING:
            raise DerError("SealedAttribute must be SEQUENCE { UTF8String, OCTET STRING }")
        attr_id = _utf8(data, fields[0][1], fields[0][2])
        value = data[fields[1][1] : fields[1][2]]
        _check_sealed_entry(attr_id, value)
        if attr_id in result:
            raise DerError(f"duplicate sealed attribute {attr_id!r}")
        if len(result) == MAX_SEALED_ATTRIBUTES:
            raise DerError(f"more than {MAX_SEALED_ATTRIBUTES} sealed attributes")
        result[attr_id] = value
    if not result:
        raise DerError("SealedAttributes is empty")
    return result


def encode_sealed_attributes(sealed: Mapping[str, bytes]) -> bytes:
    """DER ``SealedAttributes`` (entries sorted by attribute id)."""
    return _encode_sealed_attributes(sealed)


def decode_sealed_attributes(der: bytes) -> dict[str, bytes]:
    """Parse DER ``SealedAttributes``; rejects duplicates, bad ids and wrong value sizes."""
    tag, start, end = read_header(der)
    if tag != TAG_SEQUENCE or end != len(der):
        raise DerError("SealedAttributes must be exactly one SEQUENCE")
    return _decode_sealed_attributes(der, start, end)


@dataclass(frozen=True, slots=True)
class PpCertInfo:
    """Content of the ``id-mpkix-ce-ppCertInfo`` extension."""

    signature_profile: str
    operator_id: str
    sealed: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sealed", MappingProxyType(dict(self.sealed)))


def _check_info(profile: str, operator_id: str) -> None:
    try:
        parse_mss_uri(profile)
    except SignatureProfileError as exc:
        raise DerError(str(exc)) from None
    if OPERATOR_ID_RE.fullmatch(operator_id) is None:
        raise DerError(f"invalid operator identifier {operator_id!r}")


def encode_ppcert_info(info: PpCertInfo) -> bytes:
    """DER ``PpCertInfo``."""
    _check_info(info.signature_profile, info.operator_id)
    return der_sequence(
        der_integer(PPCERT_INFO_VERSION),
        der_ia5string(info.signature_profile),
        der_utf8string(info.operator_id),
        _encode_sealed_attributes(info.sealed),
    )


#: Attribute ids and (profile, operator id) pairs already found valid (exact strings).
_VALID_ATTR_IDS: dict[str, None] = {}
_VALID_INFO: dict[tuple[str, str], None] = {}
_VALID_MAX: Final = 4096


def _fast_len(data: bytes, pos: int, limit: int) -> tuple[int, int] | None:
    """(content start, content end) of the strict-DER length at ``pos`` if the element ends
    within ``limit``; None for anything else (the strict decoder then says what is wrong)."""
    if pos >= limit:
        return None
    first = data[pos]
    if first < 0x80:
        start = pos + 1
        end = start + first
    elif first == 0x81:
        if pos + 1 >= limit or data[pos + 1] < 0x80:
            return None
        start = pos + 2
        end = start + data[pos + 1]
    elif first == 0x82:
        if pos + 2 >= limit or data[pos + 1] == 0:
            return None
        start = pos + 3
        end = start + (data[pos + 1] << 8 | data[pos + 2])
    else:
        return None
    return (start, end) if end <= limit else None


def _fast_ppcert_info(der: bytes) -> PpCertInfo | None:
    """``PpCertInfo`` when ``der`` is well-formed, checked exactly as the strict decoder checks
    it, in one inlined pass; None when anything is off (the strict decoder then runs)."""
    n = len(der)
    if n < 2 or der[0] != TAG_SEQUENCE:
        return None
    span = _fast_len(der, 1, n)
    if span is None or span[1] != n:
        return None
    pos = span[0]
    # version INTEGER 1, exactly 02 01 01
    if der[pos : pos + 3] != b"\x02\x01\x01":
        return None
    pos += 3
    if pos >= n or der[pos] != TAG_IA5STRING:
        return None
    span = _fast_len(der, pos + 1, n)
    if span is None:
        return None
    profile_bytes = der[span[0] : span[1]]
    pos = span[1]
    if pos >= n or der[pos] != TAG_UTF8STRING:
        return None
    span = _fast_len(der, pos + 1, n)
    if span is None:
        return None
    operator_bytes = der[span[0] : span[1]]
    pos = span[1]
    if pos >= n or der[pos] != TAG_SEQUENCE:
        return None
    span = _fast_len(der, pos + 1, n)
    if span is None or span[1] != n:
        return None
    if not profile_bytes.isascii():
        return None
    try:
        profile = profile_bytes.decode("ascii")
        operator_id = operator_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if (profile, operator_id) not in _VALID_INFO:
        try:
            _check_info(profile, operator_id)
        except DerError:
            return None
        if len(_VALID_INFO) >= _VALID_MAX:
            _VALID_INFO.clear()
        _VALID_INFO[profile, operator_id] = None
    sealed: dict[str, bytes] = {}
    pos, end = span
    while pos < end:
        if der[pos] != TAG_SEQUENCE or len(sealed) == MAX_SEALED_ATTRIBUTES:
            return None
        item = _fast_len(der, pos + 1, end)
        if item is None:
            return None
        pos, item_end = item
        if pos >= item_end or der[pos] != TAG_UTF8STRING:
            return None
        field_span = _fast_len(der, pos + 1, item_end)
        if field_span is None:
            return None
        id_bytes = der[field_span[0] : field_span[1]]
        pos = field_span[1]
        if pos >= item_end or der[pos] != TAG_OCTET_STRING:
            return None
        field_span = _fast_len(der, pos + 1, item_end)
        if field_span is None or field_span[1] != item_end:
            return None
        value = der[field_span[0] : item_end]
        try:
            attr_id = id_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if attr_id not in _VALID_ATTR_IDS:
            if ATTR_ID_RE.fullmatch(attr_id) is None:
                return None
            if len(_VALID_ATTR_IDS) >= _VALID_MAX:
                _VALID_ATTR_IDS.clear()
            _VALID_ATTR_IDS[attr_id] = None
        if len(value) != SEALED_LEN or attr_id in sealed:
            return None
        sealed[attr_id] = value
        pos = item_end
    if not sealed:
        return None
    return PpCertInfo(profile, operator_id, sealed)


def decode_ppcert_info(der: bytes) -> PpCertInfo:
    """Parse DER ``PpCertInfo`` strictly."""
    fast = _fast_ppcert_info(der)
    if fast is not None:
        return fast
    return _strict_ppcert_info(der)


def _strict_ppcert_info(der: bytes) -> PpCertInfo:
    """The reference decoder: accepts what the fast path accepts, and names what is wrong."""
    tag, start, end = read_header(der)
    if tag != TAG_SEQUENCE or end != len(der):
        raise DerError("PpCertInfo must be exactly one SEQUENCE")
    fields = _children(der, start, end)
    tags = tuple(f[0] for f in fields)
    if tags != (TAG_INTEGER, TAG_IA5STRING, TAG_UTF8STRING, TAG_SEQUENCE):
        raise DerError("PpCertInfo must be SEQUENCE { INTEGER, IA5String, UTF8String, SEQUENCE }")
    version = decode_integer(Tlv(TAG_INTEGER, der[fields[0][1] : fields[0][2]], b""))
    if version != PPCERT_INFO_VERSION:
        raise DerError(f"unsupported PpCertInfo version {version}")
    profile_bytes = der[fields[1][1] : fields[1][2]]
    if not profile_bytes.isascii():
        raise DerError("IA5String is not ASCII")
    profile = profile_bytes.decode("ascii")
    operator_id = _utf8(der, fields[2][1], fields[2][2])
    _check_info(profile, operator_id)
    return PpCertInfo(profile, operator_id, _decode_sealed_attributes(der, *fields[3][1:]))
