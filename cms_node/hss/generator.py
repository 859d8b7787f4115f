"""Seeded synthetic subscriber population (ARCHITECTURE §4; decision record 0204).

Realistic where it matters to the anonymization and IA figures of paper §4.2.3/§6:

* given names by sex and birth cohort from SSA national baby-name frequencies, surnames by
  US Census 2010 frequency (``data/given_names.csv``, ``data/surnames.csv``); the listed names keep
  their real population share and the rest of the population (62.5 % for surnames) gets a Zipf
  tail of rarer names made by a character-trigram model trained on the listed ones, so name
  frequencies have the real long tail;
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
import math
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
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
#: Share of the population whose surname is in data/surnames.csv (Census 2010 cum_prop100k).
SURNAME_LIST_COVERAGE: Final = 0.375
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


class _NameModel:
    """Order-2 character Markov chain over real names: plausible *rare* names for the tail.

    Trained on name types (each listed name once). A made name is kept only if it is not a listed
    name and the chain makes it with probability below ``max_probability``: so no made name can
    become common by being an easy path through the chain.
    """

    __slots__ = ("_exclude", "_max_probability", "_next")
    _MIN_LEN: Final = 3
    _MAX_LEN: Final = 10

    def __init__(self, names: Iterable[str], max_probability: float = 5e-6) -> None:
        contexts: dict[str, Counter[str]] = {}
        known: set[str] = set()
        for name in names:
            lowered = name.lower()
            known.add(lowered)
            if not (lowered.isascii() and lowered.isalpha()):
                continue
            padded = "^^" + lowered + "$"
            for i in range(2, len(padded)):
                contexts.setdefault(padded[i - 2 : i], Counter())[padded[i]] += 1
        self._next: dict[str, tuple[_Weighted[str], dict[str, float]]] = {}
        for ctx, counter in sorted(contexts.items()):
            total = sum(counter.values())
            items = sorted(counter.items())
            self._next[ctx] = (_Weighted(items), {ch: n / total for ch, n in items})
        self._exclude = frozenset(known)
        self._max_probability = max_probability

    def make(self, rng: random.Random) -> str | None:
        """A new rare name, or ``None`` after 50 rejected attempts."""
        for _ in range(50):
            ctx, out, probability = "^^", "", 1.0
            while len(out) <= self._MAX_LEN:
                table, probs = self._next[ctx]
                ch = table.pick(rng)
                probability *= probs[ch]
                if ch == "$":
                    break
                out += ch
                ctx = ctx[1] + ch
            if (
                self._MIN_LEN <= len(out) <= self._MAX_LEN
                and probability < self._max_probability
                and out not in self._exclude
            ):
                return out.capitalize()
        return None


class _NamePool:
    """Listed names with their real weights, then a Zipf tail of made rare names.

    The tail continues the listed distribution: rank ``r`` beyond the list has weight
    ``w_last * r_first / r`` (Zipf, exponent 1), over as many ranks as the tail mass needs; a
    rank's name is a pure function of ``(key, rank)``, so it does not depend on the run.
    """

    __slots__ = ("_cache", "_first_rank", "_key", "_listed", "_model", "_span", "_with_tail")
    _MAX_RANK: Final = 2_000_000

    def __init__(
        self, key: str, listed: Sequence[tuple[str, float]], tail: float, model: _NameModel
    ) -> None:
        self._key = key
        self._listed = _Weighted(listed)
        tail = max(tail, 0.0)
        self._with_tail: _Weighted[str | None] = _Weighted([*listed, (None, tail)])
        self._model = model
        self._first_rank = len(listed) + 1
        last_weight = min(w for _, w in listed)
        # sum_{r=f}^{N} w*f/r ~ w*f*ln(N/f) = tail  =>  ln(N/f) = tail / (w*f)
        self._span = min(
            tail / (last_weight * self._first_rank), math.log(self._MAX_RANK / self._first_rank)
        )
        self._cache: dict[int, str] = {}

    def pick(self, rng: random.Random) -> str:
        name = self._with_tail.pick(rng)
        if name is not None:
            return name
        rank = int(self._first_rank * math.exp(rng.random() * self._span))
        made = self._cache.get(rank)
        if made is None:
            rank_rng = random.Random(f"{self._key}:{rank}")
            made = self._model.make(rank_rng) or self._listed.pick(rank_rng)
            self._cache[rank] = made
        return made


@dataclass(frozen=True, slots=True)
class _Tables:
    sexes: _Weighted[str]
    ages: _Weighted[tuple[int, int]]
    given: dict[tuple[str, str], _NamePool]  # (cohort, sex) -> names
    surnames: _NamePool
    listed_surnames: int
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
    births = {(r["cohort"], r["sex"]): float(r["births"]) for r in _read_csv("cohort_births.csv")}
    given_models = {
        sex: _NameModel(name for (_, s), pairs in given.items() if s == sex for name, _ in pairs)
        for sex in ("F", "M")
    }
    surname_pairs = [(r["surname"], float(r["count"])) for r in _read_csv("surnames.csv")]
    listed_total = sum(w for _, w in surname_pairs)
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
        given={
            key: _NamePool(
                f"given:{key[1]}",
                pairs,
                births[key] - sum(w for _, w in pairs),
                given_models[key[1]],
            )
            for key, pairs in given.items()
        },
        surnames=_NamePool(
            "surname",
            surname_pairs,
            listed_total * (1 - SURNAME_LIST_COVERAGE) / SURNAME_LIST_COVERAGE,
            _NameModel(name for name, _ in surname_pairs),
        ),
        listed_surnames=len(surname_pairs),
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
