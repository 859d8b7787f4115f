"""Seeded synthetic subscriber population (ARCHITECTURE §4; decision record 0204).

Realistic where it matters to the anonymization and IA figures of paper §4.2.3/§6:

* given names by sex and birth cohort from SSA national baby-name frequencies, surnames by
  US Census 2010 frequency (``data/given_names.csv``, ``data/surnames.csv``);
* sex F/M by the 2020 Census ratio, with a small share of ``X``;
* birthdays from the 2020 Census age pyramid (5-year groups; about 22 % minors), uniform within
  a group, ages counted on a fixed reference date so the output never depends on today;
* US addresses: state by 2020 population, a real city of that state by population, a common
  street name with USPS suffix, a house number, a ZIP whose 3-digit prefix is the city's;
* NANP MSISDNs with one of the city's area codes and a valid exchange, unique;
* IMSI ``310`` + MNC + random MSIN, unique; K random; OPc = OP ⊕ E_K(OP) (TS 35.206); SQN a random
  multiple of 32 (IND = 0, TS 33.102 Annex C.3.2); AMF 8000.

Everything comes from one ``random.Random(seed)`` drawn in a fixed order, so a seed always gives
the same subscribers, and the first N subscribers of a larger run are the N of a smaller one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from itertools import accumulate, islice
from typing import Final, Generic, TypeVar

from cms_node.hss.model import AMF_DEFAULT, Subscriber
from cms_node.hss.store import SubscriberStore

__all__ = [
    "AGE_PYRAMID",
    "DEFAULT_COUNT",
    "DEFAULT_MNC",
    "DEFAULT_REFERENCE_DATE",
    "MAX_COUNT",
    "default_op",
    "generate",
    "populate",
]

#: The paper's population (§6: 120,531 voter records).
DEFAULT_COUNT: Final = 120_531
MAX_COUNT: Final = 20_000_000
DEFAULT_MNC: Final = "260"
MCC: Final = "310"
#: Ages and cohorts are computed on this date, never on "today" (reproducibility).
DEFAULT_REFERENCE_DATE: Final = date(2025, 1, 1)

#: 2020 Census resident population by age group: (lowest age, highest age, thousands).
AGE_PYRAMID: Final[tuple[tuple[int, int, int], ...]] = (
    (0, 4, 19_373), (5, 9, 20_209), (10, 14, 21_363), (15, 19, 21_817), (20, 24, 21_576),
    (25, 29, 22_384), (30, 34, 22_601), (35, 39, 21_917), (40, 44, 20_973), (45, 49, 20_104),
    (50, 54, 20_617), (55, 59, 21_728), (60, 64, 21_150), (65, 69, 18_093), (70, 74, 14_785),
    (75, 79, 10_124), (80, 84, 6_403), (85, 89, 3_650), (90, 94, 1_800), (95, 99, 590),
)  # fmt: skip
#: Sex shares (per mille): 2020 Census F/M ratio, a small share marked X.
SEX_WEIGHTS: Final = (("F", 504), ("M", 492), ("X", 4))
#: Birth-year upper bounds of the given-name cohorts of data/given_names.csv.
_COHORTS: Final = ((1962, "1950"), (1984, "1975"), (2003, "1995"), (9999, "2012"))
#: How many digits a house number has (weights).
_HOUSE_NUMBER_DIGITS: Final = ((1, 5), (2, 14), (3, 36), (4, 38), (5, 7))

T = TypeVar("T")


class _Weighted(Generic[T]):
    """Items with relative weights, sampled by one ``rng.random()`` draw each."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        if not pairs:
            raise ValueError("empty weighted table")
        self._items = [item for item, _ in pairs]
        self._cum = list(accumulate(float(w) for _, w in pairs))
        self._total = self._cum[-1]

    def pick(self, rng: random.Random) -> T:
        i = bisect_right(self._cum, rng.random() * self._total)
        return self._items[min(i, len(self._items) - 1)]

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class City:
    state: str
    name: str
    zip3: str
    area_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Tables:
    sexes: _Weighted[str]
    ages: _Weighted[tuple[int, int]]
    given: dict[tuple[str, str], _Weighted[str]]  # (cohort, sex) -> names
    surnames: _Weighted[str]
    states: _Weighted[str]
    cities: dict[str, _Weighted[City]]
    street_names: _Weighted[str]
    street_suffixes: _Weighted[str]
    street_prefixes: _Weighted[str]
    house_digits: _Weighted[int]


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("cms_node.hss").joinpath("data", name).read_text(encoding="utf-8")
    lines = [line for line in io.StringIO(text) if not line.startswith("#")]
    return list(csv.DictReader(lines))


