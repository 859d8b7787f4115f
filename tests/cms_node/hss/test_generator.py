"""Synthetic population: determinism, validity, distributions (cms_node.hss.generator)."""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from datetime import date
from importlib import resources
from pathlib import Path

import pytest

from cms_node.hss.generator import (
    DEFAULT_REFERENCE_DATE,
    MAX_COUNT,
    default_op,
    generate,
    load_tables,
    populate,
)
from cms_node.hss.model import SQN_LIMIT, Subscriber
from cms_node.hss.sqlite_store import SqliteSubscriberStore
from cms_node.hss.store import MemorySubscriberStore
from mpkix.aka.milenage import compute_opc
from mpkix.anonymize import age_on
from mpkix.attributes import canonical_phone, canonical_values

SAMPLE_SIZE = 20_000


@pytest.fixture(scope="module")
def sample() -> list[Subscriber]:
    return list(generate(SAMPLE_SIZE, 2026))


def _data(name: str) -> list[dict[str, str]]:
    text = resources.files("cms_node.hss").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#")))


def _zip_ranges() -> dict[str, list[tuple[int, int]]]:
    ranges: dict[str, list[tuple[int, int]]] = {}
    for row in _data("states.csv"):
        for part in row["zip3_ranges"].split("|"):
            lo, hi = part.split("-")
            ranges.setdefault(row["code"], []).append((int(lo), int(hi)))
    return ranges


def _digest(subscribers: list[Subscriber]) -> str:
    h = hashlib.sha256()
    for s in subscribers:
        h.update(repr(sorted(s.to_json_dict().items())).encode())
    return h.hexdigest()


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_same_population() -> None:
    assert _digest(list(generate(500, 7))) == _digest(list(generate(500, 7)))


def test_different_seed_different_population() -> None:
    a, b = list(generate(50, 7)), list(generate(50, 8))
    assert not {s.imsi for s in a} & {s.imsi for s in b}
    assert _digest(a) != _digest(b)


def test_smaller_run_is_a_prefix_of_a_larger_one() -> None:
    assert list(generate(100, 3)) == list(generate(300, 3))[:100]


def test_same_seed_same_database_content(tmp_path: Path) -> None:
    dumps = []
    for name in ("a.sqlite", "b.sqlite"):
        store = SqliteSubscriberStore(tmp_path / name)
        populate(store, 400, 99, chunk=64)
        store.close()
        store = SqliteSubscriberStore(tmp_path / name, create=False)
        dumps.append(list(store.iter_all(batch=100)))
        store.close()
    assert dumps[0] == dumps[1] and len(dumps[0]) == 400


def test_op_only_changes_opc() -> None:
    op = bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318")
    default = list(generate(20, 5))
    explicit = list(generate(20, 5, op=op))
    for d, e in zip(default, explicit, strict=True):
        assert d.k == e.k and d.imsi == e.imsi and d.sqn == e.sqn
        assert d.opc == compute_opc(d.k, default_op(5))
        assert e.opc == compute_opc(e.k, op)
        assert d.opc != e.opc


# --- validity ---------------------------------------------------------------------------------


def test_identifiers_unique_and_well_formed(sample: list[Subscriber]) -> None:
    imsis = [s.imsi for s in sample]
    msisdns = [s.msisdn for s in sample]
    assert len(set(imsis)) == len(sample)
    assert len(set(msisdns)) == len(sample)
    assert all(i.startswith("310260") and len(i) == 15 for i in imsis)
    assert all(canonical_phone(m) == m for m in msisdns)
    assert len({s.k for s in sample}) == len(sample)


def test_two_digit_mnc() -> None:
    subs = list(generate(50, 1, mnc="41"))
    assert all(s.imsi.startswith("31041") and len(s.imsi) == 15 for s in subs)


def test_credentials(sample: list[Subscriber]) -> None:
    op = default_op(2026)
    for s in sample[:500]:
        assert s.opc == compute_opc(s.k, op)
        assert s.amf == b"\x80\x00"
    assert all(s.sqn % 32 == 0 and 0 <= s.sqn < SQN_LIMIT for s in sample)
    assert len({s.sqn for s in sample}) > SAMPLE_SIZE // 2  # random, not a constant


def test_addresses_consistent_with_state(sample: list[Subscriber]) -> None:
    ranges = _zip_ranges()
    city_area_codes = {
        (r["state"], r["city"]): set(r["area_codes"].split("|")) for r in _data("cities.csv")
    }
    for s in sample:
        zip3 = int(s.zip[:3])
        assert any(lo <= zip3 <= hi for lo, hi in ranges[s.state]), (s.state, s.zip)
        assert s.msisdn[2:5] in city_area_codes[(s.state, s.city)], (s.city, s.msisdn)


def test_every_record_canonicalizes(sample: list[Subscriber]) -> None:
    for s in sample[:3000]:
        values = canonical_values(s)
        assert values["address"].endswith(f", {s.state.lower()} {s.zip}")


# --- distributions ----------------------------------------------------------------------------


