"""The chain engine: execution into blocks, receipts, event index, refusals and direct reads."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account

from ledger.contracts import ContractArtifact, certificate_leaf_entry
from ledger.node.abi import ContractAbi
from ledger.node.chain import MAX_RAW_TX_BYTES, ChainEngine, RejectCode, TxRejected
from ledger.node.genesis import GenesisConfig
from ledger.node.index import TxRecord
from ledger.node.signer import LocalSigner
from mpkix.merkle import MerkleTree
from tests.ledger.node.conftest import ACTORS, CHAIN_ID, Actors, signer_for


def run_block(engine: ChainEngine, raws: list[bytes], now: float | None = None) -> list[TxRecord]:
    outcome = engine.execute([engine.decode(r) for r in raws], now=now)
    assert not outcome.rejected, outcome.rejected
    engine.commit(outcome)
    return outcome.receipts


@pytest.fixture
def ca1(genesis: GenesisConfig, artifact: ContractArtifact) -> LocalSigner:
    return signer_for(ACTORS.ca1, genesis, artifact)


def test_anchor_batch_receipt_events_and_index(engine: ChainEngine, ca1: LocalSigner) -> None:
    genesis_cursor = engine.last_cursor
    root = hashlib.sha256(b"batch-1").digest()
    tx = ca1.build("anchor_batch", root, 7, ACTORS.ca1_cert_hash)
    (r,) = run_block(engine, [tx.raw])
    assert r.status == 1 and r.revert_reason == ""
    assert r.tx_hash == tx.tx_hash and r.block_number == 1 and r.tx_index == 0
    assert r.sender == Actors.addr(ACTORS.ca1) and r.nonce == 0
    assert r.gas_used == r.cumulative_gas_used > 21_000
    (ev,) = r.logs
    assert ev.name == "BatchAnchored"
    assert ev.cursor == genesis_cursor + 1 == engine.last_cursor
    assert ev.args == {
        "batch_id": 1,
        "root": "0x" + root.hex(),
        "size": 7,
        "ca_cert_hash": "0x" + ACTORS.ca1_cert_hash.hex(),
        "timestamp": engine.head.timestamp,
    }
    b = engine.index.batch(1)
    assert b is not None and b.root == root and b.size == 7 and b.tx_hash == tx.tx_hash
    assert engine.index.batch_by_root(root) == b
    assert engine.receipt(tx.tx_hash) == r
    assert engine.nonce(Actors.addr(ACTORS.ca1)) == 1


def test_revert_is_included_with_reason_and_uses_the_nonce(
    engine: ChainEngine, genesis: GenesisConfig, artifact: ContractArtifact
) -> None:
    outsider = signer_for(ACTORS.outsider, genesis, artifact)
    tx = outsider.build("anchor_batch", b"\x01" * 32, 1, ACTORS.ca1_cert_hash)
    (r,) = run_block(engine, [tx.raw])
    assert r.status == 0
    assert r.revert_reason == "caller is not a validator"
    assert r.revert_data[:4] == bytes.fromhex("08c379a0")
    assert r.logs == ()
    assert engine.nonce(Actors.addr(ACTORS.outsider)) == 1
    assert engine.receipt(tx.tx_hash) == r


def test_revocation_suspension_projection_matches_contract(
    engine: ChainEngine, genesis: GenesisConfig, artifact: ContractArtifact, ca1: LocalSigner
) -> None:
    certs = [hashlib.sha256(b"cert-%d" % i).digest() for i in range(5)]
    entries = [certificate_leaf_entry(c, ACTORS.op1_key_hash) for c in certs]
    tree = MerkleTree(entries)
    run_block(engine, [ca1.build("anchor_batch", tree.root, tree.size, ACTORS.ca1_cert_hash).raw])
    op1 = signer_for(ACTORS.op1, genesis, artifact)

    def args(i: int) -> tuple[bytes, bytes, int, int, list[bytes]]:
        return (certs[i], ACTORS.op1_key_hash, 1, i, tree.audit_path(i))

    receipts = run_block(
        engine,
        [
            ca1.build("revoke", *args(0), 1).raw,  # keyCompromise by the CA
            op1.build("suspend", *args(1)).raw,  # lost phone, via the operator
            op1.build("suspend", *args(2)).raw,
            op1.build("resume", *args(2)).raw,
        ],
    )
    assert [r.status for r in receipts] == [1, 1, 1, 1]
    assert [r.logs[0].name for r in receipts] == [
        "CertificateRevoked",
        "CertificateSuspended",
        "CertificateSuspended",
        "CertificateResumed",
    ]
    abi = ContractAbi(artifact.abi)
    for i, (state, reason) in enumerate([(2, 1), (1, 6), (0, 8)]):
        (rec,) = engine.index.cert_statuses(certs[i])
        assert (rec.state, rec.reason, rec.batch_id) == (state, reason, 1)
        assert rec.ca_cert_hash == ACTORS.ca1_cert_hash
        on_chain = abi["status_of"].decode_output(
            engine.call(
                engine.contract_address, abi.encode("status_of", ACTORS.ca1_cert_hash, certs[i])
            ).output
        )[0]
        assert on_chain[:2] == (state, reason)
        assert on_chain[2] == rec.updated_at
    assert engine.index.cert_statuses(certs[3]) == []
    # a wrong proof reverts: nothing recorded
    (bad,) = run_block(engine, [op1.build("revoke", *args(3)[:4], tree.audit_path(4), 1).raw])
    assert bad.status == 0 and bad.revert_reason == "certificate not in batch"
    assert engine.index.cert_statuses(certs[3]) == []


def test_many_transactions_in_one_block_keep_order_and_cursors(
    engine: ChainEngine, genesis: GenesisConfig, artifact: ContractArtifact, ca1: LocalSigner
) -> None:
    ca2 = signer_for(ACTORS.ca2, genesis, artifact)
    raws = []
    for i in range(30):
        s, anchor = (ca1, ACTORS.ca1_cert_hash) if i % 2 else (ca2, ACTORS.ca2_cert_hash)
        raws.append(s.build("anchor_batch", hashlib.sha256(b"%d" % i).digest(), 1, anchor).raw)
    start = engine.last_cursor
    receipts = run_block(engine, raws)
    assert [r.tx_index for r in receipts] == list(range(30))
    assert {r.block_number for r in receipts} == {1}
    cursors = [r.logs[0].cursor for r in receipts]
    assert cursors == list(range(start + 1, start + 31))
    assert [r.logs[0].log_index for r in receipts] == list(range(30))
    assert engine.head.base_fee_per_gas == 0
    assert engine.index.counts()["batches"] == 30


def test_refusals_inside_a_block_do_not_stop_the_others(
    engine: ChainEngine, ca1: LocalSigner
) -> None:
    ok = ca1.build("anchor_batch", b"\x05" * 32, 1, ACTORS.ca1_cert_hash)
    gap = ca1.sign_with_nonce(
        ca1.abi.encode("anchor_batch", b"\x06" * 32, 1, ACTORS.ca1_cert_hash), 5
    )
    low = ca1.sign_with_nonce(
        ca1.abi.encode("anchor_batch", b"\x07" * 32, 1, ACTORS.ca1_cert_hash), 0
    )
    outcome = engine.execute(
        [engine.decode(ok.raw), engine.decode(gap.raw), engine.decode(low.raw)]
    )
    engine.commit(outcome)
    assert [p.tx_hash for p in outcome.applied] == [ok.tx_hash]
    codes = {p.tx_hash: e.code for p, e in outcome.rejected}
    assert codes == {gap.tx_hash: RejectCode.NONCE_GAP, low.tx_hash: RejectCode.NONCE_TOO_LOW}
    assert engine.receipt(gap.tx_hash) is None and engine.receipt(low.tx_hash) is None


def test_gas_budget_defers_what_does_not_fit(engine: ChainEngine, ca1: LocalSigner) -> None:
    budget = engine.gas_target
    big = budget - 100_000  # fits an empty block, not one where another call used ~130k
    a = ca1.build("anchor_batch", b"\x01" * 32, 1, ACTORS.ca1_cert_hash, gas=big)
    b = ca1.build("anchor_batch", b"\x02" * 32, 1, ACTORS.ca1_cert_hash, gas=big)
    outcome = engine.execute([engine.decode(a.raw), engine.decode(b.raw)])
    engine.commit(outcome)
    assert [p.tx_hash for p in outcome.applied] == [a.tx_hash]
    assert [p.tx_hash for p in outcome.deferred] == [b.tx_hash]
    assert engine.head.base_fee_per_gas == 0  # gas used stays within the EIP-1559 target


def test_no_block_when_nothing_applies(engine: ChainEngine, ca1: LocalSigner) -> None:
    stale = ca1.sign_with_nonce(b"", 3)
    outcome = engine.execute([engine.decode(stale.raw)])
    assert outcome.header is None and len(outcome.rejected) == 1
    engine.commit(outcome)
    assert engine.head.block_number == 0


def test_same_second_blocks(engine: ChainEngine, ca1: LocalSigner) -> None:
    t = engine.head.timestamp + 100
    run_block(engine, [ca1.build("anchor_batch", b"\x01" * 32, 1, ACTORS.ca1_cert_hash).raw], now=t)
    run_block(engine, [ca1.build("anchor_batch", b"\x02" * 32, 1, ACTORS.ca1_cert_hash).raw], now=t)
    assert engine.head.block_number == 2 and engine.head.timestamp == t
    # the clock going backwards never makes a block older than its parent
    run_block(
        engine, [ca1.build("anchor_batch", b"\x03" * 32, 1, ACTORS.ca1_cert_hash).raw], now=t - 50
    )
    assert engine.head.timestamp == t


def test_state_survives_reopen(
    tmp_path: Path, genesis: GenesisConfig, artifact: ContractArtifact, ca1: LocalSigner
) -> None:
    eng = ChainEngine(tmp_path / "c.sqlite", genesis, artifact)
    (r,) = run_block(eng, [ca1.build("anchor_batch", b"\x09" * 32, 3, ACTORS.ca1_cert_hash).raw])
    head, cursor = eng.head.hash, eng.last_cursor
    eng.close()
    again = ChainEngine(tmp_path / "c.sqlite", genesis, artifact)
    assert again.head.hash == head and again.last_cursor == cursor
    assert again.receipt(r.tx_hash) == r
    assert again.nonce(Actors.addr(ACTORS.ca1)) == 1
    abi = ContractAbi(artifact.abi)
    out = again.call(again.contract_address, abi.encode("batch_count")).output
    assert abi["batch_count"].decode_output(out) == (1,)
    again.close()


# -- decoding and validation of raw transactions ------------------------------------------


def _sign(tx: dict[str, object], key: bytes = ACTORS.ca1.key) -> bytes:
    return bytes(Account.sign_transaction(tx, key).raw_transaction)


BASE_TX: dict[str, object] = {
    "type": 2,
    "chainId": CHAIN_ID,
    "nonce": 0,
    "maxFeePerGas": 0,
    "maxPriorityFeePerGas": 0,
    "gas": 100_000,
    "to": ACTORS.ca2.address,
    "value": 0,
    "data": b"",
}


def _legacy_with_zero_s() -> bytes:
    legacy = {
        k: v
        for k, v in BASE_TX.items()
        if k not in ("type", "maxFeePerGas", "maxPriorityFeePerGas")
    }
    legacy["gasPrice"] = 0
    fields = rlp.decode(_sign(legacy))
    fields[-1] = b""  # s = 0: not a valid signature
    return bytes(rlp.encode(fields))


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"", RejectCode.MALFORMED, "empty"),
        (b"\xc0", RejectCode.MALFORMED, "malformed"),
        (b"\x02\xc3\x01\x02\x03", RejectCode.MALFORMED, "malformed"),
        (b"\x05" + rlp.encode([1, 2]), RejectCode.UNSUPPORTED_TYPE, "unsupported transaction type"),
        (_sign({**BASE_TX, "chainId": 1}), RejectCode.WRONG_CHAIN, "chain 1"),
        (
            _sign(
                {
                    k: v
                    for k, v in BASE_TX.items()
                    if k not in ("type", "chainId", "maxFeePerGas", "maxPriorityFeePerGas")
                }
                | {"gasPrice": 0}
            ),
            RejectCode.WRONG_CHAIN,
            "EIP-155",
        ),
        (_sign(BASE_TX) + b"\x00", RejectCode.MALFORMED, "malformed"),
        (_legacy_with_zero_s(), RejectCode.BAD_SIGNATURE, "invalid transaction"),
        (_sign({**BASE_TX, "gas": 60_000_000}), RejectCode.GAS_LIMIT, "per-block gas budget"),
        (b"\x02" + b"\x00" * (MAX_RAW_TX_BYTES + 1), RejectCode.TOO_LARGE, "limit"),
        (
            _sign({**BASE_TX, "gas": 21_000, "data": b"\x01" * 100}),
            RejectCode.INTRINSIC_GAS,
            "below the transaction's intrinsic gas 22600",
        ),
    ],
    ids=[
        "empty",
        "rlp-list",
        "short-typed",
        "type5",
        "chain",
        "pre155",
        "trailing",
        "sig",
        "gas",
        "size",
        "intrinsic",
    ],
)
def test_decode_refusals(engine: ChainEngine, raw: bytes, code: RejectCode, message: str) -> None:
    with pytest.raises(TxRejected, match=message) as e:
        engine.decode(raw)
    assert e.value.code is code


def test_decode_refuses_set_code_transactions(engine: ChainEngine) -> None:
    acct = ACTORS.ca1
    auth = acct.sign_authorization({"chainId": CHAIN_ID, "address": ACTORS.ca2.address, "nonce": 1})
    raw = _sign({**BASE_TX, "type": 4, "authorizationList": [auth], "accessList": []})
    with pytest.raises(TxRejected, match="unsupported transaction type 4") as e:
        engine.decode(raw)
    assert e.value.code is RejectCode.UNSUPPORTED_TYPE


def test_decode_accepts_legacy_eip155_and_access_list(engine: ChainEngine) -> None:
    legacy = {
        k: v
        for k, v in BASE_TX.items()
        if k not in ("type", "maxFeePerGas", "maxPriorityFeePerGas")
    }
    p = engine.decode(_sign({**legacy, "gasPrice": 0}))
    assert p.sender == Actors.addr(ACTORS.ca1)
    p1 = engine.decode(_sign({**legacy, "gasPrice": 0, "type": 1, "accessList": []}))
    assert p1.tx.type_id == 1


# -- reads -----------------------------------------------------------------------------------


def test_view_calls_and_reverting_calls(engine: ChainEngine, artifact: ContractArtifact) -> None:
    abi = ContractAbi(artifact.abi)
    res = engine.call(engine.contract_address, abi.encode("validators"))
    assert res.success
    (vals,) = abi["validators"].decode_output(res.output)
    assert [bytes.fromhex(v[2:]) for v in vals] == [
        Actors.addr(ACTORS.ca1),
        Actors.addr(ACTORS.op1),
        Actors.addr(ACTORS.ca2),
    ]
    assert res.gas_used > 21_000
    denied = engine.call(
        engine.contract_address,
        abi.encode("anchor_batch", b"\x01" * 32, 1, ACTORS.ca1_cert_hash),
        sender=Actors.addr(ACTORS.outsider),
    )
    assert not denied.success and denied.revert_reason == "caller is not a validator"
    # a call changes nothing
    assert engine.nonce(Actors.addr(ACTORS.outsider)) == 0
    assert engine.head.block_number == 0


def test_reads_do_not_load_web3_or_eth_tester(tmp_path: Path) -> None:
    """The node's read paths run py-evm and SQLite directly: web3/eth-tester never load."""
    script = f"""
import sys, json
from tests.ledger.node.conftest import genesis_doc
from ledger.node.genesis import parse_genesis
from ledger.node.chain import ChainEngine
from ledger.node.abi import ContractAbi
cfg = parse_genesis(genesis_doc())
art = cfg.load_artifact()
eng = ChainEngine(__import__("pathlib").Path({str(tmp_path)!r}) / "c.sqlite", cfg, art)
abi = ContractAbi(art.abi)
eng.call(eng.contract_address, abi.encode("batch_count"))
eng.index.events_after(0, 10)
eng.nonce(b"\\x00" * 20)
print(json.dumps([m for m in ("web3", "eth_tester") if m in sys.modules]))
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_reopen_cost_does_not_grow_with_the_chain(
    tmp_path: Path,
    genesis: GenesisConfig,
    artifact: ContractArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Opening reads the head pointer and header: the same SQL whatever the chain length."""
    import ledger.node.chain as chain_mod
    import ledger.node.kvstore as kv_mod

    statements: list[str] = []
    real_connect = kv_mod.connect

    def counting_connect(path: Path, *, read_only: bool = False) -> Any:
        conn = real_connect(path, read_only=read_only)
        conn.set_trace_callback(statements.append)
        return conn

    def open_count(blocks: int, where: Path) -> int:
        eng = ChainEngine(where, genesis, artifact)
        s = signer_for(ACTORS.ca1, genesis, artifact)
        for i in range(blocks):
            run_block(
                eng, [s.build("anchor_batch", bytes([i + 1]) * 32, 1, ACTORS.ca1_cert_hash).raw]
            )
        eng.close()
        monkeypatch.setattr(chain_mod, "connect", counting_connect)
        monkeypatch.setattr(kv_mod, "connect", counting_connect)
        statements.clear()
        again = ChainEngine(where, genesis, artifact)
        assert again.head.block_number == blocks
        again.close()
        monkeypatch.setattr(chain_mod, "connect", real_connect)
        monkeypatch.setattr(kv_mod, "connect", real_connect)
        return len(statements)

    short = open_count(2, tmp_path / "a.sqlite")
    long = open_count(40, tmp_path / "b.sqlite")
    assert short == long > 0, (short, long)
