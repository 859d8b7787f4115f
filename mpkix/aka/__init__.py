"""Authentication core: Milenage, AKA sequence numbers, EAP-AKA' keys and packets.

Modules:

* ``milenage`` — Milenage f1…f5* (3GPP TS 35.206); authentication vectors, the USIM check and
  re-synchronisation (3GPP TS 33.102 §6.3).
* ``sqn`` — SQN = SEQ ‖ IND handling, the USIM's freshness state and the HSS counter
  (3GPP TS 33.102 Annex C).
* ``kdf`` — CK'/IK', PRF' and K_encr/K_aut/K_re/MSK/EMSK (RFC 5448 §3.3, RFC 9048).
* ``eap`` — EAP / EAP-AKA' packets, AT_MAC and message builders (RFC 3748, RFC 4187, RFC 5448).
* ``cli`` — ``mpkix aka …``.

The main names are re-exported here and imported on first use, so importing ``mpkix.aka.cli``
(for ``mpkix --help``) does not load the crypto backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpkix.aka.eap import (
        EapCode,
        EapFormatError,
        EapPacket,
        authentication_reject,
        challenge_request,
        challenge_response,
        client_error,
        compute_at_mac,
        decode_packet,
        failure,
        identity_response,
        parse_challenge_request,
        parse_challenge_response,
        success,
        sync_failure_response,
        verify_at_mac,
    )
    from mpkix.aka.kdf import AkaPrimeKeys, derive_ck_ik_prime, derive_keys, prf_prime
    from mpkix.aka.milenage import (
        AuthVector,
        Milenage,
        ResyncError,
        UsimMacFailure,
        UsimResult,
        UsimSuccess,
        UsimSyncFailure,
        compute_opc,
        generate_vector,
        resynchronize,
        usim_authenticate,
    )
    from mpkix.aka.sqn import UsimSqnState, next_sqn

__all__ = [
    "AkaPrimeKeys",
    "AuthVector",
    "EapCode",
    "EapFormatError",
    "EapPacket",
    "Milenage",
    "ResyncError",
    "UsimMacFailure",
    "UsimResult",
    "UsimSqnState",
    "UsimSuccess",
    "UsimSyncFailure",
    "authentication_reject",
    "challenge_request",
    "challenge_response",
    "client_error",
    "compute_at_mac",
    "compute_opc",
    "decode_packet",
    "derive_ck_ik_prime",
    "derive_keys",
    "failure",
    "generate_vector",
    "identity_response",
    "next_sqn",
    "parse_challenge_request",
    "parse_challenge_response",
    "prf_prime",
    "resynchronize",
    "success",
    "sync_failure_response",
    "usim_authenticate",
    "verify_at_mac",
]

_MODULES: dict[str, tuple[str, ...]] = {
    "mpkix.aka.eap": (
        "EapCode",
        "EapFormatError",
        "EapPacket",
        "authentication_reject",
        "challenge_request",
        "challenge_response",
        "client_error",
        "compute_at_mac",
        "decode_packet",
        "failure",
        "identity_response",
        "parse_challenge_request",
        "parse_challenge_response",
        "success",
        "sync_failure_response",
        "verify_at_mac",
    ),
    "mpkix.aka.kdf": (
        "AkaPrimeKeys",
        "derive_ck_ik_prime",
        "derive_keys",
        "prf_prime",
    ),
    "mpkix.aka.milenage": (
        "AuthVector",
        "Milenage",
        "ResyncError",
        "UsimMacFailure",
        "UsimResult",
        "UsimSuccess",
        "UsimSyncFailure",
        "compute_opc",
        "generate_vector",
        "resynchronize",
        "usim_authenticate",
    ),
    "mpkix.aka.sqn": (
        "UsimSqnState",
        "next_sqn",
    ),
}
_EXPORTS: dict[str, str] = {name: mod for mod, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mpkix.aka' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
