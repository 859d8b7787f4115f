"""Milenage (3GPP TS 35.206) and the AKA procedures built on it (3GPP TS 33.102 §6.3).

``Milenage`` holds one subscriber's K and OPc and computes f1, f1*, f2, f3, f4, f5 and f5* with
AES-128 as the kernel (TS 35.206 §4.1). One AES-ECB encryptor context is created per key and
reused for every block, and all the blocks that depend only on TEMP are encrypted in one call,
so a complete authentication vector costs two calls into the AES library.

The AKA layer on top: the HSS/AuC side builds authentication vectors (``generate_vector``) and
recovers SQN_MS from AUTS (``resynchronize``); the USIM side checks AUTN and answers
(``usim_authenticate``), keeping its sequence-number state in ``sqn.UsimSqnState``.
"""

from __future__ import annotations

import hmac
import os
import threading
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpkix.aka.sqn import SQN_MAX, UsimSqnState

__all__ = [
    "AMF_RESYNC",
    "AuthVector",
    "Milenage",
    "ResyncError",
    "UsimMacFailure",
    "UsimResult",
    "UsimSuccess",
    "UsimSyncFailure",
    "compute_opc",
    "generate_vector",
    "make_auts",
    "resynchronize",
    "usim_authenticate",
]

KEY_LEN: Final = 16
RAND_LEN: Final = 16
SQN_LEN: Final = 6
AMF_LEN: Final = 2
AUTN_LEN: Final = 16
AUTS_LEN: Final = 14

#: Dummy AMF used for MAC-S in AUTS (TS 33.102 §6.3.3: "AMF ... set to all zeros").
AMF_RESYNC: Final = b"\x00\x00"

_MASK128: Final = (1 << 128) - 1
# TS 35.206 §4.1: rotations r1..r5 (bits, towards the most significant bit) and constants c1..c5.
_R1, _R2, _R3, _R4, _R5 = 64, 0, 32, 64, 96
_C1, _C2, _C3, _C4, _C5 = 0, 1, 2, 4, 8


def _check_len(name: str, value: bytes, length: int) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


def _rot(x: int, r: int) -> int:
    """Cyclic rotation of a 128-bit value by ``r`` bits towards the MSB (TS 35.206 §4.1)."""
    if r == 0:
        return x
    return ((x << r) | (x >> (128 - r))) & _MASK128


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _block(x: int) -> bytes:
    return x.to_bytes(16, "big")


def compute_opc(k: bytes, op: bytes) -> bytes:
    """OPc = OP ⊕ E_K(OP) (TS 35.206 §4.1)."""
    _check_len("K", k, KEY_LEN)
    _check_len("OP", op, KEY_LEN)
    enc = Cipher(algorithms.AES(bytes(k)), modes.ECB()).encryptor()
    return _block(_int(enc.update(bytes(op))) ^ _int(op))


