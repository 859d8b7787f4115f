"""LedgerNode: group-commit producer, pool ordering, idempotent submission, restart."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from ledger.contracts import ContractArtifact
from ledger.node.chain import PendingTx, RejectCode, TxRejected
from ledger.node.genesis import GenesisConfig
from ledger.node.node import LedgerNode, StateDirLocked
from ledger.node.txpool import TxPool
from tests.ledger.node.conftest import ACTORS, Actors, signer_for


def anchor(signer, i: int, ca: bytes = ACTORS.ca1_cert_hash):  # type: ignore[no-untyped-def]
    return signer.build("anchor_batch", hashlib.sha256(b"root-%d" % i).digest(), 1, ca)


def test_submit_returns_durable_receipt_and_is_idempotent(
    node: LedgerNode, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    s = signer_for(ACTORS.ca1, genesis, artifact)
    tx = anchor(s, 1)
    r = node.submit_and_wait(tx.raw)
    assert r.status == 1 and r.block_number == 1
    # resubmitting the identical transaction returns the existing receipt, applies nothing
    again = node.submit_and_wait(tx.raw)
    assert again == r
    assert node.status().head_number == 1
    assert node.nonces(Actors.addr(ACTORS.ca1)) == (1, 1)
    # another transaction with a used nonce is refused
    reused = s.sign_with_nonce(s.abi.encode("batch_count"), 0)
    with pytest.raises(TxRejected) as e:
        node.submit(reused.raw)
    assert e.value.code is RejectCode.NONCE_TOO_LOW


def test_out_of_order_nonces_wait_for_the_gap(
    node: LedgerNode, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    s = signer_for(ACTORS.ca1, genesis, artifact)
    txs = [anchor(s, i) for i in range(6)]
    futures = [node.submit(t.raw) for t in reversed(txs)]  # highest nonce first
    assert node.nonces(Actors.addr(ACTORS.ca1))[1] == 6
    receipts = [f.result(20) for f in reversed(futures)]
    assert [r.nonce for r in receipts] == list(range(6))
    assert all(r.status == 1 for r in receipts)
    order = [(r.block_number, r.tx_index) for r in receipts]
    assert order == sorted(order)


def test_same_pending_transaction_shares_the_result(
    node: LedgerNode, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    s = signer_for(ACTORS.ca1, genesis, artifact)
    later = anchor(s, 2)  # nonce 0 ...
    gap_tx = s.sign_with_nonce(s.abi.encode("batch_count"), 1)
    f1 = node.submit(gap_tx.raw)  # waits for nonce 0
    f2 = node.submit(gap_tx.raw)
    assert f1 is f2
    conflicting = s.sign_with_nonce(s.abi.encode("threshold"), 1)
    with pytest.raises(TxRejected) as e:
        node.submit(conflicting.raw)
    assert e.value.code is RejectCode.NONCE_CONFLICT
    node.submit_and_wait(later.raw)
    assert f1.result(10).nonce == 1


def test_gap_that_never_fills_is_refused(
    tmp_path: Path, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    with LedgerNode(tmp_path / "n", genesis, artifact, gap_timeout=0.3) as n:
        s = signer_for(ACTORS.ca1, genesis, artifact)
        fut = n.submit(s.sign_with_nonce(s.abi.encode("batch_count"), 3).raw)
        with pytest.raises(TxRejected, match="never came") as e:
            fut.result(5)
        assert e.value.code is RejectCode.NONCE_GAP
        assert len(n.pool) == 0


def test_concurrent_submitters_are_grouped_into_blocks(
    node: LedgerNode, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    signers = [
        (signer_for(ACTORS.ca1, genesis, artifact), ACTORS.ca1_cert_hash),
        (signer_for(ACTORS.ca2, genesis, artifact), ACTORS.ca2_cert_hash),
    ]
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        s, ca = signers[k % 2]
        futs = [node.submit(anchor(s, 1000 * k + i, ca).raw) for i in range(10)]
        for f in futs:
            r = f.result(30)
            with lock:
                results.append((r.block_number, r.tx_index))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(set(results)) == 20
    assert node.stats.transactions == 20
    assert node.stats.blocks < 20  # several transactions per block


def test_restart_keeps_everything_and_applies_nothing_twice(
    tmp_path: Path, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    s = signer_for(ACTORS.ca1, genesis, artifact)
    txs = [anchor(s, i) for i in range(5)]
    with LedgerNode(tmp_path / "n", genesis, artifact) as n:
        receipts = [n.submit_and_wait(t.raw) for t in txs]
        cursor = n.last_cursor
    with LedgerNode(tmp_path / "n", genesis, artifact) as n:
        assert n.last_cursor == cursor
        assert [n.submit_and_wait(t.raw) for t in txs] == receipts
        assert n.status().head_number == receipts[-1].block_number
        assert n.engine.index.counts()["txs"] == 5


def test_state_dir_is_exclusive(
    tmp_path: Path, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    with LedgerNode(tmp_path / "n", genesis, artifact), pytest.raises(StateDirLocked):
        LedgerNode(tmp_path / "n", genesis, artifact)


def test_stop_refuses_queued_transactions(
    tmp_path: Path, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    n = LedgerNode(tmp_path / "n", genesis, artifact).start()
    s = signer_for(ACTORS.ca1, genesis, artifact)
    waiting = n.submit(s.sign_with_nonce(s.abi.encode("batch_count"), 2).raw)  # gap: stays queued
    n.stop()
    with pytest.raises(TxRejected) as e:
        waiting.result(5)
    assert e.value.code is RejectCode.UNAVAILABLE
    with pytest.raises(TxRejected):
        n.submit(anchor(s, 9).raw)


def test_listener_hears_new_cursors(
    node: LedgerNode, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    heard: list[int] = []
    node.add_listener(heard.append)
    s = signer_for(ACTORS.ca1, genesis, artifact)
    node.submit_and_wait(anchor(s, 1).raw)
    deadline = time.monotonic() + 5
    while not heard and time.monotonic() < deadline:
        time.sleep(0.01)
    assert heard == [node.last_cursor]
    node.remove_listener(heard.append)


def test_pool_limits() -> None:
    pool = TxPool(lambda _sender: 0, max_size=2, max_nonce_ahead=4)

    class FakeTx:
        pass

    def pending(sender: bytes, nonce: int) -> PendingTx:
        return PendingTx(
            raw=b"",
            tx=FakeTx(),  # type: ignore[arg-type]
            tx_hash=sender + bytes([nonce]),
            sender=sender,
            nonce=nonce,
            gas=1,  # type: ignore[arg-type]
        )

    pool.add(pending(b"a", 0))
    with pytest.raises(TxRejected, match="more than 4 ahead"):
        pool.add(pending(b"b", 5))
    pool.add(pending(b"b", 0))
    with pytest.raises(TxRejected) as e:
        pool.add(pending(b"c", 0))
    assert e.value.code is RejectCode.POOL_FULL
    taken = pool.take(10, timeout=0)
    assert [s.pending.sender for s in taken] == [b"a", b"b"]


def test_transaction_that_breaks_py_evm_is_refused_and_the_rest_proceed(
    node: LedgerNode,
    genesis: GenesisConfig,
    artifact: ContractArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ledger.node.evm import MpkixVM

    s1 = signer_for(ACTORS.ca1, genesis, artifact)
    s2 = signer_for(ACTORS.ca2, genesis, artifact)
    poison = anchor(s1, 1)
    fine = anchor(s2, 2, ACTORS.ca2_cert_hash)
    real_apply = MpkixVM.apply_transaction

    def faulty(self: MpkixVM, header: object, tx: object) -> object:
        if getattr(tx, "hash", None) == poison.tx_hash:
            raise RuntimeError("injected py-evm fault")
        return real_apply(self, header, tx)  # type: ignore[arg-type]

    monkeypatch.setattr(MpkixVM, "apply_transaction", faulty)
    f_poison = node.submit(poison.raw)
    f_fine = node.submit(fine.raw)
    with pytest.raises(TxRejected) as e:
        f_poison.result(10)
    assert e.value.code is RejectCode.INTERNAL
    assert f_fine.result(10).status == 1
    assert node.receipt(poison.tx_hash) is None
    assert node.nonces(Actors.addr(ACTORS.ca1)) == (0, 0)


def test_failed_commit_applies_nothing_and_the_node_recovers(
    node: LedgerNode,
    genesis: GenesisConfig,
    artifact: ContractArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sqlite3

    import ledger.node.chain as chain_mod

    real_write_txs = chain_mod.write_txs  # type: ignore[attr-defined]
    calls = {"n": 0}

    def disk_full_once(conn: sqlite3.Connection, txs: list[object]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database or disk is full")
        real_write_txs(conn, txs)  # type: ignore[arg-type]

    monkeypatch.setattr(chain_mod, "write_txs", disk_full_once)
    s = signer_for(ACTORS.ca1, genesis, artifact)
    tx = anchor(s, 1)
    with pytest.raises(TxRejected) as e:
        node.submit_and_wait(tx.raw)
    assert e.value.code is RejectCode.UNAVAILABLE
    assert node.status().head_number == 0 and node.receipt(tx.tx_hash) is None
    assert node.nonces(Actors.addr(ACTORS.ca1)) == (0, 0)
    # the same bytes go through once the disk is fine again
    r = node.submit_and_wait(tx.raw)
    assert r.status == 1 and r.block_number == 1
    assert node.engine.index.counts()["batches"] == 1
