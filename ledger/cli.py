"""``mpkix ledger …``: run the embedded ledger node, write a genesis, deploy, inspect."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _serve(args: argparse.Namespace) -> int:
    from ledger.node.server import config_from_args, serve

    return serve(config_from_args(args))


def _genesis(args: argparse.Namespace) -> int:
    """Genesis from node state directories: CA nodes anchor their issuing CA certificate,
    operator CMS nodes their endorsement key; each node's validator address comes from its
    ``ledger.key``."""
    from deploy.genesis import cluster_genesis

    cas = [Path(p) for p in args.ca]
    ops = {}
    for spec in args.operator:
        op_id, _, path = spec.partition("=")
        if not path:
            print("mpkix ledger genesis: --operator takes ID=STATE_DIR", file=sys.stderr)
            return 2
        ops[op_id] = Path(path)
    cfg = cluster_genesis(cas, ops, chain_id=args.chain_id, threshold=args.threshold)
    from ledger.node.genesis import write_genesis

    write_genesis(Path(args.out), cfg)
    print(f"genesis with {len(cfg.validators)} validators and {len(cfg.trust_anchors)} trust "
          f"anchors → {args.out}; registry at 0x{cfg.contract_address.hex()}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from ledger.backends.config import LedgerConfigError, open_backend
    from mpkix.rpc.tls import TlsConfig

    tls = TlsConfig.from_dir(args.tls_dir, args.node_name) if args.tls_dir else None
    try:
        backend = open_backend(args.ledger, tls)
    except LedgerConfigError as e:
        print(f"mpkix ledger status: {e}", file=sys.stderr)
        return 2
    try:
        st = backend.status()
    finally:
        backend.close()
    print(json.dumps({
        "chain_id": st.chain_id,
        "registry": "0x" + st.registry_address.hex(),
        "head_block": st.head_block,
        "head_time": st.head_time,
        "event_cursor": st.event_cursor,
    }, indent=1))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from ledger.backends.deploy_cli import run

    return run(args)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``ledger`` group to ``mpkix``."""
    from ledger.node.server_args import add_arguments

    led = sub.add_parser("ledger", help="permissioned EVM ledger (CertificateRegistry)")
    g = led.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = g.add_parser("serve", help="run the embedded ledger node (py-evm, gRPC Ledger service)")
    add_arguments(p)
    p.set_defaults(handler=_serve)

    p = g.add_parser("genesis", help="write a genesis file from CA and CMS state directories")
    p.add_argument("--out", required=True)
    p.add_argument("--ca", action="append", default=[], help="CA node state dir (repeatable)")
    p.add_argument("--operator", action="append", default=[], help="ID=CMS_STATE_DIR")
    p.add_argument("--chain-id", type=int, default=6063)
    p.add_argument("--threshold", type=int, default=0, help="approvals k (0: majority)")
    p.set_defaults(handler=_genesis)

    p = g.add_parser(
        "deploy", help="deploy the CertificateRegistry on a JSON-RPC network (Besu, anvil, …)"
    )
    from ledger.backends.deploy_cli import add_arguments

    add_arguments(p)
    p.set_defaults(handler=_deploy)

    p = g.add_parser("status", help="chain id, head, registry address of a ledger node")
    p.add_argument("--ledger", required=True, metavar="HOST:PORT|FILE", help="ledger node or file")
    p.add_argument("--tls-dir", help="cluster TLS directory (client certificate)")
    p.add_argument("--node-name", default="ca-1")
    p.set_defaults(handler=_status)
