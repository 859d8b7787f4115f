"""Canonical attribute text: normalization rules and CMA/CMS agreement (mpkix.attributes)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from cms_node.hss.model import Subscriber
from mpkix.attributes import (
    ATTRIBUTE_IDS,
    AttributeValueError,
    PersonalData,
    canonical_address,
    canonical_birthday,
    canonical_gender,
    canonical_name,
    canonical_phone,
    canonical_values,
    canonical_values_from_mapping,
    normalize_text,
)


def _subscriber(**overrides: object) -> Subscriber:
    fields: dict[str, object] = {
        "imsi": "310260123456789",
        "msisdn": "+18477020544",
        "given_name": "April",
        "family_name": "O'Brien",
        "gender": "F",
        "birthday": date(1981, 11, 7),
        "street_number": "12",
        "street": "N Walnut St",
        "city": "St. Louis",
        "state": "MO",
        "zip": "63101",
        "k": bytes(range(16)),
        "opc": bytes(range(16, 32)),
    }
    fields.update(overrides)
    return Subscriber(**fields)  # type: ignore[arg-type]


# --- normalize_text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  John   SMITH ", "john smith"),
        ("ＪＯＨＮ", "john"),  # full-width forms (NFKC)
        ("Stra\u00dfe", "strasse"),  # sharp s case-folds to ss
        ("\ufb01sher", "fisher"),  # "fi" ligature
        ("Jose\u0301", "jos\u00e9"),  # combining acute composes
        ("a\tb\nc", "a b c"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_text_is_idempotent() -> None:
    for raw in ("Ǆemal", "ÅNGSTRÖM", "ﬃ", "Σίσυφος", "İstanbul"):
        once = normalize_text(raw)
        assert normalize_text(once) == once


# --- name / gender / birthday ---------------------------------------------------------------


def test_canonical_name() -> None:
    assert canonical_name("  Mary  Ann ", "O'BRIEN") == "mary ann o'brien"


@pytest.mark.parametrize(("given", "family"), [("", "Smith"), ("John", "   "), ("Jo\u200bhn", "X")])
def test_canonical_name_rejects(given: str, family: str) -> None:
    with pytest.raises(AttributeValueError):
        canonical_name(given, family)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("F", "f"), ("female", "f"), (" Male ", "m"), ("m", "m"), ("X", "x"), ("Non-Binary", "x")],
)
def test_canonical_gender(raw: str, expected: str) -> None:
    assert canonical_gender(raw) == expected


@pytest.mark.parametrize("raw", ["Q", "", "fem"])
def test_canonical_gender_rejects(raw: str) -> None:
    with pytest.raises(AttributeValueError, match="gender"):
        canonical_gender(raw)


def test_canonical_birthday() -> None:
    assert canonical_birthday(date(1990, 2, 3)) == "1990-02-03"
    assert canonical_birthday(" 2004-02-29 ") == "2004-02-29"


@pytest.mark.parametrize(
    "raw",
    ["1990-2-3", "1990-02-30", "2003-02-29", "03/02/1990", "19900203", "", "0999-01-01"],
)
def test_canonical_birthday_rejects_text(raw: str) -> None:
    with pytest.raises(AttributeValueError, match="birthday"):
        canonical_birthday(raw)


def test_canonical_birthday_rejects_datetime_and_other_types() -> None:
    with pytest.raises(AttributeValueError, match="birthday"):
        canonical_birthday(datetime(1990, 2, 3, 12, 0))
    with pytest.raises(AttributeValueError, match="birthday"):
        canonical_birthday(19900203)  # type: ignore[arg-type]


# --- phone ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+13234567890",
        "+1 (323) 456-7890",
        "(323) 456-7890",
        "323.456.7890",
        "3234567890",
        "1-323-456-7890",
        "＋１ ３２３ ４５６ ７８９０",  # full-width
    ],
)
def test_canonical_phone_nanp_formats(raw: str) -> None:
    assert canonical_phone(raw) == "+13234567890"


def test_canonical_phone_other_country() -> None:
    assert canonical_phone("+44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize(
    "raw",
    [
        "+1 123 456 7890",  # area code starts with 1
        "+1 023 456 7890",  # area code starts with 0
        "+1 911 456 7890",  # N11 is not an area code
        "+1 323 156 7890",  # exchange starts with 1
        "+1 323 456 789",  # too short for NANP
        "+1 323 456 78901",  # too long for NANP
        "12345",
        "+0123456789",  # country code cannot start with 0
        "+1234567890123456",  # 16 digits > E.164 maximum
        "+1234567",  # 7 digits
        "phone",
        "+1 323 456 789O",  # letter O
        "",
    ],
)
def test_canonical_phone_rejects(raw: str) -> None:
    with pytest.raises(AttributeValueError, match="phone"):
        canonical_phone(raw)


def test_canonical_phone_rejects_non_text() -> None:
    with pytest.raises(AttributeValueError, match="phone"):
        canonical_phone(3234567890)  # type: ignore[arg-type]


# --- address ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("123", "Main Street", "Springfield", "Illinois", "62701-1234"),
         "123 main st, springfield, il 62701"),
        (("123", "MAIN ST.", " springfield ", "IL", "62701"), "123 main st, springfield, il 62701"),
        (("9", "North Oak Avenue", "St. Louis", "mo", "63101"), "9 n oak ave, st louis, mo 63101"),
        (("12 1/2", "Elm Ct", "Washington, D.C.", "District of Columbia", "20001"),
         "12-1/2 elm ct, washington dc, dc 20001"),
        (("W123N4567", "Broadway", "Mequon", "WI", "530921234"),
         "w123n4567 broadway, mequon, wi 53092"),
        (("1", "Park", "Boise", "ID", "83702"), "1 park, boise, id 83702"),
    ],
)  # fmt: skip
def test_canonical_address(parts: tuple[str, str, str, str, str], expected: str) -> None:
    assert canonical_address(*parts) == expected


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        (("#12", "Main St", "Boise", "ID", "83702"), "street_number"),
        (("", "Main St", "Boise", "ID", "83702"), "street_number"),
        (("12", ".", "Boise", "ID", "83702"), "street"),
        (("12", "Main St", ",", "ID", "83702"), "city"),
        (("12", "Main St", "Boise", "XX", "83702"), "state"),
        (("12", "Main St", "Boise", "Idahoo", "83702"), "state"),
        (("12", "Main St", "Boise", "ID", "8370"), "zip"),
        (("12", "Main St", "Boise", "ID", "837021"), "zip"),
        (("12", "Main St", "Boise", "ID", "83702-12"), "zip"),
    ],
)
def test_canonical_address_rejects(parts: tuple[str, str, str, str, str], field: str) -> None:
    with pytest.raises(AttributeValueError, match=field):
        canonical_address(*parts)


# --- records and mappings ---------------------------------------------------------------------


def test_canonical_values_of_subscriber() -> None:
    values = canonical_values(_subscriber())
    assert values == {
        "name": "april o'brien",
        "gender": "f",
        "birthday": "1981-11-07",
        "phone": "+18477020544",
        "address": "12 n walnut st, st louis, mo 63101",
    }
    assert tuple(values) == ATTRIBUTE_IDS


def test_phone_typed_data_matches_hss_record() -> None:
    """The CMA's typed-in variants canonicalize to exactly what the CMS computes from the HSS."""
    typed = {
        "given_name": "APRIL",
        "family_name": " O'Brien",
        "gender": "female",
        "birthdate": "1981-11-07",
        "phone": "(847) 702-0544",
        "street_number": "12",
        "street": "North Walnut Street",
        "city": "st louis",
        "state": "Missouri",
        "zip": "63101-0001",
        "ignored_extra": "whatever",
    }
    assert canonical_values_from_mapping(typed) == canonical_values(_subscriber())
    assert canonical_values(typed) == canonical_values(_subscriber())


