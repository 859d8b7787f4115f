"""Refusals of the ledger with the cluster's real validator keys (ARCHITECTURE §2.4; issue #3).

A local cluster with one CA and two operators (A and B) writes its genesis from the nodes' state
directories and runs a real ledger node; certificates are enrolled through A's CMS. Each refused
write is checked for its exact outcome: the node's gRPC status and the contract's revert reason
(``SubmitTransaction``), and the error of the SDK layer the nodes use (``ledger.status``,
``ca_node.ledger_anchor``). Then the state is shown unchanged and, where there is one, the
permitted variant is shown to succeed, so a test cannot pass because everything is refused.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from eth_account import Account
from eth_utils.address import to_canonical_address

from ca_node.anchoring import AnchorBatcher, leaf_entry
from ca_node.keys import create_ca
from ca_node.ledger_anchor import AnchorRefused, RegistryAnchorer
from cma import lifecycle
from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from cms_node.node import load_endorsement_key
from deploy.local import LocalCluster, OperatorSpec
from ledger.backends.embedded import EmbeddedBackend
from ledger.contracts import CertState, Role
from ledger.node.client import TransactionReverted
from ledger.status import Action, StatusChangeRefused, change_status, current_status
from ledger.validator_key import ensure_validator_key
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.endorsement import key_id
from mpkix.rpc.tls import secure_channel
from mpkix.v1 import common_pb2, lifecycle_pb2
from tests.conftest import OPERATOR, make_hss, subscribers

OPERATOR_B = "310-410"
NOT_A_VALIDATOR = "caller is not a validator"
DENIED = grpc.StatusCode.PERMISSION_DENIED
REFUSED = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, hss_template: Path) -> Iterator[LocalCluster]:
    work = tmp_path_factory.mktemp("refusals-cluster")
    hss_a = work / "hss-a.sqlite"
    hss_a.write_bytes(hss_template.read_bytes())
    hss_b = make_hss(work / "hss-b.sqlite", count=5, mnc="410")
    c = LocalCluster(
        work,
        [OperatorSpec(OPERATOR, hss_a), OperatorSpec(OPERATOR_B, hss_b)],
        with_ledger=True,
        anchor_window_s=0.02,
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()


_next_subscriber = iter(range(300))


def enroll_a(c: LocalCluster) -> tuple[EnrollmentFlow, common_pb2.CertificateBundle]:
    """Enroll the next subscriber of operator A through A's CMS (its ppCert is anchored)."""
    sub = subscribers(c.operators[0].hss_db, 1, offset=next(_next_subscriber))[0]
    flow = EnrollmentFlow(
        usim=EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()),
        attributes=canonical_values(sub),
        key=generate_key(),
    )
    with cms_a(c) as ch:
        _, resp = enroll(ch, flow)
    return flow, resp.bundle


def cms_a(c: LocalCluster) -> grpc.Channel:
    ch = secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls())
    return ch


def state_dir(c: LocalCluster, who: str) -> Path:
    """State directory (holding ``ledger.key``) of the CA or an operator's CMS node."""
    if who == "ca":
        return c.workdir / "ca"
    return c.cms_dir(next(o for o in c.operators if o.operator_id == who))


def node_name(c: LocalCluster, who: str) -> str:
    if who == "ca":
        return c.ca_node_name
    return next(o for o in c.operators if o.operator_id == who).node_name


def validator_key(c: LocalCluster, who: str) -> bytes:
    key, _ = ensure_validator_key(state_dir(c, who))
    return key


def backend_of(c: LocalCluster, who: str, key: bytes | None = None) -> EmbeddedBackend:
    """A ledger connection with the TLS identity of ``who`` signing with its validator key
    (or with ``key``)."""
    key = validator_key(c, who) if key is None else key
    return EmbeddedBackend.connect(c.ledger_target, c.tls(node_name(c, who)), private_key=key)


