"""EAP and EAP-AKA' packets: strict encode/decode, AT_MAC, and the builders both peers use.

Formats: EAP header and Identity/Nak types (RFC 3748 §4, §5.1, §5.3.1); EAP-AKA' (Type 50,
RFC 5448 §3, RFC 9048) with the EAP-AKA message layout and attributes of RFC 4187 §8–§10 plus
AT_KDF_INPUT/AT_KDF (RFC 5448 §3.1–3.2) and AT_BIDDING (RFC 5448 §4).

``decode_packet`` accepts only well-formed input: the EAP Length must equal the bytes given, every
attribute length must be non-zero, fit, and match its attribute's layout, and an unknown
attribute is an error when non-skippable (type ≤ 127) and ignored when skippable (type ≥ 128),
RFC 4187 §8.1. Every problem raises ``EapFormatError``.

AT_MAC (RFC 4187 §10.15, RFC 5448 §3.3 / RFC 9048 §3.3) is HMAC-SHA-256-128 keyed with K_aut
over the whole EAP packet with the AT_MAC value zeroed. A peer verifies the MAC of a Challenge
request only after it has run AKA on AT_RAND/AT_AUTN and derived K_aut:
``parse_challenge_request`` reads the request without needing keys, ``verify_at_mac`` checks it
afterwards on the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final, Self, TypeVar

__all__ = [
    "KDF_AKA_PRIME",
    "AkaPrimeBody",
    "AkaSubtype",
    "AtAnyIdReq",
    "AtAutn",
    "AtAuts",
    "AtBidding",
    "AtCheckcode",
    "AtClientErrorCode",
    "AtFullauthIdReq",
    "AtIdentity",
    "AtKdf",
    "AtKdfInput",
    "AtMac",
    "AtNotification",
    "AtPermanentIdReq",
    "AtRand",
    "AtRes",
    "AtResultInd",
    "Attribute",
    "AttributeType",
    "ChallengeRequest",
    "ChallengeResponse",
    "ClientErrorCode",
    "EapCode",
    "EapFormatError",
    "EapPacket",
    "EapType",
    "IdentityBody",
    "NakBody",
    "authentication_reject",
    "challenge_request",
    "challenge_response",
    "client_error",
    "compute_at_mac",
    "decode_packet",
    "failure",
    "identity_request",
    "identity_response",
    "parse_challenge_request",
    "parse_challenge_response",
    "success",
    "sync_failure_response",
    "verify_at_mac",
]

#: AT_KDF value of the default key derivation function of RFC 5448 §3.3.
KDF_AKA_PRIME: Final = 1
MAC_LEN: Final = 16
K_AUT_LEN: Final = 32
_HEADER_LEN: Final = 4
_AKA_HEADER_LEN: Final = 8  # Code, Identifier, Length(2), Type, Subtype, Reserved(2)
_MAX_ATTR_LEN: Final = 255 * 4


class EapFormatError(ValueError):
    """A packet is malformed, truncated, over-long or not supported; the message says why."""


class EapCode(IntEnum):
    """EAP Code field (RFC 3748 §4)."""

    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class EapType(IntEnum):
    """EAP method types handled here (RFC 3748 §5, RFC 5448 §3)."""

    IDENTITY = 1
    NAK = 3
    AKA_PRIME = 50


class AkaSubtype(IntEnum):
    """EAP-AKA / EAP-AKA' message subtypes (RFC 4187 §11)."""

    CHALLENGE = 1
    AUTHENTICATION_REJECT = 2
    SYNCHRONIZATION_FAILURE = 4
    IDENTITY = 5
    NOTIFICATION = 12
    REAUTHENTICATION = 13
    CLIENT_ERROR = 14


class AttributeType(IntEnum):
    """Attribute types (RFC 4187 §11, RFC 5448 §3.1/§4, RFC 9048)."""

    AT_RAND = 1
    AT_AUTN = 2
    AT_RES = 3
    AT_AUTS = 4
    AT_PERMANENT_ID_REQ = 10
    AT_MAC = 11
    AT_NOTIFICATION = 12
    AT_ANY_ID_REQ = 13
    AT_IDENTITY = 14
    AT_FULLAUTH_ID_REQ = 17
    AT_CLIENT_ERROR_CODE = 22
    AT_KDF_INPUT = 23
    AT_KDF = 24
    AT_CHECKCODE = 134
    AT_RESULT_IND = 135
    AT_BIDDING = 136


