"""Issued ppCerts are anchored on the embedded ledger in batches and come back with an
inclusion proof that verifies against the root the ledger recorded (ARCHITECTURE §2.4)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from deploy.local import LocalCluster, OperatorSpec
from ledger.backends.embedded import EmbeddedBackend
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.endorsement import key_id
from mpkix.merkle import verify_inclusion
from mpkix.rpc.tls import secure_channel
from tests.conftest import OPERATOR, subscribers


@pytest.fixture(scope="module")
def ledger_cluster(
    tmp_path_factory: pytest.TempPathFactory, hss_template: Path
) -> Iterator[LocalCluster]:
    work = tmp_path_factory.mktemp("ledger-cluster")
    hss = work / "hss.sqlite"
    hss.write_bytes(hss_template.read_bytes())
    c = LocalCluster(work, [OperatorSpec(OPERATOR, hss)], with_ledger=True, anchor_window_s=0.05)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def _enroll(c: LocalCluster, index: int) -> tuple[EnrollmentFlow, object]:
    sub = subscribers(c.operators[0].hss_db, 1, offset=index)[0]
    flow = EnrollmentFlow(
        usim=EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()),
        attributes=canonical_values(sub),
        key=generate_key(),
    )
    ch = secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls())
    assert isinstance(ch, grpc.Channel)
    with ch:
        _, resp = enroll(ch, flow)
    return flow, resp


def test_concurrent_enrollments_share_one_anchored_batch(ledger_cluster: LocalCluster) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _enroll(ledger_cluster, i), range(8)))
    op_key = ledger_cluster.cms[OPERATOR].service._op.endorsement_key  # type: ignore[union-attr]
    opkh = key_id(op_key.public_key())
    backend = EmbeddedBackend.connect(
        ledger_cluster.ledger_target, ledger_cluster.tls(ledger_cluster.ca_node_name)
    )
    batches = set()
    try:
        for _, resp in results:
            inc = resp.bundle.inclusion  # type: ignore[attr-defined]
            assert inc.batch_id > 0 and inc.tree_size >= 1
            assert inc.operator_key_hash == opkh
            root, size, ca_hash, _ = backend.call("batch", inc.batch_id)
            assert (bytes(root), int(size)) == (inc.root, inc.tree_size)
            assert bytes(ca_hash) == inc.issuer_ca_sha256
            entry = hashlib.sha256(resp.bundle.certificate_der).digest() + opkh  # type: ignore[attr-defined]
            assert verify_inclusion(entry, inc.leaf_index, inc.tree_size, list(inc.audit_path), root)
            batches.add(inc.batch_id)
    finally:
        backend.close()
    # Eight concurrent enrollments within one window: far fewer ledger transactions than certs.
    assert len(batches) < 8