class Milenage:
    """The Milenage functions for one subscriber key K and operator variant OPc.

    Safe to share between threads: the AES context is guarded by a lock.
    """

    __slots__ = ("_enc", "_lock", "_opc")

    def __init__(self, k: bytes, opc: bytes) -> None:
        _check_len("K", k, KEY_LEN)
        _check_len("OPc", opc, KEY_LEN)
        self._opc = _int(opc)
        self._enc = Cipher(algorithms.AES(bytes(k)), modes.ECB()).encryptor()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show key material
        return "Milenage(<secret>)"

    @classmethod
    def from_op(cls, k: bytes, op: bytes) -> Milenage:
        """Build from K and OP, deriving OPc first."""
        return cls(k, compute_opc(k, op))

    def _aes(self, data: bytes) -> bytes:
        with self._lock:
            return self._enc.update(data)

    def _temp(self, rand: bytes) -> int:
        _check_len("RAND", rand, RAND_LEN)
        return _int(self._aes(_block(_int(rand) ^ self._opc)))

    def _f1_input(self, temp: int, sqn: bytes, amf: bytes) -> bytes:
        _check_len("SQN", sqn, SQN_LEN)
        _check_len("AMF", amf, AMF_LEN)
        in1 = _int(bytes(sqn) + bytes(amf) + bytes(sqn) + bytes(amf))
        return _block(temp ^ _rot(in1 ^ self._opc, _R1) ^ _C1)

    def _f2345_inputs(self, temp: int) -> bytes:
        t = temp ^ self._opc
        return b"".join(
            _block(_rot(t, r) ^ c) for r, c in ((_R2, _C2), (_R3, _C3), (_R4, _C4), (_R5, _C5))
        )

    def _out(self, block: bytes) -> bytes:
        return _block(_int(block) ^ self._opc)

    def _f1_from_temp(self, temp: int, sqn: bytes, amf: bytes) -> tuple[bytes, bytes]:
        out1 = self._out(self._aes(self._f1_input(temp, sqn, amf)))
        return out1[:8], out1[8:]

    def _f2345_from_temp(self, temp: int) -> tuple[bytes, bytes, bytes, bytes]:
        out = self._aes(self._f2345_inputs(temp)[:48])
        out2, out3, out4 = self._out(out[:16]), self._out(out[16:32]), self._out(out[32:48])
        return out2[8:], out3, out4, out2[:6]

    def f1_both(self, rand: bytes, sqn: bytes, amf: bytes) -> tuple[bytes, bytes]:
        """(MAC-A, MAC-S) = f1 and f1* over RAND, SQN and AMF: the two halves of OUT1."""
        return self._f1_from_temp(self._temp(rand), sqn, amf)

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """Network authentication function f1: MAC-A (8 bytes)."""
        return self.f1_both(rand, sqn, amf)[0]

    def f1star(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """Re-synchronisation message authentication function f1*: MAC-S (8 bytes)."""
        return self.f1_both(rand, sqn, amf)[1]

    def f2345(self, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """(RES, CK, IK, AK) = f2, f3, f4, f5 of RAND."""
        return self._f2345_from_temp(self._temp(rand))

    def f5star(self, rand: bytes) -> bytes:
        """Anonymity key for re-synchronisation f5*: AK* (6 bytes)."""
        return self._out(self._aes(self._f2345_inputs(self._temp(rand))[48:]))[:6]

    def compute_all(
        self, rand: bytes, sqn: bytes, amf: bytes
    ) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes]:
        """All outputs at once: (MAC-A, MAC-S, RES, CK, IK, AK, AK*), two AES calls in total."""
        temp = self._temp(rand)
        out = self._aes(self._f1_input(temp, sqn, amf) + self._f2345_inputs(temp))
        out1, out2, out3, out4, out5 = (self._out(out[i : i + 16]) for i in range(0, 80, 16))
        return out1[:8], out1[8:], out2[8:], out3, out4, out2[:6], out5[:6]

    def _vector_outputs(
        self, rand: bytes, sqn: bytes, amf: bytes
    ) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """(MAC-A, RES, CK, IK, AK): what an authentication vector needs, in two AES calls."""
        temp = self._temp(rand)
        out = self._aes(self._f1_input(temp, sqn, amf) + self._f2345_inputs(temp)[:48])
        out1, out2, out3, out4 = (self._out(out[i : i + 16]) for i in range(0, 64, 16))
        return out1[:8], out2[8:], out3, out4, out2[:6]


def _xor(a: bytes, b: bytes) -> bytes:
    if len(a) != len(b):
        raise ValueError("XOR of unequal lengths")
    return (_int(a) ^ _int(b)).to_bytes(len(a), "big")


def _sqn_bytes(sqn: int) -> bytes:
    if not 0 <= sqn <= SQN_MAX:
        raise ValueError(f"SQN must be in 0..2^48-1, got {sqn}")
    return sqn.to_bytes(SQN_LEN, "big")


# --- HSS / AuC side (TS 33.102 §6.3.2) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthVector:
    """An authentication vector (TS 33.102 §6.3.2): RAND, XRES, CK, IK, AUTN (+ AK, SQN, AMF)."""

    rand: bytes
    xres: bytes = field(repr=False)
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    ak: bytes = field(repr=False)
    autn: bytes
    sqn: int
    amf: bytes

    @property
    def sqn_xor_ak(self) -> bytes:
        """SQN ⊕ AK, the first 6 bytes of AUTN (an input of CK'/IK', RFC 5448 §3.3)."""
        return self.autn[:SQN_LEN]


def generate_vector(m: Milenage, sqn: int, amf: bytes, rand: bytes | None = None) -> AuthVector:
    """Build an authentication vector; AUTN = SQN ⊕ AK ‖ AMF ‖ MAC-A (TS 33.102 §6.3.2).

    ``rand`` defaults to 16 fresh random bytes from the OS CSPRNG.
    """
    sqn_b = _sqn_bytes(sqn)
    _check_len("AMF", amf, AMF_LEN)
    if rand is None:
        rand = os.urandom(RAND_LEN)
    mac_a, res, ck, ik, ak = m._vector_outputs(rand, sqn_b, amf)
    autn = _xor(sqn_b, ak) + bytes(amf) + mac_a
    return AuthVector(bytes(rand), res, ck, ik, ak, autn, sqn, bytes(amf))


class ResyncError(ValueError):
    """AUTS did not verify (wrong MAC-S or malformed): the HSS must not trust its SQN_MS."""


def resynchronize(m: Milenage, rand: bytes, auts: bytes) -> int:
    """HSS side of re-synchronisation (TS 33.102 §6.3.5): verify MAC-S and return SQN_MS.

    ``rand`` is the RAND of the challenge the USIM rejected. Raises ``ResyncError`` when MAC-S
    does not match.
    """
    _check_len("RAND", rand, RAND_LEN)
    try:
        _check_len("AUTS", auts, AUTS_LEN)
    except ValueError as exc:
        raise ResyncError(str(exc)) from None
    sqn_ms = _xor(auts[:SQN_LEN], m.f5star(rand))
    mac_s = m.f1star(rand, sqn_ms, AMF_RESYNC)
    if not hmac.compare_digest(mac_s, bytes(auts[SQN_LEN:])):
        raise ResyncError("AUTS MAC-S verification failed")
    return _int(sqn_ms)


# --- USIM side (TS 33.102 §6.3.3) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsimSuccess:
    """AUTN verified and SQN fresh: the USIM answers with RES and hands CK, IK to the ME."""

    res: bytes = field(repr=False)
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    sqn: int
    amf: bytes


@dataclass(frozen=True, slots=True)
class UsimSyncFailure:
    """MAC-A verified but SQN not acceptable: send AUTS = SQN_MS ⊕ AK* ‖ MAC-S."""

    auts: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class UsimMacFailure:
    """MAC-A did not verify: the network is not authentic (send an authentication reject)."""

    reason: str = "MAC-A verification failed"


UsimResult = UsimSuccess | UsimSyncFailure | UsimMacFailure


def make_auts(m: Milenage, rand: bytes, sqn_ms: int) -> bytes:
    """AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, MAC-S = f1*(SQN_MS, RAND, AMF=0000) (TS 33.102 §6.3.3)."""
    sqn_b = _sqn_bytes(sqn_ms)
    return _xor(sqn_b, m.f5star(rand)) + m.f1star(rand, sqn_b, AMF_RESYNC)


def usim_authenticate(m: Milenage, rand: bytes, autn: bytes, sqn_state: UsimSqnState) -> UsimResult:
    """Check a challenge as the USIM does (TS 33.102 §6.3.3) and update ``sqn_state`` on success.

    Order per the spec: recover SQN with AK, verify MAC-A (failure → ``UsimMacFailure``), then
    check SQN freshness (failure → ``UsimSyncFailure`` carrying AUTS), then accept.
    """
    _check_len("RAND", rand, RAND_LEN)
    _check_len("AUTN", autn, AUTN_LEN)
    temp = m._temp(rand)
    res, ck, ik, ak = m._f2345_from_temp(temp)
    sqn_b = _xor(autn[:SQN_LEN], ak)
    amf = bytes(autn[SQN_LEN : SQN_LEN + AMF_LEN])
    xmac, _ = m._f1_from_temp(temp, sqn_b, amf)
    if not hmac.compare_digest(xmac, bytes(autn[SQN_LEN + AMF_LEN :])):
        return UsimMacFailure()
    sqn = _int(sqn_b)
    verdict = sqn_state.check(sqn)
    if not verdict.accepted:
        return UsimSyncFailure(make_auts(m, rand, sqn_state.sqn_ms), verdict.reason)
    sqn_state.accept(sqn)
    return UsimSuccess(res, ck, ik, sqn, amf)
