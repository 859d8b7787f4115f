"""Subject attributes and their canonical text (ARCHITECTURE §2.1 points 2-3, paper §4.1 and §6).

The phone (CMA) seals ``HMAC(K_aut, attribute ‖ value)`` over the *canonical* text of each of the
user's attributes and the operator's CMS recomputes the same HMAC from its HSS record; any
difference in spelling makes the ppCSR fail. Both sides therefore build the text with the
functions here, from either a subscriber record (any object with the fields of
:class:`PersonalRecord`, e.g. ``cms_node.hss.model.Subscriber``) or a plain mapping typed in on the
phone (:func:`canonical_values_from_mapping`).

Normalization (decision record 0202):

* every text field: Unicode NFKC, case folding, NFKC again, whitespace runs collapsed to one space,
  trimmed (:func:`normalize_text`);
* ``name``: ``"<given> <family>"`` normalized;
* ``gender``: ``f``, ``m`` or ``x``;
* ``birthday``: ISO 8601 ``YYYY-MM-DD``;
* ``phone``: E.164 (``+13235551234``); NANP numbers may be typed without ``+1`` and with the usual
  punctuation;
* ``address``: ``"<number> <street>, <city>, <state> <zip5>"``: periods deleted and commas turned
  into spaces in the components, USPS suffix and directional abbreviations applied to the street
  (``Street`` -> ``st``, ``North`` -> ``n``), full state names mapped to their USPS code, ZIP+4 cut
  to the 5-digit ZIP.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal, Protocol

__all__ = [
    "ATTRIBUTE_IDS",
    "AttributeId",
    "AttributeValueError",
    "PersonalData",
    "PersonalRecord",
    "canonical_address",
    "canonical_birthday",
    "canonical_gender",
    "canonical_name",
    "canonical_phone",
    "canonical_values",
    "canonical_values_from_mapping",
    "normalize_text",
]

AttributeId = Literal["name", "gender", "birthday", "phone", "address"]

#: The attribute identifiers, in the order the paper lists them (§6).
ATTRIBUTE_IDS: Final[tuple[AttributeId, ...]] = ("name", "gender", "birthday", "phone", "address")


class AttributeValueError(ValueError):
    """An attribute value that cannot be put in canonical form (the message names the field)."""


class PersonalRecord(Protocol):
    """The fields an attribute source must have (an HSS ``Subscriber`` or :class:`PersonalData`)."""

    @property
    def given_name(self) -> str: ...
    @property
    def family_name(self) -> str: ...
    @property
    def gender(self) -> str: ...
    @property
    def birthday(self) -> date: ...
    @property
    def msisdn(self) -> str: ...
    @property
    def street_number(self) -> str: ...
    @property
    def street(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def zip(self) -> str: ...


# --- text -------------------------------------------------------------------------------------


def normalize_text(value: str) -> str:
    """NFKC, casefold, NFKC, collapse whitespace (Unicode caseless matching, UAX #15/§3.13)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    return " ".join(folded.split())


def _require_text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise AttributeValueError(f"{field}: expected text, got {type(value).__name__}")
    text = normalize_text(value)
    if not text:
        raise AttributeValueError(f"{field}: empty")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text):
        raise AttributeValueError(f"{field}: control or unassigned character")
    return text


# --- name and gender --------------------------------------------------------------------------


def canonical_name(given_name: str, family_name: str) -> str:
    """``"<given> <family>"`` normalized, e.g. ``"Mary Ann  O'Brien"`` -> ``"mary ann o'brien"``."""
    return f"{_require_text('given_name', given_name)} {_require_text('family_name', family_name)}"


_GENDERS: Final[Mapping[str, str]] = {
    "f": "f",
    "female": "f",
    "m": "m",
    "male": "m",
    "x": "x",
    "nonbinary": "x",
    "non-binary": "x",
}


