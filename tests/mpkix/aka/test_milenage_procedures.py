"""AKA procedures (TS 33.102 §6.3): vectors, the USIM check, AUTS and re-synchronisation."""

from __future__ import annotations

from typing import Any

import pytest

from mpkix.aka.milenage import (
    AMF_RESYNC,
    AuthVector,
    Milenage,
    ResyncError,
    UsimMacFailure,
    UsimSuccess,
    UsimSyncFailure,
    generate_vector,
    make_auts,
    resynchronize,
    usim_authenticate,
)
from mpkix.aka.sqn import UsimSqnState, join_sqn, next_sqn, split_sqn
from tests.mpkix.aka._vectors import h, load, milenage_sets, rfc5448_cases

AMF = b"\x80\x00"


@pytest.fixture
def m() -> Milenage:
    s = load("milenage-ts35208.json")["test_sets"][18]
    return Milenage(h(s["K"]), h(s["OPc"]))


@pytest.mark.parametrize("s", milenage_sets(), ids=lambda s: s["id"])
def test_vector_from_published_set(s: dict[str, Any]) -> None:
    m = Milenage(h(s["K"]), h(s["OPc"]))
    v = generate_vector(m, int(s["SQN"], 16), h(s["AMF"]), h(s["RAND"]))
    sqn_xor_ak = (int(s["SQN"], 16) ^ int(s["f5"], 16)).to_bytes(6, "big")
    assert v.autn == sqn_xor_ak + h(s["AMF"]) + h(s["f1"])
    assert (v.xres.hex(), v.ck.hex(), v.ik.hex(), v.ak.hex()) == (
        s["f2"],
        s["f3"],
        s["f4"],
        s["f5"],
    )
    assert v.rand == h(s["RAND"]) and v.sqn_xor_ak == sqn_xor_ak


def test_ts35208_set19_gives_the_rfc5448_case1_challenge(m: Milenage) -> None:
    """The AUTN/RES/CK/IK of RFC 5448 case 1 come from test set 19 (SQN 16f3b3f70fc2, AMF c3ab)."""
    case1 = rfc5448_cases()[0]
    v = generate_vector(m, 0x16F3B3F70FC2, h("c3ab"), h(case1["RAND"]))
    assert v.autn.hex() == case1["AUTN"]
    assert (v.xres.hex(), v.ck.hex(), v.ik.hex()) == (case1["RES"], case1["CK"], case1["IK"])


def test_vector_draws_a_fresh_rand(m: Milenage) -> None:
    a, b = generate_vector(m, 33, AMF), generate_vector(m, 33, AMF)
    assert len(a.rand) == 16 and a.rand != b.rand and a.autn != b.autn


def test_vector_repr_hides_keys(m: Milenage) -> None:
    v = generate_vector(m, 33, AMF)
    assert v.ck.hex() not in repr(v) and v.xres.hex() not in repr(v)


@pytest.mark.parametrize("sqn", [-1, 1 << 48])
def test_vector_rejects_sqn_out_of_range(m: Milenage, sqn: int) -> None:
    with pytest.raises(ValueError, match=r"SQN must be in 0\.\.2"):
        generate_vector(m, sqn, AMF)


def test_vector_rejects_bad_amf_and_rand(m: Milenage) -> None:
    with pytest.raises(ValueError, match="AMF must be 2 bytes"):
        generate_vector(m, 33, b"\x80")
    with pytest.raises(ValueError, match="RAND must be 16 bytes"):
        generate_vector(m, 33, AMF, b"\x00" * 15)


def _success(result: object) -> UsimSuccess:
    assert isinstance(result, UsimSuccess), result
    return result


def test_usim_accepts_a_fresh_vector_and_records_its_sqn(m: Milenage) -> None:
    state = UsimSqnState()
    sqn = next_sqn(0)
    v = generate_vector(m, sqn, AMF)
    ok = _success(usim_authenticate(m, v.rand, v.autn, state))
    assert (ok.res, ok.ck, ok.ik, ok.sqn, ok.amf) == (v.xres, v.ck, v.ik, sqn, AMF)
    assert state.sqn_ms == sqn
    seq, ind = split_sqn(sqn)
    assert state.seq_ms[ind] == seq


def test_usim_rejects_a_replayed_vector_with_auts(m: Milenage) -> None:
    state = UsimSqnState()
    v = generate_vector(m, next_sqn(0), AMF)
    _success(usim_authenticate(m, v.rand, v.autn, state))
    replay = usim_authenticate(m, v.rand, v.autn, state)
    assert isinstance(replay, UsimSyncFailure)
    assert "replayed" in replay.reason
    assert resynchronize(m, v.rand, replay.auts) == v.sqn


def test_full_resynchronisation_flow(m: Milenage) -> None:
    """USIM ahead of the HSS → AUTS → HSS recovers SQN_MS → next vector is accepted."""
    usim = UsimSqnState()
    hss_sqn = 0
    # The USIM saw SQNs the HSS has since lost (e.g. the HSS restored an old backup).
    for _ in range(5):
        hss_sqn = next_sqn(hss_sqn)
        v = generate_vector(m, hss_sqn, AMF)
        _success(usim_authenticate(m, v.rand, v.autn, usim))
    usim_highest = usim.sqn_ms
    hss_sqn = next_sqn(0)  # the stale counter
    stale = generate_vector(m, hss_sqn, AMF)
    answer = usim_authenticate(m, stale.rand, stale.autn, usim)
    assert isinstance(answer, UsimSyncFailure)
    assert usim.sqn_ms == usim_highest  # a sync failure changes nothing on the card
    sqn_ms = resynchronize(m, stale.rand, answer.auts)
    assert sqn_ms == usim_highest
    hss_sqn = next_sqn(sqn_ms)
    fresh = generate_vector(m, hss_sqn, AMF)
    assert _success(usim_authenticate(m, fresh.rand, fresh.autn, usim)).sqn == hss_sqn


