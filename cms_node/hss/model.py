"""One HSS/AuC subscriber record (ARCHITECTURE §1 CMS node, §4 Data).

The record joins what a real operator keeps in two places: the AuC's authentication data (K, OPc,
SQN, AMF for Milenage, 3GPP TS 33.102 §6.3 and TS 35.206) and the verified subscriber profile the
CMS endorses (name, gender, birthday, phone number, postal address). Its fields match
``mpkix.attributes.PersonalRecord``, so ``canonical_values(subscriber)`` gives the text the phone
sealed in its ppCSR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Final

__all__ = [
    "AMF_DEFAULT",
    "SQN_LIMIT",
    "Subscriber",
    "SubscriberValidationError",
]

#: AMF with the "separation bit" (bit 0) set, which EAP-AKA' requires (RFC 5448 §3.4, TS 33.401
#: Annex H).
AMF_DEFAULT: Final = b"\x80\x00"
#: SQN is 48 bits (TS 33.102 §6.3.2).
SQN_LIMIT: Final = 1 << 48

_IMSI: Final = re.compile(r"31[0-6]\d{12}")
_MSISDN: Final = re.compile(r"\+1[2-9]\d{2}[2-9]\d{6}")
_STATE: Final = re.compile(r"[A-Z]{2}")
_ZIP: Final = re.compile(r"\d{5}")


class SubscriberValidationError(ValueError):
    """A subscriber record with a malformed field (the message names the field)."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A subscriber: identity, profile attributes and AKA credentials.

    ``imsi`` is 15 digits, MCC (310-316, United States) + MNC + MSIN (3GPP TS 23.003 §2.2);
    ``msisdn`` a NANP number in E.164 form ``+1NXXNXXXXXX``; ``gender`` ``"F"``, ``"M"`` or ``"X"``;
    ``state`` a 2-letter USPS code; ``zip`` 5 digits; ``k`` and ``opc`` 16 bytes (never shown by
    ``repr``); ``sqn`` the AuC's 48-bit sequence number; ``amf`` 2 bytes.
    """

    imsi: str
    msisdn: str
    given_name: str
    family_name: str
    gender: str
    birthday: date
    street_number: str
    street: str
    city: str
    state: str
    zip: str
    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    sqn: int = 0
    amf: bytes = AMF_DEFAULT

    def __post_init__(self) -> None:
        if not (isinstance(self.imsi, str) and _IMSI.fullmatch(self.imsi)):
            raise SubscriberValidationError(
                f"imsi: expected 15 digits with MCC 310-316: {self.imsi!r}"
            )
        if not (isinstance(self.msisdn, str) and _MSISDN.fullmatch(self.msisdn)):
            raise SubscriberValidationError(f"msisdn: expected +1NXXNXXXXXX: {self.msisdn!r}")
        if self.msisdn[3:5] == "11":
            raise SubscriberValidationError(f"msisdn: N11 is not an area code: {self.msisdn!r}")
        for name in ("given_name", "family_name", "street_number", "street", "city"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise SubscriberValidationError(f"{name}: expected non-empty text")
        if self.gender not in ("F", "M", "X"):
            raise SubscriberValidationError(f"gender: expected F, M or X: {self.gender!r}")
        if type(self.birthday) is not date:
            raise SubscriberValidationError("birthday: expected a datetime.date")
        if not (isinstance(self.state, str) and _STATE.fullmatch(self.state)):
            raise SubscriberValidationError(f"state: expected a 2-letter USPS code: {self.state!r}")
        if not (isinstance(self.zip, str) and _ZIP.fullmatch(self.zip)):
            raise SubscriberValidationError(f"zip: expected 5 digits: {self.zip!r}")
        for name, length in (("k", 16), ("opc", 16), ("amf", 2)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != length:
                raise SubscriberValidationError(f"{name}: expected {length} bytes")
        if isinstance(self.sqn, bool) or not isinstance(self.sqn, int):
            raise SubscriberValidationError("sqn: expected an int")
        if not 0 <= self.sqn < SQN_LIMIT:
            raise SubscriberValidationError(f"sqn: out of the 48-bit range: {self.sqn}")

    @property
    def msisdn_digits(self) -> str:
        """The MSISDN without ``+`` (the form some HSS interfaces use)."""
        return self.msisdn[1:]

    def with_sqn(self, sqn: int) -> Subscriber:
        """A copy with another SQN."""
        return replace(self, sqn=sqn)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready fields: ``birthday`` ISO, ``k``/``opc``/``amf`` lower-case hex."""
        return {
            "imsi": self.imsi,
            "msisdn": self.msisdn,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "gender": self.gender,
            "birthday": self.birthday.isoformat(),
            "street_number": self.street_number,
            "street": self.street,
            "city": self.city,
            "state": self.state,
            "zip": self.zip,
            "k": self.k.hex(),
            "opc": self.opc.hex(),
            "sqn": self.sqn,
            "amf": self.amf.hex(),
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Subscriber:
        """Inverse of :meth:`to_json_dict` (raises ``SubscriberValidationError`` on bad input)."""
        try:
            return cls(
                imsi=data["imsi"],
                msisdn=data["msisdn"],
                given_name=data["given_name"],
                family_name=data["family_name"],
                gender=data["gender"],
                birthday=date.fromisoformat(data["birthday"]),
                street_number=data["street_number"],
                street=data["street"],
                city=data["city"],
                state=data["state"],
                zip=data["zip"],
                k=bytes.fromhex(data["k"]),
                opc=bytes.fromhex(data["opc"]),
                sqn=data["sqn"],
                amf=bytes.fromhex(data.get("amf", AMF_DEFAULT.hex())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SubscriberValidationError):
                raise
            raise SubscriberValidationError(f"malformed subscriber record: {exc!r}") from None
