"""EAP-AKA' key derivation against RFC 5448 Appendix C cases 1-4 (RFC 5448 §3.3, RFC 9048)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from mpkix.aka.kdf import (
    amf_separation_bit_set,
    derive_ck_ik_prime,
    derive_keys,
    derive_keys_from_aka,
    prf_prime,
)
from tests.mpkix.aka._vectors import h, rfc5448_cases

CASES = rfc5448_cases()
IDS = [f"case{c['case']}" for c in CASES]


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_ck_ik_prime(c: dict[str, Any]) -> None:
    ck_p, ik_p = derive_ck_ik_prime(
        h(c["CK"]), h(c["IK"]), c["network_name"].encode(), h(c["AUTN"])[:6]
    )
    assert (ck_p.hex(), ik_p.hex()) == (c["CK_prime"], c["IK_prime"])


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_session_keys(c: dict[str, Any]) -> None:
    keys = derive_keys(c["identity"].encode(), h(c["CK_prime"]), h(c["IK_prime"]))
    assert keys.k_encr.hex() == c["K_encr"]
    assert keys.k_aut.hex() == c["K_aut"]
    assert keys.k_re.hex() == c["K_re"]
    assert keys.msk.hex() == c["MSK"]
    assert keys.emsk.hex() == c["EMSK"]


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_both_steps_together(c: dict[str, Any]) -> None:
    ck_p, ik_p, keys = derive_keys_from_aka(
        c["identity"].encode(), h(c["CK"]), h(c["IK"]), c["network_name"].encode(), h(c["AUTN"])
    )
    assert (ck_p.hex(), ik_p.hex(), keys.msk.hex()) == (c["CK_prime"], c["IK_prime"], c["MSK"])


def test_identity_changes_every_key() -> None:
    c = CASES[0]
    a = derive_keys(b"0555444333222111", h(c["CK_prime"]), h(c["IK_prime"]))
    b = derive_keys(b"0555444333222112", h(c["CK_prime"]), h(c["IK_prime"]))
    assert all(getattr(a, f) != getattr(b, f) for f in ("k_encr", "k_aut", "k_re", "msk", "emsk"))


def test_prf_prime_follows_the_rfc_recurrence() -> None:
    key, data = b"k" * 32, b"EAP-AKA'id"
    t1 = hmac.digest(key, data + b"\x01", hashlib.sha256)
    t2 = hmac.digest(key, t1 + data + b"\x02", hashlib.sha256)
    assert prf_prime(key, data, 64) == t1 + t2
    assert prf_prime(key, data, 40) == (t1 + t2)[:40]
    assert prf_prime(key, data, 0) == b""
    assert len(prf_prime(key, data, 255 * 32)) == 255 * 32


@pytest.mark.parametrize("length", [-1, 255 * 32 + 1])
def test_prf_prime_length_bounds(length: int) -> None:
    with pytest.raises(ValueError, match="PRF' output length"):
        prf_prime(b"k", b"s", length)


CK, IK, SQN_AK = bytes(16), bytes(16), bytes(6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: derive_ck_ik_prime(CK[:15], IK, b"WLAN", SQN_AK), "CK must be 16 bytes, got 15"),
        (lambda: derive_ck_ik_prime(CK, IK + b"\0", b"WLAN", SQN_AK), "IK must be 16 bytes"),
        (lambda: derive_ck_ik_prime(CK, IK, b"WLAN", bytes(5)), "SQN xor AK must be 6 bytes"),
        (lambda: derive_ck_ik_prime(CK, IK, b"", SQN_AK), "network name must be 1..65535"),
        (lambda: derive_ck_ik_prime(CK, IK, b"x" * 65536, SQN_AK), "network name must be"),
        (lambda: derive_keys(b"id", CK[:8], IK), "CK' must be 16 bytes"),
        (lambda: derive_keys(b"id", CK, bytes(32)), "IK' must be 16 bytes"),
        (lambda: derive_keys_from_aka(b"id", CK, IK, b"WLAN", bytes(6)), "AUTN must be 16"),
    ],
)
def test_bad_lengths(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_text_where_bytes_are_needed_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="identity must be bytes"):
        derive_keys("0555444333222111", CK, IK)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="network_name must be bytes"):
        derive_ck_ik_prime(CK, IK, "WLAN", SQN_AK)  # type: ignore[arg-type]


def test_amf_separation_bit() -> None:
    assert amf_separation_bit_set(bytes(6) + b"\x80\x00" + bytes(8))
    assert not amf_separation_bit_set(bytes(6) + b"\x7f\xff" + bytes(8))
    assert amf_separation_bit_set(h(CASES[0]["AUTN"]))  # AMF c3ab


def test_keys_repr_hides_secrets() -> None:
    c = CASES[0]
    keys = derive_keys(b"0555444333222111", h(c["CK_prime"]), h(c["IK_prime"]))
    assert c["K_aut"][:16] not in repr(keys) and c["MSK"][:16] not in repr(keys)
