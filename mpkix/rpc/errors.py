"""Service errors mapped to gRPC status codes with rich details (google.rpc.Status + ErrorInfo).

Services raise :class:`ServiceError` with the right code and a message a person can act on;
:func:`rpc_method` turns it into the call status. Unexpected exceptions become INTERNAL with a
generic message (the details go to the server log, never to the caller).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger("mpkix.rpc")

ERROR_DOMAIN = "mpkix.dev"


class ServiceError(Exception):
    """An error to report to the caller as a gRPC status.

    ``reason`` is a stable UPPER_SNAKE identifier clients can branch on (google.rpc.ErrorInfo).
    """

    def __init__(self, code: grpc.StatusCode, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or code.name

    def to_status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN)
        detail = any_pb2.Any()
        detail.Pack(info)
        st = status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])
        return rpc_status.to_status(st)


def invalid(message: str, reason: str = "INVALID_ARGUMENT") -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message, reason=reason)


def error_reason(err: grpc.RpcError) -> str:
    """The ErrorInfo reason carried by a failed call, or ``""``."""
    st = rpc_status.from_call(err)  # type: ignore[arg-type]
    if st is None:
        return ""
    for d in st.details:
        info = error_details_pb2.ErrorInfo()
        if d.Unpack(info):
            return str(info.reason)
    return ""


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def rpc_method(fn: F) -> F:
    """Decorate an async servicer method: ServiceError → status; anything else → INTERNAL."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await fn(self, request, context)
        except ServiceError as e:
            await context.abort_with_status(e.to_status())  # type: ignore[attr-defined]
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unhandled error in %s", fn.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    return wrapper  # type: ignore[return-value]
