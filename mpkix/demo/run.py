"""The ``make demo`` walk-through (paper §4.1; ARCHITECTURE §2.1, §2.4, §2.5): a ledger node, a
CA node and a CMS node on 127.0.0.1 with TLS, a generated HSS, two users (an adult and a minor)
enrolling through ceIssuance with their ppCerts anchored on the ledger, an example IAS admitting
the adult, the adult revoking from a new phone, and the same check then refused."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import Keystore, PrivateKey, generate_key
from cma.usim import EmulatedUsim
from cms_node.hss.generator import populate
from cms_node.hss.model import Subscriber
from cms_node.hss.sqlite_store import SqliteSubscriberStore
from deploy.local import LocalCluster, OperatorSpec
from deploy.pki import init_cluster_pki
from mpkix.aka.sqn import UsimSqnState
from mpkix.anonymize import age_on
from mpkix.attributes import canonical_values
from mpkix.demo.ias_step import ExampleIas, hello, run_mpkix, wait_for
from mpkix.profile.ppcert import parse_ppcert
from mpkix.rpc.tls import secure_channel
from mpkix.v1 import common_pb2

OPERATOR = "310-260"
DEMO_PIN = b"demo-pin-1234"
IAS_NODE = "ias-1"


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
    summary: dict[str, Any] = {"operator": OPERATOR, "users": {}}

    hss = out / "hss-310260.sqlite"
    say("hss", f"generating {subscribers:,} synthetic subscribers (seed {seed}) → {hss.name}")
    t0 = time.perf_counter()
    store = SqliteSubscriberStore(hss)
    try:
        populate(store, subscribers, seed, mnc="260")
    finally:
        store.close()
    say("hss", f"done in {time.perf_counter() - t0:.1f} s")

    cluster = LocalCluster(
        out / "cluster",
        [OperatorSpec(OPERATOR, hss)],
        ca_name="MPKIX Demo CA",
        with_ledger=True,
        anchor_window_s=0.2,
    )
    say("cluster", "creating the cluster TLS root, the CA (root + issuing) and the operator key")
    cluster.prepare()
    init_cluster_pki(cluster.tls_dir, [IAS_NODE])
    cluster.start()
    ias: ExampleIas | None = None
    try:
        assert cluster.ca is not None
        chain = list(cluster.ca.authority.chain)
        (out / "ca.pem").write_bytes(chain[-1].public_bytes(serialization.Encoding.PEM))
        (out / "ca-chain.pem").write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        )
        say("ledger", f"ledger node on 127.0.0.1:{cluster.ledger_port} (py-evm, mutual TLS): "
            "CertificateRegistry with the CA and the operator as validators and trust anchors")
        say("cluster", f"CA node on 127.0.0.1:{cluster.ca_port} (mutual TLS, Issuance service)")
        say("cluster", f"CMS node of {OPERATOR} on 127.0.0.1:{cluster.cms_ports[OPERATOR]} "
            "(TLS; Enrollment and Lifecycle services)")
        users = _pick_users(hss, today)
        enrolled: dict[str, Enrolled] = {}
        for label, sub in users.items():
            enrolled[label] = _enroll_one(out, cluster, label, sub, today, chain[-1])
            summary["users"][label] = enrolled[label].summary
        print()
        ias = ExampleIas.start(
            out, cluster.tls_dir, IAS_NODE, out / "ca.pem", cluster.ledger_target
        )
        summary["ias"] = _ias_story(out, cluster, ias, enrolled)
    finally:
        if ias is not None:
            ias.stop()
        cluster.stop()
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print()
    say("done", f"artifacts in {out}/: ca.pem, ca-chain.pem, ppcert-*.pem, bundle-*.pb, "
        "verify-*.json, summary.json")
    ok = summary["ias"]["story_holds"]
    if not ok:
        say("done", "THE DEMO'S STORY DID NOT HOLD: see summary.json")
    return 0 if ok else 1


@dataclass
class Enrolled:
    label: str
    sub: Subscriber
    key: PrivateKey
    bundle: common_pb2.CertificateBundle
    summary: dict[str, Any]


def _verify_cli(out: Path, cluster: LocalCluster, label: str, when: str) -> tuple[int, Any]:
    tls = cluster.tls_dir
    rc, verdict = run_mpkix(
        "ias", "verify", str(out / f"bundle-{label}.pb"),
        "--ledger", cluster.ledger_target,
        "--tls-ca", str(tls / "ca.pem"),
        "--tls-cert", str(tls / f"{IAS_NODE}.pem"),
        "--tls-key", str(tls / f"{IAS_NODE}.key"),
        "--mirror-db", str(out / "ias-cli-mirror.sqlite"),
        "--required-profile", "mss:mpkix:authn:loa3:app",
    )
    (out / f"verify-{label}-{when}.json").write_text(json.dumps(verdict, indent=1) + "\n")
    if isinstance(verdict, dict):
        shown = "VALID" if verdict.get("valid") else f"REFUSED ({verdict.get('reason')})"
    else:
        shown = f"error: {verdict}"
    say("ias", f"$ mpkix ias verify bundle-{label}.pb --ledger … → exit {rc}, {shown}")
    return rc, verdict


def _ias_story(
    out: Path, cluster: LocalCluster, ias: ExampleIas, enrolled: dict[str, Enrolled]
) -> dict[str, Any]:
    """Verify the adult at an IAS, revoke from a new phone, watch the same check refuse."""
    adult = enrolled["adult"]
    tls_root = (cluster.tls_dir / "ca.pem").read_bytes()
    say("ias", f"example IAS (age-gated service, public SDK only) on 127.0.0.1:{ias.port}; "
        "its ledger mirror follows the registry's events")

    def probe() -> tuple[bool, str]:
        return hello(ias.port, tls_root, adult.key, adult.bundle)

    admitted, text, _ = wait_for(probe, True)
    say("adult", f"calls the IAS with the ppCert in mutual TLS → {text if admitted else 'no'}")
    rc_before, _ = _verify_cli(out, cluster, "adult", "before")

    print()
    say("adult", "phone lost: the SIM goes into a new phone (no ppCert key on it)")
    new_phone = out / "cma-adult-new-phone"
    new_phone.mkdir()
    s = adult.sub
    EmulatedUsim(s.imsi, s.k, s.opc, UsimSqnState()).save(new_phone / "usim.json")
    t0 = time.monotonic()
    rc_revoke, revoked = run_mpkix(
        "cma", "revoke", "--dir", str(new_phone),
        "--cms", f"127.0.0.1:{cluster.cms_ports[OPERATOR]}",
        "--tls-ca", str(cluster.tls_dir / "ca.pem"),
        "--reason", "1",
    )
    revoke_s = time.monotonic() - t0
    tx = revoked[0]["tx"][:16] if isinstance(revoked, list) and revoked else "?"
    say("adult", f"$ mpkix cma revoke --reason 1 (keyCompromise) → exit {rc_revoke}: EAP-AKA' "
        f"with the SIM, the CMS revoked on the ledger (tx {tx}…) in {revoke_s * 1000:.0f} ms")
    refused, text_after, seen_s = wait_for(probe, False)
    say("ias", f"the mirror saw the revocation {seen_s * 1000:.0f} ms after the revoke returned")
    shown = "ADMITTED (wrong!)" if refused else f"refused: {text_after}"
    say("adult", f"calls the IAS again → {shown}")
    rc_after, after = _verify_cli(out, cluster, "adult", "after")
    rc_minor, _ = _verify_cli(out, cluster, "minor", "after")
    holds = (
        admitted and rc_before == 0 and rc_revoke == 0 and not refused and rc_after == 1
        and isinstance(after, dict) and after.get("reason") == "REVOKED" and rc_minor == 0
    )
    return {
        "port": ias.port,
        "adult_admitted_before": admitted,
        "verify_before_exit": rc_before,
        "revoke_exit": rc_revoke,
        "revocation": revoked,
        "revoke_ms": round(revoke_s * 1000, 1),
        "revocation_visible_ms": round(seen_s * 1000, 1),
        "adult_admitted_after": refused,
        "refusal": text_after,
        "verify_after_exit": rc_after,
        "minor_verify_after_exit": rc_minor,
        "story_holds": holds,
    }


def _enroll_one(
    out: Path,
    cluster: LocalCluster,
    label: str,
    sub: Subscriber,
    today: dt.date,
    root: x509.Certificate,
) -> Enrolled:
    age = age_on(sub.birthday, today)
    print()
    article = "an" if label == "adult" else "a"
    say(label, f"phone of {article} {label} subscriber (age {age}), "
        f"IMSI {sub.imsi[:6]}…{sub.imsi[-2:]}")
    cma_dir = out / f"cma-{label}"
    usim = EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState())
    usim.save(Keystore(cma_dir).dir / "usim.json")
    attributes = canonical_values(sub)
    flow = EnrollmentFlow(usim=usim, attributes=attributes, key=generate_key())
    say(label, "key pair generated on the device (ECDSA P-256)")
    t0 = time.perf_counter()
    with secure_channel(f"127.0.0.1:{cluster.cms_ports[OPERATOR]}", cluster.client_tls()) as ch:
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
    inc = resp.bundle.inclusion
    say(label, f"  ledger       : batch {inc.batch_id}, leaf {inc.leaf_index} of {inc.tree_size}, "
        f"anchor tx {bytes(inc.anchor_tx_hash).hex()[:16]}…")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    der = cert.public_bytes(serialization.Encoding.DER)
    pii = (sub.family_name, sub.given_name, sub.imsi, sub.msisdn)
    leaked = [v for v in pii if v.encode() in der]
    say(label, f"  plaintext PII in the certificate: {leaked or 'NONE'}")
    Keystore(cma_dir).install(flow.subject_id, flow.key, DEMO_PIN, resp.bundle)
    (out / f"ppcert-{label}.pem").write_bytes(pem)
    (out / f"bundle-{label}.pb").write_bytes(resp.bundle.SerializeToString())
    say(label, f"verified (CA chain, own key, ledger proof) and installed → ppcert-{label}.pem, "
        f"bundle-{label}.pb")
    return Enrolled(
        label,
        sub,
        flow.key,
        resp.bundle,
        {
            "subject_id": flow.subject_id,
            "serial": format(cert.serial_number, "x"),
            "age": age,
            "enrollment_ms": round(ms, 1),
            "attributes": sorted(attributes),
            "pii_in_certificate": bool(leaked),
            "batch_id": inc.batch_id,
            "leaf_index": inc.leaf_index,
            "anchor_tx": bytes(inc.anchor_tx_hash).hex(),
        },
    )


def main(out: str, subscribers: int, seed: int) -> int:
    try:
        return run_demo(Path(out), subscribers, seed)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
