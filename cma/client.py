"""gRPC drivers for the CMA enrollment flow: blocking (:func:`enroll`) and asyncio
(:func:`enroll_async`, used by the load generator). Both run :class:`EnrollmentFlow`."""

from __future__ import annotations

from typing import Any

import grpc
from cryptography import x509

from cma.enrollment import EnrollmentFlow
from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc


def enroll(
    channel: grpc.Channel,
    flow: EnrollmentFlow,
    *,
    trusted_roots: list[x509.Certificate] | None = None,
    timeout: float = 30.0,
) -> tuple[x509.Certificate, enrollment_pb2.SubmitPpCsrResponse]:
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
    resp = stub.SubmitPpCsr(flow.submission(), timeout=timeout)
    return flow.verify(resp, trusted_roots), resp


def parse_server_timing(value: str | bytes) -> dict[str, float]:
    """``name;dur=ms, …`` (the HTTP Server-Timing syntax) → {name: ms}."""
    if isinstance(value, bytes):
        value = value.decode()
    out: dict[str, float] = {}
    for part in value.split(","):
        name, _, rest = part.strip().partition(";dur=")
        if name and rest:
            try:
                out[name] = float(rest)
            except ValueError:
                continue
    return out


async def enroll_async(
    stub: enrollment_pb2_grpc.EnrollmentStub,
    flow: EnrollmentFlow,
    *,
    timing: dict[str, Any] | None = None,
    timeout: float = 60.0,
) -> enrollment_pb2.SubmitPpCsrResponse:
    """Same flow on an asyncio stub; ``timing`` receives t_auth/t_csr/t_issue seconds."""
    import time

    t0 = time.perf_counter()
    start = await stub.StartAuthentication(  # type: ignore[misc]
        enrollment_pb2.StartAuthenticationRequest(eap_packet=flow.identity_packet()),
        timeout=timeout,
    )
    answer: bytes | None = flow.on_challenge(start.session_id, start.eap_packet)
    while answer is not None:
        done = await stub.CompleteAuthentication(  # type: ignore[misc]
            enrollment_pb2.CompleteAuthenticationRequest(
                session_id=flow.session_id, eap_packet=answer
            ),
            timeout=timeout,
        )
        answer = flow.on_complete(done)
    t1 = time.perf_counter()
    req = flow.submission()
    t2 = time.perf_counter()
    call = stub.SubmitPpCsr(req, timeout=timeout)
    resp: enrollment_pb2.SubmitPpCsrResponse = await call  # type: ignore[misc]
    flow.verify(resp)
    t3 = time.perf_counter()
    if timing is not None:
        timing.update(t_auth=t1 - t0, t_csr=t2 - t1, t_issue=t3 - t2)
        trailer = await call.trailing_metadata()  # type: ignore[attr-defined]
        timing["server_timing"] = parse_server_timing(dict(trailer or ()).get("server-timing", ""))
    return resp
