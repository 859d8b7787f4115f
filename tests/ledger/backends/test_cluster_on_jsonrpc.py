"""A whole MPKIX cluster on a JSON-RPC ledger (anvil as a free-gas permissioned network): the same
nodes and code as on the embedded ledger, pointed at a ledger file (decision 1004) — registry
deployed from the cluster's genesis, ppCerts anchored by the CA, verified by an SDK mirror, revoked
by the user through the CMS and suspended by the CA through CaAdmin."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.lifecycle import change_status
from cma.usim import EmulatedUsim
from deploy.local import LocalCluster, OperatorSpec
from ias_sdk import LedgerMirror, Reason, VerificationError, verify
from ledger.backends.config import open_backend
from ledger.backends.deploy import deploy_from_genesis
from ledger.node.genesis import load_genesis
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.rpc.tls import secure_channel
from mpkix.v1 import ca_admin_pb2, ca_admin_pb2_grpc, common_pb2, lifecycle_pb2
from tests.conftest import OPERATOR, subscribers
from tests.ledger.backends.support import Anvil

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def jsonrpc_cluster(
    tmp_path_factory: pytest.TempPathFactory, hss_template: Path, free_anvil: Anvil
) -> Iterator[LocalCluster]:
    work = tmp_path_factory.mktemp("jsonrpc-cluster")
    hss = work / "hss.sqlite"
    hss.write_bytes(hss_template.read_bytes())
    ledger_file = work / "ledger.json"
    c = LocalCluster(
        work,
        [OperatorSpec(OPERATOR, hss)],
        anchor_window_s=0.05,
        external_ledger_target=str(ledger_file),
    )
    c.prepare()  # writes the genesis from the CA's and the CMS's validator keys
    deployment = deploy_from_genesis(
        free_anvil.url, free_anvil.keys[0], load_genesis(c.genesis_path), check_chain_id=False
    )
    ledger_file.write_text(
        json.dumps(
            {
                "backend": "jsonrpc",
                "url": free_anvil.url,
                "registry_address": deployment.address,
                "from_block": deployment.block_number,
                "poll_interval": 0.02,
            }
        )
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()


def _enroll(c: LocalCluster, index: int) -> tuple[EnrollmentFlow, common_pb2.CertificateBundle]:
    sub = subscribers(c.operators[0].hss_db, 1, offset=index)[0]
    flow = EnrollmentFlow(
        usim=EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()),
        attributes=canonical_values(sub),
        key=generate_key(),
    )
    with secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls()) as ch:
        _, resp = enroll(ch, flow)
    return flow, resp.bundle


def _refused(mirror: LedgerMirror, bundle: Any, timeout: float = 15) -> Reason:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mirror.sync()
        try:
            verify(bundle, mirror=mirror)
        except VerificationError as e:
            return e.reason
        time.sleep(0.05)
    pytest.fail("the status change never reached the mirror")


def test_cluster_anchors_verifies_and_revokes_on_a_jsonrpc_ledger(
    jsonrpc_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = jsonrpc_cluster
    assert c.external_ledger_target is not None
    flow, bundle = _enroll(c, 70)
    _, other = _enroll(c, 71)
    assert bundle.inclusion.anchor_tx_hash and bundle.inclusion.chain_id == 31337
    source = open_backend(c.external_ledger_target)  # read-only, as an IAS would
    mirror = LedgerMirror(tmp_path / "m.sqlite", source, max_staleness=60)
    try:
        mirror.sync()
        subject = verify(bundle, mirror=mirror, required_profile="mss:mpkix:authn:loa3:app")
        assert subject.subject_id == flow.subject_id and subject.operator_id == OPERATOR
        verify(other, mirror=mirror)

        # The user, from any device with the SIM, through the CMS (operator's validator key).
        with secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls()) as ch:
            out = change_status(ch, flow.usim, lifecycle_pb2.REVOKE, reason=1)
        assert [x.state for x in out.certificates] == ["revoked"]
        assert _refused(mirror, bundle) is Reason.REVOKED

        # The CA, on its own authority, through CaAdmin (the CA's validator key).
        serial = format(x509.load_der_x509_certificate(other.certificate_der).serial_number, "x")
        with secure_channel(f"127.0.0.1:{c.ca_port}", c.tls("ca-admin")) as ch:
            st = ca_admin_pb2_grpc.CaAdminStub(ch).ChangeStatus(
                ca_admin_pb2.CaChangeStatusRequest(serial=serial, action=lifecycle_pb2.SUSPEND),
                timeout=60,
            )
        assert st.state == "suspended" and st.tx_hash
        assert _refused(mirror, other) is Reason.SUSPENDED
    finally:
        mirror.close()
        source.close()


def test_mpkix_ias_verify_takes_the_ledger_file(
    jsonrpc_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = jsonrpc_cluster
    assert c.external_ledger_target is not None
    _, bundle = _enroll(c, 72)
    path = tmp_path / "bundle.pb"
    path.write_bytes(bundle.SerializeToString())

    def ias_verify(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mpkix", "ias", "verify", str(path), *extra],
            capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        )

    done = ias_verify("--ledger", c.external_ledger_target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["valid"] is True
    done = ias_verify("--ledger", c.external_ledger_target, "--tls-ca", str(c.tls_dir / "ca.pem"))
    assert done.returncode == 2 and "carries its own TLS settings" in done.stderr
    done = ias_verify("--ledger", str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "cannot read the ledger file" in done.stderr


def test_nodes_refuse_a_broken_ledger_file(tmp_path: Path) -> None:
    from ledger.backends.config import LedgerConfig, LedgerConfigError

    cases = {
        "not json": "{",
        "unknown backend": json.dumps({"backend": "besu"}),
        "typo": json.dumps({"backend": "jsonrpc", "url": "http://x", "registry_adress": "0x"}),
        "no address": json.dumps({"backend": "jsonrpc", "url": "http://127.0.0.1:1"}),
        "bad block": json.dumps({"backend": "jsonrpc", "url": "http://127.0.0.1:1",
                                 "registry_address": "0x" + "00" * 20, "from_block": -1}),
        "half tls": json.dumps({"backend": "jsonrpc", "url": "https://127.0.0.1:1",
                                "registry_address": "0x" + "00" * 20,
                                "tls": {"client_cert": "a.pem"}}),
        "embedded without target": json.dumps({"backend": "embedded"}),
    }
    for name, text in cases.items():
        p = tmp_path / f"{name.replace(' ', '-')}.json"
        p.write_text(text)
        with pytest.raises(LedgerConfigError):
            LedgerConfig.parse(str(p))
    for value in ("https://rpc.example:8545", "no-port", "host:port"):
        with pytest.raises(LedgerConfigError):
            LedgerConfig.parse(value)
    assert LedgerConfig.parse("127.0.0.1:7443").backend == "embedded"
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({
        "backend": "jsonrpc", "url": "https://rpc.example:8545",
        "registry_address": "0x" + "ab" * 20, "from_block": 9,
        "tls": {"ca_bundle": "rpc-ca.pem"}, "headers": {"Authorization": "env:MPKIX_TEST_AUTH"},
    }))
    cfg = LedgerConfig.parse(str(ok))
    assert cfg.ca_bundle == str((tmp_path / "rpc-ca.pem").resolve()) and cfg.from_block == 9
    with pytest.raises(LedgerConfigError, match="MPKIX_TEST_AUTH"):
        cfg.resolved_headers()
