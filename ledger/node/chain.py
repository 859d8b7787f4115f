"""The chain engine: py-evm driven directly, one SQLite transaction per block (decisions 0500-0503).

:class:`ChainEngine` owns the node database. It

* creates block 0 from the genesis configuration (registry deployed in the genesis state),
* decodes and checks raw signed transactions (:meth:`ChainEngine.decode`),
* executes a group of transactions into a new block (:meth:`ChainEngine.execute`) — state,
  block body, receipts and the event index go to a staging buffer — and makes it durable with
  one SQLite COMMIT (:meth:`ChainEngine.commit`); only then is a transaction acknowledged,
* answers reads from committed data without web3 or eth-tester: view calls run the EVM on a
  read-only view of the head state; nonces and code come straight from the state trie;
  receipts and events come from the index.

Only one thread (the block producer) may call :meth:`execute`/:meth:`commit`; reads are safe
from any thread.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth.abc import (
    BlockHeaderAPI,
    ComputationAPI,
    ReceiptAPI,
    SignedTransactionAPI,
    StateAPI,
)
from eth.consensus.context import ConsensusContext
from eth.db.chain import ChainDB
from eth.exceptions import UnrecognizedTransactionType
from eth.vm.chain_context import ChainContext
from eth.vm.forks.london.constants import ELASTICITY_MULTIPLIER
from eth.vm.spoof import SpoofTransaction
from eth_hash.auto import keccak
from eth_typing import Address, Hash32
from eth_utils.exceptions import ValidationError
from rlp.exceptions import RLPException

from ledger.contracts import ContractArtifact
from ledger.node.events import EventDecoder
from ledger.node.evm import MpkixVM
from ledger.node.genesis import GenesisConfig, build_genesis, contract_address_for
from ledger.node.index import (
    EventRecord,
    IndexReader,
    TxRecord,
    create_schema,
    set_meta,
    write_events,
    write_txs,
)
from ledger.node.kvstore import CommittedStore, ReadOnlyDB, StagingDB, atomic, connect
from ledger.node.revert import failure_of

log = logging.getLogger("ledger.node.chain")

ZERO_ADDRESS = b"\x00" * 20
GENESIS_TX_HASH = b"\x00" * 32  # the synthetic "transaction" of the genesis deployment logs
MAX_RAW_TX_BYTES = 128 * 1024
SUPPORTED_TX_TYPES = (None, 1, 2)  # legacy (EIP-155), EIP-2930, EIP-1559


class RejectCode(enum.Enum):
    """Why a transaction was not accepted (before or during block building)."""

    MALFORMED = "MALFORMED_TRANSACTION"
    UNSUPPORTED_TYPE = "UNSUPPORTED_TRANSACTION_TYPE"
    WRONG_CHAIN = "WRONG_CHAIN_ID"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    GAS_LIMIT = "GAS_LIMIT_TOO_HIGH"
    INTRINSIC_GAS = "INTRINSIC_GAS_TOO_LOW"
    TOO_LARGE = "TRANSACTION_TOO_LARGE"
    NONCE_TOO_LOW = "NONCE_TOO_LOW"
    NONCE_GAP = "NONCE_GAP"
    NONCE_CONFLICT = "NONCE_ALREADY_PENDING"
    INVALID = "TRANSACTION_INVALID"
    POOL_FULL = "POOL_FULL"
    UNAVAILABLE = "NODE_UNAVAILABLE"
    INTERNAL = "EXECUTION_FAILED_INTERNALLY"


class TxRejected(Exception):
    """A transaction was refused; nothing of it was applied."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PendingTx:
    """A decoded, signature-checked transaction waiting for a block."""

    raw: bytes
    tx: SignedTransactionAPI
    tx_hash: bytes
    sender: bytes
    nonce: int
    gas: int


@dataclass(frozen=True)
class CallResult:
    output: bytes
    gas_used: int
    success: bool
    revert_reason: str
    revert_data: bytes


