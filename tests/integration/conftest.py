"""Fixtures and helpers for the ceIssuance failure-path tests (ARCHITECTURE §2.1, §3).

The tests drive single protocol steps over real TLS gRPC: :class:`EnrollmentFlow` builds the
CMA's messages, ``mpkix.aka.eap`` builds the bad ones, and :func:`expect_error` checks the exact
status code and ErrorInfo reason. :class:`Stored` snapshots what the CMS and the CA hold, so a
test can show that a refused request left nothing behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from cms_node.node import ENDORSEMENT_KEY, CmsNode, CmsNodeConfig, load_endorsement_key
from deploy.local import LocalCluster
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import ATTRIBUTE_IDS, canonical_values
from mpkix.endorsement import PrivateKey, sign_endorsement
from mpkix.envelope import submission_aad
from mpkix.profile.ppcsr import build_ppcsr, new_subject_id
from mpkix.profile.sealing import Sealer
from mpkix.rpc.errors import error_reason
from mpkix.rpc.server import BuiltServer, ServerRunner
from mpkix.rpc.tls import TlsConfig, channel_credentials, channel_options
from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc, issuance_pb2, issuance_pb2_grpc
from tests.conftest import OPERATOR, subscribers

Outcome = enrollment_pb2.CompleteAuthenticationResponse.Outcome
SHORT_TTL_S = 0.5


# --- stored state --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """What the cluster has stored: CMS subjects and enrollments, CA certificates."""

    cms_subjects: int
    cms_enrollments: int
    ca_certificates: int

    @classmethod
    def of(cls, cluster: LocalCluster, operator: str = OPERATOR) -> Stored:
        assert cluster.ca is not None
        cms = cluster.cms[operator].state
        return cls(cms.count_subjects(), cms.count_enrollments(), cluster.ca.store.count())

    def plus(self, n: int) -> Stored:
        return Stored(self.cms_subjects + n, self.cms_enrollments + n, self.ca_certificates + n)


# --- errors --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A failed call's status: code, details and ErrorInfo reason."""

    code: grpc.StatusCode
    details: str
    reason: str


def expect_error(
    call: Callable[[], Any], code: grpc.StatusCode, reason: str | None = None
) -> Failure:
    """Run ``call``; it must fail with ``code`` (and ErrorInfo ``reason`` when given)."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    failure = Failure(err.code(), err.details() or "", error_reason(err))
    assert failure.code == code, f"expected {code}, got {failure.code}: {failure.details}"
    if reason is not None:
        assert failure.reason == reason, failure.details
    return failure


# --- CMA side ------------------------------------------------------------------------------------


def make_flow(cluster: LocalCluster, index: int, sqn: UsimSqnState | None = None) -> EnrollmentFlow:
    """The CMA flow of the ``index``-th HSS subscriber with a fresh USIM memory and key."""
    sub = subscribers(cluster.operators[0].hss_db, 1, offset=index)[0]
    usim = EmulatedUsim(sub.imsi, sub.k, sub.opc, sqn or UsimSqnState())
    return EnrollmentFlow(usim=usim, attributes=canonical_values(sub), key=generate_key())


def cms_channel(port: int, cluster: LocalCluster) -> grpc.Channel:
    """What a CMA opens: TLS with the cluster root, no client certificate."""
    return grpc.secure_channel(
        f"127.0.0.1:{port}", channel_credentials(cluster.client_tls()), options=channel_options()
    )


def start(stub: enrollment_pb2_grpc.EnrollmentStub, flow: EnrollmentFlow) -> bytes:
    """StartAuthentication; returns the CMA's answer to the challenge (session id set)."""
    resp = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=flow.identity_packet()), timeout=10
    )
    return flow.on_challenge(resp.session_id, resp.eap_packet)


def complete(
    stub: enrollment_pb2_grpc.EnrollmentStub, session_id: str, packet: bytes
) -> enrollment_pb2.CompleteAuthenticationResponse:
    return stub.CompleteAuthentication(
        enrollment_pb2.CompleteAuthenticationRequest(session_id=session_id, eap_packet=packet),
        timeout=10,
    )


def authenticate(stub: enrollment_pb2_grpc.EnrollmentStub, flow: EnrollmentFlow) -> None:
    """Run EAP-AKA' to EAP-Success (no resynchronization expected)."""
    answer = start(stub, flow)  # sets flow.session_id
    done = complete(stub, flow.session_id, answer)
    assert done.outcome == Outcome.AUTHENTICATED
    assert flow.on_complete(done) is None


def sealed_request(
    flow: EnrollmentFlow,
    csr_der: bytes,
    *,
    sealer: Sealer | None = None,
    aad_session_id: str | None = None,
    transaction_id: str | None = None,
) -> enrollment_pb2.SubmitPpCsrRequest:
    """A SubmitPpCsr carrying ``csr_der`` sealed as the CMA seals it, or with other keys
    (``sealer``) or bound to another session (``aad_session_id``)."""
    assert flow.keys is not None
    tx = transaction_id or flow.transaction_id
    sid = aad_session_id or flow.session_id
    inner = enrollment_pb2.PpCsrSubmission(csr_der=csr_der, transaction_id=tx)
    sealer = sealer or Sealer(flow.keys.k_encr, flow.keys.k_aut)
    blob = sealer.seal_submission(inner.SerializeToString(), submission_aad(sid, tx))
    return enrollment_pb2.SubmitPpCsrRequest(
        session_id=flow.session_id, transaction_id=tx, sealed_submission=blob
    )


