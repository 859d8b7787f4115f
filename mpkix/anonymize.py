"""Domain generalization hierarchies of the subject attributes (paper §4.2.3 and §6).

``anonymize(attr, canonical_value, n, as_of)`` is the paper's ``f_S(V_S, n) = V_S^n``: level 0 is
the complete canonical value (``mpkix.attributes``), the last level discloses nothing (``None``).
The levels, exactly as the prototype of §6 defines them:

========  ==  ============================================================================
name       2  L0 full name; L1 none
gender     2  L0 gender; L1 none
birthday   6  L0 ``YYYY-MM-DD``; L1 ``YYYY-MM``; L2 ``YYYY``; L3 age range ``0-17``, ``18-40``,
              ``41-60``, ``61-80``, ``>80``; L4 age range ``0-40``, ``41-80``, ``>80``; L5 none
phone      4  L0 E.164 number; L1 last 7 digits; L2 last 4 digits; L3 none
address    5  L0 ``number street, city, state``; L1 ``street, city, state``; L2 ``city, state``;
              L3 ``state``; L4 none (the ZIP of the canonical value is never disclosed)
========  ==  ============================================================================

Ages are whole years on ``as_of``; someone born on 29 February has their birthday on 1 March in
common years. The paper's coarse ranges "0-40, 40-80, >80" overlap at 40 and 80; here each L4
range is the union of L3 ranges (40 -> ``0-40``, 80 -> ``41-80``), so a level never reveals more
than the levels above it (decision record 0203).

:func:`all_levels` computes every level of every attribute at once, as the CMS does once per ppCSR
(§7.1): a few microseconds per subscriber.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from types import MappingProxyType
from typing import Final

from mpkix.attributes import AttributeValueError

__all__ = [
    "AGE_RANGES_COARSE",
    "AGE_RANGES_FINE",
    "LEVEL_COUNTS",
    "age_on",
    "age_range",
    "all_levels",
    "anonymize",
    "levels_of",
]

#: Number of DGH levels per attribute (the last one discloses nothing).
LEVEL_COUNTS: Final[Mapping[str, int]] = MappingProxyType(
    {"name": 2, "gender": 2, "birthday": 6, "phone": 4, "address": 5}
)

#: (lowest age, highest age or None, label) of birthday level 3.
AGE_RANGES_FINE: Final[tuple[tuple[int, int | None, str], ...]] = (
    (0, 17, "0-17"),
    (18, 40, "18-40"),
    (41, 60, "41-60"),
    (61, 80, "61-80"),
    (81, None, ">80"),
)
#: (lowest age, highest age or None, label) of birthday level 4: unions of level-3 ranges.
AGE_RANGES_COARSE: Final[tuple[tuple[int, int | None, str], ...]] = (
    (0, 40, "0-40"),
    (41, 80, "41-80"),
    (81, None, ">80"),
)

Levels = tuple[str | None, ...]


def age_on(birthday: date, as_of: date) -> int:
    """Completed years of life on ``as_of`` (29 February birthdays count from 1 March)."""
    if as_of < birthday:
        raise AttributeValueError(f"birthday {birthday.isoformat()} is after {as_of.isoformat()}")
    years = as_of.year - birthday.year
    if (as_of.month, as_of.day) < (birthday.month, birthday.day):
        years -= 1
    return years


def age_range(age: int, ranges: tuple[tuple[int, int | None, str], ...]) -> str:
    """Label of the range containing ``age``."""
    for low, high, label in ranges:
        if age >= low and (high is None or age <= high):
            return label
    raise AttributeValueError(f"age {age} is outside every range")


def _name_levels(value: str) -> Levels:
    if not value:
        raise AttributeValueError("name: empty canonical value")
    return (value, None)


def _gender_levels(value: str) -> Levels:
    if value not in ("f", "m", "x"):
        raise AttributeValueError(f"gender: not a canonical value: {value!r}")
    return (value, None)


def _birthday_levels(value: str, as_of: date) -> Levels:
    if len(value) != 10:
        raise AttributeValueError(f"birthday: not a canonical YYYY-MM-DD value: {value!r}")
    try:
        born = date.fromisoformat(value)
        if born.isoformat() != value:  # 3.11 also reads ISO week dates such as 1990-W20-3
            raise ValueError(value)
    except ValueError:
        raise AttributeValueError(
            f"birthday: not a canonical YYYY-MM-DD value: {value!r}"
        ) from None
    age = age_on(born, as_of)
    return (
        value,
        value[:7],
        value[:4],
        age_range(age, AGE_RANGES_FINE),
        age_range(age, AGE_RANGES_COARSE),
        None,
    )


def _phone_levels(value: str) -> Levels:
    digits = value[1:]
    if not value.startswith("+") or not (digits.isascii() and digits.isdigit()) or len(digits) < 8:
        raise AttributeValueError(f"phone: not a canonical E.164 value: {value!r}")
    return (value, digits[-7:], digits[-4:], None)


def _address_levels(value: str) -> Levels:
    parts = value.split(", ")
    if len(parts) != 3:
        raise AttributeValueError(f"address: not a canonical value: {value!r}")
    number_street, city, state_zip = parts
    number, _, street = number_street.partition(" ")
    state, _, zip5 = state_zip.partition(" ")
    if not (number and street and city and len(state) == 2 and len(zip5) == 5):
        raise AttributeValueError(f"address: not a canonical value: {value!r}")
    return (
        f"{number_street}, {city}, {state}",
        f"{street}, {city}, {state}",
        f"{city}, {state}",
        state,
        None,
    )


def levels_of(attr: str, canonical_value: str, as_of: date) -> Levels:
    """Every level of one attribute: ``(V^0, V^1, ..., None)``."""
    if attr == "birthday":
        return _birthday_levels(canonical_value, as_of)
    if attr == "name":
        return _name_levels(canonical_value)
    if attr == "gender":
        return _gender_levels(canonical_value)
    if attr == "phone":
        return _phone_levels(canonical_value)
    if attr == "address":
        return _address_levels(canonical_value)
    raise AttributeValueError(f"unknown attribute {attr!r}")


def anonymize(attr: str, canonical_value: str, level: int, as_of: date) -> str | None:
    """``f_S(V_S, level)``: the value at ``level`` (0 = complete), ``None`` at the "none" level."""
    count = LEVEL_COUNTS.get(attr)
    if count is None:
        raise AttributeValueError(f"unknown attribute {attr!r}")
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < count:
        raise AttributeValueError(f"{attr}: level must be 0..{count - 1}, got {level!r}")
    return levels_of(attr, canonical_value, as_of)[level]


def all_levels(values: Mapping[str, str], as_of: date) -> dict[str, Levels]:
    """Every level of every attribute in ``values`` (attribute id -> canonical value)."""
    return {attr: levels_of(attr, value, as_of) for attr, value in values.items()}
