"""``mpkix cma …``: the phone app (CMA) — provision the emulated SIM, enroll, list."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any


def _pin(args: argparse.Namespace) -> bytes:
    if args.pin_env:
        value = os.environ.get(args.pin_env)
        if value is None:
            raise SystemExit(f"environment variable {args.pin_env} is not set")
        return value.encode()
    if not sys.stdin.isatty():
        raise SystemExit("give the keystore PIN with --pin-env VAR (no terminal to ask on)")
    return getpass.getpass("keystore passphrase/PIN: ").encode()


def _provision(args: argparse.Namespace) -> int:
    """Emulates the operator provisioning the SIM and the user typing in their own data."""
    from cma.keystore import Keystore
    from cma.usim import EmulatedUsim
    from cms_node.hss.sqlite_store import SqliteSubscriberStore
    from mpkix.aka.sqn import UsimSqnState

    store = SqliteSubscriberStore(Path(args.hss), create=False)
    try:
        sub = store.get(args.imsi)
    finally:
        store.close()
    if sub is None:
        print(f"mpkix cma provision: IMSI {args.imsi} is not in {args.hss}", file=sys.stderr)
        return 1
    d = Path(args.dir)
    ks = Keystore(d)
    EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()).save(d / "usim.json")
    ks.save_profile(
        {
            "given_name": sub.given_name,
            "family_name": sub.family_name,
            "gender": sub.gender,
            "birthday": sub.birthday.isoformat(),
            "msisdn": sub.msisdn,
            "street_number": sub.street_number,
            "street": sub.street,
            "city": sub.city,
            "state": sub.state,
            "zip": sub.zip,
        }
    )
    print(f"CMA provisioned in {d} for IMSI {sub.imsi[:6]}…")
    return 0


def _enroll(args: argparse.Namespace) -> int:
    import grpc
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from cma.client import enroll
    from cma.enrollment import EnrollmentError, EnrollmentFlow
    from cma.keystore import Keystore, KeystoreError, generate_key
    from cma.usim import EmulatedUsim
    from mpkix.attributes import (
        ATTRIBUTE_IDS,
        AttributeValueError,
        canonical_values_from_mapping,
    )
    from mpkix.rpc.tls import TlsConfig, secure_channel

    d = Path(args.dir)
    pin = _pin(args)
    ks = Keystore(d)
    try:
        usim = EmulatedUsim.load(d / "usim.json")
        attributes = canonical_values_from_mapping(
            ks.load_profile(), args.attribute or ATTRIBUTE_IDS
        )
    except (FileNotFoundError, KeystoreError, AttributeValueError) as e:
        print(f"mpkix cma enroll: {e}", file=sys.stderr)
        return 1
    roots = (
        x509.load_pem_x509_certificates(Path(args.trust_ca).read_bytes()) if args.trust_ca else None
    )
    key = generate_key(args.key_type)
    flow = EnrollmentFlow(
        usim=usim,
        attributes=attributes,
        key=key,
        network_name=args.network_name,
        signature_profile=args.profile or "",
    )
    channel = secure_channel(args.cms, TlsConfig.from_files(args.tls_ca))
    try:
        with channel:
            cert, resp = enroll(channel, flow, trusted_roots=roots)
    except EnrollmentError as e:
        print(f"mpkix cma enroll: refused the answer: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"mpkix cma enroll: {e.code().name}: {e.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    try:
        ks.install(flow.subject_id, key, pin, resp.bundle)
    except KeystoreError as e:
        print(f"mpkix cma enroll: {e}", file=sys.stderr)
        return 1
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        (out / f"ppcert-{args.label}.pem").write_bytes(pem)
        (out / f"bundle-{args.label}.pb").write_bytes(resp.bundle.SerializeToString())
        (out / f"key-{args.label}.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(pin),
            )
        )
    print(
        json.dumps(
            {
                "subject_id": flow.subject_id,
                "serial": format(cert.serial_number, "x"),
                "not_after": cert.not_valid_after_utc.isoformat(),
                "transaction_id": flow.transaction_id,
            }
        )
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from cryptography import x509

    from cma.keystore import Keystore
    from mpkix.profile.ppcert import parse_ppcert

    ks = Keystore(Path(args.dir))
    rows = []
    for s in ks.subjects():
        cert = x509.load_pem_x509_certificates((ks.dir / "certs" / f"{s}.pem").read_bytes())[0]
        v = parse_ppcert(cert)
        rows.append(
            {
                "subject_id": s,
                "operator": v.operator_id,
                "profile": v.signature_profile,
                "not_after": v.not_after.isoformat(),
                "attributes": sorted(v.sealed),
            }
        )
    print(json.dumps(rows, indent=1))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    import grpc

    from cma.lifecycle import change_status
    from cma.usim import EmulatedUsim
    from mpkix.rpc.tls import TlsConfig, secure_channel
    from mpkix.v1 import lifecycle_pb2

    usim = EmulatedUsim.load(Path(args.dir) / "usim.json")
    action = (
        lifecycle_pb2.SUSPEND if args.suspend else
        lifecycle_pb2.RESUME if args.resume else lifecycle_pb2.REVOKE
    )
    channel = secure_channel(args.cms, TlsConfig.from_files(args.tls_ca))
    try:
        with channel:
            resp = change_status(
                channel, usim, action, subject_id=args.subject or "", reason=args.reason,
                network_name=args.network_name,
            )
    except grpc.RpcError as e:
        print(f"mpkix cma revoke: {e.code().name}: {e.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    print(json.dumps([
        {"subject_id": c.subject_id, "serial": c.serial, "state": c.state, "reason": c.reason,
         "tx": c.tx_hash.hex()} for c in resp.certificates
    ], indent=1))
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``cma`` group to ``mpkix``."""
    cma = sub.add_parser("cma", help="phone app (CMA): provision, enroll, list")
    g = cma.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = g.add_parser("provision", help="set up an emulated USIM and profile from an HSS record")
    p.add_argument("--dir", required=True, help="CMA directory")
    p.add_argument("--hss", required=True)
    p.add_argument("--imsi", required=True)
    p.set_defaults(handler=_provision)

    p = g.add_parser("enroll", help="ceIssuance: EAP-AKA', ppCSR, endorsed ppCert")
    p.add_argument("--dir", required=True, help="CMA directory (mpkix cma provision)")
    p.add_argument("--cms", required=True, help="CMS address host:port")
    p.add_argument("--tls-ca", required=True, help="PEM root that authenticates the CMS")
    p.add_argument("--trust-ca", help="PEM of the MPKIX CA root(s) the ppCert must chain to")
    p.add_argument("--pin-env", help="read the keystore passphrase/PIN from $VAR")
    p.add_argument("--key-type", choices=["p256", "rsa2048"], default="p256")
    p.add_argument("--profile", help="signature profile mss: URI")
    p.add_argument("--attribute", action="append", help="attribute to seal (default: all)")
    p.add_argument("--network-name", default="WLAN")
    p.add_argument("--out", help="also write ppcert-LABEL.pem, key-LABEL.pem, bundle-LABEL.pb here")
    p.add_argument("--label", default="user")
    p.set_defaults(handler=_enroll)

    p = g.add_parser("revoke", help="revoke/suspend/resume ppCerts through the CMS (EAP-AKA')")
    p.add_argument("--dir", required=True, help="CMA directory (only usim.json is needed)")
    p.add_argument("--cms", required=True)
    p.add_argument("--tls-ca", required=True)
    p.add_argument("--subject", help="subject id; default: every ppCert of this SIM")
    p.add_argument("--reason", type=int, default=0, help="RFC 5280 CRLReason (0,1,3,4,5,9)")
    p.add_argument("--network-name", default="WLAN")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--suspend", action="store_true")
    mode.add_argument("--resume", action="store_true")
    p.set_defaults(handler=_revoke)

    p = g.add_parser("list", help="installed ppCerts")
    p.add_argument("--dir", required=True)
    p.set_defaults(handler=_list)
