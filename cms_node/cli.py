"""``mpkix hss …`` (subscriber database) and ``mpkix cms …`` (CMS node)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _init(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from cms_node.node import create_endorsement_key
    from mpkix.endorsement import key_id

    state = Path(args.state_dir)
    pub = create_endorsement_key(state)
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (state / "endorsement.pub.pem").write_bytes(pem)
    print(
        f"operator endorsement key {key_id(pub).hex()[:16]}… in {state / 'endorsement.key'}; "
        f"register {state / 'endorsement.pub.pem'} with the CA (mpkix ca add-operator)"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from cms_node.node import CmsNode, CmsNodeConfig
    from mpkix.rpc.server import BuiltServer, serve_forever
    from mpkix.rpc.tls import TlsConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    node: CmsNode | None = None

    async def factory() -> BuiltServer:
        nonlocal node
        node = CmsNode(
            CmsNodeConfig(
                state_dir=Path(args.state_dir),
                hss_db=Path(args.hss),
                tls=TlsConfig.from_dir(args.tls_dir, args.node_name),
                ca_target=args.ca,
                operator_id=args.operator_id,
                network_name=args.network_name,
                listen=args.listen,
                public_address=args.public_address,
                ledger_target=args.ledger,
                metrics_listen=args.metrics_listen,
            )
        )
        return await node.start()

    async def close() -> None:
        if node is not None:
            await node.close()

    asyncio.run(
        serve_forever(
            factory,
            on_stop=[close],
            ready=lambda b: print(f"CMS node serving on port {b.port}", flush=True),
        )
    )
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``hss`` and ``cms`` groups to ``mpkix``."""
    from cms_node.hss.cli import register as register_hss

    register_hss(sub)
    cms = sub.add_parser("cms", help="operator Certificate Management Server node")
    g = cms.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = g.add_parser("init", help="create the operator endorsement key under STATE")
    p.add_argument("--state-dir", required=True)
    p.set_defaults(handler=_init)

    p = g.add_parser("serve", help="run the CMS node (Enrollment service)")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--hss", required=True, help="HSS database (mpkix hss generate)")
    p.add_argument("--tls-dir", required=True, help="cluster TLS directory (mpkix pki init)")
    p.add_argument("--node-name", default="cms-1")
    p.add_argument("--ca", required=True, help="CA node address host:port")
    p.add_argument("--operator-id", required=True, help="e.g. 310-260")
    p.add_argument("--network-name", default="WLAN", help="EAP-AKA' access network name")
    p.add_argument("--listen", default="127.0.0.1:7101")
    p.add_argument("--public-address", help="address written into ppCerts (default: --listen)")
    p.add_argument(
        "--ledger", metavar="HOST:PORT|FILE",
        help="ledger node or ledger file (user revocation/suspension)",
    )
    p.add_argument("--metrics-listen", metavar="HOST:PORT", help="Prometheus /metrics")
    p.set_defaults(handler=_serve)
