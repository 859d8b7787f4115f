"""Milenage f1..f5* against every published TS 35.207 / TS 35.208 test set (TS 35.206)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mpkix.aka.milenage import Milenage, compute_opc
from tests.mpkix.aka._vectors import h, load, milenage_sets

SETS = milenage_sets()
IDS = [s["id"] for s in SETS]


@pytest.mark.parametrize("s", SETS, ids=IDS)
def test_opc_from_op(s: dict[str, Any]) -> None:
    assert compute_opc(h(s["K"]), h(s["OP"])).hex() == s["OPc"]


@pytest.mark.parametrize("s", SETS, ids=IDS)
def test_each_function(s: dict[str, Any]) -> None:
    m = Milenage(h(s["K"]), h(s["OPc"]))
    rand, sqn, amf = h(s["RAND"]), h(s["SQN"]), h(s["AMF"])
    assert m.f1(rand, sqn, amf).hex() == s["f1"]
    assert m.f1star(rand, sqn, amf).hex() == s["f1star"]
    res, ck, ik, ak = m.f2345(rand)
    assert (res.hex(), ck.hex(), ik.hex(), ak.hex()) == (s["f2"], s["f3"], s["f4"], s["f5"])
    assert m.f5star(rand).hex() == s["f5star"]


@pytest.mark.parametrize("s", SETS, ids=IDS)
def test_compute_all_and_from_op(s: dict[str, Any]) -> None:
    m = Milenage.from_op(h(s["K"]), h(s["OP"]))
    outputs = m.compute_all(h(s["RAND"]), h(s["SQN"]), h(s["AMF"]))
    names = ("f1", "f1star", "f2", "f3", "f4", "f5", "f5star")
    assert [o.hex() for o in outputs] == [s[n] for n in names]


def test_one_instance_serves_many_rands() -> None:
    """The cached AES context carries no state from one computation to the next."""
    sets = load("milenage-ts35207.json")["test_sets"]
    first = sets[0]
    m = Milenage(h(first["K"]), h(first["OPc"]))
    for _ in range(3):
        assert m.f2345(h(first["RAND"]))[0].hex() == first["f2"]
        assert m.f1(h(first["RAND"]), h(first["SQN"]), h(first["AMF"])).hex() == first["f1"]


def test_concurrent_use_from_threads() -> None:
    sets = load("milenage-ts35208.json")["test_sets"]
    s = sets[19]
    m = Milenage(h(s["K"]), h(s["OPc"]))
    errors: list[str] = []

    def work() -> None:
        for _ in range(300):
            got = m.compute_all(h(s["RAND"]), h(s["SQN"]), h(s["AMF"]))
            if got[2].hex() != s["f2"] or got[0].hex() != s["f1"]:
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


K = bytes(range(16))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Milenage(K[:15], K), "K must be 16 bytes, got 15"),
        (lambda: Milenage(K, K + b"\x00"), "OPc must be 16 bytes, got 17"),
        (lambda: compute_opc(K, b""), "OP must be 16 bytes, got 0"),
        (lambda: compute_opc(b"\x00" * 32, K), "K must be 16 bytes, got 32"),
        (lambda: Milenage(K, K).f2345(K[:8]), "RAND must be 16 bytes, got 8"),
        (lambda: Milenage(K, K).f5star(K * 2), "RAND must be 16 bytes, got 32"),
        (lambda: Milenage(K, K).f1(K, b"\x00" * 5, b"\x00\x00"), "SQN must be 6 bytes, got 5"),
        (lambda: Milenage(K, K).f1star(K, b"\x00" * 6, b"\x00"), "AMF must be 2 bytes, got 1"),
        (lambda: Milenage(K, K).compute_all(K, b"\x00" * 7, b"\x00\x00"), "SQN must be 6"),
    ],
)
def test_wrong_lengths_raise_value_error(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_non_bytes_raise_type_error() -> None:
    with pytest.raises(TypeError, match="K must be bytes, not str"):
        Milenage("00" * 16, K)  # type: ignore[arg-type]


def test_repr_does_not_show_the_key() -> None:
    m = Milenage(bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc"), K)
    assert "465b" not in repr(m) and "secret" in repr(m)
