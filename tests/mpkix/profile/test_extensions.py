from __future__ import annotations

import pytest
from pyasn1.codec.der import decoder as pyasn1_der  # type: ignore[import-untyped]
from pyasn1.type import char, namedtype, univ  # type: ignore[import-untyped]

from mpkix.profile.extensions import (
    MAX_SEALED_ATTRIBUTES,
    TAG_SEQUENCE,
    DerError,
    PpCertInfo,
    decode_integer,
    decode_ppcert_info,
    decode_sealed_attributes,
    decode_single,
    der_bit_string,
    der_ia5string,
    der_integer,
    der_octet_string,
    der_sequence,
    der_utf8string,
    encode_length,
    encode_ppcert_info,
    encode_sealed_attributes,
    encode_tlv,
    read_tlv,
)


# Independent ASN.1 definitions (pyasn1, a pkilint dependency) to cross-check the hand codec.
class SealedAttribute(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("attrId", char.UTF8String()),
        namedtype.NamedType("sealedValue", univ.OctetString()),
    )


class SealedAttributes(univ.SequenceOf):  # type: ignore[misc]
    componentType = SealedAttribute()


class PpCertInfoAsn1(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("version", univ.Integer()),
        namedtype.NamedType("signatureProfile", char.IA5String()),
        namedtype.NamedType("operatorId", char.UTF8String()),
        namedtype.NamedType("sealedAttributes", SealedAttributes()),
    )


SEALED = {"name": bytes(range(60)), "birthday": bytes(60), "phone": b"\xff" * 60}


@pytest.mark.parametrize(
    ("length", "encoded"),
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x81\x80"), (255, b"\x81\xff"), (256, b"\x82\x01\x00")],
)
def test_encode_length(length: int, encoded: bytes) -> None:
    assert encode_length(length) == encoded


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "020100"),
        (1, "020101"),
        (127, "02017f"),
        (128, "02020080"),
        (256, "02020100"),
        (-1, "0201ff"),
        (-128, "020180"),
        (-129, "0202ff7f"),
    ],
)
def test_integer_encoding_is_minimal(value: int, encoded: str) -> None:
    assert der_integer(value).hex() == encoded
    assert decode_integer(decode_single(der_integer(value), 0x02)) == value


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",  # truncated header
        b"\x30\x80\x00\x00",  # indefinite length
        b"\x30\x81\x05\x00\x00\x00\x00\x00",  # long form for a short length
        b"\x30\x82\x00\x81" + bytes(0x81),  # leading zero length octet
        b"\x30\x85\x00\x00\x00\x00\x01\x00",  # more than 4 length octets
        b"\x30\x05\x00",  # content runs past the end
        b"\x1f\x01\x00",  # high tag number form
    ],
)
def test_reader_rejects_non_der(data: bytes) -> None:
    with pytest.raises(DerError):
        read_tlv(data)


def test_single_rejects_trailing_data_and_wrong_tag() -> None:
    with pytest.raises(DerError):
        decode_single(der_sequence() + b"\x00", TAG_SEQUENCE)
    with pytest.raises(DerError):
        decode_single(der_octet_string(b""), TAG_SEQUENCE)


@pytest.mark.parametrize("content", [b"", b"\x00\x01", b"\xff\x80"])
def test_non_minimal_or_empty_integer(content: bytes) -> None:
    with pytest.raises(DerError):
        decode_integer(decode_single(encode_tlv(0x02, content), 0x02))


def test_encoder_argument_checks() -> None:
    with pytest.raises(DerError):
        encode_tlv(0x1F, b"")
    with pytest.raises(DerError):
        encode_length(-1)
    with pytest.raises(DerError):
        der_ia5string("é")
    with pytest.raises(DerError):
        der_bit_string(b"", 3)
    assert der_bit_string(b"\xaa") == b"\x03\x02\x00\xaa"


def test_sealed_attributes_round_trip_and_pyasn1_agrees() -> None:
    encoded = encode_sealed_attributes(SEALED)
    assert decode_sealed_attributes(encoded) == SEALED
    decoded, rest = pyasn1_der.decode(encoded, asn1Spec=SealedAttributes())
    assert rest == b""
    ids = [str(e["attrId"]) for e in decoded]
    assert ids == sorted(SEALED)  # canonical order
    assert {str(e["attrId"]): bytes(e["sealedValue"]) for e in decoded} == SEALED


