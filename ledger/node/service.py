"""The gRPC ``Ledger`` service (protos/mpkix/v1/ledger.proto; ARCHITECTURE §2.4).

Every input is checked before it reaches the chain: wrong lengths and bad encodings are
INVALID_ARGUMENT with the field named. Blocking work (signature recovery, EVM calls, SQLite
reads) runs in the default executor so the event loop keeps streaming. A transaction that
reverted is on chain; the caller still gets an error status (FAILED_PRECONDITION, or
PERMISSION_DENIED when the sender lacks the authority) whose details carry the receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger.node.chain import MAX_RAW_TX_BYTES, RejectCode, TxRejected
from ledger.node.evm import EVM_VERSION
from ledger.node.index import EventRecord, TxRecord
from ledger.node.node import LedgerNode
from mpkix.rpc.errors import ERROR_DOMAIN, ServiceError, invalid, rpc_method
from mpkix.v1 import ledger_pb2, ledger_pb2_grpc

T = TypeVar("T")

STREAM_PAGE = 500
MAX_CALL_DATA = MAX_RAW_TX_BYTES
MAX_EVENT_NAME_FILTERS = 32

_REJECT_STATUS = {
    RejectCode.MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
    RejectCode.UNSUPPORTED_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    RejectCode.WRONG_CHAIN: grpc.StatusCode.INVALID_ARGUMENT,
    RejectCode.BAD_SIGNATURE: grpc.StatusCode.INVALID_ARGUMENT,
    RejectCode.GAS_LIMIT: grpc.StatusCode.INVALID_ARGUMENT,
    RejectCode.INTRINSIC_GAS: grpc.StatusCode.INVALID_ARGUMENT,
    RejectCode.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RejectCode.NONCE_TOO_LOW: grpc.StatusCode.FAILED_PRECONDITION,
    RejectCode.NONCE_GAP: grpc.StatusCode.FAILED_PRECONDITION,
    RejectCode.NONCE_CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    RejectCode.INVALID: grpc.StatusCode.FAILED_PRECONDITION,
    RejectCode.POOL_FULL: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RejectCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    RejectCode.INTERNAL: grpc.StatusCode.INTERNAL,
}

# Revert reasons of the registry that mean "you may not do this" (CertificateRegistry.vy).
_PERMISSION_MARKERS = ("caller is not", "only a ", "not owned by caller", "reserved for")

REVERTED = "EXECUTION_REVERTED"


class RevertedError(ServiceError):
    """A transaction or call reverted; carries the receipt (if any) in the status details."""

    def __init__(
        self, code: grpc.StatusCode, message: str, receipt: ledger_pb2.LedgerReceipt | None
    ) -> None:
        super().__init__(code, message, reason=REVERTED)
        self.receipt = receipt

    def to_status(self) -> grpc.Status:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN))
        details = [info]
        if self.receipt is not None:
            packed = any_pb2.Any()
            packed.Pack(self.receipt)
            details.append(packed)
        st = status_pb2.Status(code=self.code.value[0], message=self.message, details=details)
        return rpc_status.to_status(st)


def _ts(seconds: int | float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1_000_000_000))
    return ts


def event_pb(e: EventRecord) -> ledger_pb2.LedgerEvent:
    return ledger_pb2.LedgerEvent(
        cursor=e.cursor,
        block_number=e.block_number,
        tx_index=e.tx_index,
        log_index=e.log_index,
        tx_hash=e.tx_hash,
        address=e.address,
        topics=list(e.topics),
        data=e.data,
        event_name=e.name,
        args_json=e.args_json,
        block_time=_ts(e.timestamp),
    )


def receipt_pb(r: TxRecord) -> ledger_pb2.LedgerReceipt:
    return ledger_pb2.LedgerReceipt(
        tx_hash=r.tx_hash,
        success=r.status == 1,
        block_number=r.block_number,
        block_hash=r.block_hash,
        tx_index=r.tx_index,
        sender=r.sender,
        nonce=r.nonce,
        to=r.to,
        contract_address=r.contract_address,
        gas_used=r.gas_used,
        cumulative_gas_used=r.cumulative_gas_used,
        logs=[event_pb(e) for e in r.logs],
        revert_reason=r.revert_reason,
        revert_data=r.revert_data,
        block_time=_ts(r.block_timestamp),
    )


def _fixed(value: bytes, size: int, field: str) -> bytes:
    if len(value) != size:
        raise invalid(f"{field} must be {size} bytes, got {len(value)}", reason="BAD_LENGTH")
    return bytes(value)


def _optional_fixed(value: bytes, size: int, field: str) -> bytes | None:
    return None if not value else _fixed(value, size, field)


def _is_permission_failure(reason: str, sender_is_validator: bool) -> bool:
    return not sender_is_validator or any(m in reason for m in _PERMISSION_MARKERS)


class CursorWatch:
    """Wakes event streams (on the server's loop) when the producer commits new events."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cursor: int) -> None:
        self._loop = loop
        self._cond = asyncio.Condition()
        self.latest = cursor
        self.closed = False

    def publish_threadsafe(self, cursor: int) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
            self._loop.call_soon_threadsafe(self._spawn_publish, cursor)

    def _spawn_publish(self, cursor: int) -> None:
        self._loop.create_task(self._publish(cursor))

    async def _publish(self, cursor: int) -> None:
        async with self._cond:
            self.latest = max(self.latest, cursor)
            self._cond.notify_all()

    async def close(self) -> None:
        async with self._cond:
            self.closed = True
            self._cond.notify_all()

    async def wait_beyond(self, cursor: int) -> bool:
        """Wait until events past ``cursor`` exist; False when the watch closed."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.closed or self.latest > cursor)
            return not self.closed

    @property
    def waiters(self) -> int:
        return len(getattr(self._cond, "_waiters", ()))


class LedgerService(ledger_pb2_grpc.LedgerServicer):
    """Create inside the event loop that serves it."""

    def __init__(self, node: LedgerNode) -> None:
        self.node = node
        self._loop = asyncio.get_running_loop()
        self.watch = CursorWatch(self._loop, node.last_cursor)
        node.add_listener(self.watch.publish_threadsafe)
        self._event_names = set(node.engine.decoder.event_names)
        self.active_streams = 0

    async def close(self) -> None:
        self.node.remove_listener(self.watch.publish_threadsafe)
        await self.watch.close()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._loop.run_in_executor(None, fn, *args)

    async def _outcome(self, fut: Future[T]) -> T:
        """Await a producer future without ever cancelling it.

        The same pending transaction's future is shared by every submitter of it
        (``asyncio.wrap_future`` would cancel it for all of them when one caller hangs up).
        """
        loop = self._loop
        mine: asyncio.Future[T] = loop.create_future()

        def deliver(done: Future[T]) -> None:
            if mine.done():
                return
            if done.cancelled():
                mine.cancel()
                return
            error = done.exception()
            if error is not None:
                mine.set_exception(error)
            else:
                mine.set_result(done.result())

        def on_done(done: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(deliver, done)

        fut.add_done_callback(on_done)
        return await mine

    # -- transactions --------------------------------------------------------------------

    @rpc_method
    async def SubmitTransaction(
        self,
        request: ledger_pb2.SubmitTransactionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.LedgerReceipt:
        raw = bytes(request.raw_transaction)
        if not raw:
            raise invalid("raw_transaction is empty", reason="MALFORMED_TRANSACTION")
        try:
            fut: Future[TxRecord] = await self._run(self.node.submit, raw)
            record = await self._outcome(fut)
        except TxRejected as e:
            raise ServiceError(_REJECT_STATUS[e.code], e.message, reason=e.code.value) from None
        receipt = receipt_pb(record)
        if record.status != 1:
            is_validator = await self._run(self.node.engine.index.validator_role, record.sender)
            code = (
                grpc.StatusCode.PERMISSION_DENIED
                if _is_permission_failure(record.revert_reason, is_validator != 0)
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            raise RevertedError(
                code,
                f"transaction 0x{record.tx_hash.hex()} reverted in block {record.block_number}: "
                f"{record.revert_reason}",
                receipt,
            )
        return receipt

    @rpc_method
    async def GetTransactionReceipt(
        self,
        request: ledger_pb2.GetTransactionReceiptRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.LedgerReceipt:
        tx_hash = _fixed(request.tx_hash, 32, "tx_hash")
        record = await self._run(self.node.receipt, tx_hash)
        if record is None:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                f"no transaction 0x{tx_hash.hex()} on chain",
                reason="TRANSACTION_NOT_FOUND",
            )
        return receipt_pb(record)

    @rpc_method
    async def GetNonce(
        self, request: ledger_pb2.GetNonceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.GetNonceResponse:
        address = _fixed(request.address, 20, "address")
        nonce, pending = await self._run(self.node.nonces, address)
        return ledger_pb2.GetNonceResponse(nonce=nonce, pending_nonce=pending)

    # -- reads ---------------------------------------------------------------------------

    @rpc_method
    async def Call(
        self, request: ledger_pb2.LedgerCallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.LedgerCallResponse:
        to = _fixed(request.to, 20, "to")
        if len(request.data) > MAX_CALL_DATA:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"data is larger than {MAX_CALL_DATA} bytes",
                reason="CALL_TOO_LARGE",
            )
        sender = _optional_fixed(request.sender, 20, "sender")
        budget = self.node.engine.gas_target
        if request.gas > budget:
            raise invalid(f"gas {request.gas} exceeds the block gas budget {budget}")
        head = self.node.engine.head.block_number

        def run() -> Any:
            return self.node.call(to, bytes(request.data), sender=sender, gas=request.gas or None)

        result = await self._run(run)
        if not result.success:
            code = (
                grpc.StatusCode.PERMISSION_DENIED
                if any(m in result.revert_reason for m in _PERMISSION_MARKERS)
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            raise RevertedError(code, f"call reverted: {result.revert_reason}", None)
        return ledger_pb2.LedgerCallResponse(
            return_data=result.output, gas_used=result.gas_used, block_number=head
        )

    @rpc_method
    async def GetStatus(
        self,
        request: ledger_pb2.GetLedgerStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.LedgerStatus:
        s = self.node.status()
        return ledger_pb2.LedgerStatus(
            chain_id=s.chain_id,
            head_block=s.head_number,
            head_hash=s.head_hash,
            head_time=_ts(s.head_timestamp),
            genesis_hash=s.genesis_hash,
            contract_address=s.contract_address,
            event_cursor=s.last_cursor,
            now=_ts(time.time()),
            pending_transactions=s.pending,
            block_gas_limit=s.gas_limit,
            block_gas_budget=s.gas_target,
            evm_version=EVM_VERSION,
        )

    @rpc_method
    async def GetContract(
        self, request: ledger_pb2.GetContractRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.LedgerContract:
        engine = self.node.engine
        return ledger_pb2.LedgerContract(
            name=engine.artifact.contract_name,
            address=engine.contract_address,
            abi_json=json.dumps(engine.artifact.abi, sort_keys=True),
            chain_id=engine.chain_id,
            genesis_hash=engine.genesis_hash,
            evm_version=engine.artifact.evm_version,
        )

    def _batch_pb(self, b: Any) -> ledger_pb2.LedgerBatch:
        return ledger_pb2.LedgerBatch(
            batch_id=b.batch_id,
            root=b.root,
            size=b.size,
            ca_cert_hash=b.ca_cert_hash,
            anchored_at=_ts(b.anchored_at),
            block_number=b.block_number,
            tx_hash=b.tx_hash,
            cursor=b.cursor,
        )

    @rpc_method
    async def GetBatch(
        self, request: ledger_pb2.GetBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.LedgerBatch:
        if request.batch_id == 0:
            raise invalid("batch_id must be at least 1 (batch ids start at 1)")
        if request.batch_id >= 2**63:
            raise invalid("batch_id is out of range")
        b = await self._run(self.node.batch, request.batch_id)
        if b is None:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND, f"no batch {request.batch_id}", reason="BATCH_NOT_FOUND"
            )
        return self._batch_pb(b)

    @rpc_method
    async def GetBatchByRoot(
        self, request: ledger_pb2.GetBatchByRootRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.LedgerBatch:
        root = _fixed(request.root, 32, "root")
        b = await self._run(self.node.batch_by_root, root)
        if b is None:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                f"no batch with root 0x{root.hex()}",
                reason="BATCH_NOT_FOUND",
            )
        return self._batch_pb(b)

    @rpc_method
    async def GetCertificateStatus(
        self,
        request: ledger_pb2.GetCertificateStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.LedgerCertificateStatus:
        cert_hash = _fixed(request.cert_hash, 32, "cert_hash")
        ca = _optional_fixed(request.ca_cert_hash, 32, "ca_cert_hash")
        as_of = self.node.last_cursor
        records = await self._run(self.node.cert_statuses, cert_hash)
        if ca is not None:
            records = [r for r in records if r.ca_cert_hash == ca]
        if not records:
            return ledger_pb2.LedgerCertificateStatus(
                cert_hash=cert_hash,
                ca_cert_hash=ca or b"",
                state=ledger_pb2.LEDGER_CERT_STATE_GOOD,
                recorded=False,
                as_of_cursor=as_of,
            )
        r = max(records, key=lambda x: (x.state, x.cursor))  # revoked > suspended > good
        return ledger_pb2.LedgerCertificateStatus(
            cert_hash=cert_hash,
            ca_cert_hash=r.ca_cert_hash,
            state=r.state,  # type: ignore[arg-type]
            reason=r.reason,
            updated_at=_ts(r.updated_at),
            batch_id=r.batch_id,
            recorded=True,
            cursor=r.cursor,
            as_of_cursor=max(as_of, r.cursor),
            changed_by=r.by,
        )

    # -- events --------------------------------------------------------------------------

    async def StreamEvents(
        self, request: ledger_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ledger_pb2.LedgerEvent]:
        names = set(request.event_names)
        try:
            if len(names) > MAX_EVENT_NAME_FILTERS:
                raise invalid(f"at most {MAX_EVENT_NAME_FILTERS} event names")
            unknown = names - self._event_names
            if unknown:
                raise invalid(
                    f"unknown event names {sorted(unknown)}; the registry emits "
                    f"{sorted(self._event_names)}",
                    reason="UNKNOWN_EVENT",
                )
            head = self.node.last_cursor
            if request.after_cursor > head:
                raise ServiceError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"after_cursor {request.after_cursor} is beyond the ledger's newest event "
                    f"{head}: this follower's checkpoint belongs to another ledger",
                    reason="CURSOR_AHEAD",
                )
        except ServiceError as err:
            await context.abort_with_status(err.to_status())  # type: ignore[attr-defined]
            return
        cursor = request.after_cursor
        self.active_streams += 1
        try:
            while True:
                page = await self._run(self.node.events_after, cursor, STREAM_PAGE)
                for ev in page:
                    cursor = ev.cursor
                    if not names or ev.name in names:
                        yield event_pb(ev)
                if len(page) == STREAM_PAGE:
                    continue
                if not request.follow:
                    return
                if not await self.watch.wait_beyond(cursor):
                    return  # the node is shutting down: the follower resumes from its cursor
        finally:
            self.active_streams -= 1
