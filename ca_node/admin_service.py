"""``CaAdmin`` gRPC service: CA operator actions on the running CA node (ca_admin.proto).

Only mutual-TLS clients whose certificate common name is in the node's admin list may call it;
operator CMS nodes share the cluster PKI and must not revoke on the CA's authority.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

import grpc

from ca_node.revocation import CaRevoker, UnknownCertificate, normalize_serial
from ledger.status import StatusChangeRefused, action_from_proto, refused_error
from mpkix.rpc.errors import ServiceError, invalid, rpc_method
from mpkix.v1 import ca_admin_pb2, ca_admin_pb2_grpc, lifecycle_pb2

log = logging.getLogger("mpkix.ca.admin")

DEFAULT_ADMINS = frozenset({"ca-admin"})


def peer_common_name(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The common name of the mutual-TLS client certificate, if any."""
    names = list(context.auth_context().get("x509_common_name") or [])
    return names[0].decode("utf-8", "replace") if names else None


class CaAdminService(ca_admin_pb2_grpc.CaAdminServicer):
    def __init__(self, revoker: CaRevoker | None, admins: Collection[str] = DEFAULT_ADMINS) -> None:
        self._revoker = revoker
        self._admins = frozenset(admins)

    def _authorize(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        who = peer_common_name(context)
        if who is None:
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
        if who not in self._admins:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"client {who!r} is not a CA administrator of this node",
            )
        return who

    @rpc_method
    async def ChangeStatus(
        self,
        request: ca_admin_pb2.CaChangeStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> lifecycle_pb2.CertificateState:
        who = self._authorize(context)
        action = action_from_proto(request.action)
        try:
            serial = normalize_serial(request.serial)
        except ValueError as e:
            raise invalid(str(e)) from None
        if self._revoker is None:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this CA node is not connected to a ledger; status changes are unavailable",
            )
        try:
            result = await asyncio.to_thread(
                self._revoker.change, serial, action, request.reason
            )
        except ValueError as e:
            raise invalid(str(e)) from None
        except UnknownCertificate as e:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, str(e)) from None
        except StatusChangeRefused as e:
            raise refused_error(action, serial, e) from None
        log.info(
            "%s: %s %s -> %s (tx %s)", who, action.value, serial, result.state,
            result.tx_hash.hex(),
        )
        out = lifecycle_pb2.CertificateState(
            serial=serial, state=result.state, reason=result.reason, tx_hash=result.tx_hash
        )
        out.changed_at.FromDatetime(result.changed_at)
        return out
