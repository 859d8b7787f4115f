"""CMS ``Lifecycle`` service: the subscriber's status changes after EAP-AKA' (decision 1000),
against real CMS, CA and ledger nodes; every refusal leaves the ledger as it was."""

from __future__ import annotations

import hashlib
from typing import Any

import grpc
import pytest

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.lifecycle import authenticate, change_status
from cma.usim import EmulatedUsim
from deploy.local import LocalCluster
from ledger.backends.embedded import EmbeddedBackend
from ledger.status import STATE_NAMES, current_status
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.rpc.tls import secure_channel
from mpkix.v1 import common_pb2, enrollment_pb2, enrollment_pb2_grpc, lifecycle_pb2
from mpkix.v1 import lifecycle_pb2_grpc as lc_grpc
from tests.conftest import OPERATOR, subscribers

LC = lifecycle_pb2


def _channel(c: LocalCluster) -> grpc.Channel:
    return secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls())


def _usim(c: LocalCluster, index: int) -> tuple[EmulatedUsim, dict[str, str]]:
    sub = subscribers(c.operators[0].hss_db, 1, offset=index)[0]
    return EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()), canonical_values(sub)


def _enroll(c: LocalCluster, usim: EmulatedUsim, attrs: dict[str, str]) -> tuple[str, Any]:
    flow = EnrollmentFlow(usim=usim, attributes=attrs, key=generate_key())
    with _channel(c) as ch:
        _, resp = enroll(ch, flow)
    return flow.subject_id, resp.bundle


def _state(c: LocalCluster, bundle: common_pb2.CertificateBundle) -> tuple[str, int]:
    with EmbeddedBackend.connect(c.ledger_target, c.tls(c.ca_node_name)) as backend:
        st, reason, _ = current_status(
            backend,
            bytes(bundle.inclusion.issuer_ca_sha256),
            hashlib.sha256(bundle.certificate_der).digest(),
        )
    return STATE_NAMES[st], reason


def _refused(ch: grpc.Channel, req: lifecycle_pb2.ChangeStatusRequest) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as err:
        lc_grpc.LifecycleStub(ch).ChangeStatus(req, timeout=30)
    return err.value.code(), err.value.details() or ""  # type: ignore[attr-defined]


def test_bad_requests_are_refused_and_change_nothing(ledger_cluster: LocalCluster) -> None:
    usim, attrs = _usim(ledger_cluster, 60)
    subject, bundle = _enroll(ledger_cluster, usim, attrs)
    with _channel(ledger_cluster) as ch:
        session = authenticate(ch, usim)
        cases = [
            (LC.ChangeStatusRequest(subject_id=subject, action=LC.REVOKE),
             grpc.StatusCode.INVALID_ARGUMENT, "session_id is empty"),
            (LC.ChangeStatusRequest(session_id="no-such-session", subject_id=subject,
                                    action=LC.REVOKE),
             grpc.StatusCode.UNAUTHENTICATED, ""),
            (LC.ChangeStatusRequest(session_id=session, subject_id=subject),
             grpc.StatusCode.INVALID_ARGUMENT, "action must be"),
            (LC.ChangeStatusRequest(session_id=session, subject_id=subject,
                                    all_certificates=True, action=LC.REVOKE),
             grpc.StatusCode.INVALID_ARGUMENT, "not both"),
            (LC.ChangeStatusRequest(session_id=session, action=LC.REVOKE),
             grpc.StatusCode.INVALID_ARGUMENT, "name one subject_id"),
            (LC.ChangeStatusRequest(session_id=session, subject_id=subject, action=LC.REVOKE,
                                    reason=2),
             grpc.StatusCode.INVALID_ARGUMENT, "not a subscriber revocation reason"),
            (LC.ChangeStatusRequest(session_id=session, subject_id=subject, action=LC.REVOKE,
                                    reason=6),
             grpc.StatusCode.INVALID_ARGUMENT, "not a subscriber revocation reason"),
            (LC.ChangeStatusRequest(session_id=session, subject_id=subject, action=LC.RESUME),
             grpc.StatusCode.FAILED_PRECONDITION, "not suspended"),
            (LC.ChangeStatusRequest(session_id=session, subject_id="pp-nobody", action=LC.REVOKE),
             grpc.StatusCode.NOT_FOUND, "no ppCert with this subject id"),
        ]
        for req, code, text in cases:
            got_code, details = _refused(ch, req)
            assert got_code == code, (req, details)
            assert text in details, details
    assert _state(ledger_cluster, bundle) == ("active", 0)


def test_half_finished_authentication_is_not_enough(ledger_cluster: LocalCluster) -> None:
    usim, attrs = _usim(ledger_cluster, 61)
    subject, bundle = _enroll(ledger_cluster, usim, attrs)
    flow = EnrollmentFlow(usim=usim, attributes={}, key=generate_key())
    with _channel(ledger_cluster) as ch:
        start = enrollment_pb2_grpc.EnrollmentStub(ch).StartAuthentication(
            enrollment_pb2.StartAuthenticationRequest(eap_packet=flow.identity_packet()),
            timeout=10,
        )
        code, _ = _refused(
            ch,
            LC.ChangeStatusRequest(session_id=start.session_id, subject_id=subject,
                                   action=LC.REVOKE),
        )
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert _state(ledger_cluster, bundle) == ("active", 0)


def test_suspend_list_resume_then_revoke_every_certificate_of_the_sim(
    ledger_cluster: LocalCluster,
) -> None:
    usim, attrs = _usim(ledger_cluster, 62)
    first, b1 = _enroll(ledger_cluster, usim, attrs)
    second, b2 = _enroll(ledger_cluster, usim, attrs)
    with _channel(ledger_cluster) as ch:
        out = change_status(ch, usim, LC.SUSPEND, subject_id=first)
        assert [(c.subject_id, c.state, c.reason) for c in out.certificates] == [
            (first, "suspended", 6)
        ]
        session = authenticate(ch, usim)
        listed = lc_grpc.LifecycleStub(ch).ListCertificates(
            LC.ListCertificatesRequest(session_id=session), timeout=30
        )
        assert {c.subject_id: c.state for c in listed.certificates} == {
            first: "suspended",
            second: "active",
        }
        assert change_status(ch, usim, LC.RESUME, subject_id=first).certificates[0].state == (
            "active"
        )
        # Lost phone: every ppCert of the SIM at once.
        out = change_status(ch, usim, LC.REVOKE, reason=1)
        assert sorted((c.subject_id, c.state, c.reason) for c in out.certificates) == sorted(
            [(first, "revoked", 1), (second, "revoked", 1)]
        )
    assert _state(ledger_cluster, b1) == ("revoked", 1)
    assert _state(ledger_cluster, b2) == ("revoked", 1)


def test_cms_without_a_ledger_says_so(cluster: LocalCluster) -> None:
    usim, attrs = _usim(cluster, 63)
    subject, _ = _enroll(cluster, usim, attrs)
    with _channel(cluster) as ch:
        session = authenticate(ch, usim)
        code, details = _refused(
            ch, LC.ChangeStatusRequest(session_id=session, subject_id=subject, action=LC.REVOKE)
        )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "not connected to a ledger" in details