@dataclass
class BlockOutcome:
    """A block executed into the staging buffer, not yet durable."""

    header: BlockHeaderAPI | None
    receipts: list[TxRecord]
    events: list[EventRecord]
    applied: list[PendingTx]
    rejected: list[tuple[PendingTx, TxRejected]]
    deferred: list[PendingTx]


_NONCE_MESSAGE = re.compile(r"nonce: Expected (\d+), but got (\d+)")


def _classify(error: ValidationError) -> TxRejected:
    """A py-evm validation failure as a rejection with a stable code."""
    message = str(error)
    m = _NONCE_MESSAGE.search(message)
    if m:
        expected, got = int(m.group(1)), int(m.group(2))
        code = RejectCode.NONCE_TOO_LOW if got < expected else RejectCode.NONCE_GAP
        return TxRejected(code, f"nonce {got} but the account's next nonce is {expected}")
    return TxRejected(RejectCode.INVALID, message)


class PoisonTransaction(Exception):
    """py-evm raised unexpectedly on this transaction; the block must be rebuilt without it."""

    def __init__(self, pending: PendingTx, cause: BaseException) -> None:
        super().__init__(f"transaction 0x{pending.tx_hash.hex()} broke block building: {cause!r}")
        self.pending = pending


class GenesisMismatch(RuntimeError):
    """The state directory was created from a different genesis configuration."""


