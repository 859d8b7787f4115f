"""DGH levels of paper §6 (mpkix.anonymize)."""

from __future__ import annotations

import itertools
import time
from datetime import date, timedelta

import pytest

from cms_node.hss.generator import generate
from mpkix.anonymize import (
    AGE_RANGES_COARSE,
    AGE_RANGES_FINE,
    LEVEL_COUNTS,
    age_on,
    all_levels,
    anonymize,
    levels_of,
)
from mpkix.attributes import ATTRIBUTE_IDS, AttributeValueError, canonical_values

AS_OF = date(2025, 6, 15)


def test_level_counts_match_the_paper() -> None:
    assert dict(LEVEL_COUNTS) == {"name": 2, "gender": 2, "birthday": 6, "phone": 4, "address": 5}
    assert set(LEVEL_COUNTS) == set(ATTRIBUTE_IDS)


def test_name_and_gender_levels() -> None:
    assert [anonymize("name", "mary ann o'brien", n, AS_OF) for n in range(2)] == [
        "mary ann o'brien",
        None,
    ]
    assert [anonymize("gender", "x", n, AS_OF) for n in range(2)] == ["x", None]


def test_birthday_levels() -> None:
    assert levels_of("birthday", "1990-05-17", AS_OF) == (
        "1990-05-17",
        "1990-05",
        "1990",
        "18-40",  # 35 on AS_OF
        "0-40",
        None,
    )
    assert levels_of("birthday", "1950-06-16", AS_OF)[3:5] == ("61-80", "41-80")  # 74
    assert levels_of("birthday", "1930-01-01", AS_OF)[3:5] == (">80", ">80")


def _born_years_before(years: int, as_of: date = AS_OF) -> str:
    return as_of.replace(year=as_of.year - years).isoformat()


@pytest.mark.parametrize(
    ("age", "fine", "coarse"),
    [
        (0, "0-17", "0-40"),
        (17, "0-17", "0-40"),
        (18, "18-40", "0-40"),
        (40, "18-40", "0-40"),
        (41, "41-60", "41-80"),
        (60, "41-60", "41-80"),
        (61, "61-80", "41-80"),
        (80, "61-80", "41-80"),
        (81, ">80", ">80"),
        (104, ">80", ">80"),
    ],
)
def test_age_ranges_on_the_birthday(age: int, fine: str, coarse: str) -> None:
    """On the exact birthday the new age applies; the day before, the previous one."""
    born = _born_years_before(age)
    assert anonymize("birthday", born, 3, AS_OF) == fine
    assert anonymize("birthday", born, 4, AS_OF) == coarse
    if age > 0:
        day_before = AS_OF - timedelta(days=1)
        assert age_on(date.fromisoformat(born), day_before) == age - 1


def test_coarse_boundary_overlap_resolved_as_union_of_fine_ranges() -> None:
    """The paper writes 0-40/40-80: 40 goes with 0-40 and 80 with 41-80, as their L3 ranges do."""
    fine_to_coarse: dict[str, set[str]] = {}
    for age in range(0, 110):
        levels = levels_of("birthday", _born_years_before(age), AS_OF)
        fine_to_coarse.setdefault(str(levels[3]), set()).add(str(levels[4]))
    assert all(len(v) == 1 for v in fine_to_coarse.values())
    assert [label for _, _, label in AGE_RANGES_FINE] == ["0-17", "18-40", "41-60", "61-80", ">80"]
    assert [label for _, _, label in AGE_RANGES_COARSE] == ["0-40", "41-80", ">80"]


def test_leap_day_birthday() -> None:
    born = "2004-02-29"
    assert anonymize("birthday", born, 3, date(2022, 2, 28)) == "0-17"  # still 17
    assert anonymize("birthday", born, 3, date(2022, 3, 1)) == "18-40"  # 18 from 1 March
    assert age_on(date(2004, 2, 29), date(2024, 2, 28)) == 19
    assert age_on(date(2004, 2, 29), date(2024, 2, 29)) == 20
    assert anonymize("birthday", born, 1, date(2022, 3, 1)) == "2004-02"


