"""Command line of the registry deployment (``mpkix ledger deploy``, ``python -m
ledger.backends.deploy``): arguments without heavy imports, so ``mpkix --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.backends.deploy import Deployment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the deploy command (shared with ``mpkix ledger deploy``)."""
    parser.add_argument("--url", required=True, help="the node's JSON-RPC URL (http[s]://…)")
    parser.add_argument("--genesis", required=True, type=Path, help="genesis JSON (validators, …)")
    parser.add_argument(
        "--key-env",
        required=True,
        metavar="VAR",
        help="environment variable holding the deployer's private key (hex)",
    )
    parser.add_argument("--poa", action="store_true", help="the chain is PoA/QBFT (long extraData)")
    parser.add_argument(
        "--gas-price", type=int, default=None, help="legacy gas price in wei (0 on free-gas chains)"
    )
    parser.add_argument(
        "--ignore-chain-id",
        action="store_true",
        help="deploy even if the genesis chain_id differs from the node's",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for mining")
    parser.add_argument("--ca-bundle", default=None, help="CA bundle for an https RPC endpoint")
    parser.add_argument("--client-cert", default=None, help="client certificate (PEM), mutual TLS")
    parser.add_argument("--client-key", default=None, help="its private key (PEM)")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME: VALUE",
        help="extra HTTP header (e.g. 'Authorization: Bearer …'); repeatable",
    )
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    parser.add_argument(
        "--ledger-file",
        type=Path,
        default=None,
        help="also write a ledger file for --ledger of the MPKIX nodes (no key, no headers)",
    )


def run(args: argparse.Namespace) -> int:
    """Execute a parsed deploy command; 0 deployed, 1 deployment failed, 2 bad configuration."""
    from ledger.backends.deploy import DeployError, deploy_from_genesis
    from ledger.node.genesis import GenesisError, load_genesis

    prog = "mpkix ledger deploy"
    key = os.environ.get(args.key_env)
    if not key:
        print(f"{prog}: environment variable {args.key_env} is not set", file=sys.stderr)
        return 2
    headers: dict[str, str] = {}
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            print(f"{prog}: --header takes 'Name: value', got {h!r}", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    if args.client_key and not args.client_cert:
        print(f"{prog}: --client-key needs --client-cert", file=sys.stderr)
        return 2
    cert: str | tuple[str, str] | None = args.client_cert
    if args.client_cert and args.client_key:
        cert = (args.client_cert, args.client_key)
    try:
        cfg = load_genesis(args.genesis)
    except GenesisError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    try:
        result = deploy_from_genesis(
            args.url,
            key,
            cfg,
            check_chain_id=not args.ignore_chain_id,
            poa=args.poa,
            gas_price=args.gas_price,
            timeout=args.timeout,
            headers=headers or None,
            verify=args.ca_bundle if args.ca_bundle else True,
            cert=cert,
        )
    except DeployError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    text = json.dumps(result.to_json(), indent=2)
    if args.output is not None:
        args.output.write_text(text + "\n", encoding="utf-8")
    if args.ledger_file is not None:
        args.ledger_file.write_text(
            json.dumps(ledger_file_document(result, args), indent=2) + "\n", encoding="utf-8"
        )
    print(text)
    return 0


def ledger_file_document(result: Deployment, args: argparse.Namespace) -> dict[str, Any]:
    """A ``ledger/backends/config.py`` file for the deployed registry. Paths are written absolute;
    headers are left out (secrets: add them as ``"env:NAME"`` by hand)."""
    doc: dict[str, Any] = {
        "backend": "jsonrpc",
        "url": args.url,
        "registry_address": result.address,
        "from_block": result.block_number,
        "poa": bool(args.poa),
        "gas_price": args.gas_price,
    }
    tls = {
        k: str(Path(v).resolve())
        for k, v in (
            ("ca_bundle", args.ca_bundle),
            ("client_cert", args.client_cert),
            ("client_key", args.client_key),
        )
        if v
    }
    if tls:
        doc["tls"] = tls
    return doc