class ChainEngine:
    """py-evm chain state in SQLite, with the event index; see the module docstring."""

    def __init__(
        self,
        db_path: Path,
        genesis: GenesisConfig,
        artifact: ContractArtifact,
        *,
        cache_entries: int = 200_000,
    ) -> None:
        self.path = Path(db_path)
        self.genesis = genesis
        self.artifact = artifact
        self.chain_id = genesis.chain_id
        self.contract_address = genesis.contract_address
        self.decoder = EventDecoder(artifact.abi)
        self._writer = connect(self.path)
        create_schema(self._writer)
        self._store = CommittedStore(self.path, cache_entries=cache_entries)
        self._staging = StagingDB(self._store)
        self._db = atomic(self._staging)
        self._chaindb = ChainDB(self._db)
        self._consensus = ConsensusContext(self._db)
        self._context = ChainContext(self.chain_id)
        self.index = IndexReader(self.path)
        self._view_lock = threading.Lock()
        self._view_state: tuple[bytes, StateAPI] | None = None
        self._gas_target = genesis.gas_limit // ELASTICITY_MULTIPLIER
        identity = genesis.identity(artifact)
        stored = self._meta("genesis_identity")
        if stored is None:
            self._init_genesis(identity)
        elif stored != identity:
            raise GenesisMismatch(
                f"{self.path} holds a chain from another genesis configuration "
                f"(stored identity {stored[:16]}…, configured {identity[:16]}…)"
            )
        head_hash = bytes.fromhex(self._meta_required("head_hash"))
        self._head: BlockHeaderAPI = self._chaindb.get_block_header_by_hash(Hash32(head_hash))
        self._next_cursor = int(self._meta_required("last_cursor")) + 1
        self.genesis_hash = bytes.fromhex(self._meta_required("genesis_hash"))

    # -- metadata ------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._writer.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _meta_required(self, key: str) -> str:
        value = self._meta(key)
        if value is None:
            raise RuntimeError(f"node database {self.path} lacks {key!r}: it is damaged")
        return value

    @property
    def head(self) -> BlockHeaderAPI:
        """The last durable block header."""
        return self._head

    @property
    def gas_target(self) -> int:
        """Most gas a block may use (EIP-1559 target: keeps the base fee at zero)."""
        return self._gas_target

    @property
    def last_cursor(self) -> int:
        return self._next_cursor - 1

    # -- genesis -------------------------------------------------------------------------

    def _init_genesis(self, identity: str) -> None:
        try:
            result = build_genesis(self._db, self.genesis, self.artifact)
            self._chaindb.persist_header(result.header)
            header = result.header
            events = []
            for i, lg in enumerate(result.logs):
                decoded = self.decoder.decode(lg.topics, lg.data)
                events.append(
                    EventRecord(
                        cursor=i + 1,
                        block_number=0,
                        tx_index=0,
                        log_index=i,
                        tx_hash=GENESIS_TX_HASH,
                        address=lg.address,
                        name=decoded.name,
                        args_json=decoded.args_json(),
                        topics=lg.topics,
                        data=lg.data,
                        timestamp=header.timestamp,
                    )
                )
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                puts, deletes = self._staging.flush_into(conn)
                conn.execute(
                    "INSERT INTO blocks (number, hash, timestamp, tx_count, gas_used)"
                    " VALUES (0, ?, ?, 0, 0)",
                    (header.hash, header.timestamp),
                )
                write_events(conn, events)
                set_meta(
                    conn,
                    {
                        "genesis_identity": identity,
                        "genesis_hash": header.hash.hex(),
                        "head_hash": header.hash.hex(),
                        "head_number": "0",
                        "last_cursor": str(len(events)),
                        "chain_id": str(self.chain_id),
                        "contract_address": result.contract_address.hex(),
                        "genesis_gas_used": str(result.gas_used),
                    },
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._staging.published(puts, deletes)
        except BaseException:
            self._staging.discard()
            raise
        log.info(
            "genesis %s created; registry at 0x%s",
            header.hash.hex(),
            result.contract_address.hex(),
        )

    # -- transactions --------------------------------------------------------------------

    def decode(self, raw: bytes) -> PendingTx:
        """Decode and check a raw signed transaction; raises :class:`TxRejected`."""
        if len(raw) > MAX_RAW_TX_BYTES:
            raise TxRejected(
                RejectCode.TOO_LARGE, f"transaction is {len(raw)} bytes; limit {MAX_RAW_TX_BYTES}"
            )
        if not raw:
            raise TxRejected(RejectCode.MALFORMED, "empty transaction")
        try:
            tx = MpkixVM.get_transaction_builder().decode(raw)
        except UnrecognizedTransactionType as e:
            raise TxRejected(
                RejectCode.UNSUPPORTED_TYPE, f"unsupported transaction type {e.args[0]}"
            ) from None
        except (RLPException, ValidationError, ValueError, TypeError, IndexError) as e:
            raise TxRejected(RejectCode.MALFORMED, f"malformed transaction: {e}") from None
        type_id = getattr(tx, "type_id", None)
        if type_id not in SUPPORTED_TX_TYPES:
            raise TxRejected(
                RejectCode.UNSUPPORTED_TYPE,
                f"unsupported transaction type {type_id}; use legacy, 1 or 2",
            )
        if tx.encode() != raw:
            raise TxRejected(RejectCode.MALFORMED, "non-canonical transaction encoding")
        if tx.chain_id is None:
            raise TxRejected(
                RejectCode.WRONG_CHAIN, "transaction without a chain id (EIP-155) is replayable"
            )
        if tx.chain_id != self.chain_id:
            raise TxRejected(
                RejectCode.WRONG_CHAIN,
                f"transaction is for chain {tx.chain_id}; this ledger is chain {self.chain_id}",
            )
        try:
            tx.validate()
            sender = bytes(tx.sender)
        except (ValidationError, ValueError) as e:
            raise TxRejected(RejectCode.BAD_SIGNATURE, f"invalid transaction: {e}") from None
        intrinsic = int(tx.get_intrinsic_gas())
        if tx.gas < intrinsic:
            raise TxRejected(
                RejectCode.INTRINSIC_GAS,
                f"gas limit {tx.gas} is below the transaction's intrinsic gas {intrinsic}",
            )
        if tx.gas > self._gas_target:
            raise TxRejected(
                RejectCode.GAS_LIMIT,
                f"gas limit {tx.gas} exceeds the per-block gas budget {self._gas_target}",
            )
        return PendingTx(
            raw=raw,
            tx=tx,
            tx_hash=bytes(tx.hash),
            sender=sender,
            nonce=tx.nonce,
            gas=tx.gas,
        )

    def execute(self, candidates: Sequence[PendingTx], now: float | None = None) -> BlockOutcome:
        """Execute ``candidates`` (in order) into a new block in the staging buffer.

        Transactions that fail validation are rejected individually; those that do not fit the
        block's gas budget are deferred. Raises :class:`PoisonTransaction` when py-evm breaks on
        a transaction (the staging buffer is then discarded).
        """
        parent = self._head
        timestamp = max(int(now if now is not None else time.time()), parent.timestamp)
        header = MpkixVM.create_header_from_parent(
            parent,
            timestamp=timestamp,
            gas_limit=parent.gas_limit,
            coinbase=ZERO_ADDRESS,
            mix_hash=keccak(parent.hash),
        )
        vm = MpkixVM(
            header=header,
            chaindb=self._chaindb,
            chain_context=self._context,
            consensus_context=self._consensus,
        )
        outcome = BlockOutcome(None, [], [], [], [], [])
        try:
            block = vm.get_block()
            vm.block_preprocessing(block)
            current = header
            txs: list[SignedTransactionAPI] = []
            receipts: list[ReceiptAPI] = []
            computations: list[ComputationAPI] = []
            for pending in candidates:
                if current.gas_used + pending.gas > self._gas_target:
                    outcome.deferred.append(pending)
                    continue
                try:
                    # the checks apply_transaction makes before touching state; done here
                    # first so a refusal needs no rollback
                    vm.validate_transaction_against_header(current, pending.tx)
                    vm.state.validate_transaction(pending.tx)
                except ValidationError as e:
                    outcome.rejected.append((pending, _classify(e)))
                    continue
                try:
                    receipt, computation = vm.apply_transaction(current, pending.tx)
                except Exception as e:
                    raise PoisonTransaction(pending, e) from e
                current = vm.add_receipt_to_header(current, receipt)
                txs.append(pending.tx)
                receipts.append(receipt)
                computations.append(computation)
                outcome.applied.append(pending)
            if not txs:
                self._staging.discard()
                return outcome
            block = vm.set_block_transactions_and_withdrawals(block, current, txs, receipts)
            block = vm.block_postprocessing(block)
            final = vm.finalize_block(vm.pack_block(block)).block
            vm.validate_header(final.header, parent)
            self._chaindb.persist_block(final)
        except BaseException:
            self._staging.discard()
            raise
        outcome.header = final.header
        self._records(outcome, receipts, computations)
        return outcome

    def _records(
        self,
        outcome: BlockOutcome,
        receipts: list[ReceiptAPI],
        computations: list[ComputationAPI],
    ) -> None:
        header = outcome.header
        assert header is not None
        cursor = self._next_cursor
        log_index = 0
        previous_cumulative = 0
        for tx_index, (pending, receipt, computation) in enumerate(
            zip(outcome.applied, receipts, computations, strict=True)
        ):
            reason, revert_data = failure_of(computation)
            logs = []
            for lg in receipt.logs:
                topics = tuple(int(t).to_bytes(32, "big") for t in lg.topics)
                data = bytes(lg.data)
                address = bytes(lg.address)
                decoded = (
                    self.decoder.decode(topics, data)
                    if address == self.contract_address
                    else self.decoder.decode((), b"")
                )
                logs.append(
                    EventRecord(
                        cursor=cursor,
                        block_number=header.block_number,
                        tx_index=tx_index,
                        log_index=log_index,
                        tx_hash=pending.tx_hash,
                        address=address,
                        name=decoded.name,
                        args_json=decoded.args_json(),
                        topics=topics,
                        data=data,
                        timestamp=header.timestamp,
                    )
                )
                cursor += 1
                log_index += 1
            created = b""
            if not pending.tx.to and computation.is_success:
                created = contract_address_for(pending.sender, pending.nonce)
            outcome.receipts.append(
                TxRecord(
                    tx_hash=pending.tx_hash,
                    block_number=header.block_number,
                    block_hash=header.hash,
                    block_timestamp=header.timestamp,
                    tx_index=tx_index,
                    sender=pending.sender,
                    nonce=pending.nonce,
                    to=bytes(pending.tx.to),
                    contract_address=created,
                    status=1 if computation.is_success else 0,
                    gas_used=receipt.gas_used - previous_cumulative,
                    cumulative_gas_used=receipt.gas_used,
                    revert_reason=reason,
                    revert_data=revert_data,
                    logs=tuple(logs),
                )
            )
            outcome.events.extend(logs)
            previous_cumulative = receipt.gas_used

    def commit(self, outcome: BlockOutcome) -> None:
        """Make an executed block durable: one SQLite transaction, fsync'd before returning."""
        header = outcome.header
        if header is None:
            return
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                puts, deletes = self._staging.flush_into(conn)
                conn.execute(
                    "INSERT INTO blocks (number, hash, timestamp, tx_count, gas_used)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        header.block_number,
                        header.hash,
                        header.timestamp,
                        len(outcome.receipts),
                        header.gas_used,
                    ),
                )
                write_txs(conn, outcome.receipts)
                write_events(conn, outcome.events)
                set_meta(
                    conn,
                    {
                        "head_hash": header.hash.hex(),
                        "head_number": str(header.block_number),
                        "last_cursor": str(self._next_cursor + len(outcome.events) - 1),
                    },
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            self._staging.discard()
            raise
        self._staging.published(puts, deletes)
        self._head = header
        self._next_cursor += len(outcome.events)

    def abandon(self) -> None:
        """Drop an executed but uncommitted block."""
        self._staging.discard()

    # -- reads (committed state only) ----------------------------------------------------

    def _read_state(self, header: BlockHeaderAPI | None = None) -> StateAPI:
        header = header or self._head
        db = atomic(ReadOnlyDB(self._store))
        return MpkixVM.build_state(
            db,
            header,
            self._context,
            MpkixVM.get_prev_hashes(header.parent_hash, ChainDB(db)) or (),
        )

    def nonce(self, address: bytes) -> int:
        return int(self._read_state().get_nonce(Address(address)))

    def balance(self, address: bytes) -> int:
        return int(self._read_state().get_balance(Address(address)))

    def code(self, address: bytes) -> bytes:
        return bytes(self._read_state().get_code(Address(address)))

    def call(
        self, to: bytes, data: bytes, *, sender: bytes = ZERO_ADDRESS, gas: int | None = None
    ) -> CallResult:
        """``eth_call`` against the head state: execute without recording anything.

        Calls share one state object per head block (its account and storage caches stay
        warm); each call runs between a snapshot and a revert, under a lock.
        """
        with self._view_lock:
            head = self._head
            if self._view_state is None or self._view_state[0] != head.hash:
                self._view_state = (head.hash, self._read_state(head))
            state = self._view_state[1]
            snapshot = state.snapshot()
            try:
                return self._call_in(state, to, data, sender, gas)
            finally:
                state.revert(snapshot)

    def _call_in(
        self, state: StateAPI, to: bytes, data: bytes, sender: bytes, gas: int | None
    ) -> CallResult:
        builder: Any = MpkixVM.get_transaction_builder()
        unsigned = builder.new_unsigned_dynamic_fee_transaction(
            chain_id=self.chain_id,
            nonce=state.get_nonce(Address(sender)),
            max_priority_fee_per_gas=0,
            max_fee_per_gas=0,
            gas=gas if gas is not None else self._gas_target,
            to=to,
            value=0,
            data=data,
            access_list=(),
        )
        spoof: Any = SpoofTransaction(unsigned, from_=sender)
        computation = state.apply_transaction(spoof)
        reason, revert_data = failure_of(computation)
        return CallResult(
            output=bytes(computation.output) if computation.is_success else b"",
            # as a transaction: intrinsic gas plus execution, before refunds
            gas_used=int(unsigned.get_intrinsic_gas()) + computation.get_gas_used(),
            success=computation.is_success,
            revert_reason=reason,
            revert_data=revert_data,
        )

    def receipt(self, tx_hash: bytes) -> TxRecord | None:
        return self.index.receipt(tx_hash)

    def close(self) -> None:
        self.index.close()
        self._store.close()
        with contextlib.suppress(sqlite3.Error):
            self._writer.close()
