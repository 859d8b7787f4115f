"""EAP-AKA' key derivation (RFC 5448 §3.3 as updated by RFC 9048 §3.3–3.4; TS 33.402 Annex A.2).

1. CK' ‖ IK' = HMAC-SHA-256(CK ‖ IK, S) with S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1, FC = 0x20,
   P0 = access network name, P1 = SQN ⊕ AK (TS 33.402 Annex A.2, TS 33.220 Annex B.2).
2. MK = PRF'(IK' ‖ CK', "EAP-AKA'" ‖ Identity), with PRF' the HMAC-SHA-256 expansion of
   RFC 5448 §3.4; K_encr = MK[0..15], K_aut = MK[16..47], K_re = MK[48..79],
   MSK = MK[80..143], EMSK = MK[144..207].
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "AMF_SEPARATION_BIT",
    "AkaPrimeKeys",
    "amf_separation_bit_set",
    "derive_ck_ik_prime",
    "derive_keys",
    "derive_keys_from_aka",
    "prf_prime",
]

FC_CK_IK_PRIME: Final = 0x20
_LABEL: Final = b"EAP-AKA'"
_MK_LEN: Final = 16 + 32 + 32 + 64 + 64
_SHA256_LEN: Final = 32
#: Bit 0 (the most significant) of AMF; must be 1 for EAP-AKA' (RFC 5448 §3, TS 33.402 §6.4).
AMF_SEPARATION_BIT: Final = 0x80


def _need(name: str, value: bytes, length: int) -> None:
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


def derive_ck_ik_prime(
    ck: bytes, ik: bytes, network_name: bytes, sqn_xor_ak: bytes
) -> tuple[bytes, bytes]:
    """(CK', IK') from CK, IK, the access network name and SQN ⊕ AK (TS 33.402 Annex A.2)."""
    _need("CK", ck, 16)
    _need("IK", ik, 16)
    _need("SQN xor AK", sqn_xor_ak, 6)
    if not isinstance(network_name, bytes | bytearray):
        raise TypeError("network_name must be bytes")
    if not 1 <= len(network_name) <= 0xFFFF:
        raise ValueError("network name must be 1..65535 bytes (RFC 5448 §3.1)")
    s = (
        bytes([FC_CK_IK_PRIME])
        + bytes(network_name)
        + len(network_name).to_bytes(2, "big")
        + bytes(sqn_xor_ak)
        + len(sqn_xor_ak).to_bytes(2, "big")
    )
    out = hmac.digest(bytes(ck) + bytes(ik), s, hashlib.sha256)
    return out[:16], out[16:]


def prf_prime(key: bytes, data: bytes, length: int) -> bytes:
    """PRF'(K, S) = T1 ‖ T2 ‖ … truncated to ``length`` (RFC 5448 §3.4).

    T1 = HMAC-SHA-256(K, S ‖ 0x01), Tn = HMAC-SHA-256(K, Tn-1 ‖ S ‖ n), n ≤ 255.
    """
    if length < 0 or length > 255 * _SHA256_LEN:
        raise ValueError(f"PRF' output length must be 0..{255 * _SHA256_LEN}, got {length}")
    out = bytearray()
    t = b""
    n = 1
    while len(out) < length:
        t = hmac.digest(key, t + data + bytes([n]), hashlib.sha256)
        out += t
        n += 1
    return bytes(out[:length])


@dataclass(frozen=True, slots=True)
class AkaPrimeKeys:
    """Keys of one EAP-AKA' authentication (RFC 5448 §3.3). Secrets stay out of ``repr``."""

    k_encr: bytes = field(repr=False)
    k_aut: bytes = field(repr=False)
    k_re: bytes = field(repr=False)
    msk: bytes = field(repr=False)
    emsk: bytes = field(repr=False)


def derive_keys(identity: bytes, ck_prime: bytes, ik_prime: bytes) -> AkaPrimeKeys:
    """K_encr, K_aut, K_re, MSK, EMSK from MK = PRF'(IK' ‖ CK', "EAP-AKA'" ‖ Identity).

    ``identity`` is the peer identity exactly as sent in the EAP exchange (RFC 9048 §3.4).
    """
    if not isinstance(identity, bytes | bytearray):
        raise TypeError("identity must be bytes")
    _need("CK'", ck_prime, 16)
    _need("IK'", ik_prime, 16)
    mk = prf_prime(bytes(ik_prime) + bytes(ck_prime), _LABEL + bytes(identity), _MK_LEN)
    return AkaPrimeKeys(mk[:16], mk[16:48], mk[48:80], mk[80:144], mk[144:208])


def derive_keys_from_aka(
    identity: bytes, ck: bytes, ik: bytes, network_name: bytes, autn: bytes
) -> tuple[bytes, bytes, AkaPrimeKeys]:
    """Both steps at once: (CK', IK', keys), with SQN ⊕ AK taken from the first 6 bytes of AUTN."""
    _need("AUTN", autn, 16)
    ck_prime, ik_prime = derive_ck_ik_prime(ck, ik, network_name, autn[:6])
    return ck_prime, ik_prime, derive_keys(identity, ck_prime, ik_prime)


def amf_separation_bit_set(autn: bytes) -> bool:
    """True when the AMF in AUTN has the separation bit set, as EAP-AKA' requires (RFC 5448 §3)."""
    _need("AUTN", autn, 16)
    return bool(autn[6] & AMF_SEPARATION_BIT)
