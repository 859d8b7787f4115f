"""The ``jsonrpc`` ledger backend: the registry on any Ethereum JSON-RPC node (ARCHITECTURE §2.4).

:class:`JsonRpcBackend` implements :class:`~ledger.backends.base.LedgerBackend` over web3's
``HTTPProvider`` for anvil (tests) and permissioned Hyperledger Besu / GoQuorum networks (QBFT).
Conventions follow the ``embedded`` backend: event arguments are Python values (``bytes`` for
``bytesN`` and ``address``, ``int`` for integers), cursors strictly increase, a view returning one
value returns it bare and several as a tuple, a reverted transaction is ``success=False``.

* **Cursor** (decision 0901): ``block_number << 24 | log_index`` (the log's block-wide index,
  as every client numbers logs). Strictly increasing along the chain, resumable without server
  state; not gapless. The genesis block has no transactions, so no event has cursor 0.
* **Reads** use the provider's raw JSON-RPC (``eth_getLogs`` over block ranges filtered by the
  registry address, ``eth_call``, ``eth_getBlockByNumber``) and decode with ``eth_abi``; only
  numbers and timestamps are read from blocks, so the long ``extraData`` of QBFT/IBFT/Clique
  blocks never matters here. ``poa=True`` adds web3's ``ExtraDataToPOAMiddleware`` to
  :attr:`JsonRpcBackend.web3` for callers that use web3's own block API (decision 0902).
* **Writes** (decision 0900) are signed locally (eth-account with coincurve), sent raw, and
  tracked by calldata until their receipt is seen: a retry — inside :meth:`transact` after a
  transport failure, or the caller calling :meth:`transact` again with the same arguments after
  :class:`LedgerUnavailable` / :class:`TransactionNotConfirmed` — resends the *same* signed bytes,
  so one operation is applied at most once (every registry write is unrepeatable by design:
  the same arguments twice can only mean a retry). Nonces come from a local counter; a refusal
  as stale ("nonce too low", "underpriced", fee below the base fee) for bytes the node does not
  have resynchronises from ``eth_getTransactionCount(…, "pending")`` and signs again.
* **Reverts** (decision 0903): a transaction whose gas estimate reverts is still sent (like the
  embedded node, a reverted transaction is on chain and uses its nonce); the reason is taken from
  the receipt's ``revertReason`` (Besu ``--revert-reason-enabled``) or found by replaying the
  call with ``eth_call`` on the parent block, then on the block itself.
* **Fees** (decision 0904): EIP-1559 when the head block has a base fee (all zero when the
  network's gas price is zero), legacy otherwise; ``gas_price=`` forces legacy with a fixed price
  (``0`` for free-gas networks); fee fields are reused for ``fee_cache_seconds``. Gas = estimate
  × 1.25 + 10,000, capped by the block gas limit. Steady state: three requests per transaction
  (``eth_estimateGas``, ``eth_sendRawTransaction``, ``eth_getTransactionReceipt``).

The chain is assumed final (QBFT/IBFT 2.0 have immediate finality); for a chain that can reorg,
``confirmations=k`` keeps events and status ``k`` blocks behind the head.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_canonical_address, to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.rpc import HTTPProvider

from ledger.backends.base import BackendStatus, RegistryEvent, TxOutcome
from ledger.contracts import ContractArtifact, load_artifact
from ledger.node.abi import ContractAbi
from ledger.node.revert import decode_revert_data

__all__ = [
    "CURSOR_LOG_BITS",
    "CursorAhead",
    "EventDecoder",
    "JsonRpcBackend",
    "JsonRpcError",
    "LedgerUnavailable",
    "NoSigningKey",
    "RegistryNotFound",
    "RpcConnection",
    "RpcError",
    "TransactionNotConfirmed",
    "TransactionRejected",
    "ViewReverted",
    "cursor_of",
    "revert_reason",
    "split_cursor",
]

log = logging.getLogger("mpkix.ledger.jsonrpc")

CURSOR_LOG_BITS = 24
_LOG_MASK = (1 << CURSOR_LOG_BITS) - 1

DEFAULT_FALLBACK_GAS = 1_000_000  # a call whose estimate reverts; registry calls use 25k-400k
GAS_MARGIN_NUM, GAS_MARGIN_DEN, GAS_MARGIN_ADD = 5, 4, 10_000
DEFAULT_LOG_CHUNK = 1_000  # blocks per eth_getLogs: Besu's --rpc-max-logs-range default (22.10+)
_BLOCK_TIME_CACHE = 4_096
# eth_sendRawTransaction refusals (geth/anvil/Besu/GoQuorum wordings, lower-cased): the node
# already has these bytes; the nonce or the fees are stale (sign again with fresh ones).
_KNOWN_TX_MESSAGES = ("already known", "already imported", "known transaction", "already_known")
_STALE_TX_MESSAGES = (
    "nonce too low",
    "nonce_too_low",
    "nonce has already been used",
    "replacement",  # another transaction holds the nonce in the pool
    "underpriced",
    "fee cap",
    "less than block base fee",
    "gas price too low",
    "gasprice too low",
)
DEFAULT_FEE_CACHE_SECONDS = 2.0


# -- errors ------------------------------------------------------------------------------------


class JsonRpcError(RuntimeError):
    """Base class of this backend's errors."""


