"""A grpc.aio server interceptor that authenticates callers by their ppCert (ARCHITECTURE §2.5;
decision 0808).

The caller presents its ppCert as the TLS client certificate (mutual TLS; the server's client
roots are the MPKIX CAs' root certificates) and sends its :class:`CertificateBundle` in the
binary metadata header ``mpkix-bundle-bin`` (:func:`bundle_metadata`), because TLS carries
neither the ledger inclusion proof nor the operator key hash. The interceptor checks that the
bundle is for the very certificate of the TLS handshake (which proved possession of its key),
verifies it with the SDK against the local mirror, and runs the handler with the
:class:`VerifiedSubject` available through :func:`current_subject`.

Refusals carry a google.rpc.ErrorInfo whose reason is the SDK's reason code:

* ``UNAUTHENTICATED`` — no client certificate (``NO_CLIENT_CERTIFICATE``), or the certificate
  is not a valid anchored ppCert (``MALFORMED``, ``NOT_ANCHORED``, ``UNTRUSTED_ISSUER``, …);
* ``PERMISSION_DENIED`` — a valid ppCert that may not be used: ``REVOKED``, ``SUSPENDED``,
  ``PROFILE_MISMATCH``;
* ``UNAVAILABLE`` — ``MIRROR_STALE``: the server cannot currently vouch for revocation state.

A server that *requires* client certificates (``require_client_auth=True``) refuses a caller
without one during the TLS handshake, before any interceptor runs (the caller sees
``UNAVAILABLE``); gRPC Python offers no "request but do not require" mode.
"""

from __future__ import annotations

import contextvars
import inspect
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, NoReturn

import grpc

from ias_sdk.mirror import LedgerMirror
from ias_sdk.verify import (
    Reason,
    VerificationError,
    VerifiedSubject,
    Verifier,
    check_requirement,
    verifier_for,
)
from mpkix.profile.signature_profiles import ComparisonMode
from mpkix.rpc.errors import ServiceError
from mpkix.v1 import common_pb2

__all__ = [
    "BUNDLE_METADATA_KEY",
    "DEFAULT_EXEMPT_PREFIXES",
    "PpCertAuthInterceptor",
    "bundle_metadata",
    "current_subject",
]

BUNDLE_METADATA_KEY: Final = "mpkix-bundle-bin"
#: Services callable without a ppCert: health checking and server reflection.
DEFAULT_EXEMPT_PREFIXES: Final = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_PERMISSION_REASONS: Final = frozenset({Reason.REVOKED, Reason.SUSPENDED, Reason.PROFILE_MISMATCH})
if TYPE_CHECKING:
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
    _Handler = grpc.RpcMethodHandler[Any, Any]
else:
    _InterceptorBase = grpc.aio.ServerInterceptor
    _Handler = grpc.RpcMethodHandler

_CURRENT: contextvars.ContextVar[VerifiedSubject] = contextvars.ContextVar("mpkix_ias_subject")


def current_subject() -> VerifiedSubject:
    """The verified caller of the RPC being handled; ``LookupError`` outside one."""
    return _CURRENT.get()


def bundle_metadata(
    bundle: common_pb2.CertificateBundle | bytes,
) -> tuple[tuple[str, bytes], ...]:
    """Client side: call metadata carrying ``bundle`` (pass as ``metadata=``)."""
    raw = bundle if isinstance(bundle, bytes) else bundle.SerializeToString()
    return ((BUNDLE_METADATA_KEY, raw),)


def status_code_for(reason: Reason) -> grpc.StatusCode:
    """The gRPC status a refusal with ``reason`` gets."""
    if reason in _PERMISSION_REASONS:
        return grpc.StatusCode.PERMISSION_DENIED
    if reason is Reason.MIRROR_STALE:
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.UNAUTHENTICATED


def _metadata_value(metadata: Any, key: str) -> bytes | None:
    for item in metadata or ():
        k, v = (item.key, item.value) if hasattr(item, "key") else item
        if k == key:
            return v if isinstance(v, bytes) else str(v).encode()
    return None


