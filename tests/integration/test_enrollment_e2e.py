"""ceIssuance end to end over real TLS gRPC servers (paper §4.1; ARCHITECTURE §2.1)."""

from __future__ import annotations

import grpc
import pytest
from cryptography import x509

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from deploy.local import LocalCluster
from mpkix.aka.sqn import UsimSqnState, join_sqn, split_sqn
from mpkix.attributes import canonical_values
from mpkix.profile.ppcert import parse_ppcert
from mpkix.rpc.tls import secure_channel
from tests.conftest import OPERATOR, subscribers


def channel(cluster: LocalCluster) -> grpc.Channel:
    ch = secure_channel(f"127.0.0.1:{cluster.cms_ports[OPERATOR]}", cluster.client_tls())
    return ch


def flow_for(cluster: LocalCluster, index: int, **kw: object) -> EnrollmentFlow:
    sub = subscribers(cluster.operators[0].hss_db, 1, offset=index)[0]
    usim = EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState())
    return EnrollmentFlow(usim=usim, attributes=canonical_values(sub), key=generate_key(), **kw)  # type: ignore[arg-type]


def test_enrollment_issues_verified_ppcert(cluster: LocalCluster) -> None:
    flow = flow_for(cluster, 0)
    with channel(cluster) as ch:
        cert, _ = enroll(ch, flow)
    view = parse_ppcert(cert)
    assert view.subject_id == flow.subject_id
    assert view.operator_id == OPERATOR
    assert set(view.sealed) == set(flow.attributes)
    assert view.cms_address.endswith(f":{cluster.cms_ports[OPERATOR]}")
    assert cluster.cms[OPERATOR].state.get_subject(flow.subject_id) is not None
    assert isinstance(cert, x509.Certificate)


def test_enroll_recovers_from_sqn_resynchronization(cluster: LocalCluster) -> None:
    """The USIM's SQN is ahead of the HSS: AT_AUTS, HSS resync, fresh challenge, success."""
    listed = subscribers(cluster.operators[0].hss_db, 1, offset=250)[0]
    sub = cluster.cms[OPERATOR].hss.get(listed.imsi)
    assert sub is not None
    state = UsimSqnState()
    ahead_seq = split_sqn(sub.sqn)[0] + 100_000
    for ind in range(32):  # the USIM has used every IND slot at a higher SEQ
        state.accept(join_sqn(ahead_seq, ind))
    ahead = join_sqn(ahead_seq, 31)
    usim = EmulatedUsim(sub.imsi, sub.k, sub.opc, state)
    flow = EnrollmentFlow(usim=usim, attributes=canonical_values(sub), key=generate_key())
    with channel(cluster) as ch:
        cert, _ = enroll(ch, flow)
    assert flow.resynced == 1
    assert parse_ppcert(cert).subject_id == flow.subject_id
    hss_now = cluster.cms[OPERATOR].hss.get(sub.imsi)
    assert hss_now is not None and hss_now.sqn > ahead


def test_three_round_trip_flow_without_pipelining(cluster: LocalCluster) -> None:
    flow = flow_for(cluster, 11)
    with channel(cluster) as ch:
        cert, resp = enroll(ch, flow, pipelined=False)
    assert parse_ppcert(cert).subject_id == flow.subject_id == resp.subject_id


def test_failed_pipelined_submission_keeps_the_session(cluster: LocalCluster) -> None:
    """A pipelined ppCSR with a wrong attribute fails the call, nothing is stored, and the
    still-authenticated session accepts a corrected SubmitPpCsr."""
    from mpkix.rpc.errors import error_reason
    from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc

    flow = flow_for(cluster, 12)
    good = dict(flow.attributes)
    flow.attributes["name"] = "mallory impostor"
    state = cluster.cms[OPERATOR].state
    before = (state.count_subjects(), cluster.ca.store.count())  # type: ignore[union-attr]
    with channel(cluster) as ch:
        stub = enrollment_pb2_grpc.EnrollmentStub(ch)
        start = stub.StartAuthentication(
            enrollment_pb2.StartAuthenticationRequest(eap_packet=flow.identity_packet())
        )
        answer = flow.on_challenge(start.session_id, start.eap_packet)
        req = enrollment_pb2.CompleteAuthenticationRequest(
            session_id=flow.session_id, eap_packet=answer, submission=flow.submission()
        )
        with pytest.raises(grpc.RpcError) as err:
            stub.CompleteAuthentication(req)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        assert error_reason(err.value) == "ATTRIBUTE_MISMATCH"
        assert (state.count_subjects(), cluster.ca.store.count()) == before  # type: ignore[union-attr]
        flow.attributes = good
        resp = stub.SubmitPpCsr(flow.submission())
    assert parse_ppcert(flow.verify(resp)).subject_id == flow.subject_id
