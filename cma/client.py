"""gRPC drivers for the CMA enrollment flow: blocking (:func:`enroll`) and asyncio
(:func:`enroll_async`, used by the load generator). Both run :class:`EnrollmentFlow`."""

from __future__ import annotations

import time
from typing import Any

import grpc
from cryptography import x509

from cma.enrollment import EnrollmentFlow
from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc


def _complete_request(
    flow: EnrollmentFlow, answer: bytes, pipelined: bool
) -> enrollment_pb2.CompleteAuthenticationRequest:
    req = enrollment_pb2.CompleteAuthenticationRequest(
        session_id=flow.session_id, eap_packet=answer
    )
    if pipelined and flow.keys is not None:
        req.submission.CopyFrom(flow.submission())
    return req


def enroll(
    channel: grpc.Channel,
    flow: EnrollmentFlow,
    *,
    trusted_roots: list[x509.Certificate] | None = None,
    timeout: float = 30.0,
    pipelined: bool = True,
) -> tuple[x509.Certificate, enrollment_pb2.SubmitPpCsrResponse]:
    """Full ceIssuance. ``pipelined`` sends the sealed ppCSR with the challenge response
    (two round trips instead of three; enrollment.proto)."""
    stub = enrollment_pb2_grpc.EnrollmentStub(channel)
    start = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=flow.identity_packet()),
        timeout=timeout,
    )
    answer: bytes | None = flow.on_challenge(start.session_id, start.eap_packet)
    resp: enrollment_pb2.SubmitPpCsrResponse | None = None
    while answer is not None:
        done = stub.CompleteAuthentication(
            _complete_request(flow, answer, pipelined), timeout=timeout
        )
        answer = flow.on_complete(done)
        if done.HasField("enrollment"):
            resp = done.enrollment
    if resp is None:
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
    pipelined: bool = True,
) -> enrollment_pb2.SubmitPpCsrResponse:
    """Same flow on an asyncio stub; ``timing`` receives T1 (``t_client``: EAP round trips and
    ppCSR preparation), ``t_total`` and the CMS's server-timing trailer (T2, T3)."""
    t0 = time.perf_counter()
    start = await stub.StartAuthentication(  # type: ignore[misc]
        enrollment_pb2.StartAuthenticationRequest(eap_packet=flow.identity_packet()),
        timeout=timeout,
    )
    answer: bytes | None = flow.on_challenge(start.session_id, start.eap_packet)
    resp: enrollment_pb2.SubmitPpCsrResponse | None = None
    call: Any = None
    t_sent = t0
    while answer is not None:
        req = _complete_request(flow, answer, pipelined)
        t_sent = time.perf_counter()
        call = stub.CompleteAuthentication(req, timeout=timeout)
        done = await call
        answer = flow.on_complete(done)
        if done.HasField("enrollment"):
            resp = done.enrollment
    if resp is None:
        req2 = flow.submission()
        t_sent = time.perf_counter()
        call = stub.SubmitPpCsr(req2, timeout=timeout)
        resp = await call
    assert resp is not None
    flow.verify(resp)
    t_end = time.perf_counter()
    if timing is not None:
        timing.update(t_client=t_sent - t0, t_total=t_end - t0)
        trailer = await call.trailing_metadata()
        timing["server_timing"] = parse_server_timing(dict(trailer or ()).get("server-timing", ""))
    return resp