def test_birthday_after_as_of_is_refused() -> None:
    with pytest.raises(AttributeValueError, match="after"):
        anonymize("birthday", "2025-06-16", 3, AS_OF)
    assert anonymize("birthday", "2025-06-15", 3, AS_OF) == "0-17"  # born today


@pytest.mark.parametrize(
    "value", ["1990-5-17", "17.05.1990", "1990-02-30", "", "1990-05-17T00", "1990-W20-3"]
)
def test_malformed_birthday_value(value: str) -> None:
    with pytest.raises(AttributeValueError, match="birthday"):
        anonymize("birthday", value, 0, AS_OF)


def test_phone_levels() -> None:
    assert levels_of("phone", "+13235551234", AS_OF) == ("+13235551234", "5551234", "1234", None)
    assert levels_of("phone", "+442079460958", AS_OF) == ("+442079460958", "9460958", "0958", None)


@pytest.mark.parametrize("value", ["3235551234", "+1323555123x", "+1234567", "+", ""])
def test_malformed_phone_value(value: str) -> None:
    with pytest.raises(AttributeValueError, match="phone"):
        anonymize("phone", value, 1, AS_OF)


def test_address_levels() -> None:
    assert levels_of("address", "12-1/2 n walnut st, st louis, mo 63101", AS_OF) == (
        "12-1/2 n walnut st, st louis, mo",
        "n walnut st, st louis, mo",
        "st louis, mo",
        "mo",
        None,
    )


@pytest.mark.parametrize(
    "value",
    [
        "12 main st springfield il 62701",  # no commas
        "12 main st, springfield, il",  # no zip
        "12, springfield, il 62701",  # no street
        "12 main st, , il 62701",  # no city
        "12 main st, springfield, ill 62701",  # state not 2 letters
        "12 main st, springfield, il 627",
        "12 main st, spring, field, il 62701",
    ],
)
def test_malformed_address_value(value: str) -> None:
    with pytest.raises(AttributeValueError, match="address"):
        anonymize("address", value, 0, AS_OF)


def test_gender_and_name_values_checked() -> None:
    with pytest.raises(AttributeValueError, match="gender"):
        anonymize("gender", "F", 0, AS_OF)  # not canonical (upper case)
    with pytest.raises(AttributeValueError, match="name"):
        anonymize("name", "", 1, AS_OF)


@pytest.mark.parametrize("level", [-1, 6, True, 1.0, "1"])
def test_level_out_of_range(level: object) -> None:
    with pytest.raises(AttributeValueError, match="level"):
        anonymize("birthday", "1990-05-17", level, AS_OF)  # type: ignore[arg-type]


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeValueError, match="unknown attribute"):
        anonymize("email", "a@b.c", 0, AS_OF)
    with pytest.raises(AttributeValueError, match="unknown attribute"):
        all_levels({"email": "a@b.c"}, AS_OF)


def test_all_levels_agrees_with_anonymize_on_generated_population() -> None:
    """Every level of every attribute of 300 synthetic subscribers; DGH levels only generalize."""
    for subscriber in generate(300, 11):
        values = canonical_values(subscriber)
        levels = all_levels(values, AS_OF)
        assert set(levels) == set(ATTRIBUTE_IDS)
        for attr, tup in levels.items():
            assert len(tup) == LEVEL_COUNTS[attr]
            assert tup[0] is not None and tup[-1] is None
            assert list(tup) == [anonymize(attr, values[attr], n, AS_OF) for n in range(len(tup))]
        bday = levels["birthday"]
        assert str(bday[0]).startswith(str(bday[1])) and str(bday[1]).startswith(str(bday[2]))
        phone = levels["phone"]
        assert str(phone[0]).endswith(str(phone[1])) and str(phone[1]).endswith(str(phone[2]))
        addr = levels["address"]
        for finer, coarser in itertools.pairwise(addr[:4]):
            assert str(finer).endswith(str(coarser)) and finer != coarser
        assert values["address"].startswith(str(addr[0]) + " ")  # L0 = canonical minus the ZIP


def test_all_levels_is_cheap() -> None:
    values = canonical_values(next(iter(generate(1, 5))))
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        all_levels(values, AS_OF)
    per_call = (time.perf_counter() - started) / runs
    assert per_call < 200e-6, f"all_levels took {per_call * 1e6:.1f} us"
