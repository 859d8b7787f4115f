"""A CA whose certificate is not a trust anchor on the registry: issuance answers at once with
FAILED_PRECONDITION through the CMS (ANCHOR_REFUSED at the CA), the certificate and its batch
are kept, a later request for it gets the same refusal, and nothing reaches the chain (0910)."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from deploy.genesis import issuing_ca_hash
from deploy.local import LocalCluster, OperatorSpec
from ledger.node.genesis import load_genesis, write_genesis
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.rpc.tls import secure_channel
from tests.conftest import OPERATOR, subscribers


@pytest.fixture(scope="module")
def untrusted_ca(
    tmp_path_factory: pytest.TempPathFactory, hss_template: Path
) -> Iterator[LocalCluster]:
    work = tmp_path_factory.mktemp("untrusted-ca")
    hss = work / "hss.sqlite"
    hss.write_bytes(hss_template.read_bytes())
    c = LocalCluster(work, [OperatorSpec(OPERATOR, hss)], with_ledger=True, anchor_window_s=0.05)
    c.prepare()
    # The CA stays a validator, but its issuing certificate is no trust anchor.
    cfg = load_genesis(c.genesis_path)
    ca_hash = issuing_ca_hash(work / "ca")
    kept = tuple(a for a in cfg.trust_anchors if a.anchor_hash != ca_hash)
    assert len(kept) == len(cfg.trust_anchors) - 1
    write_genesis(c.genesis_path, dataclasses.replace(cfg, trust_anchors=kept))
    c.start()
    try:
        yield c
    finally:
        c.stop()


def test_issuance_is_refused_at_once_and_the_certificate_kept(untrusted_ca: LocalCluster) -> None:
    c = untrusted_ca
    sub = subscribers(c.operators[0].hss_db, 1, offset=5)[0]
    flow = EnrollmentFlow(
        usim=EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()),
        attributes=canonical_values(sub),
        key=generate_key(),
    )
    # Refused, not timed out (that would be UNAVAILABLE "did not anchor ... in time").
    ch = secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls())
    with ch, pytest.raises(grpc.RpcError) as err:
        enroll(ch, flow)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert "not a trust anchor" in (err.value.details() or "")  # type: ignore[attr-defined]
    assert c.ca is not None and c.ca.store.count() == 1  # signed and kept
    with sqlite3.connect(c.workdir / "ca" / "issued.sqlite") as db:
        assert db.execute("SELECT state FROM batches").fetchall() == [("built",)]
    assert c.ca.backend is not None and c.ca.backend.call("batch_count") == 0
    assert c.ca.store.unbatched() == []
    [(cert_serial,)] = sqlite3.connect(c.workdir / "ca" / "issued.sqlite").execute(
        "SELECT serial FROM batch_leaves"
    ).fetchall()
    assert c.ca.batcher is not None
    assert c.ca.batcher.refusal_for(cert_serial) == "CA certificate is not a trust anchor"
