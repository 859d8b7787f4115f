"""Sequence numbers for AKA (3GPP TS 33.102 Annex C).

SQN (48 bits) = SEQ (43 bits) ‖ IND (5 bits), Annex C.3.2. The HSS/AuC keeps one counter per
subscriber and steps it with ``next_sqn`` (SEQ + 1, IND + 1 mod 32, Annex C.1.1/C.3.4). The USIM
keeps the array SEQ_MS(0..31) of the highest SEQ accepted per IND value (Annex C.2.2, C.3.3) and
accepts a SQN only if

* SEQ > SEQ_MS(IND)                       (not replayed, Annex C.2.2),
* SEQ − SEQ_MS ≤ Δ                       (not too far ahead; SEQ_MS = highest SEQ accepted anywhere
                                            in the array, Annex C.2.2 wrap-around protection),
* SEQ_MS − SEQ < L, when L is configured  (not too old, the optional age limit of Annex C.2.3).

``UsimSqnState`` is that state; it round-trips through ``to_dict``/``from_dict`` because the
emulated USIM persists it on disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT_DELTA",
    "IND_BITS",
    "IND_COUNT",
    "SEQ_BITS",
    "SEQ_MAX",
    "SQN_MAX",
    "SqnCheck",
    "UsimSqnState",
    "join_sqn",
    "next_sqn",
    "split_sqn",
]

IND_BITS: Final = 5
SEQ_BITS: Final = 43
IND_COUNT: Final = 1 << IND_BITS
SEQ_MAX: Final = (1 << SEQ_BITS) - 1
SQN_MAX: Final = (1 << (SEQ_BITS + IND_BITS)) - 1
#: Δ, the largest accepted jump of SEQ beyond SEQ_MS; 2^28 is the value TS 33.102 Annex C.2.2 gives.
DEFAULT_DELTA: Final = 1 << 28

_STATE_VERSION: Final = 1


def split_sqn(sqn: int) -> tuple[int, int]:
    """SQN → (SEQ, IND)."""
    if not 0 <= sqn <= SQN_MAX:
        raise ValueError(f"SQN must be in 0..2^48-1, got {sqn}")
    return sqn >> IND_BITS, sqn & (IND_COUNT - 1)


def join_sqn(seq: int, ind: int) -> int:
    """(SEQ, IND) → SQN."""
    if not 0 <= seq <= SEQ_MAX:
        raise ValueError(f"SEQ must be in 0..2^43-1, got {seq}")
    if not 0 <= ind < IND_COUNT:
        raise ValueError(f"IND must be in 0..{IND_COUNT - 1}, got {ind}")
    return (seq << IND_BITS) | ind


def next_sqn(current: int) -> int:
    """HSS side: the SQN for the next vector, SEQ + 1 and IND + 1 mod 32 (Annex C.3.2, C.3.4).

    After a re-synchronisation pass SQN_MS recovered from AUTS as ``current``.
    """
    seq, ind = split_sqn(current)
    if seq == SEQ_MAX:
        raise ValueError("SEQ exhausted (2^43 - 1): the subscriber needs a new key")
    return join_sqn(seq + 1, (ind + 1) % IND_COUNT)


@dataclass(frozen=True, slots=True)
class SqnCheck:
    """Outcome of a USIM freshness check."""

    accepted: bool
    reason: str


class UsimSqnState:
    """The USIM's sequence-number memory (Annex C.2.2/C.2.3), mutable and serialisable."""

    __slots__ = ("_highest", "_seq_ms", "age_limit", "delta")

    def __init__(
        self,
        *,
        delta: int = DEFAULT_DELTA,
        age_limit: int | None = None,
        seq_ms: Sequence[int] | None = None,
        highest_sqn: int = 0,
    ) -> None:
        if isinstance(delta, bool) or not isinstance(delta, int) or not 1 <= delta <= SEQ_MAX:
            raise ValueError(f"delta must be an int in 1..2^43-1, got {delta!r}")
        if age_limit is not None and (
            isinstance(age_limit, bool) or not isinstance(age_limit, int) or age_limit < 1
        ):
            raise ValueError(f"age_limit must be a positive int or None, got {age_limit!r}")
        array = [0] * IND_COUNT if seq_ms is None else list(seq_ms)
        if len(array) != IND_COUNT:
            raise ValueError(f"seq_ms must have {IND_COUNT} entries, got {len(array)}")
        for i, seq in enumerate(array):
            if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= SEQ_MAX:
                raise ValueError(f"seq_ms[{i}] must be an int in 0..2^43-1, got {seq!r}")
        if isinstance(highest_sqn, bool) or not isinstance(highest_sqn, int):
            raise ValueError(f"highest_sqn must be an int, got {highest_sqn!r}")
        split_sqn(highest_sqn)
        recorded = max((join_sqn(s, i) for i, s in enumerate(array) if s), default=0)
        if highest_sqn != recorded:
            raise ValueError("highest_sqn does not match the seq_ms array")
        self.delta = delta
        self.age_limit = age_limit
        self._seq_ms = array
        self._highest = highest_sqn

    @property
    def seq_ms(self) -> tuple[int, ...]:
        """SEQ_MS(i) for every IND value i."""
        return tuple(self._seq_ms)

    @property
    def sqn_ms(self) -> int:
        """SQN_MS: the highest SQN accepted so far (0 before any), the value AUTS carries."""
        return self._highest

    def check(self, sqn: int) -> SqnCheck:
        """Would ``sqn`` be accepted? Does not change the state."""
        seq, ind = split_sqn(sqn)
        if seq <= self._seq_ms[ind]:
            return SqnCheck(False, f"SQN replayed or stale: SEQ {seq} <= SEQ_MS({ind})")
        highest_seq = self._highest >> IND_BITS
        if seq - highest_seq > self.delta:
            return SqnCheck(False, f"SQN too far ahead: SEQ - SEQ_MS > delta ({self.delta})")
        if self.age_limit is not None and highest_seq - seq >= self.age_limit:
            return SqnCheck(False, f"SQN too old: SEQ_MS - SEQ >= L ({self.age_limit})")
        return SqnCheck(True, "fresh")

    def accept(self, sqn: int) -> None:
        """Record ``sqn`` as accepted; raises ``ValueError`` if the check does not pass."""
        verdict = self.check(sqn)
        if not verdict.accepted:
            raise ValueError(verdict.reason)
        seq, ind = split_sqn(sqn)
        self._seq_ms[ind] = seq
        self._highest = max(self._highest, sqn)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "version": _STATE_VERSION,
            "ind_bits": IND_BITS,
            "seq_ms": list(self._seq_ms),
            "highest_sqn": self._highest,
            "delta": self.delta,
            "age_limit": self.age_limit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsimSqnState:
        """Inverse of ``to_dict``; raises ``ValueError`` on anything malformed."""
        if not isinstance(data, Mapping):
            raise ValueError("USIM SQN state must be a mapping")
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported USIM SQN state version {data.get('version')!r}")
        if data.get("ind_bits") != IND_BITS:
            raise ValueError(f"unsupported IND length {data.get('ind_bits')!r}")
        missing = {"seq_ms", "highest_sqn", "delta", "age_limit"} - set(data)
        if missing:
            raise ValueError(f"USIM SQN state lacks {sorted(missing)}")
        seq_ms = data["seq_ms"]
        if not isinstance(seq_ms, list):
            raise ValueError("seq_ms must be a list")
        return cls(
            delta=data["delta"],
            age_limit=data["age_limit"],
            seq_ms=seq_ms,
            highest_sqn=data["highest_sqn"],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UsimSqnState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"UsimSqnState(sqn_ms={self._highest:#014x}, delta={self.delta}, L={self.age_limit})"