def canonical_gender(gender: str) -> str:
    """``f``, ``m`` or ``x`` (accepts ``F``/``female``, ``M``/``male``, ``X``/``non-binary``)."""
    text = _require_text("gender", gender)
    try:
        return _GENDERS[text]
    except KeyError:
        raise AttributeValueError(f"gender: unknown value {gender!r}") from None


# --- birthday ---------------------------------------------------------------------------------

_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


def canonical_birthday(birthday: date | str) -> str:
    """ISO 8601 calendar date ``YYYY-MM-DD`` (a ``datetime`` is refused: it is not a date)."""
    if isinstance(birthday, str):
        text = birthday.strip()
        if not _ISO_DATE.fullmatch(text):
            raise AttributeValueError(f"birthday: expected YYYY-MM-DD, got {birthday!r}")
        try:
            birthday = date.fromisoformat(text)
        except ValueError as exc:
            raise AttributeValueError(f"birthday: {exc}") from None
    elif type(birthday) is not date:
        raise AttributeValueError(f"birthday: expected a date, got {type(birthday).__name__}")
    if birthday.year < 1000:
        raise AttributeValueError(f"birthday: implausible year {birthday.year}")
    return birthday.isoformat()


# --- phone ------------------------------------------------------------------------------------

_PHONE_PUNCTUATION: Final = str.maketrans("", "", " -.()/")
_NANP: Final = re.compile(r"\+1([2-9]\d{2})([2-9]\d{2})(\d{4})")


def canonical_phone(phone: str) -> str:
    """E.164 ``+<country><number>`` (ITU-T E.164 §6: at most 15 digits, no leading zero).

    A number without ``+`` is read as a NANP number (10 digits, or 11 starting with ``1``). NANP
    numbers (``+1``) must have a valid area code and exchange (first digit 2-9, area code not N11).
    """
    if not isinstance(phone, str):
        raise AttributeValueError(f"phone: expected text, got {type(phone).__name__}")
    text = unicodedata.normalize("NFKC", phone).translate(_PHONE_PUNCTUATION)
    if text.startswith("+"):
        digits = text[1:]
    elif len(text) == 10:
        digits = "1" + text
    elif len(text) == 11 and text.startswith("1"):
        digits = text
    else:
        raise AttributeValueError(f"phone: not an E.164 or NANP number: {phone!r}")
    if not (digits.isascii() and digits.isdigit()) or not 8 <= len(digits) <= 15:
        raise AttributeValueError(f"phone: not an E.164 number: {phone!r}")
    if digits[0] == "0":
        raise AttributeValueError(f"phone: country code cannot start with 0: {phone!r}")
    e164 = "+" + digits
    if digits[0] == "1":
        m = _NANP.fullmatch(e164)
        if m is None or m.group(1)[1:] == "11":
            raise AttributeValueError(f"phone: not a valid NANP number: {phone!r}")
    return e164


# --- address ----------------------------------------------------------------------------------

# USPS Publication 28, Appendix C1 (street suffixes, the common ones) and directionals.
_STREET_SUFFIXES: Final[Mapping[str, str]] = {
    "street": "st",
    "avenue": "ave",
    "road": "rd",
    "drive": "dr",
    "lane": "ln",
    "court": "ct",
    "boulevard": "blvd",
    "place": "pl",
    "circle": "cir",
    "terrace": "ter",
    "parkway": "pkwy",
    "highway": "hwy",
    "square": "sq",
    "trail": "trl",
}
_DIRECTIONALS: Final[Mapping[str, str]] = {
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
}
_STATE_NAMES: Final[Mapping[str, str]] = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "district of columbia": "dc",
    "florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id", "illinois": "il",
    "indiana": "in", "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la",
    "maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi", "minnesota": "mn",
    "mississippi": "ms", "missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv",
    "new hampshire": "nh", "new jersey": "nj", "new mexico": "nm", "new york": "ny",
    "north carolina": "nc", "north dakota": "nd", "ohio": "oh", "oklahoma": "ok", "oregon": "or",
    "pennsylvania": "pa", "rhode island": "ri", "south carolina": "sc", "south dakota": "sd",
    "tennessee": "tn", "texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va",
    "washington": "wa", "west virginia": "wv", "wisconsin": "wi", "wyoming": "wy",
    "puerto rico": "pr", "guam": "gu", "virgin islands": "vi", "american samoa": "as",
    "northern mariana islands": "mp",
}  # fmt: skip
_STATE_CODES: Final = frozenset(_STATE_NAMES.values())
_ADDRESS_PUNCTUATION: Final = str.maketrans({",": " ", ".": None})
_STREET_NUMBER: Final = re.compile(r"[0-9a-z][0-9a-z/-]*")
_ZIP: Final = re.compile(r"(\d{5})(?:-?\d{4})?")