class RpcError(JsonRpcError):
    """The node answered a JSON-RPC request with an error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data

    def revert_data(self) -> bytes | None:
        """The revert data carried by an ``eth_call``/``eth_estimateGas`` error, if any."""
        data = self.data
        if isinstance(data, dict):  # some clients nest it: {"data": "0x…"}
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                return None
        return None

    def is_revert(self) -> bool:
        return self.revert_data() is not None or "revert" in self.message.lower()


class LedgerUnavailable(JsonRpcError):
    """The node could not be reached. For a write, the signed transaction is kept: calling
    :meth:`JsonRpcBackend.transact` again with the same arguments resends the same bytes."""


class TransactionRejected(JsonRpcError):
    """The node refused the transaction (never applied), e.g. insufficient funds."""


class TransactionNotConfirmed(JsonRpcError):
    """The node accepted the transaction but no receipt appeared in time. Calling
    :meth:`JsonRpcBackend.transact` again with the same arguments waits for the same one."""

    def __init__(self, tx_hash: bytes, waited: float) -> None:
        super().__init__(f"transaction 0x{tx_hash.hex()} not mined after {waited:.1f}s")
        self.tx_hash = tx_hash


class NoSigningKey(JsonRpcError):
    """A write or ``account`` was requested from a read-only backend (no private key)."""


class RegistryNotFound(JsonRpcError):
    """There is no contract code at the registry address on this chain."""


class CursorAhead(JsonRpcError):
    """The cursor names a block beyond the chain head: the checkpoint belongs to another ledger."""


class ViewReverted(JsonRpcError):
    """A view call reverted; ``reason`` is the decoded revert reason."""

    def __init__(self, function: str, reason: str) -> None:
        super().__init__(f"{function}: {reason}")
        self.reason = reason


# -- cursors -----------------------------------------------------------------------------------


def cursor_of(block_number: int, log_index: int) -> int:
    """The cursor of the log at ``log_index`` (block-wide) in ``block_number``."""
    if block_number < 0 or not 0 <= log_index <= _LOG_MASK:
        raise ValueError(f"log index {log_index} in block {block_number} has no cursor")
    return (block_number << CURSOR_LOG_BITS) | log_index


def split_cursor(cursor: int) -> tuple[int, int]:
    """``(block_number, log_index)`` of a cursor."""
    if cursor < 0:
        raise ValueError("cursor must not be negative")
    return cursor >> CURSOR_LOG_BITS, cursor & _LOG_MASK


# -- small helpers -----------------------------------------------------------------------------


def _qty(value: Any) -> int:
    """A JSON-RPC quantity (``0x…`` hex, or an integer some clients send)."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16) if value.startswith(("0x", "0X")) else int(value)
    raise ValueError(f"not a quantity: {value!r}")