def test_usim_rejects_sqn_too_far_ahead_and_resync_recovers(m: Milenage) -> None:
    usim = UsimSqnState(delta=1000)
    far = generate_vector(m, join_sqn(5000, 3), AMF)
    answer = usim_authenticate(m, far.rand, far.autn, usim)
    assert isinstance(answer, UsimSyncFailure) and "too far ahead" in answer.reason
    assert resynchronize(m, far.rand, answer.auts) == 0
    fresh = generate_vector(m, next_sqn(0), AMF)
    _success(usim_authenticate(m, fresh.rand, fresh.autn, usim))


def test_ind_slots_accept_out_of_order_vectors(m: Milenage) -> None:
    """Annex C: vectors with different IND may be used out of order; a reuse is still refused."""
    usim = UsimSqnState()
    sqns = [next_sqn(0)]
    for _ in range(2):
        sqns.append(next_sqn(sqns[-1]))
    vectors = [generate_vector(m, s, AMF) for s in sqns]
    for v in (vectors[2], vectors[0], vectors[1]):
        _success(usim_authenticate(m, v.rand, v.autn, usim))
    assert isinstance(usim_authenticate(m, vectors[0].rand, vectors[0].autn, usim), UsimSyncFailure)


@pytest.mark.parametrize("position", range(16))
def test_any_autn_change_is_a_mac_failure(m: Milenage, position: int) -> None:
    usim = UsimSqnState()
    v = generate_vector(m, next_sqn(0), AMF)
    bad = bytearray(v.autn)
    bad[position] ^= 0x01
    assert isinstance(usim_authenticate(m, v.rand, bytes(bad), usim), UsimMacFailure)
    assert usim.sqn_ms == 0  # nothing recorded


def test_wrong_key_or_rand_is_a_mac_failure(m: Milenage) -> None:
    s = load("milenage-ts35208.json")["test_sets"][19]
    other = Milenage(h(s["K"]), h(s["OPc"]))
    v = generate_vector(m, next_sqn(0), AMF)
    assert isinstance(usim_authenticate(other, v.rand, v.autn, UsimSqnState()), UsimMacFailure)
    wrong_rand = bytes(16)
    assert isinstance(usim_authenticate(m, wrong_rand, v.autn, UsimSqnState()), UsimMacFailure)


def test_usim_input_lengths(m: Milenage) -> None:
    with pytest.raises(ValueError, match="AUTN must be 16 bytes"):
        usim_authenticate(m, bytes(16), bytes(15), UsimSqnState())
    with pytest.raises(ValueError, match="RAND must be 16 bytes"):
        usim_authenticate(m, bytes(17), bytes(16), UsimSqnState())


def test_auts_uses_amf_zero_for_mac_s(m: Milenage) -> None:
    rand, sqn_ms = bytes(range(16)), join_sqn(77, 4)
    auts = make_auts(m, rand, sqn_ms)
    sqn_b = sqn_ms.to_bytes(6, "big")
    assert AMF_RESYNC == b"\x00\x00"
    assert auts[6:] == m.f1star(rand, sqn_b, b"\x00\x00")
    assert auts[6:] != m.f1star(rand, sqn_b, AMF)
    assert bytes(a ^ b for a, b in zip(auts[:6], m.f5star(rand), strict=True)) == sqn_b


def test_published_auts_values_verify() -> None:
    doc = load("milenage-auts-hostapd.json")
    m = Milenage(h(doc["K"]), h(doc["OPc"]))
    for case in doc["cases"]:
        sqn_ms = resynchronize(m, h(case["RAND"]), h(case["AUTS"]))
        if case["SQN_MS"] is not None:
            assert sqn_ms == int(case["SQN_MS"], 16)
            assert make_auts(m, h(case["RAND"]), sqn_ms).hex() == case["AUTS"]


@pytest.mark.parametrize("position", [0, 5, 6, 13])
def test_tampered_auts_is_refused(m: Milenage, position: int) -> None:
    rand = bytes(range(16))
    auts = bytearray(make_auts(m, rand, join_sqn(10, 2)))
    auts[position] ^= 0x80
    with pytest.raises(ResyncError, match="MAC-S verification failed"):
        resynchronize(m, rand, bytes(auts))


def test_auts_for_another_rand_is_refused(m: Milenage) -> None:
    auts = make_auts(m, bytes(16), 1)
    with pytest.raises(ResyncError, match="MAC-S"):
        resynchronize(m, bytes([1] * 16), auts)


@pytest.mark.parametrize("length", [0, 13, 15])
def test_auts_of_wrong_length_is_refused(m: Milenage, length: int) -> None:
    with pytest.raises(ResyncError, match=f"AUTS must be 14 bytes, got {length}"):
        resynchronize(m, bytes(16), bytes(length))


def test_auth_vector_is_immutable(m: Milenage) -> None:
    v: AuthVector = generate_vector(m, 33, AMF)
    with pytest.raises(AttributeError):
        v.sqn = 1  # type: ignore[misc]