def test_subset_of_attributes() -> None:
    values = canonical_values_from_mapping(
        {"gender": "M", "phone": "3234567890"}, ["phone", "gender"]
    )
    assert values == {"phone": "+13234567890", "gender": "m"}
    assert canonical_values(_subscriber(), ["birthday"]) == {"birthday": "1981-11-07"}


def test_mapping_missing_field_is_named() -> None:
    with pytest.raises(AttributeValueError, match="family_name: missing"):
        canonical_values_from_mapping({"given_name": "Ann"}, ["name"])
    with pytest.raises(AttributeValueError, match="msisdn: missing"):
        canonical_values_from_mapping({"phone": None}, ["phone"])


def test_mapping_conflicting_aliases() -> None:
    with pytest.raises(AttributeValueError, match="conflicting"):
        canonical_values_from_mapping({"phone": "3234567890", "msisdn": "+13234567891"}, ["phone"])
    same = canonical_values_from_mapping(
        {"phone": "+13234567890", "msisdn": "+13234567890"}, ["phone"]
    )
    assert same == {"phone": "+13234567890"}


def test_mapping_wrong_types() -> None:
    with pytest.raises(AttributeValueError, match="given_name"):
        canonical_values_from_mapping({"given_name": 5, "family_name": "X"}, ["name"])
    with pytest.raises(AttributeValueError, match="birthday"):
        canonical_values_from_mapping({"birthday": 1990}, ["birthday"])


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeValueError, match="unknown attribute"):
        canonical_values_from_mapping({}, ["email"])
    with pytest.raises(AttributeValueError, match="unknown attribute"):
        canonical_values(_subscriber(), ["name", "ssn"])


def test_record_without_a_field() -> None:
    class Partial:
        given_name = "Ann"

    with pytest.raises(AttributeValueError, match="family_name: missing"):
        canonical_values(Partial(), ["name"])  # type: ignore[arg-type]


def test_personal_data_from_mapping() -> None:
    data = PersonalData.from_mapping(
        {
            "given_name": "April",
            "family_name": "O'Brien",
            "gender": "F",
            "birthday": "1981-11-07",
            "msisdn": "+18477020544",
            "street_number": "12",
            "street": "N Walnut St",
            "city": "St. Louis",
            "state": "MO",
            "zip": "63101",
        }
    )
    assert data.birthday == date(1981, 11, 7)
    assert canonical_values(data) == canonical_values(_subscriber())


def test_personal_data_from_mapping_rejects() -> None:
    base = {
        "given_name": "April",
        "family_name": "O'Brien",
        "gender": "F",
        "birthday": "1981-11-07",
        "msisdn": "+18477020544",
        "street_number": "12",
        "street": "N Walnut St",
        "city": "St. Louis",
        "state": "MO",
        "zip": "63101",
    }
    with pytest.raises(AttributeValueError, match="city: missing"):
        PersonalData.from_mapping({k: v for k, v in base.items() if k != "city"})
    with pytest.raises(AttributeValueError, match="birthday"):
        PersonalData.from_mapping({**base, "birthday": "1981-13-07"})
    with pytest.raises(AttributeValueError, match="zip"):
        PersonalData.from_mapping({**base, "zip": 63101})