class ClientErrorCode(IntEnum):
    """AT_CLIENT_ERROR_CODE values (RFC 4187 §10.20)."""

    UNABLE_TO_PROCESS = 0
    UNSUPPORTED_VERSION = 1
    INSUFFICIENT_CHALLENGES = 2
    RANDS_NOT_FRESH = 3


def _fail(message: str) -> EapFormatError:
    return EapFormatError(message)


def _need_len(what: str, value: bytes, length: int) -> None:
    if not isinstance(value, bytes | bytearray):
        raise _fail(f"{what} must be bytes, not {type(value).__name__}")
    if len(value) != length:
        raise _fail(f"{what} must be {length} bytes, got {len(value)}")


def _need_u16(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise _fail(f"{what} must be an integer in 0..65535, got {value!r}")


# --- attributes ---------------------------------------------------------------------------------


class _Attribute:
    """Base of all attribute classes: ``_value`` is what follows the Type and Length octets."""

    TYPE: ClassVar[AttributeType]
    __slots__ = ()

    def _value(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def _parse(cls, value: bytes) -> Self:
        raise NotImplementedError

    def encode(self) -> bytes:
        """Type ‖ Length (in 4-octet units) ‖ value."""
        value = self._value()
        total = 2 + len(value)
        if total % 4 or total > _MAX_ATTR_LEN:
            raise _fail(f"{self.TYPE.name} would be {total} bytes; must be a multiple of 4 ≤ 1020")
        return bytes([self.TYPE, total // 4]) + value

    @classmethod
    def _exact(cls, value: bytes, length: int) -> None:
        if len(value) != length:
            raise _fail(
                f"{cls.TYPE.name} has length {(len(value) + 2) // 4}, expected {(length + 2) // 4}"
            )


class _ReservedOnly(_Attribute):
    """Attributes whose value is just two reserved octets (Length = 1)."""

    __slots__ = ()

    def _value(self) -> bytes:
        return b"\x00\x00"

    @classmethod
    def _parse(cls, value: bytes) -> Self:
        cls._exact(value, 2)
        return cls()


class _Fixed(_Attribute):
    """Attributes of two reserved octets and a fixed-size field."""

    __slots__ = ()
    SIZE: ClassVar[int]

    def _field(self) -> bytes:
        raise NotImplementedError

    def _value(self) -> bytes:
        return b"\x00\x00" + self._field()

    @classmethod
    def _parse(cls, value: bytes) -> Self:
        cls._exact(value, 2 + cls.SIZE)
        return cls(value[2:])  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class AtRand(_Fixed):
    """AT_RAND with one 16-octet RAND (RFC 4187 §10.6)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_RAND
    SIZE: ClassVar[int] = 16
    rand: bytes

    def __post_init__(self) -> None:
        _need_len("AT_RAND RAND", self.rand, 16)

    def _field(self) -> bytes:
        return bytes(self.rand)


@dataclass(frozen=True, slots=True)
class AtAutn(_Fixed):
    """AT_AUTN (RFC 4187 §10.7)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_AUTN
    SIZE: ClassVar[int] = 16
    autn: bytes

    def __post_init__(self) -> None:
        _need_len("AT_AUTN AUTN", self.autn, 16)

    def _field(self) -> bytes:
        return bytes(self.autn)


@dataclass(frozen=True, slots=True)
class AtMac(_Fixed):
    """AT_MAC (RFC 4187 §10.15); 16 octets of HMAC-SHA-256-128 in EAP-AKA'."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_MAC
    SIZE: ClassVar[int] = MAC_LEN
    mac: bytes

    def __post_init__(self) -> None:
        _need_len("AT_MAC MAC", self.mac, MAC_LEN)

    def _field(self) -> bytes:
        return bytes(self.mac)


@dataclass(frozen=True, slots=True)
class AtRes(_Attribute):
    """AT_RES: RES Length in bits, RES, zero padding (RFC 4187 §10.8); 32..128 bits."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_RES
    res: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.res, bytes | bytearray) or not 4 <= len(self.res) <= 16:
            raise _fail("AT_RES RES must be 4..16 bytes")

    def _value(self) -> bytes:
        res = bytes(self.res)
        return (len(res) * 8).to_bytes(2, "big") + res + bytes(-(4 + len(res)) % 4)

    @classmethod
    def _parse(cls, value: bytes) -> Self:
        if len(value) < 2:
            raise _fail("AT_RES too short for its RES Length field")
        bits = int.from_bytes(value[:2], "big")
        if bits % 8 or not 32 <= bits <= 128:
            raise _fail(f"AT_RES RES Length {bits} bits is not a whole number of octets in 32..128")
        n = bits // 8
        cls._exact(value, 2 + n + (-(4 + n) % 4))
        return cls(value[2 : 2 + n])


@dataclass(frozen=True, slots=True)
class AtAuts(_Attribute):
    """AT_AUTS: 14 octets of AUTS, no reserved field (RFC 4187 §10.9)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_AUTS
    auts: bytes

    def __post_init__(self) -> None:
        _need_len("AT_AUTS AUTS", self.auts, 14)

    def _value(self) -> bytes:
        return bytes(self.auts)

    @classmethod
    def _parse(cls, value: bytes) -> Self:
        cls._exact(value, 14)
        return cls(value)


class _U16(_Attribute):
    """Attributes carrying one 16-bit number (Length = 1)."""

    __slots__ = ()

    def _number(self) -> int:
        raise NotImplementedError

    def _value(self) -> bytes:
        return self._number().to_bytes(2, "big")

    @classmethod
    def _parse(cls, value: bytes) -> Self:
        cls._exact(value, 2)
        return cls(int.from_bytes(value, "big"))  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class AtNotification(_U16):
    """AT_NOTIFICATION (RFC 4187 §10.19): S bit = success, P bit = before the challenge."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_NOTIFICATION
    code: int

    def __post_init__(self) -> None:
        _need_u16("AT_NOTIFICATION code", self.code)

    def _number(self) -> int:
        return self.code

    @property
    def success(self) -> bool:
        return bool(self.code & 0x8000)

    @property
    def pre_challenge(self) -> bool:
        return bool(self.code & 0x4000)


@dataclass(frozen=True, slots=True)
class AtClientErrorCode(_U16):
    """AT_CLIENT_ERROR_CODE (RFC 4187 §10.20)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_CLIENT_ERROR_CODE
    code: int

    def __post_init__(self) -> None:
        _need_u16("AT_CLIENT_ERROR_CODE", self.code)

    def _number(self) -> int:
        return self.code


@dataclass(frozen=True, slots=True)
class AtKdf(_U16):
    """AT_KDF: one key derivation function identifier (RFC 5448 §3.2); may repeat."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_KDF
    kdf: int

    def __post_init__(self) -> None:
        _need_u16("AT_KDF", self.kdf)

    def _number(self) -> int:
        return self.kdf


class _Counted(_Attribute):
    """Attributes of an Actual Length field, the data, and zero padding to a 4-octet boundary."""

    __slots__ = ()

    def _data(self) -> bytes:
        raise NotImplementedError

    def _value(self) -> bytes:
        data = self._data()
        return len(data).to_bytes(2, "big") + data + bytes(-(4 + len(data)) % 4)

    @classmethod
    def _parse(cls, value: bytes) -> Self:
        if len(value) < 2:
            raise _fail(f"{cls.TYPE.name} too short for its actual length field")
        n = int.from_bytes(value[:2], "big")
        if 2 + n > len(value):
            raise _fail(f"{cls.TYPE.name} actual length {n} exceeds the attribute")
        cls._exact(value, 2 + n + (-(4 + n) % 4))
        return cls(value[2 : 2 + n])  # type: ignore[call-arg]


def _check_counted(what: str, data: bytes, *, allow_empty: bool) -> None:
    if not isinstance(data, bytes | bytearray):
        raise _fail(f"{what} must be bytes")
    if not allow_empty and not data:
        raise _fail(f"{what} must not be empty")
    if 4 + len(data) > _MAX_ATTR_LEN:
        raise _fail(f"{what} is {len(data)} bytes; at most {_MAX_ATTR_LEN - 4} fit an attribute")


@dataclass(frozen=True, slots=True)
class AtIdentity(_Counted):
    """AT_IDENTITY (RFC 4187 §10.5)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_IDENTITY
    identity: bytes

    def __post_init__(self) -> None:
        _check_counted("AT_IDENTITY identity", self.identity, allow_empty=False)

    def _data(self) -> bytes:
        return bytes(self.identity)


@dataclass(frozen=True, slots=True)
class AtKdfInput(_Counted):
    """AT_KDF_INPUT: the access network name (RFC 5448 §3.1); never empty."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_KDF_INPUT
    network_name: bytes

    def __post_init__(self) -> None:
        _check_counted("AT_KDF_INPUT network name", self.network_name, allow_empty=False)

    def _data(self) -> bytes:
        return bytes(self.network_name)


@dataclass(frozen=True, slots=True)
class AtCheckcode(_Attribute):
    """AT_CHECKCODE (RFC 4187 §10.13; SHA-256, so 0 or 32 octets, in EAP-AKA' RFC 5448 §3.3)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_CHECKCODE
    checkcode: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.checkcode, bytes | bytearray) or len(self.checkcode) not in (0, 32):
            raise _fail("AT_CHECKCODE must be empty or 32 bytes")

    def _value(self) -> bytes:
        return b"\x00\x00" + bytes(self.checkcode)

    @classmethod
    def _parse(cls, value: bytes) -> Self:
        if len(value) not in (2, 34):
            raise _fail(f"AT_CHECKCODE has length {(len(value) + 2) // 4}, expected 1 or 9")
        return cls(value[2:])


@dataclass(frozen=True, slots=True)
class AtResultInd(_ReservedOnly):
    """AT_RESULT_IND: protected result indications wanted (RFC 4187 §10.17)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_RESULT_IND


@dataclass(frozen=True, slots=True)
class AtPermanentIdReq(_ReservedOnly):
    """AT_PERMANENT_ID_REQ (RFC 4187 §10.2)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_PERMANENT_ID_REQ


@dataclass(frozen=True, slots=True)
class AtAnyIdReq(_ReservedOnly):
    """AT_ANY_ID_REQ (RFC 4187 §10.3)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_ANY_ID_REQ


@dataclass(frozen=True, slots=True)
class AtFullauthIdReq(_ReservedOnly):
    """AT_FULLAUTH_ID_REQ (RFC 4187 §10.4)."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_FULLAUTH_ID_REQ


@dataclass(frozen=True, slots=True)
class AtBidding(_Attribute):
    """AT_BIDDING (RFC 5448 §4): D bit set when the server supports EAP-AKA'."""

    TYPE: ClassVar[AttributeType] = AttributeType.AT_BIDDING
    supports_aka_prime: bool = True

    def _value(self) -> bytes:
        return b"\x80\x00" if self.supports_aka_prime else b"\x00\x00"

    @classmethod
    def _parse(cls, value: bytes) -> Self:
        cls._exact(value, 2)
        return cls(bool(value[0] & 0x80))


Attribute = (
    AtRand
    | AtAutn
    | AtRes
    | AtAuts
    | AtMac
    | AtNotification
    | AtClientErrorCode
    | AtKdf
    | AtIdentity
    | AtKdfInput
    | AtCheckcode
    | AtResultInd
    | AtPermanentIdReq
    | AtAnyIdReq
    | AtFullauthIdReq
    | AtBidding
)

_ATTRIBUTE_CLASSES: Final[dict[int, type[_Attribute]]] = {
    cls.TYPE: cls
    for cls in (
        AtRand,
        AtAutn,
        AtRes,
        AtAuts,
        AtMac,
        AtNotification,
        AtClientErrorCode,
        AtKdf,
        AtIdentity,
        AtKdfInput,
        AtCheckcode,
        AtResultInd,
        AtPermanentIdReq,
        AtAnyIdReq,
        AtFullauthIdReq,
        AtBidding,
    )
}
_REPEATABLE: Final = frozenset({AttributeType.AT_KDF})

A = TypeVar("A", bound=_Attribute)


# --- packets ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentityBody:
    """EAP Type 1 data: the identity (Response) or an optional displayable message (Request)."""

    identity: bytes = b""


@dataclass(frozen=True, slots=True)
class NakBody:
    """Legacy Nak (Type 3, Responses only): the method types the peer would accept."""

    desired_types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AkaPrimeBody:
    """EAP-AKA' Type-Data: Subtype, two reserved octets, attributes."""

    subtype: AkaSubtype
    attributes: tuple[Attribute, ...] = ()

    def find(self, kind: type[A]) -> A | None:
        """The attribute of class ``kind`` (the first, for AT_KDF), or None."""
        for attr in self.attributes:
            if isinstance(attr, kind):
                return attr
        return None

    def require(self, kind: type[A]) -> A:
        """Like ``find`` but raises ``EapFormatError`` when the attribute is missing."""
        attr = self.find(kind)
        if attr is None:
            raise _fail(f"EAP-AKA' {self.subtype.name} lacks {kind.TYPE.name}")
        return attr

    def find_all(self, kind: type[A]) -> tuple[A, ...]:
        """Every attribute of class ``kind`` in order (AT_KDF may repeat)."""
        return tuple(a for a in self.attributes if isinstance(a, kind))


EapBody = IdentityBody | NakBody | AkaPrimeBody


@dataclass(frozen=True, slots=True)
class EapPacket:
    """One EAP packet (RFC 3748 §4). Success/Failure have no body; Request/Response have one."""

    code: EapCode
    identifier: int
    body: EapBody | None = None

    def __post_init__(self) -> None:
        if isinstance(self.identifier, bool) or not isinstance(self.identifier, int):
            raise _fail("EAP Identifier must be an int")
        if not 0 <= self.identifier <= 255:
            raise _fail(f"EAP Identifier must be 0..255, got {self.identifier}")
        if self.body is not None and not isinstance(
            self.body, IdentityBody | NakBody | AkaPrimeBody
        ):
            raise _fail(f"unsupported EAP body {type(self.body).__name__}")
        if self.code in (EapCode.SUCCESS, EapCode.FAILURE):
            if self.body is not None:
                raise _fail(f"EAP {self.code.name} carries no data")
        elif self.body is None:
            raise _fail(f"EAP {self.code.name} needs a Type")
        elif isinstance(self.body, NakBody) and self.code != EapCode.RESPONSE:
            raise _fail("Nak is only valid in a Response")

    @property
    def aka(self) -> AkaPrimeBody:
        """The EAP-AKA' body; ``EapFormatError`` if this is not an EAP-AKA' packet."""
        if not isinstance(self.body, AkaPrimeBody):
            raise _fail("not an EAP-AKA' packet")
        return self.body

    def encode(self) -> bytes:
        """Wire form, with the Length field filled in."""
        body = self.body
        if body is None:
            payload = b""
        elif isinstance(body, IdentityBody):
            payload = bytes([EapType.IDENTITY]) + bytes(body.identity)
        elif isinstance(body, NakBody):
            if not body.desired_types or any(not 0 <= t <= 255 for t in body.desired_types):
                raise _fail("Nak needs at least one type in 0..255")
            payload = bytes([EapType.NAK, *body.desired_types])
        else:
            payload = bytes([EapType.AKA_PRIME, body.subtype, 0, 0]) + b"".join(
                a.encode() for a in body.attributes
            )
        length = _HEADER_LEN + len(payload)
        if length > 0xFFFF:
            raise _fail(f"EAP packet of {length} bytes exceeds the 16-bit Length field")
        return bytes([self.code, self.identifier]) + length.to_bytes(2, "big") + payload

    @classmethod
    def decode(cls, data: bytes) -> EapPacket:
        """Strict parse; see ``decode_packet``."""
        return decode_packet(data)


def _iter_attributes(data: bytes, start: int) -> Iterator[tuple[int, int, int]]:
    """Walk raw attributes from ``start``: yields (type, offset, end) or raises on bad framing."""
    offset = start
    while offset < len(data):
        if len(data) - offset < 4:
            raise _fail(f"truncated attribute at offset {offset}: {len(data) - offset} bytes left")
        attr_type, units = data[offset], data[offset + 1]
        if units == 0:
            raise _fail(f"attribute type {attr_type} at offset {offset} has length 0")
        end = offset + 4 * units
        if end > len(data):
            raise _fail(
                f"attribute type {attr_type} at offset {offset} claims {4 * units} bytes, "
                f"only {len(data) - offset} remain"
            )
        yield attr_type, offset, end
        offset = end


def _decode_aka(data: bytes) -> AkaPrimeBody:
    if len(data) < _AKA_HEADER_LEN:
        raise _fail("EAP-AKA' packet shorter than its 8-byte header")
    try:
        subtype = AkaSubtype(data[5])
    except ValueError:
        raise _fail(f"unknown EAP-AKA' subtype {data[5]}") from None
    attributes: list[Attribute] = []
    seen: set[int] = set()
    for attr_type, offset, end in _iter_attributes(data, _AKA_HEADER_LEN):
        cls = _ATTRIBUTE_CLASSES.get(attr_type)
        if cls is None:
            if attr_type <= 127:
                raise _fail(f"unknown non-skippable attribute type {attr_type} at offset {offset}")
            continue  # skippable attribute we do not implement: ignored (RFC 4187 §8.1)
        if attr_type in seen and attr_type not in _REPEATABLE:
            raise _fail(f"duplicate {AttributeType(attr_type).name} at offset {offset}")
        seen.add(attr_type)
        attributes.append(cls._parse(data[offset + 2 : end]))  # type: ignore[arg-type]
    return AkaPrimeBody(subtype, tuple(attributes))


def decode_packet(data: bytes) -> EapPacket:
    """Parse one EAP packet; raises ``EapFormatError`` on anything malformed or unsupported.

    Bytes beyond the Length field are refused (the packets travel as whole gRPC byte strings, so
    there is no link-layer padding to tolerate).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _fail(f"EAP packet must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) < _HEADER_LEN:
        raise _fail(f"truncated EAP header: {len(data)} bytes")
    length = int.from_bytes(data[2:4], "big")
    if length < _HEADER_LEN:
        raise _fail(f"EAP Length field {length} is below the 4-byte header")
    if length > len(data):
        raise _fail(f"truncated EAP packet: Length field says {length}, got {len(data)} bytes")
    if length < len(data):
        raise _fail(f"over-long EAP packet: Length field says {length}, got {len(data)} bytes")
    try:
        code = EapCode(data[0])
    except ValueError:
        raise _fail(f"unknown EAP Code {data[0]}") from None
    identifier = data[1]
    if code in (EapCode.SUCCESS, EapCode.FAILURE):
        if length != _HEADER_LEN:
            raise _fail(f"EAP {code.name} must be 4 bytes, got {length}")
        return EapPacket(code, identifier)
    if length == _HEADER_LEN:
        raise _fail(f"EAP {code.name} without a Type")
    eap_type = data[4]
    body: EapBody
    if eap_type == EapType.IDENTITY:
        body = IdentityBody(data[5:])
    elif eap_type == EapType.NAK:
        if code != EapCode.RESPONSE:
            raise _fail("Nak is only valid in a Response")
        if length == 5:
            raise _fail("Nak without any desired type")
        body = NakBody(tuple(data[5:]))
    elif eap_type == EapType.AKA_PRIME:
        body = _decode_aka(data)
    else:
        raise _fail(f"unsupported EAP Type {eap_type}")
    return EapPacket(code, identifier, body)


# --- AT_MAC -------------------------------------------------------------------------------------


def _mac_value_offset(packet: bytes) -> int:
    pkt = decode_packet(packet)
    if not isinstance(pkt.body, AkaPrimeBody):
        raise _fail("AT_MAC only exists in EAP-AKA' packets")
    for attr_type, offset, _end in _iter_attributes(packet, _AKA_HEADER_LEN):
        if attr_type == AttributeType.AT_MAC:
            return offset + 4
    raise _fail("packet has no AT_MAC")


def _hmac_128(k_aut: bytes, packet: bytes, mac_offset: int) -> bytes:
    if not isinstance(k_aut, bytes | bytearray) or len(k_aut) != K_AUT_LEN:
        raise ValueError(f"K_aut must be {K_AUT_LEN} bytes")
    zeroed = packet[:mac_offset] + bytes(MAC_LEN) + packet[mac_offset + MAC_LEN :]
    return hmac.digest(bytes(k_aut), zeroed, hashlib.sha256)[:MAC_LEN]


def compute_at_mac(k_aut: bytes, packet_bytes: bytes) -> bytes:
    """HMAC-SHA-256-128(K_aut, packet with the AT_MAC value zeroed) (RFC 5448 §3.3).

    Raises ``EapFormatError`` if the packet is malformed or has no AT_MAC.
    """
    data = bytes(packet_bytes)
    return _hmac_128(k_aut, data, _mac_value_offset(data))


def verify_at_mac(k_aut: bytes, packet: bytes | EapPacket) -> bool:
    """True only if ``packet`` is well formed, has AT_MAC, and the MAC matches (constant time)."""
    data = packet.encode() if isinstance(packet, EapPacket) else bytes(packet)
    try:
        offset = _mac_value_offset(data)
    except EapFormatError:
        return False
    expected = _hmac_128(k_aut, data, offset)
    return hmac.compare_digest(expected, data[offset : offset + MAC_LEN])


def _sealed(code: EapCode, identifier: int, body: AkaPrimeBody, k_aut: bytes) -> bytes:
    """Encode with a zero AT_MAC (placed last) and fill in the real MAC."""
    sealed = AkaPrimeBody(body.subtype, (*body.attributes, AtMac(bytes(MAC_LEN))))
    data = EapPacket(code, identifier, sealed).encode()
    offset = len(data) - MAC_LEN
    return data[:offset] + _hmac_128(k_aut, data, offset)


# --- builders -----------------------------------------------------------------------------------


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def challenge_request(
    identifier: int,
    rand: bytes,
    autn: bytes,
    network_name: bytes | str,
    k_aut: bytes,
    *,
    kdfs: tuple[int, ...] = (KDF_AKA_PRIME,),
    result_ind: bool = False,
    checkcode: bytes | None = None,
) -> bytes:
    """EAP-Request/AKA'-Challenge: AT_RAND, AT_AUTN, AT_KDF_INPUT, AT_KDF…, AT_MAC (RFC 5448 §3)."""
    if not kdfs:
        raise _fail("a Challenge needs at least one AT_KDF")
    attrs: list[Attribute] = [AtRand(rand), AtAutn(autn), AtKdfInput(_as_bytes(network_name))]
    attrs += [AtKdf(k) for k in kdfs]
    if result_ind:
        attrs.append(AtResultInd())
    if checkcode is not None:
        attrs.append(AtCheckcode(checkcode))
    body = AkaPrimeBody(AkaSubtype.CHALLENGE, tuple(attrs))
    return _sealed(EapCode.REQUEST, identifier, body, k_aut)


def challenge_response(
    identifier: int,
    res: bytes,
    k_aut: bytes,
    *,
    result_ind: bool = False,
    checkcode: bytes | None = None,
) -> bytes:
    """EAP-Response/AKA'-Challenge: AT_RES, optional AT_CHECKCODE/AT_RESULT_IND, AT_MAC."""
    attrs: list[Attribute] = [AtRes(res)]
    if checkcode is not None:
        attrs.append(AtCheckcode(checkcode))
    if result_ind:
        attrs.append(AtResultInd())
    body = AkaPrimeBody(AkaSubtype.CHALLENGE, tuple(attrs))
    return _sealed(EapCode.RESPONSE, identifier, body, k_aut)


def sync_failure_response(
    identifier: int, auts: bytes, kdfs: tuple[int, ...] = (KDF_AKA_PRIME,)
) -> bytes:
    """EAP-Response/AKA'-Synchronization-Failure with AT_AUTS and the KDF in use (RFC 5448 §3.2)."""
    attrs: tuple[Attribute, ...] = (AtAuts(auts), *(AtKdf(k) for k in kdfs))
    body = AkaPrimeBody(AkaSubtype.SYNCHRONIZATION_FAILURE, attrs)
    return EapPacket(EapCode.RESPONSE, identifier, body).encode()


def authentication_reject(identifier: int) -> bytes:
    """EAP-Response/AKA'-Authentication-Reject: the peer found AUTN invalid (RFC 4187 §9.5)."""
    body = AkaPrimeBody(AkaSubtype.AUTHENTICATION_REJECT)
    return EapPacket(EapCode.RESPONSE, identifier, body).encode()


def client_error(identifier: int, code: int) -> bytes:
    """EAP-Response/AKA'-Client-Error with AT_CLIENT_ERROR_CODE (RFC 4187 §9.9)."""
    body = AkaPrimeBody(AkaSubtype.CLIENT_ERROR, (AtClientErrorCode(int(code)),))
    return EapPacket(EapCode.RESPONSE, identifier, body).encode()


def identity_request(identifier: int, message: bytes | str = b"") -> bytes:
    """EAP-Request/Identity (RFC 3748 §5.1)."""
    return EapPacket(EapCode.REQUEST, identifier, IdentityBody(_as_bytes(message))).encode()


def identity_response(identifier: int, identity: bytes | str) -> bytes:
    """EAP-Response/Identity carrying the peer identity (RFC 3748 §5.1)."""
    return EapPacket(EapCode.RESPONSE, identifier, IdentityBody(_as_bytes(identity))).encode()


def success(identifier: int) -> bytes:
    """EAP-Success (RFC 3748 §4.2)."""
    return EapPacket(EapCode.SUCCESS, identifier).encode()


def failure(identifier: int) -> bytes:
    """EAP-Failure (RFC 3748 §4.2)."""
    return EapPacket(EapCode.FAILURE, identifier).encode()


# --- readers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChallengeRequest:
    """What a peer needs from an EAP-Request/AKA'-Challenge before it has any key."""

    identifier: int
    rand: bytes
    autn: bytes
    network_name: bytes
    kdfs: tuple[int, ...]
    result_ind: bool
    mac: bytes


@dataclass(frozen=True, slots=True)
class ChallengeResponse:
    """The fields of an EAP-Response/AKA'-Challenge."""

    identifier: int
    res: bytes
    mac: bytes
    checkcode: bytes | None
    result_ind: bool


def _challenge(data: bytes, code: EapCode) -> tuple[EapPacket, AkaPrimeBody]:
    pkt = decode_packet(data)
    if pkt.code != code:
        raise _fail(f"expected an EAP {code.name}, got {pkt.code.name}")
    body = pkt.aka
    if body.subtype != AkaSubtype.CHALLENGE:
        raise _fail(f"expected an AKA'-Challenge, got {body.subtype.name}")
    return pkt, body


def parse_challenge_request(data: bytes) -> ChallengeRequest:
    """Read a Challenge request; requires AT_RAND, AT_AUTN, AT_KDF_INPUT, AT_KDF and AT_MAC.

    The MAC is *not* checked here: run AKA, derive K_aut, then call ``verify_at_mac(k_aut, data)``.
    """
    pkt, body = _challenge(data, EapCode.REQUEST)
    kdfs = tuple(a.kdf for a in body.find_all(AtKdf))
    if not kdfs:
        raise _fail("EAP-AKA' CHALLENGE lacks AT_KDF")
    return ChallengeRequest(
        identifier=pkt.identifier,
        rand=body.require(AtRand).rand,
        autn=body.require(AtAutn).autn,
        network_name=body.require(AtKdfInput).network_name,
        kdfs=kdfs,
        result_ind=body.find(AtResultInd) is not None,
        mac=body.require(AtMac).mac,
    )


def parse_challenge_response(data: bytes) -> ChallengeResponse:
    """Read a Challenge response; requires AT_RES and AT_MAC (check it with ``verify_at_mac``)."""
    pkt, body = _challenge(data, EapCode.RESPONSE)
    checkcode = body.find(AtCheckcode)
    return ChallengeResponse(
        identifier=pkt.identifier,
        res=body.require(AtRes).res,
        mac=body.require(AtMac).mac,
        checkcode=None if checkcode is None else checkcode.checkcode,
        result_ind=body.find(AtResultInd) is not None,
    )
