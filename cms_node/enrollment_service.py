"""CMS ``Enrollment`` service: ceIssuance CMA ↔ CMS (paper §4.1, §5.2 steps 1-3 and 6;
ARCHITECTURE §2.1 steps 1-3 and 5).

SubmitPpCsr opens ``Enc(ppCSR ‖ MAC(ppCSR, K_aut), K_encr)``, checks the ppCSR's
self-signature, recomputes every sealed attribute from the HSS record (any mismatch →
rejected, nothing stored), endorses it with the operator key, has the CA issue it over the
shared issuance stream, and stores K_encr/K_aut with the anonymized attribute values only once
the certificate exists. A retried transaction id returns the stored answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf.message import DecodeError

from cms_node.authenticator import EapAkaPrimeAuthenticator
from cms_node.ca_client import IssuanceClient
from cms_node.hss.store import SubscriberStore
from cms_node.state import CmsState, SubjectRecord
from mpkix.anonymize import all_levels
from mpkix.attributes import ATTRIBUTE_IDS, canonical_values
from mpkix.endorsement import PrivateKey, sign_endorsement
from mpkix.envelope import submission_aad
from mpkix.profile.ppcsr import PpCsrError, parse_ppcsr
from mpkix.profile.sealing import (
    Sealer,
    SealingError,
    SubmissionTruncated,
)
from mpkix.profile.signature_profiles import SignatureProfileError, get_profile
from mpkix.rpc.errors import ServiceError, invalid, rpc_method
from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc, issuance_pb2

log = logging.getLogger("mpkix.cms.enrollment")

TRANSACTION_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
MAX_SUBMISSION = 32 * 1024



@dataclass(frozen=True)
class OperatorIdentity:
    operator_id: str
    endorsement_key: PrivateKey
    cms_address: str
    default_profile: str = "mss:mpkix:authn:loa3:app"


class EnrollmentService(enrollment_pb2_grpc.EnrollmentServicer):
    def __init__(
        self,
        authenticator: EapAkaPrimeAuthenticator,
        hss: SubscriberStore,
        state: CmsState,
        ca: IssuanceClient,
        operator: OperatorIdentity,
    ) -> None:
        self._auth = authenticator
        self._hss = hss
        self._state = state
        self._ca = ca
        self._op = operator
        self._in_flight: set[str] = set()  # transaction ids being processed

    @rpc_method
    async def StartAuthentication(
        self,
        request: enrollment_pb2.StartAuthenticationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.StartAuthenticationResponse:
        if not request.eap_packet:
            raise invalid("eap_packet is empty: send an EAP-Response/Identity")
        session, packet = self._auth.start(bytes(request.eap_packet))
        resp = enrollment_pb2.StartAuthenticationResponse(
            session_id=session.session_id, eap_packet=packet
        )
        resp.expires_at.FromDatetime(_wall_clock(session.expires_at))
        return resp

    @rpc_method
    async def CompleteAuthentication(
        self,
        request: enrollment_pb2.CompleteAuthenticationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.CompleteAuthenticationResponse:
        if not request.session_id:
            raise invalid("session_id is empty")
        if not request.eap_packet:
            raise invalid("eap_packet is empty: send the EAP-Response/AKA'-Challenge")
        ok, packet, session = self._auth.complete(request.session_id, bytes(request.eap_packet))
        Outcome = enrollment_pb2.CompleteAuthenticationResponse.Outcome
        resp = enrollment_pb2.CompleteAuthenticationResponse(
            outcome=Outcome.AUTHENTICATED if ok else Outcome.RESYNCHRONIZED,
            eap_packet=packet,
        )
        resp.expires_at.FromDatetime(_wall_clock(session.expires_at))
        if ok and request.HasField("submission"):
            if request.submission.session_id != request.session_id:
                raise invalid("the pipelined submission names another session")
            resp.enrollment.CopyFrom(await self._submit_guarded(request.submission, context))
        return resp

    @rpc_method
    async def SubmitPpCsr(
        self,
        request: enrollment_pb2.SubmitPpCsrRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.SubmitPpCsrResponse:
        return await self._submit_guarded(request, context)

    async def _submit_guarded(
        self,
        request: enrollment_pb2.SubmitPpCsrRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.SubmitPpCsrResponse:
        # One attempt per transaction at a time: a retry racing the first attempt is told to
        # retry (then it gets the stored answer) instead of issuing alongside it.
        tx = request.transaction_id
        if tx in self._in_flight:
            raise ServiceError(
                grpc.StatusCode.ABORTED,
                "this transaction is already being processed; retry",
                reason="TRANSACTION_IN_PROGRESS",
            )
        self._in_flight.add(tx)
        timing: dict[str, float] = {}
        try:
            return await self._submit(request, timing)
        finally:
            self._in_flight.discard(tx)
            if timing:
                # HTTP Server-Timing syntax: T2 (validation + endorsement), T3 (CA round trip).
                context.set_trailing_metadata(
                    (
                        (
                            "server-timing",
                            ", ".join(f"{k};dur={v * 1000:.3f}" for k, v in timing.items()),
                        ),
                    )
                )

    async def _submit(
        self, request: enrollment_pb2.SubmitPpCsrRequest, timing: dict[str, float]
    ) -> enrollment_pb2.SubmitPpCsrResponse:
        t0 = time.perf_counter()
        tx = request.transaction_id
        if not TRANSACTION_RE.match(tx):
            raise invalid("transaction_id must be 8-128 characters of [A-Za-z0-9._:-] (a UUID)")
        if not request.session_id:
            raise invalid("session_id is empty")
        if not request.sealed_submission:
            raise invalid("sealed_submission is empty")
        if len(request.sealed_submission) > MAX_SUBMISSION:
            raise invalid(f"sealed_submission is larger than {MAX_SUBMISSION} bytes")
        auth = self._auth.authenticated(request.session_id)
        self._auth.bind_transaction(request.session_id, tx, commit=False)

        stored = self._stored_answer(tx, auth.imsi)
        if stored is not None:
            return stored

        sealer = Sealer(auth.keys.k_encr, auth.keys.k_aut)
        try:
            plaintext = sealer.open_submission(
                bytes(request.sealed_submission), submission_aad(request.session_id, tx)
            )
        except SubmissionTruncated as e:
            raise invalid(f"sealed_submission is truncated: {e}") from None
        except SealingError:
            raise ServiceError(
                grpc.StatusCode.UNAUTHENTICATED,
                "sealed_submission is not protected with this session's K_encr/K_aut",
                reason="SUBMISSION_NOT_AUTHENTIC",
            ) from None
        sub_msg = enrollment_pb2.PpCsrSubmission()
        try:
            sub_msg.ParseFromString(plaintext)
        except DecodeError:
            raise invalid("the sealed submission does not hold a PpCsrSubmission") from None
        if sub_msg.transaction_id != tx:
            raise invalid("the sealed submission names another transaction_id")
        try:
            csr = parse_ppcsr(bytes(sub_msg.csr_der))
        except PpCsrError as e:
            raise invalid(f"ppCSR rejected: {e}", reason="PPCSR_INVALID") from None
        profile = sub_msg.signature_profile or self._op.default_profile
        try:
            profile = get_profile(profile).uri_text
        except SignatureProfileError as e:
            raise invalid(f"signature profile rejected: {e}") from None

        subscriber = self._hss.get(auth.imsi)
        if subscriber is None:  # deleted since authentication
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, "subscription no longer active")
        unknown = sorted(set(csr.sealed) - set(ATTRIBUTE_IDS))
        if unknown:
            raise invalid(f"ppCSR seals unknown attributes: {', '.join(unknown)}")
        if not csr.sealed:
            raise invalid("ppCSR carries no sealed attribute")
        values = canonical_values(subscriber)
        mismatched = [
            a for a, blob in sorted(csr.sealed.items()) if not sealer.verify(a, values[a], blob)
        ]
        if mismatched:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                "ppCSR attribute(s) do not match the operator's verified record: "
                + ", ".join(mismatched),
                reason="ATTRIBUTE_MISMATCH",
            )
        if self._state.get_subject(csr.subject_id) is not None:
            return self._answer_conflict(tx, auth.imsi)
        today = dt.datetime.now(dt.UTC).date()
        anonymized = all_levels(values, today)

        endorsement = sign_endorsement(
            self._op.endorsement_key,
            csr_der=csr.der,
            operator_id=self._op.operator_id,
            signature_profile=profile,
            cms_address=self._op.cms_address,
            transaction_id=tx,
        )
        t1 = time.perf_counter()
        timing["validate"] = t1 - t0
        result = await self._ca.issue(
            issuance_pb2.IssueRequest(request_id=tx, endorsement=endorsement, csr_der=csr.der)
        )
        timing["issue"] = time.perf_counter() - t1
        if result.error_code:
            code = _status_code(result.error_code)
            raise ServiceError(code, f"the CA refused the ppCSR: {result.error_message}")
        bundle = result.bundle
        cert = x509.load_der_x509_certificate(bundle.certificate_der)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if cert.public_key().public_bytes(*spki) != csr.public_key.public_bytes(*spki):
            raise ServiceError(
                grpc.StatusCode.INTERNAL, "the CA returned a certificate for another key"
            )

        response = enrollment_pb2.SubmitPpCsrResponse(
            transaction_id=tx, subject_id=csr.subject_id, bundle=bundle
        )
        try:
            await self._state.record_enrollment(
                transaction_id=tx,
                subject=SubjectRecord(
                    subject_id=csr.subject_id,
                    imsi=auth.imsi,
                    k_encr=auth.keys.k_encr,
                    k_aut=auth.keys.k_aut,
                    cert_serial=format(cert.serial_number, "x"),
                    cert_sha256=hashlib.sha256(bundle.certificate_der).digest(),
                    anonymized={k: list(v) for k, v in anonymized.items()},
                    levels_as_of=today.isoformat(),
                ),
                csr_sha256=hashlib.sha256(csr.der).digest(),
                response=response.SerializeToString(),
            )
        except sqlite3.IntegrityError:
            # A concurrent retry of this transaction (or a racing use of this subject id)
            # committed first: answer as a sequential retry would.
            return self._answer_conflict(tx, auth.imsi)
        self._auth.bind_transaction(request.session_id, tx, commit=True)
        return response

    def _stored_answer(self, tx: str, imsi: str) -> enrollment_pb2.SubmitPpCsrResponse | None:
        """The stored answer of transaction ``tx`` of ``imsi``; ALREADY_EXISTS if another
        subscriber used ``tx``; None if ``tx`` is new."""
        stored = self._state.get_enrollment(tx)
        if stored is None:
            return None
        if stored.imsi != imsi:
            raise ServiceError(
                grpc.StatusCode.ALREADY_EXISTS,
                "transaction_id is already used; choose a new one",
                reason="TRANSACTION_ID_REUSED",
            )
        return enrollment_pb2.SubmitPpCsrResponse.FromString(stored.response)

    def _answer_conflict(self, tx: str, imsi: str) -> enrollment_pb2.SubmitPpCsrResponse:
        """The subject id is taken: by this transaction (a retry that raced the first attempt
        gets its answer) or by another one (ALREADY_EXISTS)."""
        stored = self._stored_answer(tx, imsi)
        if stored is None:
            raise ServiceError(
                grpc.StatusCode.ALREADY_EXISTS,
                "this subject id already has a ppCert; use a new subject id for a new ppCSR",
                reason="SUBJECT_ID_REUSED",
            )
        return stored


def _wall_clock(expires_monotonic: float) -> dt.datetime:
    """A session's monotonic expiry as UTC wall-clock time (for ``expires_at`` fields)."""
    remaining = max(0.0, expires_monotonic - time.monotonic())
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=remaining)


def _status_code(value: int) -> grpc.StatusCode:
    for c in grpc.StatusCode:
        if c.value[0] == value:
            return c
    return grpc.StatusCode.INTERNAL
