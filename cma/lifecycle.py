"""CMA side of the certificate life cycle: authenticate with the SIM (EAP-AKA') and ask the CMS
to revoke, suspend or resume ppCerts — from any device holding the SIM, without the lost key."""

from __future__ import annotations

import grpc

from cma.enrollment import EnrollmentFlow
from cma.usim import EmulatedUsim
from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc, lifecycle_pb2, lifecycle_pb2_grpc


def authenticate(
    channel: grpc.Channel, usim: EmulatedUsim, network_name: str = "WLAN", timeout: float = 30.0
) -> str:
    """Run EAP-AKA' with the CMS; returns the authenticated session id."""
    from cryptography.hazmat.primitives.asymmetric import ec

    # The flow only needs a key to build ppCSRs; authentication alone never uses it.
    flow = EnrollmentFlow(
        usim=usim,
        attributes={},
        key=ec.generate_private_key(ec.SECP256R1()),
        network_name=network_name,
    )
    stub = enrollment_pb2_grpc.EnrollmentStub(channel)
    start = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=flow.identity_packet()),
        timeout=timeout,
    )
    answer: bytes | None = flow.on_challenge(start.session_id, start.eap_packet)
    while answer is not None:
        done = stub.CompleteAuthentication(
            enrollment_pb2.CompleteAuthenticationRequest(
                session_id=flow.session_id, eap_packet=answer
            ),
            timeout=timeout,
        )
        answer = flow.on_complete(done)
    return flow.session_id


def change_status(
    channel: grpc.Channel,
    usim: EmulatedUsim,
    action: int,
    *,
    subject_id: str = "",
    reason: int = 0,
    network_name: str = "WLAN",
    timeout: float = 60.0,
) -> lifecycle_pb2.ChangeStatusResponse:
    """Revoke/suspend/resume one ppCert (``subject_id``) or all of the subscriber's."""
    session = authenticate(channel, usim, network_name)
    stub = lifecycle_pb2_grpc.LifecycleStub(channel)
    resp: lifecycle_pb2.ChangeStatusResponse = stub.ChangeStatus(
        lifecycle_pb2.ChangeStatusRequest(
            session_id=session,
            subject_id=subject_id,
            all_certificates=not subject_id,
            action=action,  # type: ignore[arg-type]
            reason=reason,
        ),
        timeout=timeout,
    )
    return resp