def reverted(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    """Run a ``LedgerClient.send``; it must be included and revert. → (gRPC code, reason)."""
    with pytest.raises(TransactionReverted) as info:
        call()
    receipt = info.value.receipt
    assert not receipt.success and receipt.tx_hash
    return info.value.code, receipt.revert_reason


def status_args(bundle: common_pb2.CertificateBundle, **override: Any) -> list[Any]:
    """Arguments of revoke/suspend/resume (without the reason) from a bundle's proof."""
    inc = bundle.inclusion
    args: dict[str, Any] = {
        "cert_hash": hashlib.sha256(bundle.certificate_der).digest(),
        "operator_key_hash": bytes(inc.operator_key_hash),
        "batch_id": int(inc.batch_id),
        "leaf_index": int(inc.leaf_index),
        "proof": [bytes(h) for h in inc.audit_path],
    }
    args.update(override)
    return list(args.values())


def state_of(
    backend: EmbeddedBackend, bundle: common_pb2.CertificateBundle
) -> tuple[int, int, int]:
    ca_hash = bytes(bundle.inclusion.issuer_ca_sha256)
    state, reason, at = current_status(
        backend, ca_hash, hashlib.sha256(bundle.certificate_der).digest()
    )
    return int(state), reason, at


def test_operator_b_cannot_revoke_a_subscriber_of_operator_a(cluster: LocalCluster) -> None:
    flow, bundle = enroll_a(cluster)
    with backend_of(cluster, OPERATOR_B) as b:
        # The SDK layer a CMS uses: the contract's reason, nothing changed.
        for action in (Action.REVOKE, Action.SUSPEND):
            with pytest.raises(StatusChangeRefused) as info:
                change_status(b, action, bundle.certificate_der, bundle.inclusion, 1)
            assert info.value.reason == "caller is not the subject's operator"
        # At the node: PERMISSION_DENIED, the transaction included and reverted.
        signer = b.client.signer(validator_key(cluster, OPERATOR_B))
        args = status_args(bundle)
        assert reverted(lambda: b.client.send(signer, "revoke", *args, 1)) == (
            DENIED,
            "caller is not the subject's operator",
        )
        assert reverted(lambda: b.client.send(signer, "suspend", *args)) == (
            DENIED,
            "caller is not the subject's operator",
        )
        # Claiming the certificate for B's own endorsement key breaks its Merkle proof.
        b_key = key_id(load_endorsement_key(state_dir(cluster, OPERATOR_B)).public_key())
        claimed = status_args(bundle, operator_key_hash=b_key)
        assert reverted(lambda: b.client.send(signer, "revoke", *claimed, 1)) == (
            REFUSED,
            "certificate not in batch",
        )
        assert state_of(b, bundle)[:2] == (CertState.GOOD, 0)
    # The subject's own operator may (the user asks A's CMS after EAP-AKA').
    with cms_a(cluster) as ch:
        out = lifecycle.change_status(
            ch, flow.usim, lifecycle_pb2.REVOKE, subject_id=flow.subject_id, reason=1
        )
    assert [(x.state, x.reason) for x in out.certificates] == [("revoked", 1)]


def test_double_revocation_is_refused(cluster: LocalCluster) -> None:
    flow, bundle = enroll_a(cluster)
    with cms_a(cluster) as ch:
        first = lifecycle.change_status(
            ch, flow.usim, lifecycle_pb2.REVOKE, subject_id=flow.subject_id, reason=1
        )
    assert first.certificates[0].tx_hash
    with backend_of(cluster, OPERATOR) as a, backend_of(cluster, "ca") as ca:
        recorded = state_of(a, bundle)
        assert recorded[:2] == (CertState.REVOKED, 1)
        # The SDK answers a repeat with the recorded state and sends nothing.
        again = change_status(a, Action.REVOKE, bundle.certificate_der, bundle.inclusion, 4)
        assert (again.state, again.reason, again.tx_hash) == ("revoked", 1, b"")
        with pytest.raises(StatusChangeRefused, match=r"^certificate is revoked$"):
            change_status(ca, Action.RESUME, bundle.certificate_der, bundle.inclusion)
        # A second revoke transaction reverts, by the operator and by the issuing CA alike.
        args = status_args(bundle)
        op_signer = a.client.signer(validator_key(cluster, OPERATOR))
        ca_signer = ca.client.signer(validator_key(cluster, "ca"))
        assert reverted(lambda: a.client.send(op_signer, "revoke", *args, 4)) == (
            REFUSED,
            "certificate already revoked",
        )
        assert reverted(lambda: ca.client.send(ca_signer, "revoke", *args, 4)) == (
            REFUSED,
            "certificate already revoked",
        )
        assert reverted(lambda: ca.client.send(ca_signer, "suspend", *args)) == (
            REFUSED,
            "certificate is revoked",
        )
        assert state_of(a, bundle) == recorded  # reason and time of the first revocation
        cert_hash = hashlib.sha256(bundle.certificate_der).digest()
        revoked_events = [
            e
            for e in a.events_after(0, 100_000)
            if e.name == "CertificateRevoked" and e.args["cert_hash"] == cert_hash
        ]
        assert len(revoked_events) == 1


def test_batch_root_of_a_ca_that_is_not_a_trust_anchor(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    enroll_a(cluster)  # the cluster's own CA anchors fine
    rogue = create_ca(tmp_path / "rogue-ca", name="Rogue CA")
    rogue_der = rogue.issuing_cert.public_bytes(serialization.Encoding.DER)
    rogue_hash = hashlib.sha256(rogue_der).digest()
    root = hashlib.sha256(b"a batch of the rogue CA").digest()
    # Signed with the real CA validator's key: the validator is fine, its CA certificate is not.
    with backend_of(cluster, "ca") as ca:
        count = ca.call("batch_count")
        assert count >= 1
        anchorer = RegistryAnchorer(ca, rogue_der)
        with pytest.raises(AnchorRefused, match=r"^CA certificate is not a trust anchor$"):
            anchorer.anchor(root, 3)
        signer = ca.client.signer(validator_key(cluster, "ca"))
        assert reverted(lambda: ca.client.send(signer, "anchor_batch", root, 3, rogue_hash)) == (
            REFUSED,
            "CA certificate is not a trust anchor",
        )
        # The CA's batcher never marks such a batch anchored: the waiting caller is answered with
        # the refusal at once, the batch is kept, and no (reverting) transaction is sent.
        db = tmp_path / "rogue-issued.sqlite"
        entry = leaf_entry(b"a certificate of the rogue CA", bytes(32))
        nonce_before = ca.client.nonce(to_canonical_address(ca.account))
        assert asyncio.run(_refused_batch_is_answered_and_kept(db, anchorer, "0abc", entry)) == (
            "CA certificate is not a trust anchor"
        )
        assert ca.client.nonce(to_canonical_address(ca.account)) == nonce_before
        with sqlite3.connect(db) as conn:
            [(pending_root, state)] = conn.execute("SELECT root, state FROM batches").fetchall()
        assert state == "built"
        assert ca.call("batch_of_root", bytes(pending_root)) == 0
        assert ca.call("batch_of_root", root) == 0
        assert ca.call("batch_count") == count


async def _refused_batch_is_answered_and_kept(
    db: Path, anchorer: RegistryAnchorer, serial: str, entry: bytes
) -> str | None:
    batcher = AnchorBatcher(str(db), anchorer, window_s=0.01, retry_s=0.05, refused_retry_s=30)
    await batcher.start()
    fut = batcher.submit(serial, entry)
    with pytest.raises(AnchorRefused) as refused:
        await asyncio.wait_for(fut, 5)
    assert str(refused.value) == "CA certificate is not a trust anchor"
    assert batcher.is_batched(serial) and batcher.inclusion_for(serial) is None
    reason = batcher.refusal_for(serial)
    await asyncio.wait_for(batcher.close(), 10)  # close ends the slow retry
    return reason


def test_writes_by_a_non_validator_are_permission_denied(cluster: LocalCluster) -> None:
    _, bundle = enroll_a(cluster)
    outsider = Account.create()
    key = bytes(outsider.key)
    ca_hash = bytes(bundle.inclusion.issuer_ca_sha256)
    # A cluster TLS identity (the transport lets it in), but a key the registry does not know.
    with backend_of(cluster, "ca", key) as b:
        count = b.call("batch_count")
        signer = b.client.signer(key)
        args = status_args(bundle)
        writes: list[tuple[str, tuple[Any, ...]]] = [
            ("anchor_batch", (hashlib.sha256(b"outsider root").digest(), 1, ca_hash)),
            ("revoke", (*args, 1)),
            ("suspend", tuple(args)),
            ("resume", tuple(args)),
            ("propose_add_validator", (outsider.address, int(Role.CA), b"outsider".ljust(32))),
            ("propose_add_trust_anchor", (hashlib.sha256(b"x").digest(), outsider.address)),
            ("propose_threshold", (1,)),
            ("approve", (1,)),
            ("execute", (1,)),
        ]
        for function, fargs in writes:
            outcome = reverted(functools.partial(b.client.send, signer, function, *fargs))
            assert outcome == (DENIED, NOT_A_VALIDATOR), function
        # The CA-side anchorer reports the same refusal.
        with pytest.raises(AnchorRefused, match=rf"^{NOT_A_VALIDATOR}$"):
            RegistryAnchorer(b, bundle.ca_chain_der[0]).anchor(
                hashlib.sha256(b"outsider root 2").digest(), 1
            )
        assert b.call("batch_count") == count
        assert not b.call("is_validator", outsider.address)
        assert state_of(b, bundle)[:2] == (CertState.GOOD, 0)


def test_governance_change_without_the_threshold_does_not_happen(cluster: LocalCluster) -> None:
    new_anchor = hashlib.sha256(b"operator B's second endorsement key").digest()
    outsider_key = bytes(Account.create().key)
    with (
        backend_of(cluster, OPERATOR_B) as b,
        backend_of(cluster, OPERATOR) as a,
        backend_of(cluster, "ca", outsider_key) as outsider,
    ):
        # Three validators (the CA and two operators), k = 2 (a majority).
        assert len(b.call("validators")) == 3 and b.call("threshold") == 2
        b_signer = b.client.signer(validator_key(cluster, OPERATOR_B))
        proposed = b.transact("propose_add_trust_anchor", new_anchor, b.account)
        assert proposed.success, proposed.revert_reason
        [created] = [e for e in proposed.events if e.name == "ProposalCreated"]
        pid = int(created.args["proposal_id"])
        assert [e.name for e in proposed.events if e.name == "TrustAnchorAdded"] == []
        assert not b.call("is_trust_anchor", new_anchor) and b.call("approvals", pid) == 1
        # One validator cannot push it through: not again, not by executing, not with a
        # non-validator's approval.
        assert reverted(lambda: b.client.send(b_signer, "approve", pid)) == (
            REFUSED,
            "proposal already approved by caller",
        )
        assert reverted(lambda: b.client.send(b_signer, "execute", pid)) == (
            REFUSED,
            "not enough approvals",
        )
        o_signer = outsider.client.signer(outsider_key)
        assert reverted(lambda: outsider.client.send(o_signer, "approve", pid)) == (
            DENIED,
            NOT_A_VALIDATOR,
        )
        # Nor does a threshold change proposed alone.
        raised = b.transact("propose_threshold", 3)
        assert raised.success and b.call("threshold") == 2
        assert not b.call("is_trust_anchor", new_anchor) and b.call("approvals", pid) == 1
        # A second validator's approval executes it.
        approved = a.transact("approve", pid)
        assert approved.success, approved.revert_reason
        assert [e.name for e in approved.events if e.name == "TrustAnchorAdded"] == [
            "TrustAnchorAdded"
        ]
        assert b.call("is_trust_anchor", new_anchor)