def _address_part(field: str, value: object) -> str:
    text = _require_text(field, value)
    return " ".join(text.translate(_ADDRESS_PUNCTUATION).split())


def _canonical_street(street: str) -> str:
    words = _address_part("street", street).split(" ")
    if not words or words == [""]:
        raise AttributeValueError("street: empty")
    if len(words) > 1:
        words[0] = _DIRECTIONALS.get(words[0], words[0])
        words[-1] = _STREET_SUFFIXES.get(words[-1], words[-1])
    return " ".join(words)


def canonical_address(street_number: str, street: str, city: str, state: str, zip: str) -> str:
    """``"<number> <street>, <city>, <state> <zip5>"`` (see the module docstring for the rules).

    ``street_number`` is one token (spaces inside become ``-``: ``"12 1/2"`` -> ``"12-1/2"``); the
    street, city and state cannot contain commas after normalization, so the text parses back
    unambiguously (``mpkix.anonymize`` relies on that).
    """
    number = "-".join(_address_part("street_number", street_number).split(" "))
    if not _STREET_NUMBER.fullmatch(number):
        raise AttributeValueError(f"street_number: not a house number: {street_number!r}")
    street_text = _canonical_street(street)
    city_text = _address_part("city", city)
    if not city_text:
        raise AttributeValueError("city: empty")
    state_text = _address_part("state", state)
    state_code = _STATE_NAMES.get(state_text, state_text)
    if state_code not in _STATE_CODES:
        raise AttributeValueError(f"state: not a US state or USPS code: {state!r}")
    if not isinstance(zip, str):
        raise AttributeValueError(f"zip: expected text, got {type(zip).__name__}")
    zip_match = _ZIP.fullmatch(unicodedata.normalize("NFKC", zip).strip())
    if zip_match is None:
        raise AttributeValueError(f"zip: expected 5 digits or ZIP+4, got {zip!r}")
    return f"{number} {street_text}, {city_text}, {state_code} {zip_match.group(1)}"


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonalData:
    """A user's own attribute data as the phone holds it (typed in or from the SIM profile)."""

    given_name: str
    family_name: str
    gender: str
    birthday: date
    msisdn: str
    street_number: str
    street: str
    city: str
    state: str
    zip: str

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> PersonalData:
        """Build from a plain dict; ``phone`` may stand for ``msisdn`` and ``birthdate`` for
        ``birthday`` (an ISO string or a ``date``). Values are kept as given (not normalized)."""
        fields = _lookup_fields(data, _ALL_FIELDS)
        birthday = fields["birthday"]
        if isinstance(birthday, str):
            birthday = date.fromisoformat(canonical_birthday(birthday))
        if type(birthday) is not date:
            raise AttributeValueError("birthday: expected a date or YYYY-MM-DD")
        texts: dict[str, str] = {}
        for key in _ALL_FIELDS:
            if key == "birthday":
                continue
            value = fields[key]
            if not isinstance(value, str):
                raise AttributeValueError(f"{key}: expected text, got {type(value).__name__}")
            texts[key] = value
        return cls(birthday=birthday, **texts)


