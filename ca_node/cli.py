"""``mpkix ca …``: create a CA, register operator keys, run a CA node."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def _passphrase(args: argparse.Namespace) -> bytes | None:
    var = getattr(args, "passphrase_env", None)
    if not var:
        return None
    value = os.environ.get(var)
    if value is None:
        raise SystemExit(f"environment variable {var} is not set")
    return value.encode()


def _init(args: argparse.Namespace) -> int:
    from ca_node.keys import create_ca

    state = Path(args.state_dir)
    try:
        material = create_ca(
            state / "ca", key_type=args.key_type, name=args.name, passphrase=_passphrase(args)
        )
    except FileExistsError as e:
        print(f"mpkix ca init: {e}", file=sys.stderr)
        return 1
    ops = state / "operators.json"
    if not ops.exists():
        ops.write_text('{"operators": []}\n')
    print(f"CA created in {state / 'ca'}: {material.issuing_cert.subject.rfc4514_string()}")
    return 0


def _add_operator(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from mpkix.endorsement import PublicKey, StaticOperatorKeys, key_id

    path = Path(args.state_dir) / "operators.json"
    current = StaticOperatorKeys.from_file(path) if path.exists() else StaticOperatorKeys([])
    entries: dict[str, list[PublicKey]] = {}
    for k in current._by_id.values():
        entries.setdefault(k.operator_id, []).append(k.public_key)
    pub = serialization.load_pem_public_key(Path(args.key).read_bytes())
    entries.setdefault(args.operator_id, []).append(pub)  # type: ignore[arg-type]
    StaticOperatorKeys.write(path, entries)
    print(f"registered key {key_id(pub).hex()[:16]}… for operator {args.operator_id}")  # type: ignore[arg-type]
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from ca_node.admin_service import DEFAULT_ADMINS
    from ca_node.node import CaNode, CaNodeConfig
    from mpkix.rpc.server import BuiltServer, serve_forever
    from mpkix.rpc.tls import TlsConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    node: CaNode | None = None

    async def factory() -> BuiltServer:
        nonlocal node
        node = CaNode(
            CaNodeConfig(
                state_dir=Path(args.state_dir),
                tls=TlsConfig.from_dir(args.tls_dir, args.node_name),
                listen=args.listen,
                validity_days=args.validity_days,
                ca_passphrase=_passphrase(args),
                ledger_target=args.ledger,
                anchor_window_s=args.anchor_window_ms / 1000,
                admin_clients=frozenset(args.admin_client or DEFAULT_ADMINS),
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
            ready=lambda b: print(f"CA node serving on port {b.port}", flush=True),
        )
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    import json

    import grpc

    from mpkix.rpc.tls import TlsConfig, secure_channel
    from mpkix.v1 import ca_admin_pb2, ca_admin_pb2_grpc, lifecycle_pb2

    action = (
        lifecycle_pb2.SUSPEND if args.suspend
        else lifecycle_pb2.RESUME if args.resume
        else lifecycle_pb2.REVOKE
    )
    try:
        tls = TlsConfig.from_dir(args.tls_dir, args.node_name)
    except OSError as e:
        print(f"mpkix ca revoke: cannot read the admin TLS material: {e}", file=sys.stderr)
        return 2
    with secure_channel(args.ca, tls) as ch:
        try:
            st = ca_admin_pb2_grpc.CaAdminStub(ch).ChangeStatus(
                ca_admin_pb2.CaChangeStatusRequest(
                    serial=args.serial, action=action, reason=args.reason
                ),
                timeout=args.timeout,
            )
        except grpc.RpcError as e:
            print(f"mpkix ca revoke: {e.code().name}: {e.details()}", file=sys.stderr)  # type: ignore[attr-defined]
            return 1
    print(json.dumps({
        "serial": st.serial, "state": st.state, "reason": st.reason,
        "changed_at": st.changed_at.ToDatetime().isoformat() + "Z", "tx": st.tx_hash.hex(),
    }))
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``ca`` group to ``mpkix``."""
    ca = sub.add_parser("ca", help="certificate authority node")
    g = ca.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = g.add_parser("init", help="create the CA (root + issuing) under STATE/ca")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--name", default="MPKIX CA")
    p.add_argument("--key-type", choices=["p256", "rsa2048"], default="p256")
    p.add_argument("--passphrase-env", help="encrypt the CA keys with $VAR")
    p.set_defaults(handler=_init)

    p = g.add_parser("add-operator", help="register an operator endorsement key (PEM)")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--operator-id", required=True)
    p.add_argument("--key", required=True, help="operator endorsement public key, PEM")
    p.set_defaults(handler=_add_operator)

    p = g.add_parser("serve", help="run the CA node (Issuance service, mutual TLS)")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--tls-dir", required=True, help="cluster TLS directory (mpkix pki init)")
    p.add_argument("--node-name", default="ca-1")
    p.add_argument("--listen", default="127.0.0.1:7001")
    p.add_argument("--validity-days", type=int, default=365)
    p.add_argument("--passphrase-env")
    p.add_argument(
        "--ledger", metavar="HOST:PORT|FILE",
        help="ledger node, or a ledger file (JSON-RPC networks); issued ppCerts are anchored there",
    )
    p.add_argument("--anchor-window-ms", type=int, default=200, help="batching window")
    p.add_argument(
        "--admin-client", action="append", metavar="NAME",
        help="client certificate CN allowed to call CaAdmin (repeatable; default ca-admin)",
    )
    p.add_argument("--metrics-listen", metavar="HOST:PORT", help="Prometheus /metrics")
    p.set_defaults(handler=_serve)

    p = g.add_parser(
        "revoke", help="revoke (or suspend/resume) a ppCert on the ledger through the CA node"
    )
    p.add_argument("--ca", required=True, metavar="HOST:PORT", help="the CA node")
    p.add_argument("--tls-dir", required=True, help="cluster TLS directory (mpkix pki init)")
    p.add_argument("--node-name", default="ca-admin", help="admin client certificate name")
    p.add_argument("--serial", required=True, help="certificate serial, hex")
    p.add_argument("--reason", type=int, default=0,
                   help="RFC 5280 CRLReason for revoke: 0-5, 9, 10 (default 0)")
    p.add_argument("--timeout", type=float, default=60.0)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--suspend", action="store_true")
    mode.add_argument("--resume", action="store_true")
    p.set_defaults(handler=_revoke)