_FIELDS = (der_utf8string("a"), der_octet_string(bytes(60)))


def _entry(attr_id: str, value: bytes) -> bytes:
    return der_sequence(der_utf8string(attr_id), der_octet_string(value))


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (der_sequence(_entry("a", bytes(60)), _entry("a", bytes(60))), "duplicate"),
        (der_sequence(_entry("a", bytes(61))), "61 bytes"),
        (der_sequence(_entry("a", bytes(59))), "59 bytes"),
        (der_sequence(_entry("1a", bytes(60))), "identifier"),
        (der_sequence(), "empty"),
        (der_sequence(der_sequence(der_utf8string("a"))), "SEQUENCE {"),
        (der_sequence(der_sequence(der_ia5string("a"), der_octet_string(bytes(60)))), "UTF8"),
        (der_sequence(der_sequence(*_FIELDS, b"\x05\x00")), "SEQUENCE {"),
        (der_sequence(der_octet_string(bytes(60))), "SEQUENCE"),
        (der_sequence(der_sequence(encode_tlv(0x0C, b"\xff"), _FIELDS[1])), "UTF-8"),
        (
            der_sequence(*(_entry(f"a{i}", bytes(60)) for i in range(MAX_SEALED_ATTRIBUTES + 1))),
            "more than",
        ),
    ],
)
def test_sealed_attributes_rejects(encoded: bytes, message: str) -> None:
    with pytest.raises(DerError, match=message):
        decode_sealed_attributes(encoded)


def test_sealed_attributes_encoder_rejects() -> None:
    with pytest.raises(DerError):
        encode_sealed_attributes({})
    with pytest.raises(DerError):
        encode_sealed_attributes({"a": bytes(10)})
    with pytest.raises(DerError):
        encode_sealed_attributes({f"a{i}": bytes(60) for i in range(MAX_SEALED_ATTRIBUTES + 1)})


def test_ppcert_info_round_trip_and_pyasn1_agrees() -> None:
    info = PpCertInfo("mss:mpkix:authn:loa3:app", "310-260", SEALED)
    encoded = encode_ppcert_info(info)
    assert decode_ppcert_info(encoded) == info
    decoded, rest = pyasn1_der.decode(encoded, asn1Spec=PpCertInfoAsn1())
    assert rest == b""
    assert int(decoded["version"]) == 1
    assert str(decoded["signatureProfile"]) == "mss:mpkix:authn:loa3:app"
    assert str(decoded["operatorId"]) == "310-260"


def _info(*fields: bytes) -> bytes:
    return der_sequence(*fields)


_V1, _MSS, _OP = der_integer(1), der_ia5string("mss:mpkix:authn:loa3:app"), der_utf8string("op")


_GOOD_ATTRS = encode_sealed_attributes(SEALED)


@pytest.mark.parametrize(
    "encoded",
    [
        _info(der_integer(2), _MSS, _OP, _GOOD_ATTRS),  # version
        _info(_V1, der_utf8string("mss:mpkix:authn:loa3:app"), _OP, _GOOD_ATTRS),  # string type
        _info(_V1, der_ia5string("https://x"), _OP, _GOOD_ATTRS),  # not an mss: URI
        _info(_V1, _MSS, der_utf8string("op a"), _GOOD_ATTRS),  # operator id
        _info(_V1, _MSS, _OP),  # missing field
        _info(_V1, _MSS, _OP, _GOOD_ATTRS, der_integer(0)),  # extra field
        _info(_V1, encode_tlv(0x16, b"mss:\xff"), _OP, _GOOD_ATTRS),  # IA5 not ASCII
        _info(_V1, _MSS, _OP, der_sequence()),  # no attributes
        _info(_V1, _MSS, _OP, _GOOD_ATTRS) + b"\x00",  # trailing byte
    ],
)
def test_ppcert_info_rejects(encoded: bytes) -> None:
    with pytest.raises(DerError):
        decode_ppcert_info(encoded)


def test_ppcert_info_encoder_rejects_bad_fields() -> None:
    with pytest.raises(DerError):
        encode_ppcert_info(PpCertInfo("mss:bad", "op", SEALED))
    with pytest.raises(DerError):
        encode_ppcert_info(PpCertInfo("mss:mpkix:authn:loa3:app", "", SEALED))
    with pytest.raises(DerError):
        encode_ppcert_info(PpCertInfo("mss:mpkix:authn:loa3:app", "op", {}))