_FIELDS_BY_ATTRIBUTE: Final[Mapping[str, tuple[str, ...]]] = {
    "name": ("given_name", "family_name"),
    "gender": ("gender",),
    "birthday": ("birthday",),
    "phone": ("msisdn",),
    "address": ("street_number", "street", "city", "state", "zip"),
}
_ALL_FIELDS: Final = tuple(f for fs in _FIELDS_BY_ATTRIBUTE.values() for f in fs)
_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "msisdn": ("msisdn", "phone"),
    "birthday": ("birthday", "birthdate"),
}


def _lookup_fields(data: Mapping[str, object], fields: Iterable[str]) -> dict[str, object]:
    found: dict[str, object] = {}
    for field in fields:
        names = _ALIASES.get(field, (field,))
        present = [n for n in names if data.get(n) is not None]
        if not present:
            raise AttributeValueError(f"{field}: missing")
        if len(present) > 1 and len({str(data[n]) for n in present}) > 1:
            raise AttributeValueError(f"{field}: conflicting values for {' / '.join(present)}")
        found[field] = data[present[0]]
    return found


def _canonical_from_fields(fields: Mapping[str, object], attribute: str) -> str:
    def text(key: str) -> str:
        value = fields[key]
        if not isinstance(value, str):
            raise AttributeValueError(f"{key}: expected text, got {type(value).__name__}")
        return value

    if attribute == "name":
        return canonical_name(text("given_name"), text("family_name"))
    if attribute == "gender":
        return canonical_gender(text("gender"))
    if attribute == "birthday":
        birthday = fields["birthday"]
        if not isinstance(birthday, date | str):
            raise AttributeValueError("birthday: expected a date or YYYY-MM-DD")
        return canonical_birthday(birthday)
    if attribute == "phone":
        return canonical_phone(text("msisdn"))
    if attribute == "address":
        return canonical_address(
            text("street_number"), text("street"), text("city"), text("state"), text("zip")
        )
    raise AttributeValueError(f"unknown attribute {attribute!r}")


def _check_attributes(attributes: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(attributes)
    for attr in wanted:
        if attr not in _FIELDS_BY_ATTRIBUTE:
            raise AttributeValueError(f"unknown attribute {attr!r}")
    return wanted


def canonical_values_from_mapping(
    data: Mapping[str, object], attributes: Iterable[str] = ATTRIBUTE_IDS
) -> dict[str, str]:
    """Canonical text of ``attributes`` from a plain dict of the user's own data.

    Keys: ``given_name``, ``family_name``, ``gender``, ``birthday`` (or ``birthdate``; a ``date`` or
    ``YYYY-MM-DD``), ``msisdn`` (or ``phone``), ``street_number``, ``street``, ``city``, ``state``,
    ``zip``. Only the keys of the requested attributes are needed; unknown keys are ignored.
    """
    wanted = _check_attributes(attributes)
    needed = [f for attr in wanted for f in _FIELDS_BY_ATTRIBUTE[attr]]
    fields = _lookup_fields(data, needed)
    return {attr: _canonical_from_fields(fields, attr) for attr in wanted}


def canonical_values(
    record: PersonalRecord | Mapping[str, object], attributes: Iterable[str] = ATTRIBUTE_IDS
) -> dict[str, str]:
    """Canonical text of ``attributes`` from a record object (HSS subscriber) or a mapping."""
    if isinstance(record, Mapping):
        return canonical_values_from_mapping(record, attributes)
    wanted = _check_attributes(attributes)
    fields: dict[str, object] = {}
    for attr in wanted:
        for field in _FIELDS_BY_ATTRIBUTE[attr]:
            try:
                fields[field] = getattr(record, field)
            except AttributeError:
                raise AttributeValueError(f"{field}: missing") from None
    return {attr: _canonical_from_fields(fields, attr) for attr in wanted}
