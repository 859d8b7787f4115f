"""CMS → CA issuance client over one long-lived mutual-TLS stream (ARCHITECTURE §2.1 step 4).

Under load, thousands of enrollments share a single ``Issuance.IssueStream``: each request is
tagged with its request id and the response resolves that request's future, so issuance is not
one round trip (and one HTTP/2 stream) per certificate. A broken stream fails the requests in
flight with UNAVAILABLE; the next request opens a new stream. Requests are idempotent at the CA
(same request id and ppCSR → same certificate), so callers may retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc

from mpkix.rpc.errors import ServiceError
from mpkix.rpc.tls import TlsConfig, channel_credentials, channel_options
from mpkix.v1 import issuance_pb2, issuance_pb2_grpc

log = logging.getLogger("mpkix.cms.ca_client")

_CLOSE = object()


class IssuanceClient:
    """Multiplexes issue requests over one bidirectional stream to the CA."""

    def __init__(self, target: str, tls: TlsConfig, *, timeout: float = 30.0) -> None:
        self._channel = grpc.aio.secure_channel(
            target, channel_credentials(tls), options=channel_options()
        )
        self._stub = issuance_pb2_grpc.IssuanceStub(self._channel)
        self._timeout = timeout
        self._pending: dict[str, asyncio.Future[issuance_pb2.IssueResponse]] = {}
        self._queue: asyncio.Queue[object] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def _requests(self, q: asyncio.Queue[object]) -> AsyncIterator[issuance_pb2.IssueRequest]:
        while True:
            item = await q.get()
            if item is _CLOSE:
                return
            assert isinstance(item, issuance_pb2.IssueRequest)
            yield item

    async def _ensure_stream(self) -> asyncio.Queue[object]:
        async with self._lock:
            if self._queue is not None and self._reader is not None and not self._reader.done():
                return self._queue
            q: asyncio.Queue[object] = asyncio.Queue()
            call = self._stub.IssueStream(self._requests(q))
            self._queue = q
            self._reader = asyncio.create_task(self._read(call, q))
            return q

    async def _read(
        self,
        call: grpc.aio.StreamStreamCall[issuance_pb2.IssueRequest, issuance_pb2.IssueResponse],
        q: asyncio.Queue[object],
    ) -> None:
        err: ServiceError | None = None
        try:
            async for resp in call:
                fut = self._pending.pop(resp.request_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(resp)
            err = ServiceError(grpc.StatusCode.UNAVAILABLE, "CA closed the issuance stream")
        except grpc.aio.AioRpcError as e:
            log.warning("issuance stream failed: %s %s", e.code(), e.details())
            err = ServiceError(grpc.StatusCode.UNAVAILABLE, f"CA unavailable: {e.details()}")
        finally:
            if self._queue is q:
                self._queue = None
            for rid, fut in list(self._pending.items()):
                if not fut.done():
                    fut.set_exception(err or ServiceError(grpc.StatusCode.UNAVAILABLE, "CA gone"))
                self._pending.pop(rid, None)

    async def issue(self, request: issuance_pb2.IssueRequest) -> issuance_pb2.IssueResponse:
        """Send one request on the shared stream and wait for its response."""
        if request.request_id in self._pending:
            raise ServiceError(
                grpc.StatusCode.ABORTED, "the same transaction is already being issued; retry"
            )
        q = await self._ensure_stream()
        fut: asyncio.Future[issuance_pb2.IssueResponse] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[request.request_id] = fut
        await q.put(request)
        try:
            return await asyncio.wait_for(fut, self._timeout)
        except TimeoutError:
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the CA did not answer in time; retry"
            ) from None
        finally:
            if self._pending.get(request.request_id) is fut:
                del self._pending[request.request_id]

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.put(_CLOSE)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        await self._channel.close(None)
