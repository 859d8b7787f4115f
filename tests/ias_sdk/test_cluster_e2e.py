"""End to end: a ppCert enrolled through the real CMS and CA nodes of a local cluster, anchored on
its ledger node by the CA, verifies with the SDK; its revocation by the CA reaches the mirror."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from deploy.local import LocalCluster
from ias_sdk import LedgerMirror, Reason, VerificationError, verify
from ledger.backends.embedded import EmbeddedBackend
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.rpc.tls import secure_channel
from mpkix.v1 import common_pb2
from tests.conftest import OPERATOR, subscribers


@pytest.fixture(scope="module")
def cluster(ledger_cluster: LocalCluster) -> LocalCluster:
    return ledger_cluster


def _enroll(c: LocalCluster, index: int) -> tuple[EnrollmentFlow, common_pb2.CertificateBundle]:
    sub = subscribers(c.operators[0].hss_db, 1, offset=index)[0]
    flow = EnrollmentFlow(
        usim=EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()),
        attributes=canonical_values(sub),
        key=generate_key(),
    )
    ch = secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls())
    with ch:
        _, resp = enroll(ch, flow)
    return flow, resp.bundle


def test_enrolled_certificate_verifies_and_revocation_reaches_the_mirror(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    flow, bundle = _enroll(cluster, 7)
    source = EmbeddedBackend.connect(cluster.ledger_target, cluster.tls(cluster.ca_node_name))
    mirror = LedgerMirror(tmp_path / "m.sqlite", source, poll_interval=0.02, max_staleness=10)
    try:
        mirror.sync()
        subject = verify(bundle, mirror=mirror, required_profile="mss:mpkix:authn:loa3:app")
        assert subject.subject_id == flow.subject_id
        assert subject.operator_id == OPERATOR
        assert set(subject.sealed_attribute_ids) == set(flow.attributes)
        mirror.start()
        ca = cluster.ca
        assert ca is not None and ca.backend is not None
        inc = bundle.inclusion
        out = ca.backend.transact(
            "revoke",
            subject.cert_hash,
            bytes(inc.operator_key_hash),
            inc.batch_id,
            inc.leaf_index,
            list(inc.audit_path),
            1,
        )
        assert out.success, out.revert_reason
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                verify(bundle, mirror=mirror)
            except VerificationError as e:
                assert e.reason is Reason.REVOKED
                break
            time.sleep(0.01)
        else:
            pytest.fail("the CA's revocation never reached the mirror")
    finally:
        mirror.close()
        source.close()