def test_sex_split(sample: list[Subscriber]) -> None:
    counts = Counter(s.gender for s in sample)
    assert 0.48 < counts["F"] / SAMPLE_SIZE < 0.53
    assert 0.47 < counts["M"] / SAMPLE_SIZE < 0.52
    assert 0 < counts["X"] / SAMPLE_SIZE < 0.01


def test_age_pyramid(sample: list[Subscriber]) -> None:
    ages = [age_on(s.birthday, DEFAULT_REFERENCE_DATE) for s in sample]
    minors = sum(a < 18 for a in ages) / SAMPLE_SIZE
    assert 0.20 < minors < 0.25  # 2020 Census: about 22 %
    assert 0.01 < sum(a > 80 for a in ages) / SAMPLE_SIZE < 0.06
    assert min(ages) >= 0 and max(ages) <= 100
    assert all(s.birthday <= DEFAULT_REFERENCE_DATE for s in sample)


def test_reference_date_moves_birthdays() -> None:
    a = next(iter(generate(1, 9)))
    b = next(iter(generate(1, 9, reference_date=date(2035, 1, 1))))
    assert (b.birthday - a.birthday).days == (date(2035, 1, 1) - DEFAULT_REFERENCE_DATE).days


def test_surnames_follow_census_frequency(sample: list[Subscriber]) -> None:
    counts = Counter(s.family_name for s in sample)
    top = [name for name, _ in counts.most_common(5)]
    assert top[0] == "Smith"
    assert {"Johnson", "Williams"} <= set(top)
    assert 0.006 < counts["Smith"] / SAMPLE_SIZE < 0.011  # Census 2010: 0.83 %
    assert len(counts) > 5000  # long tail of rare surnames
    listed = {r["surname"] for r in _data("surnames.csv")}
    in_list = sum(n for name, n in counts.items() if name in listed) / SAMPLE_SIZE
    assert 0.34 < in_list < 0.41  # the listed surnames cover 37.5 % of the population


def test_given_names_depend_on_cohort(sample: list[Subscriber]) -> None:
    old = Counter(s.given_name for s in sample if s.gender == "F" and s.birthday.year < 1963)
    young = Counter(s.given_name for s in sample if s.gender == "F" and s.birthday.year >= 2004)
    assert old.most_common(1)[0][0] in {"Linda", "Mary"}
    assert young.most_common(1)[0][0] in {"Sophia", "Emma", "Isabella", "Olivia", "Ava"}
    assert old["Sophia"] == 0 and young["Linda"] == 0
    males = Counter(s.given_name for s in sample if s.gender == "M")
    assert len(males) > 200


def test_states_follow_population(sample: list[Subscriber]) -> None:
    counts = Counter(s.state for s in sample)
    assert len(counts) == 51  # 50 states + DC
    assert counts.most_common(1)[0][0] == "CA"
    assert 0.10 < counts["CA"] / SAMPLE_SIZE < 0.14
    assert counts["TX"] > counts["FL"] > counts["WY"]


# --- arguments and populate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"count": -1}, "count"),
        ({"count": MAX_COUNT + 1}, "count"),
        ({"count": True}, "count"),
        ({"mnc": "2a0"}, "MNC"),
        ({"mnc": "2600"}, "MNC"),
        ({"op": b"\x00" * 15}, "OP"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"count": 1, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        list(generate(**args))  # type: ignore[arg-type]


def test_populate_in_chunks_reports_progress() -> None:
    store = MemorySubscriberStore()
    seen: list[int] = []
    assert populate(store, 250, 4, chunk=100, progress=seen.append) == 250
    assert seen == [100, 100, 50]
    assert store.count() == 250
    with pytest.raises(ValueError, match="chunk"):
        populate(store, 1, 4, chunk=0)


# --- data files -------------------------------------------------------------------------------


def test_data_files_are_consistent() -> None:
    ranges = _zip_ranges()
    assert len(ranges) == 51
    cities = _data("cities.csv")
    assert {c["state"] for c in cities} == set(ranges)
    for c in cities:
        zip3 = int(c["zip3"])
        assert any(lo <= zip3 <= hi for lo, hi in ranges[c["state"]]), c
        for area in c["area_codes"].split("|"):
            assert len(area) == 3 and area[0] in "23456789" and area[1:] != "11", c
        assert float(c["population_k"]) > 0
    given = _data("given_names.csv")
    per_sex = {sex: {r["name"] for r in given if r["sex"] == sex} for sex in ("F", "M")}
    assert len(per_sex["F"]) >= 300 and len(per_sex["M"]) >= 300
    assert {r["cohort"] for r in given} == {"1950", "1975", "1995", "2012"}
    surnames = _data("surnames.csv")
    assert len(surnames) >= 500
    assert len({r["surname"] for r in surnames}) == len(surnames)
    counts = [int(r["count"]) for r in surnames]
    assert counts == sorted(counts, reverse=True)
    assert load_tables().listed_surnames == len(surnames)