@lru_cache(maxsize=1)
def load_tables() -> _Tables:
    """Parse the data files once per process."""
    given: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for row in _read_csv("given_names.csv"):
        given.setdefault((row["cohort"], row["sex"]), []).append((row["name"], float(row["count"])))
    cities: dict[str, list[tuple[City, float]]] = {}
    for row in _read_csv("cities.csv"):
        city = City(row["state"], row["city"], row["zip3"], tuple(row["area_codes"].split("|")))
        cities.setdefault(city.state, []).append((city, float(row["population_k"])))
    streets: dict[str, list[tuple[str, float]]] = {}
    for row in _read_csv("streets.csv"):
        streets.setdefault(row["kind"], []).append((row["value"], float(row["weight"])))
    states = [(r["code"], float(r["population"])) for r in _read_csv("states.csv")]
    missing = {code for code, _ in states} - cities.keys()
    if missing:
        raise ValueError(f"cities.csv has no city for {sorted(missing)}")
    return _Tables(
        sexes=_Weighted(SEX_WEIGHTS),
        ages=_Weighted([((lo, hi), w) for lo, hi, w in AGE_PYRAMID]),
        given={key: _Weighted(pairs) for key, pairs in given.items()},
        surnames=_Weighted([(r["surname"], float(r["count"])) for r in _read_csv("surnames.csv")]),
        states=_Weighted(states),
        cities={state: _Weighted(pairs) for state, pairs in cities.items()},
        street_names=_Weighted(streets["name"]),
        street_suffixes=_Weighted(streets["suffix"]),
        street_prefixes=_Weighted(streets["prefix"]),
        house_digits=_Weighted(_HOUSE_NUMBER_DIGITS),
    )


def default_op(seed: int | str) -> bytes:
    """The operator OP used when none is given: SHA-256 of the seed, first 16 bytes."""
    return hashlib.sha256(f"mpkix-hss-op:{seed}".encode()).digest()[:16]


def _check_mnc(mnc: str) -> str:
    if not (isinstance(mnc, str) and mnc.isascii() and mnc.isdigit() and len(mnc) in (2, 3)):
        raise ValueError(f"MNC must be 2 or 3 digits, got {mnc!r}")
    return mnc


def _cohort(year: int) -> str:
    for last_year, cohort in _COHORTS:
        if year <= last_year:
            return cohort
    raise AssertionError("unreachable: the last cohort is open-ended")


def generate(
    count: int,
    seed: int | str,
    *,
    op: bytes | None = None,
    mnc: str = DEFAULT_MNC,
    reference_date: date = DEFAULT_REFERENCE_DATE,
) -> Iterator[Subscriber]:
    """Yield ``count`` synthetic subscribers; same arguments, same subscribers."""
    from mpkix.aka.milenage import compute_opc  # AES: imported only when generating

    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise ValueError(f"count must be 0..{MAX_COUNT}, got {count!r}")
    mnc = _check_mnc(mnc)
    op = default_op(seed) if op is None else op
    if not isinstance(op, bytes) or len(op) != 16:
        raise ValueError("OP must be 16 bytes")
    tables = load_tables()
    rng = random.Random(seed)
    msin_digits = 15 - len(MCC) - len(mnc)
    msin_limit = 10**msin_digits
    imsis: set[int] = set()
    msisdns: set[int] = set()

    for _ in range(count):
        sex = tables.sexes.pick(rng)
        low, high = tables.ages.pick(rng)
        # Uniform over the days of the age group: born between high+1 and low years before.
        days = int(rng.random() * (high + 1 - low) * 365.2425) + int(low * 365.2425)
        birthday = reference_date - timedelta(days=days)
        name_sex = sex if sex != "X" else ("F" if rng.random() < 0.5 else "M")
        given_name = tables.given[(_cohort(birthday.year), name_sex)].pick(rng)
        family_name = tables.surnames.pick(rng)

        state = tables.states.pick(rng)
        city = tables.cities[state].pick(rng)
        digits = tables.house_digits.pick(rng)
        street_number = str(rng.randrange(10 ** (digits - 1), 10**digits))
        street = tables.street_names.pick(rng) + " " + tables.street_suffixes.pick(rng)
        if rng.random() < 0.1:
            street = tables.street_prefixes.pick(rng) + " " + street
        zip_code = city.zip3 + f"{rng.randrange(1, 100):02d}"

        area = city.area_codes[rng.randrange(len(city.area_codes))]
        while True:
            exchange = rng.randrange(200, 1000)
            line = rng.randrange(10_000)
            if exchange % 100 == 11 or exchange == 555:  # N11 service codes; 555 directory
                continue
            number = int(f"1{area}{exchange:03d}{line:04d}")
            if number not in msisdns:
                msisdns.add(number)
                break
        while True:
            msin = rng.randrange(msin_limit)
            if msin not in imsis:
                imsis.add(msin)
                break
        k = rng.randbytes(16)
        sqn = rng.getrandbits(20) << 5

        yield Subscriber(
            imsi=f"{MCC}{mnc}{msin:0{msin_digits}d}",
            msisdn=f"+{number}",
            given_name=given_name,
            family_name=family_name,
            gender=sex,
            birthday=birthday,
            street_number=street_number,
            street=street,
            city=city.name,
            state=state,
            zip=zip_code,
            k=k,
            opc=compute_opc(k, op),
            sqn=sqn,
            amf=AMF_DEFAULT,
        )


def populate(
    store: SubscriberStore,
    count: int,
    seed: int | str,
    *,
    op: bytes | None = None,
    mnc: str = DEFAULT_MNC,
    reference_date: date = DEFAULT_REFERENCE_DATE,
    chunk: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Generate into ``store`` in transactions of ``chunk`` records; ``progress(n)`` after each."""
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    subscribers = generate(count, seed, op=op, mnc=mnc, reference_date=reference_date)
    done = 0
    while batch := list(islice(subscribers, chunk)):
        done += store.insert_many(batch)
        if progress is not None:
            progress(len(batch))
    return done
