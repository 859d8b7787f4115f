"""Issued ppCerts are anchored on the embedded ledger in batches and come back with an
inclusion proof that verifies against the root the ledger recorded (ARCHITECTURE §2.4)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from deploy.local import LocalCluster
from ledger.backends.embedded import EmbeddedBackend
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.endorsement import key_id
from mpkix.merkle import verify_inclusion
from mpkix.rpc.tls import secure_channel
from tests.conftest import OPERATOR, subscribers


def _enroll(c: LocalCluster, index: int) -> tuple[EnrollmentFlow, object]:
    sub = subscribers(c.operators[0].hss_db, 1, offset=index)[0]
    flow = EnrollmentFlow(
        usim=EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()),
        attributes=canonical_values(sub),
        key=generate_key(),
    )
    ch = secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls())
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
            path = list(inc.audit_path)
            assert verify_inclusion(entry, inc.leaf_index, inc.tree_size, path, root)
            batches.add(inc.batch_id)
    finally:
        backend.close()
    # Eight concurrent enrollments within one window: far fewer ledger transactions than certs.
    assert len(batches) < 8


def _channel(c: LocalCluster) -> grpc.Channel:
    ch = secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls())
    return ch


def _ledger_state(c: LocalCluster, resp: object) -> tuple[str, int]:
    from ledger.status import STATE_NAMES, current_status

    bundle = resp.bundle  # type: ignore[attr-defined]
    with EmbeddedBackend.connect(c.ledger_target, c.tls(c.ca_node_name)) as backend:
        state, reason, _ = current_status(
            backend,
            bytes(bundle.inclusion.issuer_ca_sha256),
            hashlib.sha256(bundle.certificate_der).digest(),
        )
    return STATE_NAMES[state], reason


def test_user_revokes_lost_phone_from_a_new_device(ledger_cluster: LocalCluster) -> None:
    from cma.lifecycle import change_status
    from mpkix.v1 import lifecycle_pb2

    flow, resp = _enroll(ledger_cluster, 40)
    assert _ledger_state(ledger_cluster, resp) == ("active", 0)
    # New device: the same SIM (K, OPc) in a fresh USIM emulation, no ppCert key at all.
    u = flow.usim
    new_device = EmulatedUsim(u.imsi, u.k, u.opc, UsimSqnState())
    with _channel(ledger_cluster) as ch:
        out = change_status(ch, new_device, lifecycle_pb2.REVOKE, reason=1)
        assert [(c.subject_id, c.state, c.reason) for c in out.certificates] == [
            (flow.subject_id, "revoked", 1)
        ]
        assert out.certificates[0].tx_hash
        # Asking again changes nothing on chain and reports the recorded state.
        again = change_status(ch, new_device, lifecycle_pb2.REVOKE, subject_id=flow.subject_id)
        assert again.certificates[0].state == "revoked" and not again.certificates[0].tx_hash
        # Revoked is final.
        with pytest.raises(grpc.RpcError) as err:
            change_status(ch, new_device, lifecycle_pb2.RESUME, subject_id=flow.subject_id)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert _ledger_state(ledger_cluster, resp) == ("revoked", 1)


def test_subscriber_cannot_revoke_someone_elses_certificate(ledger_cluster: LocalCluster) -> None:
    from cma.lifecycle import change_status
    from mpkix.v1 import lifecycle_pb2

    victim, victim_resp = _enroll(ledger_cluster, 41)
    attacker, _ = _enroll(ledger_cluster, 42)
    with _channel(ledger_cluster) as ch, pytest.raises(grpc.RpcError) as err:
        change_status(ch, attacker.usim, lifecycle_pb2.REVOKE, subject_id=victim.subject_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert _ledger_state(ledger_cluster, victim_resp) == ("active", 0)


def _admin(c: LocalCluster, node: str = "ca-admin") -> Any:
    from mpkix.v1 import ca_admin_pb2_grpc

    ch = secure_channel(f"127.0.0.1:{c.ca_port}", c.tls(node))
    return ch, ca_admin_pb2_grpc.CaAdminStub(ch)


def _ca_change(stub: Any, serial: str, action: Any, reason: int = 0) -> Any:
    from mpkix.v1 import ca_admin_pb2

    return stub.ChangeStatus(
        ca_admin_pb2.CaChangeStatusRequest(serial=serial, action=action, reason=reason), timeout=30
    )


def _code(fn: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value.code(), err.value.details() or ""  # type: ignore[attr-defined]


def test_ca_suspends_resumes_and_revokes(ledger_cluster: LocalCluster) -> None:
    from cryptography import x509

    from mpkix.v1 import lifecycle_pb2 as lc

    _, resp = _enroll(ledger_cluster, 43)
    cert = x509.load_der_x509_certificate(resp.bundle.certificate_der)  # type: ignore[attr-defined]
    serial = format(cert.serial_number, "x")
    ch, stub = _admin(ledger_cluster)
    with ch:
        code, msg = _code(lambda: _ca_change(stub, serial, lc.RESUME))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "not suspended" in msg
        assert _ca_change(stub, "0x" + serial.upper(), lc.SUSPEND).state == "suspended"
        assert _ledger_state(ledger_cluster, resp) == ("suspended", 6)
        resumed = _ca_change(stub, serial, lc.RESUME)
        assert resumed.state == "active" and resumed.tx_hash and resumed.serial == serial
        again = _ca_change(stub, serial, lc.RESUME)  # a retry: no new transaction
        assert again.state == "active" and not again.tx_hash
        assert _ca_change(stub, serial, lc.REVOKE, 4).state == "revoked"
        code, msg = _code(lambda: _ca_change(stub, serial, lc.SUSPEND))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "revoked" in msg
    assert _ledger_state(ledger_cluster, resp) == ("revoked", 4)


def test_ca_admin_refuses_bad_requests_and_other_callers(ledger_cluster: LocalCluster) -> None:
    from cryptography import x509

    from mpkix.v1 import lifecycle_pb2 as lc

    _, resp = _enroll(ledger_cluster, 45)
    cert = x509.load_der_x509_certificate(resp.bundle.certificate_der)  # type: ignore[attr-defined]
    serial = format(cert.serial_number, "x")
    ch, stub = _admin(ledger_cluster)
    with ch:
        for bad_serial in ("", "0x00", "xyz", "12 34", "f" * 41):
            code, _ = _code(lambda s=bad_serial: _ca_change(stub, s, lc.REVOKE))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, bad_serial
        code, msg = _code(lambda: _ca_change(stub, "abcdef", lc.REVOKE))
        assert code == grpc.StatusCode.NOT_FOUND and "abcdef" in msg
        for reason in (6, 7, 8, 11):
            code, _ = _code(lambda r=reason: _ca_change(stub, serial, lc.REVOKE, r))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, reason
        code, _ = _code(lambda: _ca_change(stub, serial, lc.STATUS_ACTION_UNSPECIFIED))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    # An operator's CMS node holds a cluster certificate too, but is no CA administrator.
    ch, stub = _admin(ledger_cluster, ledger_cluster.operators[0].node_name)
    with ch:
        code, msg = _code(lambda: _ca_change(stub, serial, lc.REVOKE))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "not a CA administrator" in msg
    assert _ledger_state(ledger_cluster, resp) == ("active", 0)


def test_mpkix_ca_revoke_cli(ledger_cluster: LocalCluster) -> None:
    import json
    import subprocess
    import sys

    from cryptography import x509

    _, resp = _enroll(ledger_cluster, 46)
    cert = x509.load_der_x509_certificate(resp.bundle.certificate_der)  # type: ignore[attr-defined]
    serial = format(cert.serial_number, "x")

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mpkix", "ca", "revoke",
             "--ca", f"127.0.0.1:{ledger_cluster.ca_port}",
             "--tls-dir", str(ledger_cluster.tls_dir), *extra],
            capture_output=True, text=True, timeout=120, check=False,
        )

    done = cli("--serial", serial, "--reason", "5")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["serial"], out["state"], out["reason"]) == (serial, "revoked", 5) and out["tx"]
    assert _ledger_state(ledger_cluster, resp) == ("revoked", 5)
    done = cli("--serial", serial, "--resume")
    assert done.returncode == 1 and "FAILED_PRECONDITION" in done.stderr
    done = cli("--serial", serial, "--node-name", "nobody")
    assert done.returncode == 2 and "admin TLS material" in done.stderr


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda inc: inc.audit_path.__setitem__(0, b"\x00" * 32), "does not prove"),
        (lambda inc: setattr(inc, "leaf_index", inc.leaf_index ^ 1), "does not prove"),
        (lambda inc: setattr(inc, "root", b"\x11" * 32), "does not prove"),
        (lambda inc: setattr(inc, "operator_key_hash", b"\x22" * 32), "does not prove"),
        (lambda inc: setattr(inc, "operator_key_hash", b"\x22" * 5), "malformed ledger proof"),
        (lambda inc: setattr(inc, "issuer_ca_sha256", b"\x33" * 32), "another issuing CA"),
    ],
)
def test_cma_refuses_a_bundle_whose_ledger_proof_is_wrong(
    ledger_cluster: LocalCluster, tamper: object, message: str
) -> None:
    from cma.enrollment import EnrollmentError
    from mpkix.v1 import enrollment_pb2

    # Eight concurrent enrollments above make batches of several leaves: paths are non-empty.
    flow, resp = _enroll(ledger_cluster, 44)
    assert isinstance(resp, enrollment_pb2.SubmitPpCsrResponse)
    flow.verify(resp)  # the untouched answer is accepted
    bad = enrollment_pb2.SubmitPpCsrResponse()
    bad.CopyFrom(resp)
    if not bad.bundle.inclusion.audit_path:
        bad.bundle.inclusion.audit_path.append(b"\x00" * 32)  # single-leaf batch
    tamper(bad.bundle.inclusion)  # type: ignore[operator]
    with pytest.raises(EnrollmentError, match=message):
        flow.verify(bad)
