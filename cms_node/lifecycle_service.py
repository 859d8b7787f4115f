"""CMS ``Lifecycle`` service: the user revokes, suspends or resumes ppCerts after EAP-AKA'
(ARCHITECTURE §2.4: lost or stolen phone — no private key needed, only the SIM).

The session must be authenticated (Enrollment.Start/CompleteAuthentication). Only the
subscriber's own ppCerts can be named; the CMS signs the registry transaction with its operator
validator key and the contract checks the certificate's batch proof and that this operator
endorsed it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import grpc
from cryptography import x509

from cms_node.authenticator import EapAkaPrimeAuthenticator
from cms_node.state import CmsState
from ledger.backends.base import LedgerBackend
from ledger.status import (
    STATE_NAMES,
    Action,
    StatusChangeRefused,
    action_from_proto,
    change_status,
    current_status,
    refused_error,
)
from mpkix.rpc.errors import ServiceError, invalid, rpc_method
from mpkix.v1 import enrollment_pb2, lifecycle_pb2, lifecycle_pb2_grpc

log = logging.getLogger("mpkix.cms.lifecycle")

# RFC 5280 CRLReason values a subscriber may give (CA/AA compromise are the CA's).
USER_REASONS = {0, 1, 3, 4, 5, 9}


class LifecycleService(lifecycle_pb2_grpc.LifecycleServicer):
    def __init__(
        self,
        authenticator: EapAkaPrimeAuthenticator,
        state: CmsState,
        ledger: LedgerBackend | None,
    ) -> None:
        self._auth = authenticator
        self._state = state
        self._ledger = ledger

    def _bundles(self, imsi: str) -> list[tuple[str, enrollment_pb2.SubmitPpCsrResponse]]:
        out = []
        for subject_id, raw in self._state.bundles_of(imsi):
            resp = enrollment_pb2.SubmitPpCsrResponse()
            resp.ParseFromString(raw)
            out.append((subject_id, resp))
        return out

    def _require_ledger(self) -> LedgerBackend:
        if self._ledger is None:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this CMS is not connected to a ledger; status changes are unavailable",
            )
        return self._ledger

    @rpc_method
    async def ChangeStatus(
        self,
        request: lifecycle_pb2.ChangeStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> lifecycle_pb2.ChangeStatusResponse:
        action = action_from_proto(request.action)
        if bool(request.subject_id) == request.all_certificates:
            raise invalid("name one subject_id, or set all_certificates (not both)")
        if action == Action.REVOKE and request.reason not in USER_REASONS:
            raise invalid(
                f"reason {request.reason} is not a subscriber revocation reason "
                f"(RFC 5280 CRLReason {sorted(USER_REASONS)})"
            )
        if not request.session_id:
            raise invalid("session_id is empty: authenticate with EAP-AKA' first")
        auth = self._auth.authenticated(request.session_id)
        ledger = self._require_ledger()
        mine = self._bundles(auth.imsi)
        if request.subject_id:
            mine = [(s, r) for s, r in mine if s == request.subject_id]
            if not mine:
                # Same answer for "no such subject" and "someone else's": no oracle.
                raise ServiceError(
                    grpc.StatusCode.NOT_FOUND,
                    "no ppCert with this subject id belongs to the authenticated subscriber",
                )
        out = lifecycle_pb2.ChangeStatusResponse()
        for subject_id, resp in mine:
            bundle = resp.bundle
            if not bundle.HasField("inclusion"):
                raise ServiceError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"ppCert {subject_id} was issued before anchoring; ask the CA to revoke it",
                )
            try:
                result = await asyncio.to_thread(
                    change_status,
                    ledger,
                    action,
                    bundle.certificate_der,
                    bundle.inclusion,
                    request.reason,
                )
            except StatusChangeRefused as e:
                raise refused_error(action, subject_id, e) from None
            log.info("subject %s: %s (tx %s)", subject_id, result.state, result.tx_hash.hex())
            serial = x509.load_der_x509_certificate(bundle.certificate_der).serial_number
            cs = out.certificates.add(
                subject_id=subject_id,
                serial=format(serial, "x"),
                state=result.state,
                reason=result.reason,
                tx_hash=result.tx_hash,
            )
            cs.changed_at.FromDatetime(result.changed_at)
        return out

    @rpc_method
    async def ListCertificates(
        self,
        request: lifecycle_pb2.ListCertificatesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> lifecycle_pb2.ListCertificatesResponse:
        if not request.session_id:
            raise invalid("session_id is empty: authenticate with EAP-AKA' first")
        auth = self._auth.authenticated(request.session_id)
        out = lifecycle_pb2.ListCertificatesResponse()
        for subject_id, resp in self._bundles(auth.imsi):
            b = resp.bundle
            cert = x509.load_der_x509_certificate(b.certificate_der)
            cs = out.certificates.add(subject_id=subject_id, serial=format(cert.serial_number, "x"))
            if self._ledger is not None and b.HasField("inclusion"):
                st, reason, _ = await asyncio.to_thread(
                    current_status,
                    self._ledger,
                    bytes(b.inclusion.issuer_ca_sha256),
                    hashlib.sha256(b.certificate_der).digest(),
                )
                cs.state = STATE_NAMES[st]
                cs.reason = reason
            else:
                cs.state = "unknown"
        return out
