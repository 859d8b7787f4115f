"""CA ``Issuance`` service (paper §4.1.3, §5.2 step 5; ARCHITECTURE §2.1 step 4).

For each request: check shape, verify the operator endorsement against a registered operator
key and that it covers this exact ppCSR, verify the applicant's self-signature (proof of
possession) and the ppCSR profile, then issue, lint-before-sign and store. A repeated request
id with the same ppCSR returns the stored certificate; with another ppCSR it is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca_node.anchoring import AnchorBatcher, AnchorRefused, leaf_entry
from ca_node.authority import CertificateAuthority, IssuanceRefused
from ca_node.store import IssuedRecord, IssuedStore
from mpkix.endorsement import EndorsementError, OperatorKeyRegistry, key_id, verify_endorsement
from mpkix.profile.lint import LintError
from mpkix.profile.ppcert import PpCertError, PpCertParams
from mpkix.profile.ppcsr import PpCsrError, parse_ppcsr
from mpkix.profile.signature_profiles import SignatureProfileError, get_profile
from mpkix.rpc.errors import ServiceError, invalid, rpc_method
from mpkix.v1 import common_pb2, issuance_pb2, issuance_pb2_grpc

log = logging.getLogger("mpkix.ca.issuance")

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_CSR_BYTES = 16 * 1024


@dataclass(frozen=True)
class IssuancePolicy:
    validity: dt.timedelta = dt.timedelta(days=365)
    endorsement_max_age: dt.timedelta = dt.timedelta(minutes=5)
    default_profile: str = "mss:mpkix:authn:loa3:app"
    # How long Issue waits for the certificate's batch to be anchored before answering
    # UNAVAILABLE (the certificate is kept; a retry with the same request id returns it).
    anchor_timeout: dt.timedelta = dt.timedelta(seconds=20)


class IssuanceService(issuance_pb2_grpc.IssuanceServicer):
    def __init__(
        self,
        authority: CertificateAuthority,
        operators: OperatorKeyRegistry,
        store: IssuedStore,
        policy: IssuancePolicy | None = None,
        batcher: AnchorBatcher | None = None,
    ) -> None:
        self._batcher = batcher
        self._ca = authority
        self._operators = operators
        self._store = store
        self._policy = policy or IssuancePolicy()
        self._chain_der = [
            c.public_bytes(serialization.Encoding.DER) for c in authority.chain
        ]

    # -- core -------------------------------------------------------------------------------
    async def _bundle(self, rec: IssuedRecord) -> common_pb2.CertificateBundle:
        bundle = common_pb2.CertificateBundle(
            certificate_der=rec.cert_der, ca_chain_der=self._chain_der
        )
        if self._batcher is None:
            return bundle
        inclusion = self._batcher.inclusion_for(rec.serial)
        if inclusion is None:
            refusal = self._batcher.refusal_for(rec.serial)
            if refusal is not None:
                raise ServiceError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"the ledger refuses this CA's batches ({refusal}); the certificate is kept: "
                    "retry with the same request id once the registry trusts this CA again",
                    reason="ANCHOR_REFUSED",
                )
            if self._batcher.is_batched(rec.serial):
                raise ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    "the certificate's batch is being anchored; retry with the same request id",
                    reason="ANCHORING_PENDING",
                )
            fut = self._batcher.submit(
                rec.serial, leaf_entry(rec.cert_der, rec.operator_key_hash)
            )
            try:
                inclusion = await asyncio.wait_for(
                    asyncio.shield(fut), self._policy.anchor_timeout.total_seconds()
                )
            except AnchorRefused as e:
                raise ServiceError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"the ledger refuses this CA's batches ({e}); the certificate is kept: retry "
                    "with the same request id once the registry trusts this CA again",
                    reason="ANCHOR_REFUSED",
                ) from None
            except TimeoutError:
                raise ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    "the ledger did not anchor the certificate in time; retry with the same "
                    "request id (the certificate is kept)",
                    reason="ANCHORING_PENDING",
                ) from None
        bundle.inclusion.CopyFrom(inclusion)
        return bundle

    async def issue(self, req: issuance_pb2.IssueRequest) -> common_pb2.CertificateBundle:
        """Validate and issue one request; raises :class:`ServiceError`."""
        if not REQUEST_ID_RE.match(req.request_id):
            raise invalid("request_id must be 1-128 characters of [A-Za-z0-9._:-]")
        if not req.csr_der:
            raise invalid("csr_der is empty: send the ppCSR the endorsement covers")
        if len(req.csr_der) > MAX_CSR_BYTES:
            raise invalid(f"csr_der is larger than {MAX_CSR_BYTES} bytes")
        if not req.HasField("endorsement") or not req.endorsement.signature:
            raise invalid("endorsement is missing: the CA issues only operator-endorsed ppCSRs")
        try:
            operator, body = verify_endorsement(
                self._operators,
                req.endorsement,
                req.csr_der,
                max_age=self._policy.endorsement_max_age,
            )
        except EndorsementError as e:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED, str(e), reason="ENDORSEMENT_REJECTED"
            ) from None
        if body.transaction_id and body.transaction_id != req.request_id:
            raise invalid("request_id differs from the endorsed transaction id")
        csr_sha256 = hashlib.sha256(req.csr_der).digest()
        existing = self._store.by_request(req.request_id)
        if existing is not None:
            if existing.csr_sha256 != csr_sha256:
                raise ServiceError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"request id {req.request_id} was already used for a different ppCSR",
                    reason="REQUEST_ID_REUSED",
                )
            return await self._bundle(existing)
        try:
            csr = parse_ppcsr(req.csr_der)
        except PpCsrError as e:
            raise invalid(f"ppCSR rejected: {e}", reason="PPCSR_INVALID") from None
        profile_uri = body.signature_profile or self._policy.default_profile
        try:
            get_profile(profile_uri)
        except SignatureProfileError as e:
            raise invalid(f"signature profile rejected: {e}") from None
        try:
            params = PpCertParams(
                operator_id=operator.operator_id,
                cms_address=body.cms_address,
                signature_profile=profile_uri,
                validity_days=self._policy.validity.days,
            )
        except PpCertError as e:
            raise invalid(f"endorsement parameters rejected: {e}") from None
        try:
            cert = self._ca.issue(csr, params)
        except (LintError, IssuanceRefused) as e:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"certificate failed pre-issuance lint: {e}",
                reason="LINT_FAILED",
            ) from None
        der = cert.public_bytes(serialization.Encoding.DER)
        stored = await self._store.add(
            IssuedRecord(
                serial=format(cert.serial_number, "x"),
                request_id=req.request_id,
                csr_sha256=csr_sha256,
                cert_sha256=hashlib.sha256(der).digest(),
                subject_id=csr.subject_id,
                operator_id=operator.operator_id,
                operator_key_hash=key_id(operator.public_key),
                cert_der=der,
                not_after=cert.not_valid_after_utc.timestamp(),
            )
        )
        if stored.csr_sha256 != csr_sha256:
            raise ServiceError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"request id {req.request_id} was already used for a different ppCSR",
                reason="REQUEST_ID_REUSED",
            )
        return await self._bundle(stored)

    # -- RPCs -------------------------------------------------------------------------------
    @rpc_method
    async def Issue(
        self, request: issuance_pb2.IssueRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> issuance_pb2.IssueResponse:
        bundle = await self.issue(request)
        return issuance_pb2.IssueResponse(request_id=request.request_id, bundle=bundle)

    async def IssueStream(
        self,
        request_iterator: AsyncIterator[issuance_pb2.IssueRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[issuance_pb2.IssueResponse]:
        out: asyncio.Queue[issuance_pb2.IssueResponse | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def one(req: issuance_pb2.IssueRequest) -> None:
            try:
                bundle = await self.issue(req)
                await out.put(issuance_pb2.IssueResponse(request_id=req.request_id, bundle=bundle))
            except ServiceError as e:
                await out.put(
                    issuance_pb2.IssueResponse(
                        request_id=req.request_id,
                        error_code=e.code.value[0],
                        error_message=e.message,
                    )
                )
            except Exception:
                log.exception("issuance failed for %s", req.request_id)
                await out.put(
                    issuance_pb2.IssueResponse(
                        request_id=req.request_id,
                        error_code=grpc.StatusCode.INTERNAL.value[0],
                        error_message="internal error; see the CA log",
                    )
                )

        async def pump() -> None:
            try:
                async for req in request_iterator:
                    t = asyncio.create_task(one(req))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.gather(*list(tasks))
            finally:
                await out.put(None)

        reader = asyncio.create_task(pump())
        try:
            while True:
                item = await out.get()
                if item is None:
                    break
                yield item
        finally:
            reader.cancel()
            for t in list(tasks):
                t.cancel()

    @rpc_method
    async def GetCaChain(
        self, request: issuance_pb2.GetCaChainRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> issuance_pb2.GetCaChainResponse:
        return issuance_pb2.GetCaChainResponse(ca_chain_der=self._chain_der)


def chain_pem(chain: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
