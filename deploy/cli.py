"""``mpkix pki …``: the cluster TLS PKI for node-to-node mutual TLS."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _init(args: argparse.Namespace) -> int:
    from deploy.pki import init_cluster_pki

    made = init_cluster_pki(Path(args.dir), args.node)
    print(f"cluster TLS root in {args.dir}; new node certificates: {', '.join(made) or 'none'}")
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``pki`` group to ``mpkix``."""
    pki = sub.add_parser("pki", help="cluster TLS PKI (node mutual TLS)")
    g = pki.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = g.add_parser("init", help="create the TLS root and node certificates")
    p.add_argument("--dir", required=True)
    p.add_argument("--node", action="append", default=[], help="node name (repeatable)")
    p.set_defaults(handler=_init)