class PpCertAuthInterceptor(_InterceptorBase):
    """Authenticate every call (except ``exempt_prefixes``) by the caller's ppCert.

    ``verifier``: a :class:`Verifier` or a :class:`LedgerMirror` (its shared verifier).
    ``required_profile``/``profile_mode`` apply to every method unless ``method_profiles``
    names the method (``"/pkg.Service/Method"`` → ``(uri or None, mode)``).
    """

    def __init__(
        self,
        verifier: Verifier | LedgerMirror,
        *,
        required_profile: str | None = None,
        profile_mode: ComparisonMode | str = "minimum",
        method_profiles: dict[str, tuple[str | None, ComparisonMode | str]] | None = None,
        exempt_prefixes: Iterable[str] = DEFAULT_EXEMPT_PREFIXES,
    ) -> None:
        self.verifier = verifier if isinstance(verifier, Verifier) else verifier_for(verifier)
        self.default_requirement = (required_profile, profile_mode)
        self.method_profiles = dict(method_profiles or {})
        self.exempt_prefixes = tuple(exempt_prefixes)
        # Fail at start-up, not at the first call, on a bad requirement.
        for profile, mode in [self.default_requirement, *self.method_profiles.values()]:
            check_requirement(profile, mode)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler:
        handler = await continuation(handler_call_details)
        method = str(handler_call_details.method)
        if handler is None or method.startswith(self.exempt_prefixes):
            return handler
        return self._wrap(handler, method)

    # -- authentication ------------------------------------------------------------------

    @staticmethod
    async def _refuse(
        context: grpc.aio.ServicerContext[Any, Any],
        code: grpc.StatusCode,
        reason: str,
        message: str,
    ) -> NoReturn:
        await context.abort_with_status(  # type: ignore[attr-defined]
            ServiceError(code, message, reason=reason).to_status()
        )
        raise AssertionError("abort_with_status returned")  # pragma: no cover

    async def authenticate(
        self, context: grpc.aio.ServicerContext[Any, Any], method: str
    ) -> VerifiedSubject:
        """Verify the caller of ``context``; aborts the call when it is not acceptable."""
        pems = list(context.auth_context().get("x509_pem_cert", ()))
        if not pems:
            await self._refuse(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "NO_CLIENT_CERTIFICATE",
                "present your ppCert as the TLS client certificate",
            )
        try:
            cert_der = ssl.PEM_cert_to_DER_cert(pems[0].decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            await self._refuse(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "MALFORMED",
                "unreadable client certificate",
            )
        bundle = _metadata_value(context.invocation_metadata(), BUNDLE_METADATA_KEY)
        profile, mode = self.method_profiles.get(method, self.default_requirement)
        try:
            return self.verifier.verify_presented(
                cert_der, bundle, required_profile=profile, profile_mode=mode
            )
        except VerificationError as e:
            await self._refuse(context, status_code_for(e.reason), e.reason.value, e.message)

    # -- handler wrapping ----------------------------------------------------------------

    def _wrap(self, handler: _Handler, method: str) -> _Handler:
        auth = self.authenticate

        async def _maybe_await(value: Any) -> Any:
            return await value if inspect.isawaitable(value) else value

        def unary_response(behavior: Callable[..., Any]) -> Callable[..., Any]:
            async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                _CURRENT.set(await auth(context, method))
                return await _maybe_await(behavior(request, context))

            return run

        def stream_response(behavior: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.isasyncgenfunction(behavior):

                async def gen(
                    request: Any, context: grpc.aio.ServicerContext[Any, Any]
                ) -> AsyncIterator[Any]:
                    _CURRENT.set(await auth(context, method))
                    async for item in behavior(request, context):
                        yield item

                return gen
            return unary_response(behavior)

        # Each RPC runs in its own task, so the context variable set above is private to it.
        kw = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary), **kw)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream), **kw)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(unary_response(handler.stream_unary), **kw)
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream), **kw)