# --- CMS → CA side -------------------------------------------------------------------------------


def make_ppcsr() -> bytes:
    """A well-formed ppCSR over all attributes, sealed under throwaway keys (the CA does not
    open the seals; the CMS already checked them)."""
    sealer = Sealer(os.urandom(16), os.urandom(32))
    sealed: dict[str, bytes] = {a: sealer.seal_value(a, "value of " + a) for a in ATTRIBUTE_IDS}
    csr = build_ppcsr(generate_key(), new_subject_id(), sealed)
    return csr.public_bytes(serialization.Encoding.DER)


def operator_key(cluster: LocalCluster) -> PrivateKey:
    """The real operator endorsement key, from the CMS state directory."""
    directory = cluster.cms_dir(cluster.operators[0])
    assert (directory / ENDORSEMENT_KEY).exists()
    return load_endorsement_key(directory)


def issue_request(
    key: PrivateKey,
    csr_der: bytes,
    request_id: str,
    *,
    endorse_csr: bytes | None = None,
    operator_id: str = OPERATOR,
    **kw: Any,
) -> issuance_pb2.IssueRequest:
    """An IssueRequest for ``csr_der`` endorsed by ``key`` (over ``endorse_csr`` if given)."""
    endorsement = sign_endorsement(
        key,
        csr_der=endorse_csr if endorse_csr is not None else csr_der,
        operator_id=operator_id,
        signature_profile="mss:mpkix:authn:loa3:app",
        cms_address="127.0.0.1:4433",
        transaction_id=request_id,
        **kw,
    )
    return issuance_pb2.IssueRequest(
        request_id=request_id, endorsement=endorsement, csr_der=csr_der
    )


def ca_channel(cluster: LocalCluster, tls: TlsConfig | None = None) -> grpc.Channel:
    """A channel to the CA; by default with the CMS node's cluster TLS material (mTLS)."""
    tls = tls or cluster.tls(cluster.operators[0].node_name)
    return grpc.secure_channel(
        f"127.0.0.1:{cluster.ca_port}", channel_credentials(tls), options=channel_options()
    )


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cms_chan(cluster: LocalCluster) -> Iterator[grpc.Channel]:
    with cms_channel(cluster.cms_ports[OPERATOR], cluster) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(cms_chan: grpc.Channel) -> enrollment_pb2_grpc.EnrollmentStub:
    return enrollment_pb2_grpc.EnrollmentStub(cms_chan)


@pytest.fixture(scope="module")
def ca_chan(cluster: LocalCluster) -> Iterator[grpc.Channel]:
    with ca_channel(cluster) as ch:
        yield ch


@pytest.fixture(scope="module")
def issuance(ca_chan: grpc.Channel) -> issuance_pb2_grpc.IssuanceStub:
    return issuance_pb2_grpc.IssuanceStub(ca_chan)


@dataclass
class ShortTtlCms:
    node: CmsNode
    stub: enrollment_pb2_grpc.EnrollmentStub


@pytest.fixture(scope="module")
def short_ttl_cms(cluster: LocalCluster, hss_template: Path) -> Iterator[ShortTtlCms]:
    """A second CMS node of the operator with ``session_ttl_s=0.5``, using the cluster's CA.

    It has its own state directory and HSS copy but the operator's registered endorsement key,
    so a complete enrollment through it would be accepted by the CA.
    """
    op = cluster.operators[0]
    state_dir = cluster.workdir / "cms-short-ttl"
    state_dir.mkdir()
    shutil.copy2(cluster.cms_dir(op) / ENDORSEMENT_KEY, state_dir / ENDORSEMENT_KEY)
    hss = cluster.workdir / "hss-short-ttl.sqlite"
    hss.write_bytes(hss_template.read_bytes())
    holder: list[CmsNode] = []

    async def make() -> BuiltServer:
        node = CmsNode(
            CmsNodeConfig(
                state_dir=state_dir,
                hss_db=hss,
                tls=cluster.tls(op.node_name),
                ca_target=f"127.0.0.1:{cluster.ca_port}",
                operator_id=op.operator_id,
                network_name=op.network_name,
                session_ttl_s=SHORT_TTL_S,
            )
        )
        holder.append(node)
        return await node.start()

    runner = ServerRunner(make, name="cms-short-ttl")
    port = runner.start()

    async def close() -> None:
        await holder[0].close()

    runner.on_stop.append(close)
    try:
        with cms_channel(port, cluster) as ch:
            yield ShortTtlCms(holder[0], enrollment_pb2_grpc.EnrollmentStub(ch))
    finally:
        runner.stop()
