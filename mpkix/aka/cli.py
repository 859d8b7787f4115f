"""``mpkix aka …``: compute Milenage and EAP-AKA' key values from the command line.

Each subcommand prints one JSON object of lowercase hex strings. Bad hex or wrong lengths print a
message on stderr and exit with status 2. The crypto modules are imported inside the handlers so
``mpkix --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


class _UsageError(Exception):
    """A bad argument value (reported on stderr, exit status 2)."""


def _hex_arg(args: argparse.Namespace, name: str, length: int) -> bytes:
    text = getattr(args, name)
    flag = "--" + name.replace("_", "-")
    digits = text.strip()
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    try:
        value = bytes.fromhex(digits)
    except ValueError:
        raise _UsageError(f"{flag}: not a hex string: {text!r}") from None
    if len(value) != length:
        raise _UsageError(
            f"{flag}: expected {length} bytes ({2 * length} hex digits), got {len(value)}"
        )
    return value


def _text_arg(args: argparse.Namespace, name: str) -> bytes:
    value = str(getattr(args, name)).encode("utf-8")
    if not value:
        raise _UsageError(f"--{name.replace('_', '-')}: must not be empty")
    return value


def _emit(obj: dict[str, str]) -> int:
    print(json.dumps(obj))
    return 0


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        result: int = fn(args)
    except _UsageError as exc:
        print(f"mpkix aka: {exc}", file=sys.stderr)
        return 2
    return result


def _milenage(args: argparse.Namespace) -> int:
    from mpkix.aka.milenage import Milenage, compute_opc

    k = _hex_arg(args, "k", 16)
    opc = (
        _hex_arg(args, "opc", 16)
        if args.opc is not None
        else compute_opc(k, _hex_arg(args, "op", 16))
    )
    rand = _hex_arg(args, "rand", 16)
    sqn = _hex_arg(args, "sqn", 6)
    amf = _hex_arg(args, "amf", 2)
    mac_a, mac_s, res, ck, ik, ak, ak_star = Milenage(k, opc).compute_all(rand, sqn, amf)
    autn = bytes(s ^ a for s, a in zip(sqn, ak, strict=True)) + amf + mac_a
    values = {
        "opc": opc,
        "mac_a": mac_a,
        "mac_s": mac_s,
        "res": res,
        "ck": ck,
        "ik": ik,
        "ak": ak,
        "ak_star": ak_star,
        "autn": autn,
    }
    return _emit({name: value.hex() for name, value in values.items()})


def _eap_aka_prime_keys(args: argparse.Namespace) -> int:
    from mpkix.aka.kdf import derive_keys_from_aka

    identity = _text_arg(args, "identity")
    network_name = _text_arg(args, "network_name")
    ck = _hex_arg(args, "ck", 16)
    ik = _hex_arg(args, "ik", 16)
    autn = _hex_arg(args, "autn", 16)
    if len(network_name) > 0xFFFF:
        raise _UsageError("--network-name: longer than 65535 bytes")
    ck_prime, ik_prime, keys = derive_keys_from_aka(identity, ck, ik, network_name, autn)
    values = {
        "ck_prime": ck_prime,
        "ik_prime": ik_prime,
        "k_encr": keys.k_encr,
        "k_aut": keys.k_aut,
        "k_re": keys.k_re,
        "msk": keys.msk,
        "emsk": keys.emsk,
    }
    return _emit({name: value.hex() for name, value in values.items()})


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``aka`` group to ``mpkix``."""
    group = sub.add_parser(
        "aka",
        help="Milenage and EAP-AKA' computations (TS 35.206, RFC 5448/9048)",
        description="Milenage and EAP-AKA' computations (TS 35.206, RFC 5448/9048).",
    )
    cmds = group.add_subparsers(dest="aka_command", metavar="SUBCOMMAND", required=True)

    p = cmds.add_parser(
        "milenage",
        help="f1, f1*, f2-f5, f5* and AUTN for one K/OP(c)/RAND/SQN/AMF",
        description="Print OPc, MAC-A, MAC-S, RES, CK, IK, AK, AK* and AUTN as one JSON object.",
    )
    p.add_argument("--k", required=True, metavar="HEX", help="subscriber key K (16 bytes)")
    op = p.add_mutually_exclusive_group(required=True)
    op.add_argument("--op", metavar="HEX", help="operator variant OP (16 bytes)")
    op.add_argument("--opc", metavar="HEX", help="derived OPc (16 bytes)")
    p.add_argument("--rand", required=True, metavar="HEX", help="RAND (16 bytes)")
    p.add_argument("--sqn", required=True, metavar="HEX", help="SQN (6 bytes)")
    p.add_argument("--amf", required=True, metavar="HEX", help="AMF (2 bytes)")
    p.set_defaults(handler=lambda a: _run(_milenage, a))

    p = cmds.add_parser(
        "eap-aka-prime-keys",
        help="CK', IK', K_encr, K_aut, K_re, MSK, EMSK (RFC 5448 §3.3)",
        description="Derive the EAP-AKA' keys; SQN xor AK is the first 6 bytes of AUTN.",
    )
    p.add_argument("--identity", required=True, metavar="TEXT", help="EAP peer identity")
    p.add_argument("--network-name", required=True, metavar="TEXT", help="access network name")
    p.add_argument("--ck", required=True, metavar="HEX", help="CK (16 bytes)")
    p.add_argument("--ik", required=True, metavar="HEX", help="IK (16 bytes)")
    p.add_argument("--autn", required=True, metavar="HEX", help="AUTN (16 bytes)")
    p.set_defaults(handler=lambda a: _run(_eap_aka_prime_keys, a))
