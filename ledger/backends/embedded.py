"""The ``embedded`` ledger backend: the py-evm ledger node reached over gRPC (ARCHITECTURE §2.4).

:class:`EmbeddedBackend` adapts :class:`ledger.node.client.LedgerClient` to the backend
interface of :mod:`ledger.backends.base`:

* :class:`~ledger.backends.base.EventSource` (verifiers, e.g. the IAS SDK mirror):
  ``status()`` from ``GetStatus`` and ``events_after()`` from a non-following
  ``StreamEvents`` call, with the node's ledger-wide event sequence as the cursor;
* :class:`~ledger.backends.base.LedgerBackend` (CA and CMS nodes) when constructed with the
  validator's private key: ``call()`` runs a view through ``Call``, ``transact()`` signs with
  :class:`ledger.node.signer.LocalSigner` and submits through ``LedgerClient.send`` (which
  resubmits the same signed bytes on transport failures, so a retry never applies twice).

Event arguments arrive as JSON with bytes and addresses in ``0x`` hex; they are converted with
the registry ABI: ``bytesN``/``bytes``/``address`` values become ``bytes``, integers stay ``int``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from google.protobuf import timestamp_pb2

from ledger.backends.base import BackendStatus, RegistryEvent, TxOutcome
from ledger.node.client import LedgerClient, TransactionReverted
from ledger.node.signer import LocalSigner
from mpkix.rpc.tls import TlsConfig
from mpkix.v1 import ledger_pb2

__all__ = ["EmbeddedBackend", "NoSigningKey", "event_from_pb"]

_BYTES_TYPES_PREFIX = ("bytes", "address")


class NoSigningKey(RuntimeError):
    """A write or ``account`` was requested from a read-only backend (no private key)."""


def _seconds(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def _is_bytes_type(abi_type: str) -> bool:
    return abi_type.startswith(_BYTES_TYPES_PREFIX) and not abi_type.endswith("]")


def _event_types(abi: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Event name → {argument name → ABI type}."""
    out: dict[str, dict[str, str]] = {}
    for entry in abi:
        if entry.get("type") == "event":
            out[str(entry["name"])] = {str(p["name"]): str(p["type"]) for p in entry["inputs"]}
    return out


def _convert_value(value: Any, abi_type: str | None) -> Any:
    if (
        isinstance(value, str)
        and value.startswith("0x")
        and (abi_type is None or _is_bytes_type(abi_type))
    ):
        return bytes.fromhex(value[2:])
    return value


def event_from_pb(
    ev: ledger_pb2.LedgerEvent, types: Mapping[str, Mapping[str, str]] | None = None
) -> RegistryEvent:
    """A node ``LedgerEvent`` as a :class:`RegistryEvent` (hex strings → ``bytes``).

    ``types`` (event → argument → ABI type) restricts the conversion to byte-typed arguments;
    without it every ``0x`` string is converted (the registry emits no string arguments).
    """
    raw = json.loads(ev.args_json) if ev.args_json else {}
    if not isinstance(raw, dict):
        raise ValueError(f"event {ev.cursor}: args_json is not an object")
    arg_types = types.get(ev.event_name, {}) if types is not None else {}
    args = {k: _convert_value(v, arg_types.get(k)) for k, v in raw.items()}
    return RegistryEvent(
        cursor=int(ev.cursor),
        name=ev.event_name,
        args=args,
        block_number=int(ev.block_number),
        block_time=_seconds(ev.block_time),
        tx_hash=bytes(ev.tx_hash),
    )


class EmbeddedBackend:
    """The embedded ledger node as an ``EventSource`` (and a ``LedgerBackend`` with a key)."""

    def __init__(
        self,
        client: LedgerClient,
        *,
        private_key: bytes | str | None = None,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        self._private_key = private_key
        self._signer: LocalSigner | None = None
        self._types: dict[str, dict[str, str]] | None = None
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        target: str,
        tls: TlsConfig | None = None,
        *,
        server_name: str | None = None,
        private_key: bytes | str | None = None,
        timeout: float = 30.0,
    ) -> EmbeddedBackend:
        """Connect to a ledger node at ``host:port`` (TLS, or plaintext on loopback)."""
        client = LedgerClient.connect(target, tls, server_name=server_name, timeout=timeout)
        return cls(client, private_key=private_key, owns_client=True)

    @property
    def client(self) -> LedgerClient:
        return self._client

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> EmbeddedBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- EventSource ---------------------------------------------------------------------

    def status(self) -> BackendStatus:
        s = self._client.status()
        return BackendStatus(
            chain_id=int(s.chain_id),
            registry_address=bytes(s.contract_address),
            head_block=int(s.head_block),
            head_time=_seconds(s.head_time),
            event_cursor=int(s.event_cursor),
        )

    def _event_types(self) -> dict[str, dict[str, str]]:
        if self._types is None:
            self._types = _event_types(json.loads(self._client.contract().abi_json))
        return self._types

    def events_after(self, cursor: int, limit: int = 1000) -> list[RegistryEvent]:
        """Up to ``limit`` events with a cursor greater than ``cursor``, oldest first.

        Raises ``grpc.RpcError`` (OUT_OF_RANGE, reason CURSOR_AHEAD) when ``cursor`` is beyond
        the node's newest event, i.e. the checkpoint belongs to another ledger.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        types = self._event_types()
        call = self._client.events(cursor, follow=False)
        out: list[RegistryEvent] = []
        try:
            for ev in call:
                out.append(event_from_pb(ev, types))
                if len(out) >= limit:
                    break
        finally:
            call.cancel()
        return out

    # -- LedgerBackend -------------------------------------------------------------------

    def _require_signer(self) -> LocalSigner:
        with self._lock:
            if self._signer is None:
                if self._private_key is None:
                    raise NoSigningKey("this backend was opened without a validator key")
                self._signer = self._client.signer(self._private_key)
            return self._signer

    @property
    def account(self) -> str:
        """The validator's address (0x…, checksummed)."""
        return str(self._require_signer().account.address)

    def call(self, function: str, *args: Any) -> Any:
        """A view call; a single return value is returned as is, several as a tuple."""
        out = self._client.view(function, *args)
        return out[0] if len(out) == 1 else out

    def transact(self, function: str, *args: Any) -> TxOutcome:
        """Sign, submit and wait for ``function(*args)``; a revert is ``success=False``."""
        signer = self._require_signer()
        try:
            receipt = self._client.send(signer, function, *args)
        except TransactionReverted as e:
            receipt = e.receipt
        types = self._event_types()
        return TxOutcome(
            tx_hash=bytes(receipt.tx_hash),
            success=bool(receipt.success),
            block_number=int(receipt.block_number),
            block_time=_seconds(receipt.block_time),
            revert_reason=receipt.revert_reason,
            events=[event_from_pb(log, types) for log in receipt.logs if log.event_name],
        )
