"""SQN = SEQ ‖ IND and the USIM freshness state (TS 33.102 Annex C)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mpkix.aka.sqn import (
    DEFAULT_DELTA,
    IND_COUNT,
    SEQ_MAX,
    SQN_MAX,
    UsimSqnState,
    join_sqn,
    next_sqn,
    split_sqn,
)


def test_layout_is_43_bit_seq_and_5_bit_ind() -> None:
    assert split_sqn(0xFF9BB4D0B607) == (0xFF9BB4D0B607 >> 5, 0x07)
    assert join_sqn(1, 0) == 32
    assert join_sqn(SEQ_MAX, 31) == SQN_MAX
    assert IND_COUNT == 32


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: split_sqn(-1), "SQN must be in"),
        (lambda: split_sqn(SQN_MAX + 1), "SQN must be in"),
        (lambda: join_sqn(SEQ_MAX + 1, 0), "SEQ must be in"),
        (lambda: join_sqn(0, 32), "IND must be in 0..31"),
        (lambda: next_sqn(join_sqn(SEQ_MAX, 4)), "SEQ exhausted"),
    ],
)
def test_range_errors(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_next_sqn_steps_seq_and_cycles_ind() -> None:
    assert split_sqn(next_sqn(0)) == (1, 1)
    assert split_sqn(next_sqn(join_sqn(41, 30))) == (42, 31)
    assert split_sqn(next_sqn(join_sqn(41, 31))) == (42, 0)


def test_fresh_state_accepts_and_records() -> None:
    st = UsimSqnState()
    before = (st.sqn_ms, st.seq_ms)
    st.accept(join_sqn(3, 7))
    assert before == (0, (0,) * 32)
    assert st.sqn_ms == join_sqn(3, 7) and st.seq_ms[7] == 3


def test_same_or_lower_seq_in_same_ind_is_refused() -> None:
    st = UsimSqnState()
    st.accept(join_sqn(10, 2))
    for seq in (10, 9, 0):
        verdict = st.check(join_sqn(seq, 2))
        assert not verdict.accepted and "SEQ_MS(2)" in verdict.reason
    with pytest.raises(ValueError, match="replayed"):
        st.accept(join_sqn(10, 2))


def test_lower_seq_in_another_ind_is_accepted() -> None:
    st = UsimSqnState()
    st.accept(join_sqn(10, 2))
    st.accept(join_sqn(8, 5))
    assert st.sqn_ms == join_sqn(10, 2)  # SQN_MS stays the highest accepted


def test_delta_limits_jumps_ahead() -> None:
    st = UsimSqnState(delta=100)
    st.accept(join_sqn(50, 0))
    assert st.check(join_sqn(150, 1)).accepted
    verdict = st.check(join_sqn(151, 1))
    assert not verdict.accepted and "too far ahead" in verdict.reason
    assert DEFAULT_DELTA == 1 << 28
    assert not UsimSqnState().check(join_sqn(DEFAULT_DELTA + 1, 0)).accepted


def test_age_limit_refuses_old_sequence_numbers() -> None:
    st = UsimSqnState(age_limit=5)
    st.accept(join_sqn(100, 0))
    assert st.check(join_sqn(96, 1)).accepted
    verdict = st.check(join_sqn(95, 1))
    assert not verdict.accepted and "too old" in verdict.reason
    assert UsimSqnState().check(join_sqn(1, 1)).accepted  # no age limit by default


def test_round_trip_through_json() -> None:
    st = UsimSqnState(delta=1 << 20, age_limit=64)
    for sqn in (join_sqn(5, 1), join_sqn(9, 4), join_sqn(7, 31)):
        st.accept(sqn)
    again = UsimSqnState.from_dict(json.loads(json.dumps(st.to_dict())))
    assert again == st
    assert again.seq_ms == st.seq_ms and again.sqn_ms == st.sqn_ms
    assert (again.delta, again.age_limit) == (1 << 20, 64)
    assert not again.check(join_sqn(9, 4)).accepted


def _good() -> dict[str, Any]:
    st = UsimSqnState()
    st.accept(join_sqn(4, 2))
    return st.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "unsupported USIM SQN state version"),
        ({"ind_bits": 4}, "unsupported IND length"),
        ({"seq_ms": [0] * 31}, "seq_ms must have 32 entries"),
        ({"seq_ms": "nope"}, "seq_ms must be a list"),
        ({"seq_ms": [-1] + [0] * 31}, r"seq_ms\[0\] must be an int"),
        ({"seq_ms": [True] + [0] * 31}, r"seq_ms\[0\] must be an int"),
        ({"highest_sqn": 5}, "highest_sqn does not match"),
        ({"highest_sqn": "x"}, "highest_sqn must be an int"),
        ({"delta": 0}, "delta must be an int"),
        ({"age_limit": 0}, "age_limit must be a positive int"),
    ],
)
def test_from_dict_rejects_bad_state(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UsimSqnState.from_dict({**_good(), **change})


def test_from_dict_rejects_missing_keys_and_non_mappings() -> None:
    data = _good()
    del data["seq_ms"]
    with pytest.raises(ValueError, match="lacks"):
        UsimSqnState.from_dict(data)
    with pytest.raises(ValueError, match="must be a mapping"):
        UsimSqnState.from_dict([1, 2])  # type: ignore[arg-type]