def _data(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not hex data: {value!r}")
    return bytes.fromhex(value[2:])


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _address_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        if len(value) != 20:
            raise ValueError("an address is 20 bytes")
        return value
    if not is_hex_address(value):
        raise ValueError(f"not an address: {value!r}")
    return bytes(to_canonical_address(value))


def _python_value(value: Any, abi_type: str) -> Any:
    """eth_abi output → backend convention (addresses as 20 bytes)."""
    if abi_type == "address" and isinstance(value, str):
        return bytes(to_canonical_address(value))
    return value


@dataclass(frozen=True)
class _EventAbi:
    name: str
    indexed: tuple[tuple[str, str], ...]  # (name, type) in topic order
    plain: tuple[tuple[str, str], ...]  # (name, type) in data order


class EventDecoder:
    """Decodes registry logs (Solidity ABI spec, "Events") into ``(name, args)``."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self._by_topic: dict[bytes, _EventAbi] = {}
        for entry in abi:
            if entry.get("type") != "event" or entry.get("anonymous", False):
                continue
            inputs = [
                (str(p["name"]), str(p["type"]), bool(p.get("indexed"))) for p in entry["inputs"]
            ]
            signature = f"{entry['name']}({','.join(t for _, t, _ in inputs)})"
            self._by_topic[bytes(keccak(text=signature))] = _EventAbi(
                name=str(entry["name"]),
                indexed=tuple((n, t) for n, t, ix in inputs if ix),
                plain=tuple((n, t) for n, t, ix in inputs if not ix),
            )

    def decode(self, topics: Sequence[bytes], data: bytes) -> tuple[str, dict[str, Any]]:
        """``("", {})`` for a log that matches no event of the ABI."""
        ev = self._by_topic.get(topics[0]) if topics else None
        if ev is None or len(topics) != 1 + len(ev.indexed):
            return "", {}
        args: dict[str, Any] = {}
        try:
            for (name, t), topic in zip(ev.indexed, topics[1:], strict=True):
                if t in ("string", "bytes") or t.endswith("]") or t.startswith("("):
                    args[name] = bytes(topic)  # dynamic: only its hash is in the topic
                else:
                    args[name] = _python_value(abi_decode([t], topic)[0], t)
            values = abi_decode([t for _, t in ev.plain], data)
            for (name, t), value in zip(ev.plain, values, strict=True):
                args[name] = _python_value(value, t)
        except (DecodingError, ValueError, OverflowError):
            return "", {}
        return ev.name, args


@dataclass
class _Pending:
    """A signed transaction whose receipt has not been seen yet."""

    raw: bytes
    tx_hash: bytes
    nonce: int
    gas: int
    data: bytes
    function: str
    acknowledged: bool = False  # the node accepted it (or already had it)
    estimate_revert: str = ""


@dataclass
class _TailCache:
    """Newest registry event cursor known for blocks up to ``scanned_to``."""

    scanned_to: int = -1
    cursor: int = 0


@dataclass
class _LogWindow:
    """The logs of one fetched block range (final blocks only), reused by the next page."""

    first: int = -1
    last: int = -2
    logs: list[dict[str, Any]] = field(default_factory=list)


# -- the JSON-RPC connection -------------------------------------------------------------------


def revert_reason(e: RpcError) -> str:
    """The reason carried by a reverted ``eth_call``/``eth_estimateGas`` error."""
    data = e.revert_data()
    if data:
        return decode_revert_data(data)
    message = e.message
    prefix = "execution reverted: "
    return message[len(prefix) :] if message.lower().startswith(prefix) else message


class RpcConnection:
    """One JSON-RPC endpoint through web3's ``HTTPProvider``, with the requests both the backend
    and the deployer need: blocks, fees, gas estimates, raw sends with safe resends, receipts.

    ``headers``/``verify``/``cert``: HTTP headers (e.g. a Besu JWT ``Authorization``), the TLS CA
    bundle and a client certificate for mutual TLS (``requests`` semantics: a PEM path or
    ``(cert, key)`` paths). ``poa`` adds ``ExtraDataToPOAMiddleware`` to :attr:`web3`.
    """

    def __init__(
        self,
        url: str,
        *,
        poa: bool = False,
        request_timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
    ) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"timeout": request_timeout, "verify": verify}
        if headers:
            kwargs["headers"] = dict(headers)
        if cert is not None:
            kwargs["cert"] = cert
        self.provider = HTTPProvider(url, request_kwargs=kwargs)
        self.web3 = Web3(self.provider)
        if poa:
            self.web3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self._chain_id: int | None = None
        self.sleep: Callable[[float], None] = time.sleep

    def request(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request; :class:`RpcError` for an error answer, :class:`LedgerUnavailable`
        when the node cannot be reached (web3 already retried idempotent reads)."""
        try:
            response = self.provider.make_request(method, params)  # type: ignore[arg-type]
        except (requests.ConnectionError, requests.Timeout, OSError) as e:
            raise LedgerUnavailable(f"{method}: {self.url} unreachable: {e}") from e
        except requests.HTTPError as e:
            raise LedgerUnavailable(f"{method}: HTTP error from {self.url}: {e}") from e
        error = response.get("error")
        if error:
            if isinstance(error, Mapping):
                raise RpcError(
                    method,
                    int(error.get("code", 0)),
                    str(error.get("message", "")),
                    error.get("data"),
                )
            raise RpcError(method, 0, str(error))
        return response.get("result")

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = _qty(self.request("eth_chainId", []))
        return self._chain_id

    def block(self, number: int | str) -> dict[str, Any]:
        """A block header as raw JSON (only numeric fields are read: no extraData concerns)."""
        tag = hex(number) if isinstance(number, int) else number
        block = self.request("eth_getBlockByNumber", [tag, False])
        if not isinstance(block, dict):
            raise JsonRpcError(f"block {number} not found")
        return block

    def code(self, address: str) -> bytes:
        return _data(self.request("eth_getCode", [address, "latest"]))

    def pending_nonce(self, address: str) -> int:
        return _qty(self.request("eth_getTransactionCount", [address, "pending"]))

    def fee_fields(
        self, gas_price: int | None = None, latest: Mapping[str, Any] | None = None
    ) -> dict[str, int]:
        """Legacy ``gasPrice`` (forced by ``gas_price``, or a chain without base fee) or EIP-1559
        fields; all zero on a free-gas network (base fee 0 and ``eth_gasPrice`` 0)."""
        if gas_price is not None:
            return {"gasPrice": gas_price}
        if latest is None:
            latest = self.block("latest")
        base_hex = latest.get("baseFeePerGas")
        network_price = _qty(self.request("eth_gasPrice", []))
        if base_hex is None:  # pre-London chain (e.g. an older GoQuorum): legacy transactions
            return {"gasPrice": network_price}
        base = _qty(base_hex)
        if base == 0 and network_price == 0:  # Besu zeroBaseFee + min-gas-price 0
            return {"maxFeePerGas": 0, "maxPriorityFeePerGas": 0}
        try:
            tip = _qty(self.request("eth_maxPriorityFeePerGas", []))
        except RpcError:
            tip = max(0, network_price - base)
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    def estimate_gas(
        self, request: Mapping[str, Any], block_gas_limit: int, fallback: int
    ) -> tuple[int, str]:
        """``(gas, revert_reason)``: estimate × 1.25 + 10,000 capped by the block gas limit, or
        ``fallback`` and the reason when the estimate reverts."""
        try:
            estimate = _qty(self.request("eth_estimateGas", [dict(request)]))
        except RpcError as e:
            if not e.is_revert():
                raise
            return min(fallback, block_gas_limit), revert_reason(e)
        gas = estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN + GAS_MARGIN_ADD
        return min(gas, block_gas_limit), ""

    def known(self, tx_hash: bytes) -> bool:
        """Whether the node has the transaction (pending or mined)."""
        return self.request("eth_getTransactionByHash", [_hex(tx_hash)]) is not None

    def send_raw(
        self, raw: bytes, tx_hash: bytes, *, what: str, attempts: int, backoff: float
    ) -> str:
        """Send ``raw`` (the same bytes on every attempt). ``"ok"`` when the node has the
        transaction (accepted now or before), ``"stale"`` when its nonce is used by another one
        or its fees are too low now (never applied: sign again with a fresh nonce and fees).
        :class:`LedgerUnavailable` after ``attempts`` transport failures,
        :class:`TransactionRejected` for any other refusal (never applied)."""
        delay = backoff
        for attempt in range(1, attempts + 1):
            try:
                self.request("eth_sendRawTransaction", [_hex(raw)])
            except LedgerUnavailable:
                if attempt == attempts:
                    raise
                self.sleep(delay)
                delay *= 2
                continue
            except RpcError as e:
                message = e.message.lower()
                if any(k in message for k in _KNOWN_TX_MESSAGES) or self.known(tx_hash):
                    return "ok"  # e.g. "nonce too low" for our own, already mined transaction
                if any(k in message for k in _STALE_TX_MESSAGES):
                    return "stale"
                raise TransactionRejected(f"{what}: {e.message}") from e
            return "ok"
        raise AssertionError("unreachable")

    def wait_receipt(
        self, tx_hash: bytes, *, timeout: float, poll_interval: float
    ) -> dict[str, Any]:
        """Poll for the receipt (2 ms, doubling up to ``poll_interval``);
        :class:`TransactionNotConfirmed` after ``timeout`` seconds."""
        started = time.monotonic()
        delay = 0.002
        while True:
            receipt = self.request("eth_getTransactionReceipt", [_hex(tx_hash)])
            if isinstance(receipt, dict) and receipt.get("blockNumber"):
                return receipt
            waited = time.monotonic() - started
            if waited >= timeout:
                raise TransactionNotConfirmed(tx_hash, waited)
            self.sleep(min(delay, timeout - waited))
            delay = min(delay * 2, poll_interval)

    def replay_revert(
        self, request: Mapping[str, Any], receipt: Mapping[str, Any], fallback: str = ""
    ) -> str:
        """The reason a mined transaction reverted: the receipt's ``revertReason`` when the node
        records it (Besu ``--revert-reason-enabled``), else the call replayed with ``eth_call`` on
        the parent block (the state it ran on, less earlier transactions of its block), then on
        its own block."""
        recorded = receipt.get("revertReason")
        if isinstance(recorded, str) and recorded.startswith("0x"):
            try:
                return decode_revert_data(_data(recorded))
            except ValueError:
                pass
        block = _qty(receipt["blockNumber"])
        gas = _qty(request["gas"]) if "gas" in request else None
        out_of_gas = gas is not None and _qty(receipt.get("gasUsed", "0x0")) >= gas
        for tag in (hex(max(0, block - 1)), hex(block)):
            try:
                self.request("eth_call", [dict(request), tag])
            except RpcError as e:
                if e.is_revert():
                    return revert_reason(e)
                return "out of gas" if out_of_gas else f"execution failed: {e.message}"
        if out_of_gas:
            return "out of gas"
        return fallback or "execution reverted (the replay did not revert)"


# -- the backend -------------------------------------------------------------------------------


class JsonRpcBackend:
    """The registry on an Ethereum JSON-RPC node, as an ``EventSource`` (and a
    ``LedgerBackend`` when given the validator's ``private_key``).

    ``url``: the node's HTTP(S) JSON-RPC endpoint. ``registry_address``: where the registry was
    deployed (:mod:`ledger.backends.deploy`). ``from_block``: the deployment block, a lower bound
    for log scans (0 scans from genesis). ``poll_interval``: the longest pause between receipt
    polls. ``gas_price``: force legacy transactions at that price (``0`` on free-gas networks).
    ``confirmations``: report events and status that many blocks behind the head.
    ``headers``/``verify``/``cert``: HTTP headers, TLS CA bundle, client certificate
    (:class:`RpcConnection`).
    """

    def __init__(
        self,
        url: str,
        registry_address: str | bytes,
        private_key: bytes | str | None = None,
        *,
        poa: bool = False,
        poll_interval: float = 0.25,
        receipt_timeout: float = 120.0,
        request_timeout: float = 30.0,
        send_attempts: int = 5,
        retry_backoff: float = 0.1,
        gas_price: int | None = None,
        confirmations: int = 0,
        from_block: int = 0,
        log_chunk_blocks: int = DEFAULT_LOG_CHUNK,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        artifact: ContractArtifact | None = None,
        fee_cache_seconds: float = DEFAULT_FEE_CACHE_SECONDS,
    ) -> None:
        if poll_interval <= 0 or receipt_timeout <= 0 or send_attempts < 1 or log_chunk_blocks < 1:
            raise ValueError(
                "poll_interval, receipt_timeout, send_attempts, log_chunk_blocks must be positive"
            )
        if min(confirmations, from_block, retry_backoff, fee_cache_seconds) < 0:
            raise ValueError(
                "confirmations, from_block, retry_backoff, fee_cache_seconds must not be negative"
            )
        if gas_price is not None and gas_price < 0:
            raise ValueError("gas_price must not be negative")
        self.rpc = RpcConnection(
            url,
            poa=poa,
            request_timeout=request_timeout,
            headers=headers,
            verify=verify,
            cert=cert,
        )
        self.url = url
        self.web3 = self.rpc.web3
        self.registry_address = _address_bytes(registry_address)
        self._to = to_checksum_address(self.registry_address)
        self.poll_interval = poll_interval
        self.receipt_timeout = receipt_timeout
        self.send_attempts = send_attempts
        self.retry_backoff = retry_backoff
        self.gas_price = gas_price
        self.confirmations = confirmations
        self.from_block = from_block
        self.log_chunk_blocks = log_chunk_blocks
        self.fee_cache_seconds = fee_cache_seconds
        self._fee_cache: tuple[float, int, dict[str, int]] | None = None  # (at, gas limit, fees)
        self.artifact = artifact if artifact is not None else load_artifact()
        self.abi = ContractAbi(self.artifact.abi)
        self.events = EventDecoder(self.artifact.abi)
        self._account: LocalAccount | None = (
            Account.from_key(private_key) if private_key is not None else None
        )
        self._registry_checked = False
        self._nonce: int | None = None
        self._pending: dict[bytes, _Pending] = {}
        self._send_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._tail = _TailCache()
        self._window = _LogWindow()
        self._block_times: dict[int, float] = {}

    # -- plumbing --------------------------------------------------------------------------

    def close(self) -> None:
        """Nothing to release beyond the HTTP session pool (kept for the interface)."""

    def __enter__(self) -> JsonRpcBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def chain_id(self) -> int:
        return self.rpc.chain_id

    def _check_registry(self) -> None:
        if self._registry_checked:
            return
        code = self.rpc.code(self._to)
        if not code:
            raise RegistryNotFound(
                f"no contract at {self._to} on chain {self.chain_id} ({self.url})"
            )
        if code != self.artifact.runtime_bytecode:
            log.warning(
                "the code at %s differs from the committed CertificateRegistry artifact "
                "(another compiler/EVM version?); the ABI is assumed compatible",
                self._to,
            )
        self._registry_checked = True

    def _block_time(self, number: int) -> float:
        cached = self._block_times.get(number)
        if cached is None:
            cached = float(_qty(self.rpc.block(number)["timestamp"]))
            if len(self._block_times) >= _BLOCK_TIME_CACHE:
                self._block_times.clear()
            self._block_times[number] = cached
        return cached

    def _head(self) -> tuple[int, float]:
        """``(number, timestamp)`` of the newest block reported (head − confirmations)."""
        if self.confirmations == 0:
            block = self.rpc.block("latest")
        else:
            latest = _qty(self.rpc.request("eth_blockNumber", []))
            block = self.rpc.block(max(0, latest - self.confirmations))
        number, ts = _qty(block["number"]), float(_qty(block["timestamp"]))
        self._block_times[number] = ts
        return number, ts

    # -- EventSource -----------------------------------------------------------------------

    def status(self) -> BackendStatus:
        """Chain id, registry address, head block and the cursor of the newest registry event."""
        self._check_registry()
        head, head_time = self._head()
        return BackendStatus(
            chain_id=self.chain_id,
            registry_address=self.registry_address,
            head_block=head,
            head_time=head_time,
            event_cursor=self._newest_cursor(head),
        )

    def _get_logs(self, first: int, last: int) -> list[dict[str, Any]]:
        """Registry logs of blocks ``first..last``; halves the range when the node refuses it
        (result or range limits differ between clients)."""
        span = last - first + 1
        out: list[dict[str, Any]] = []
        start = first
        while start <= last:
            end = min(last, start + span - 1)
            try:
                logs = self.rpc.request(
                    "eth_getLogs",
                    [{"address": self._to, "fromBlock": hex(start), "toBlock": hex(end)}],
                )
            except RpcError:
                if span == 1:
                    raise
                span = max(1, span // 2)
                continue
            if not isinstance(logs, list):
                raise JsonRpcError(f"eth_getLogs returned {type(logs).__name__}, not a list")
            out.extend(x for x in logs if not x.get("removed", False))
            start = end + 1
        return out

    def _newest_cursor(self, head: int) -> int:
        """The newest registry log's cursor: scan back from ``head`` to the last scanned block."""
        with self._read_lock:
            tail = self._tail
            if head <= tail.scanned_to:
                return tail.cursor
            low = max(self.from_block, tail.scanned_to + 1)
            top = head
            found = tail.cursor
            while top >= low:
                bottom = max(low, top - self.log_chunk_blocks + 1)
                logs = self._get_logs(bottom, top)
                if logs:
                    found = max(
                        cursor_of(_qty(x["blockNumber"]), _qty(x["logIndex"])) for x in logs
                    )
                    break
                top = bottom - 1
            self._tail = _TailCache(scanned_to=head, cursor=found)
            return found

    def _event(self, entry: Mapping[str, Any], block_time: float | None = None) -> RegistryEvent:
        block = _qty(entry["blockNumber"])
        topics = [_data(t) for t in entry.get("topics", [])]
        name, args = self.events.decode(topics, _data(entry.get("data", "0x")))
        if block_time is None:
            # anvil and recent geth/Besu put the block time in each log; others need the block
            stamp = entry.get("blockTimestamp")
            block_time = float(_qty(stamp)) if stamp is not None else self._block_time(block)
        return RegistryEvent(
            cursor=cursor_of(block, _qty(entry["logIndex"])),
            name=name,
            args=args,
            block_number=block,
            block_time=block_time,
            tx_hash=_data(entry["transactionHash"]) if entry.get("transactionHash") else b"",
        )

    def events_after(self, cursor: int, limit: int = 1000) -> list[RegistryEvent]:
        """Up to ``limit`` registry events with a cursor above ``cursor``, oldest first.

        Fewer than ``limit`` means the head was reached. :class:`CursorAhead` if the cursor's
        block is beyond the head (a checkpoint of another ledger).
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        block, _ = split_cursor(cursor)
        head, _ = self._head()
        if block > head:
            raise CursorAhead(f"cursor {cursor} is in block {block}, beyond the head {head}")
        out: list[RegistryEvent] = []
        start = max(block, self.from_block)
        while start <= head and len(out) < limit:
            end = min(head, start + self.log_chunk_blocks - 1)
            for entry in self._window_logs(start, end):
                if cursor_of(_qty(entry["blockNumber"]), _qty(entry["logIndex"])) <= cursor:
                    continue
                out.append(self._event(entry))
                if len(out) >= limit:
                    break
            start = end + 1
        return out

    def _window_logs(self, first: int, last: int) -> list[dict[str, Any]]:
        """Logs of ``first..last`` in chain order, from the cached window when it covers them
        (a follower paging through a busy range fetches it once)."""
        with self._read_lock:
            w = self._window
            if w.first <= first and last <= w.last:
                return [x for x in w.logs if first <= _qty(x["blockNumber"]) <= last]
        logs = self._get_logs(first, last)
        logs.sort(key=lambda x: (_qty(x["blockNumber"]), _qty(x["logIndex"])))
        with self._read_lock:
            self._window = _LogWindow(first, last, logs)
        return logs

    # -- LedgerBackend: reads --------------------------------------------------------------

    @property
    def account(self) -> str:
        """The validator's address (0x…, checksummed)."""
        return str(self._require_account().address)

    def _require_account(self) -> LocalAccount:
        if self._account is None:
            raise NoSigningKey("this backend was opened without a validator key")
        return self._account

    def call(self, function: str, *args: Any) -> Any:
        """A view call (``eth_call`` at the latest block); one value bare, several as a tuple.

        :class:`ViewReverted` with the decoded reason if the call reverts.
        """
        fn = self.abi[function]
        request: dict[str, Any] = {"to": self._to, "data": _hex(fn.encode(*args))}
        if self._account is not None:
            request["from"] = self._account.address
        try:
            result = self.rpc.request("eth_call", [request, "latest"])
        except RpcError as e:
            if e.is_revert():
                raise ViewReverted(function, revert_reason(e)) from e
            raise
        out = fn.decode_output(_data(result))
        return out[0] if len(out) == 1 else out

    # -- LedgerBackend: writes -------------------------------------------------------------

    def transact(self, function: str, *args: Any) -> TxOutcome:
        """Sign, send and wait for ``function(*args)``; a revert is ``success=False``.

        Raises :class:`LedgerUnavailable` / :class:`TransactionNotConfirmed` when the outcome is
        unknown: calling again with the same arguments resends the same signed transaction (one
        application at most). :class:`TransactionRejected` when the node refused it.
        """
        account = self._require_account()
        data = self.abi.encode(function, *args)
        self._check_registry()
        with self._send_lock:
            pending = self._pending.get(data)
            if pending is not None:
                try:
                    self._resend(account, pending)
                except TransactionRejected:
                    del self._pending[data]
                    raise
            else:
                self._flush_unacknowledged(account)
                pending = self._sign_new(account, data, function)
                self._pending[data] = pending
                try:
                    self._broadcast_new(account, pending)
                except TransactionRejected:
                    del self._pending[data]
                    raise
        receipt = self.rpc.wait_receipt(
            pending.tx_hash, timeout=self.receipt_timeout, poll_interval=self.poll_interval
        )
        with self._send_lock:
            if self._pending.get(data) is pending:
                del self._pending[data]
        return self._outcome(account, pending, receipt)

    @property
    def unconfirmed(self) -> list[bytes]:
        """Hashes of signed transactions whose receipt this backend has not seen yet."""
        with self._send_lock:
            return [p.tx_hash for p in self._pending.values()]

    def _take_nonce(self, account: LocalAccount) -> int:
        if self._nonce is None:
            self._nonce = self.rpc.pending_nonce(account.address)
        nonce = self._nonce
        self._nonce += 1
        return nonce

    def _sign(
        self, account: LocalAccount, data: bytes, nonce: int, gas: int, fees: Mapping[str, int]
    ) -> tuple[bytes, bytes]:
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "nonce": nonce,
            "gas": gas,
            "to": self._to,
            "value": 0,
            "data": data,
            **fees,
        }
        if "maxFeePerGas" in fees:
            tx["type"] = 2
        signed = account.sign_transaction(tx)
        return bytes(signed.raw_transaction), bytes(signed.hash)

    def _chain_fees(self, *, fresh: bool = False) -> tuple[int, dict[str, int]]:
        """``(block gas limit, fee fields)``, reused for ``fee_cache_seconds`` (decision 0904)."""
        now = time.monotonic()
        cached = self._fee_cache
        if fresh or cached is None or now - cached[0] > self.fee_cache_seconds:
            latest = self.rpc.block("latest")
            cached = (now, _qty(latest["gasLimit"]), self.rpc.fee_fields(self.gas_price, latest))
            self._fee_cache = cached
        return cached[1], cached[2]

    def _sign_new(self, account: LocalAccount, data: bytes, function: str) -> _Pending:
        gas_limit, fees = self._chain_fees()
        gas, estimate_revert = self.rpc.estimate_gas(
            {"from": account.address, "to": self._to, "data": _hex(data)},
            gas_limit,
            DEFAULT_FALLBACK_GAS,
        )
        nonce = self._take_nonce(account)
        raw, tx_hash = self._sign(account, data, nonce, gas, fees)
        return _Pending(raw, tx_hash, nonce, gas, data, function, estimate_revert=estimate_revert)

    def _resign(self, account: LocalAccount, p: _Pending, nonce: int) -> None:
        """Sign ``p`` again with ``nonce`` and fresh fees (never-applied bytes are replaced)."""
        _, fees = self._chain_fees(fresh=True)
        p.raw, p.tx_hash = self._sign(account, p.data, nonce, p.gas, fees)
        p.nonce, p.acknowledged = nonce, False
        self._nonce = nonce + 1

    def _broadcast(self, p: _Pending) -> str:
        result = self.rpc.send_raw(
            p.raw,
            p.tx_hash,
            what=p.function,
            attempts=self.send_attempts,
            backoff=self.retry_backoff,
        )
        if result == "ok":
            p.acknowledged = True
        return result

    def _broadcast_new(self, account: LocalAccount, p: _Pending) -> None:
        """Broadcast a freshly signed transaction; when its nonce or fees are stale, resync the
        nonce from the node's pending count (keeping ours if the node is behind) and sign again."""
        for _ in range(3):
            try:
                result = self._broadcast(p)
            except TransactionRejected:
                # never entered the pool: give the nonce back (or resync if others followed)
                self._nonce = p.nonce if self._nonce == p.nonce + 1 else None
                raise
            if result == "ok":
                return
            nonce = max(self.rpc.pending_nonce(account.address), p.nonce)
            log.info("%s at nonce %d refused as stale; signing with %d", p.function, p.nonce, nonce)
            self._resign(account, p, nonce)
        self._nonce = None
        raise TransactionRejected(f"{p.function}: refused with a stale nonce or fee three times")

    def _resend(self, account: LocalAccount, p: _Pending) -> None:
        """A retry of an unconfirmed call: the same bytes again (anew if they were superseded)."""
        if self._broadcast(p) == "stale":
            log.info("pending %s superseded at nonce %d; signing anew", p.function, p.nonce)
            self._resign(account, p, max(self.rpc.pending_nonce(account.address), p.nonce))
            self._broadcast_new(account, p)

    def _flush_unacknowledged(self, account: LocalAccount) -> None:
        """Resend pending transactions the node never acknowledged, so no nonce gap blocks the
        next one; drop those the node refuses (stale or otherwise: never applied)."""
        for data, p in list(self._pending.items()):
            if p.acknowledged:
                continue
            try:
                stale = self._broadcast(p) == "stale"
            except TransactionRejected as e:
                log.warning("dropping unacknowledged %s: %s", p.function, e)
                stale = True
            if stale:
                del self._pending[data]
                self._nonce = None

    def _outcome(self, account: LocalAccount, p: _Pending, receipt: Mapping[str, Any]) -> TxOutcome:
        block = _qty(receipt["blockNumber"])
        stamp = receipt.get("blockTimestamp")
        block_time = float(_qty(stamp)) if stamp is not None else self._block_time(block)
        success = _qty(receipt.get("status", "0x1")) == 1
        events: list[RegistryEvent] = []
        reason = ""
        if success:
            for entry in receipt.get("logs", []):
                if _address_bytes(str(entry["address"])) == self.registry_address:
                    events.append(self._event(entry, block_time))
        else:
            request = {
                "from": account.address,
                "to": self._to,
                "data": _hex(p.data),
                "gas": hex(p.gas),
            }
            reason = self.rpc.replay_revert(request, receipt, p.estimate_revert)
        return TxOutcome(
            tx_hash=p.tx_hash,
            success=success,
            block_number=block,
            block_time=block_time,
            revert_reason=reason,
            events=events,
        )
