"""The ``make demo`` walk-through: a real CA node and CMS node on 127.0.0.1 with TLS, a
generated HSS, and two users (an adult and a minor) enrolling through ceIssuance."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import Keystore, generate_key
from cma.usim import EmulatedUsim
from cms_node.hss.generator import populate
from cms_node.hss.model import Subscriber
from cms_node.hss.sqlite_store import SqliteSubscriberStore
from deploy.local import LocalCluster, OperatorSpec
from mpkix.aka.sqn import UsimSqnState
from mpkix.anonymize import age_on
from mpkix.attributes import canonical_values
from mpkix.profile.ppcert import parse_ppcert
from mpkix.rpc.tls import secure_channel

OPERATOR = "310-260"
DEMO_PIN = b"demo-pin-1234"


def say(step: str, text: str) -> None:
    print(f"[{step:>9}] {text}", flush=True)


def _pick_users(hss: Path, today: dt.date) -> dict[str, Subscriber]:
    store = SqliteSubscriberStore(hss, create=False)
    picked: dict[str, Subscriber] = {}
    try:
        for s in store.iter_all():
            age = age_on(s.birthday, today)
            if "adult" not in picked and 25 <= age <= 60:
                picked["adult"] = s
            elif "minor" not in picked and 13 <= age < 18:
                picked["minor"] = s
            if len(picked) == 2:
                break
    finally:
        store.close()
    return picked


def run_demo(out: Path, subscribers: int, seed: int) -> int:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    today = dt.datetime.now(dt.UTC).date()
    summary: dict[str, object] = {"operator": OPERATOR, "users": {}}

    hss = out / "hss-310260.sqlite"
    say("hss", f"generating {subscribers:,} synthetic subscribers (seed {seed}) → {hss.name}")
    t0 = time.perf_counter()
    store = SqliteSubscriberStore(hss)
    try:
        populate(store, subscribers, seed, mnc="260")
    finally:
        store.close()
    say("hss", f"done in {time.perf_counter() - t0:.1f} s")

    cluster = LocalCluster(out / "cluster", [OperatorSpec(OPERATOR, hss)], ca_name="MPKIX Demo CA")
    say("cluster", "creating the cluster TLS root, the CA (root + issuing) and the operator key")
    cluster.start()
    try:
        assert cluster.ca is not None
        chain = list(cluster.ca.authority.chain)
        (out / "ca.pem").write_bytes(chain[-1].public_bytes(serialization.Encoding.PEM))
        (out / "ca-chain.pem").write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        )
        say("cluster", f"CA node on 127.0.0.1:{cluster.ca_port} (mutual TLS, Issuance service)")
        say("cluster", f"CMS node of {OPERATOR} on 127.0.0.1:{cluster.cms_ports[OPERATOR]} (TLS)")
        users = _pick_users(hss, today)
        for label, sub in users.items():
            summary["users"][label] = _enroll_one(out, cluster, label, sub, today, chain[-1])  # type: ignore[index]
    finally:
        cluster.stop()
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    say("done", f"artifacts in {out}/: ca.pem, ca-chain.pem, ppcert-*.pem, bundle-*.pb, summary.json")
    return 0


def _enroll_one(
    out: Path,
    cluster: LocalCluster,
    label: str,
    sub: Subscriber,
    today: dt.date,
    root: x509.Certificate,
) -> dict[str, object]:
    age = age_on(sub.birthday, today)
    print()
    say(label, f"phone of {"an" if label == "adult" else "a"} {label} subscriber (age {age}), IMSI {sub.imsi[:6]}…{sub.imsi[-2:]}")
    cma_dir = out / f"cma-{label}"
    usim = EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState())
    usim.save(Keystore(cma_dir).dir / "usim.json")
    attributes = canonical_values(sub)
    flow = EnrollmentFlow(usim=usim, attributes=attributes, key=generate_key())
    say(label, "key pair generated on the device (ECDSA P-256)")
    ch = secure_channel(f"127.0.0.1:{cluster.cms_ports[OPERATOR]}", cluster.client_tls())
    assert isinstance(ch, grpc.Channel)
    t0 = time.perf_counter()
    with ch:
        cert, resp = enroll(ch, flow, trusted_roots=[root])
    ms = (time.perf_counter() - t0) * 1000
    say(label, "EAP-AKA' mutual authentication with the CMS: network AUTN and AT_MAC verified")
    say(label, f"ppCSR sealed {len(attributes)} attributes: {', '.join(sorted(attributes))}")
    say(label, "CMS matched every sealed attribute against the HSS and endorsed the ppCSR")
    view = parse_ppcert(cert)
    say(label, f"CA issued ppCert serial {cert.serial_number:x} in {ms:.0f} ms")
    say(label, f"  subject      : {cert.subject.rfc4514_string()} (pseudonym only)")
    say(label, f"  profile      : {view.signature_profile}")
    say(label, f"  CMS (SIA)    : {view.cms_address}")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    der = cert.public_bytes(serialization.Encoding.DER)
    leaked = [v for v in (sub.family_name, sub.given_name, sub.imsi, sub.msisdn) if v.encode() in der]
    say(label, f"  plaintext PII in the certificate: {'NONE' if not leaked else leaked}")
    Keystore(cma_dir).install(flow.subject_id, flow.key, DEMO_PIN, resp.bundle)
    (out / f"ppcert-{label}.pem").write_bytes(pem)
    (out / f"bundle-{label}.pb").write_bytes(resp.bundle.SerializeToString())
    say(label, f"verified and installed → ppcert-{label}.pem, bundle-{label}.pb")
    return {
        "subject_id": flow.subject_id,
        "serial": format(cert.serial_number, "x"),
        "age": age,
        "enrollment_ms": round(ms, 1),
        "attributes": sorted(attributes),
        "pii_in_certificate": bool(leaked),
    }


def main(out: str, subscribers: int, seed: int) -> int:
    try:
        return run_demo(Path(out), subscribers, seed)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
