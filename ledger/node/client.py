"""A typed, synchronous client of the ``Ledger`` gRPC service with safe retries.

Retrying a submission resends the *same* signed bytes, which the node answers with the
existing receipt if the first attempt already made it on chain — so a retry after a timeout or
a node restart can never apply an operation twice. A fresh signature (new nonce) is made only
when the node reports the nonce as used by another transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import grpc

from ledger.node.abi import ContractAbi
from ledger.node.receipts import receipt_from_error
from ledger.node.signer import LocalSigner, SignedTx
from mpkix.rpc.errors import error_reason
from mpkix.rpc.tls import TlsConfig, secure_channel
from mpkix.v1 import ledger_pb2, ledger_pb2_grpc

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class TransactionReverted(Exception):
    """The transaction is on chain but reverted; ``receipt`` says where and why."""

    def __init__(self, receipt: ledger_pb2.LedgerReceipt, code: grpc.StatusCode) -> None:
        super().__init__(receipt.revert_reason or "transaction reverted")
        self.receipt = receipt
        self.code = code


class LedgerClient:
    """Calls one ledger node. ``channel`` may be any (TLS) channel to it."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = 30.0) -> None:
        self.channel = channel
        self.stub = ledger_pb2_grpc.LedgerStub(channel)
        self.timeout = timeout
        self._contract: ledger_pb2.LedgerContract | None = None
        self._abi: ContractAbi | None = None

    @classmethod
    def connect(
        cls,
        target: str,
        tls: TlsConfig | None = None,
        *,
        server_name: str | None = None,
        timeout: float = 30.0,
    ) -> LedgerClient:
        """Open a channel: TLS (mutual when ``tls`` has a certificate) or plaintext loopback."""
        if tls is None:
            channel = grpc.insecure_channel(target)
        else:
            channel = secure_channel(target, tls, server_name=server_name)  # type: ignore[assignment]
        return cls(channel, timeout=timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- contract ------------------------------------------------------------------------

    def contract(self) -> ledger_pb2.LedgerContract:
        if self._contract is None:
            self._contract = self.stub.GetContract(
                ledger_pb2.GetContractRequest(), timeout=self.timeout
            )
        return self._contract

    @property
    def abi(self) -> ContractAbi:
        if self._abi is None:
            self._abi = ContractAbi(json.loads(self.contract().abi_json))
        return self._abi

    def signer(self, private_key: bytes | str, **kwargs: Any) -> LocalSigner:
        """A :class:`LocalSigner` for this ledger, its nonce synced from the node."""
        c = self.contract()
        s = LocalSigner(
            private_key,
            chain_id=c.chain_id,
            contract_address=c.address,
            abi=json.loads(c.abi_json),
            **kwargs,
        )
        s.resync(self.nonce(s.address)[1])
        return s

    # -- transactions --------------------------------------------------------------------

    def submit(
        self, tx: SignedTx | bytes, *, retries: int = 5, backoff: float = 0.2
    ) -> ledger_pb2.LedgerReceipt:
        """Submit (and on transport failures resubmit) the same signed transaction.

        Raises :class:`TransactionReverted` when it is on chain but reverted, and
        ``grpc.RpcError`` for refusals (its ErrorInfo reason says why, e.g. NONCE_TOO_LOW).
        """
        raw = tx.raw if isinstance(tx, SignedTx) else tx
        attempt = 0
        while True:
            try:
                return self.stub.SubmitTransaction(
                    ledger_pb2.SubmitTransactionRequest(raw_transaction=raw),
                    timeout=self.timeout,
                )
            except grpc.RpcError as e:
                receipt = receipt_from_error(e)
                if receipt is not None:
                    raise TransactionReverted(receipt, e.code()) from None
                if e.code() in RETRYABLE and attempt < retries:
                    attempt += 1
                    time.sleep(backoff * 2 ** (attempt - 1))
                    continue
                raise

    def send(
        self, signer: LocalSigner, function: str, *args: Any, gas: int | None = None
    ) -> ledger_pb2.LedgerReceipt:
        """Build, sign and submit ``function(*args)``; re-sign once if the nonce was stale."""
        tx = signer.build(function, *args, gas=gas)
        try:
            return self.submit(tx)
        except grpc.RpcError as e:
            if error_reason(e) not in ("NONCE_TOO_LOW", "NONCE_GAP"):
                raise
        signer.resync(self.nonce(signer.address)[1])
        return self.submit(signer.build(function, *args, gas=gas))

    def receipt(self, tx_hash: bytes) -> ledger_pb2.LedgerReceipt | None:
        try:
            return self.stub.GetTransactionReceipt(
                ledger_pb2.GetTransactionReceiptRequest(tx_hash=tx_hash), timeout=self.timeout
            )
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def nonce(self, address: bytes) -> tuple[int, int]:
        """``(next nonce on chain, next nonce after pending transactions)``."""
        r = self.stub.GetNonce(ledger_pb2.GetNonceRequest(address=address), timeout=self.timeout)
        return r.nonce, r.pending_nonce

    # -- reads ---------------------------------------------------------------------------

    def call(self, data: bytes, *, to: bytes | None = None, sender: bytes = b"") -> bytes:
        req = ledger_pb2.LedgerCallRequest(
            to=to or self.contract().address, data=data, sender=sender
        )
        return bytes(self.stub.Call(req, timeout=self.timeout).return_data)

    def view(self, function: str, *args: Any, sender: bytes = b"") -> tuple[Any, ...]:
        """Call a registry view function and decode its result."""
        fn = self.abi[function]
        return fn.decode_output(self.call(fn.encode(*args), sender=sender))

    def status(self) -> ledger_pb2.LedgerStatus:
        return self.stub.GetStatus(ledger_pb2.GetLedgerStatusRequest(), timeout=self.timeout)

    def batch(self, batch_id: int) -> ledger_pb2.LedgerBatch:
        return self.stub.GetBatch(
            ledger_pb2.GetBatchRequest(batch_id=batch_id), timeout=self.timeout
        )

    def batch_by_root(self, root: bytes) -> ledger_pb2.LedgerBatch:
        return self.stub.GetBatchByRoot(
            ledger_pb2.GetBatchByRootRequest(root=root), timeout=self.timeout
        )

    def certificate_status(
        self, cert_hash: bytes, ca_cert_hash: bytes = b""
    ) -> ledger_pb2.LedgerCertificateStatus:
        return self.stub.GetCertificateStatus(
            ledger_pb2.GetCertificateStatusRequest(cert_hash=cert_hash, ca_cert_hash=ca_cert_hash),
            timeout=self.timeout,
        )

    def events(
        self, after_cursor: int = 0, *, follow: bool = False, names: Iterable[str] = ()
    ) -> Any:
        """Events after ``after_cursor`` (an iterator of LedgerEvent that is also the call: with
        ``follow`` it blocks for new events until ``.cancel()`` or the client closes)."""
        return self.stub.StreamEvents(
            ledger_pb2.StreamEventsRequest(
                after_cursor=after_cursor, follow=follow, event_names=list(names)
            )
        )
