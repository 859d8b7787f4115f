"""The gRPC Ledger service over mutual TLS on 127.0.0.1: every RPC, its bad inputs and the
exact status codes, event streaming with resume and disconnects, health and reflection."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ledger.contracts import ContractArtifact, certificate_leaf_entry
from ledger.node.client import LedgerClient, TransactionReverted
from ledger.node.receipts import receipt_from_error
from mpkix.merkle import MerkleTree
from mpkix.rpc.errors import error_reason
from mpkix.rpc.tls import TlsConfig, secure_channel
from mpkix.v1 import ledger_pb2, ledger_pb2_grpc
from tests.ledger.node.conftest import ACTORS, CHAIN_ID, Actors, RunningServer

Stub = ledger_pb2_grpc.LedgerStub


@pytest.fixture
def stub(client: LedgerClient) -> Stub:
    return client.stub


def fails(fn: Callable[[], Any]) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as e:
        fn()
    err = e.value
    return err.code(), error_reason(err), err.details() or ""  # type: ignore[attr-defined]


def anchor(client: LedgerClient, i: int) -> ledger_pb2.LedgerReceipt:
    s = client.signer(ACTORS.ca1.key)
    return client.send(
        s, "anchor_batch", hashlib.sha256(b"r%d" % i).digest(), 4, ACTORS.ca1_cert_hash
    )


# -- transport ------------------------------------------------------------------------------


def test_health_and_reflection(server: RunningServer, pki: Path) -> None:
    ch = secure_channel(server.target, TlsConfig.from_dir(pki, "cms-node"))
    health = health_pb2_grpc.HealthStub(ch).Check(
        health_pb2.HealthCheckRequest(service="mpkix.v1.Ledger"), timeout=5
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    (resp,) = list(
        refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in resp.list_services_response.service}
    assert "mpkix.v1.Ledger" in names
    ch.close()


def test_client_without_certificate_is_refused(server: RunningServer, pki: Path) -> None:
    ch = secure_channel(server.target, TlsConfig(ca=(pki / "ca.pem").read_bytes()))
    with pytest.raises(grpc.RpcError) as e:
        Stub(ch).GetStatus(ledger_pb2.GetLedgerStatusRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    ch.close()


# -- transactions ---------------------------------------------------------------------------


def test_submit_receipt_and_idempotent_resubmit(client: LedgerClient, stub: Stub) -> None:
    s = client.signer(ACTORS.ca1.key)
    tx = s.build("anchor_batch", b"\x11" * 32, 9, ACTORS.ca1_cert_hash)
    r = client.submit(tx)
    assert r.success and r.tx_hash == tx.tx_hash and r.block_number == 1
    assert r.sender == Actors.addr(ACTORS.ca1) and r.nonce == 0
    (log,) = r.logs
    assert log.event_name == "BatchAnchored"
    assert json.loads(log.args_json)["size"] == 9
    assert log.block_time.seconds == r.block_time.seconds > 0
    again = stub.SubmitTransaction(ledger_pb2.SubmitTransactionRequest(raw_transaction=tx.raw))
    assert again == r
    assert (
        stub.GetTransactionReceipt(ledger_pb2.GetTransactionReceiptRequest(tx_hash=tx.tx_hash)) == r
    )
    assert client.nonce(s.address) == (1, 1)


def test_a_caller_hanging_up_does_not_cancel_the_same_transaction_for_others(
    client: LedgerClient, stub: Stub
) -> None:
    s = client.signer(ACTORS.ca1.key)
    first = s.build("anchor_batch", b"\x51" * 32, 1, ACTORS.ca1_cert_hash)  # nonce 0
    waiting = s.build("anchor_batch", b"\x52" * 32, 1, ACTORS.ca1_cert_hash)  # nonce 1: waits
    req = ledger_pb2.SubmitTransactionRequest(raw_transaction=waiting.raw)
    impatient = stub.SubmitTransaction.future(req)
    patient = stub.SubmitTransaction.future(req)
    time.sleep(0.3)
    impatient.cancel()  # type: ignore[no-untyped-call]
    time.sleep(0.1)
    assert client.submit(first).success
    r = patient.result(timeout=10)
    assert r.success and r.tx_hash == waiting.tx_hash and r.nonce == 1


def test_revert_by_non_validator_is_permission_denied_with_receipt(client: LedgerClient) -> None:
    outsider = client.signer(ACTORS.outsider.key)
    tx = outsider.build("anchor_batch", b"\x22" * 32, 1, ACTORS.ca1_cert_hash)
    with pytest.raises(grpc.RpcError) as e:
        client.stub.SubmitTransaction(ledger_pb2.SubmitTransactionRequest(raw_transaction=tx.raw))
    err = e.value
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert error_reason(err) == "EXECUTION_REVERTED"
    assert "caller is not a validator" in (err.details() or "")  # type: ignore[attr-defined]
    receipt = receipt_from_error(err)
    assert receipt is not None and not receipt.success and receipt.tx_hash == tx.tx_hash
    assert receipt.revert_reason == "caller is not a validator"
    # the reverted transaction is on chain and used its nonce
    assert client.receipt(tx.tx_hash) == receipt
    assert client.nonce(outsider.address)[0] == 1


def test_revert_by_validator_is_failed_precondition(client: LedgerClient) -> None:
    anchor(client, 1)
    s = client.signer(ACTORS.ca1.key)
    with pytest.raises(TransactionReverted) as e:
        client.send(s, "anchor_batch", hashlib.sha256(b"r1").digest(), 4, ACTORS.ca1_cert_hash)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.receipt.revert_reason == "root already anchored"
    # an operator validator trying a CA-only action lacks the authority
    op = client.signer(ACTORS.op1.key)
    with pytest.raises(TransactionReverted) as e2:
        client.send(op, "anchor_batch", b"\x33" * 32, 1, ACTORS.op1_key_hash)
    assert e2.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert e2.value.receipt.revert_reason == "only a CA validator may anchor batches"


def test_submit_bad_input(client: LedgerClient, stub: Stub, server: RunningServer) -> None:
    from eth_account import Account

    def submit(raw: bytes) -> Callable[[], Any]:
        return lambda: stub.SubmitTransaction(
            ledger_pb2.SubmitTransactionRequest(raw_transaction=raw), timeout=10
        )

    assert fails(submit(b""))[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_TRANSACTION")
    assert fails(submit(b"\x02garbage"))[:2] == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MALFORMED_TRANSACTION",
    )
    tx = {
        "type": 2, "chainId": CHAIN_ID + 1, "nonce": 0, "maxFeePerGas": 0,
        "maxPriorityFeePerGas": 0, "gas": 50_000, "to": ACTORS.ca2.address, "value": 0,
    }  # fmt: skip
    wrong_chain = bytes(Account.sign_transaction(tx, ACTORS.ca1.key).raw_transaction)
    code, reason, msg = fails(submit(wrong_chain))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "WRONG_CHAIN_ID")
    assert f"this ledger is chain {CHAIN_ID}" in msg
    # nonce already used by another transaction
    anchor(client, 5)
    s = client.signer(ACTORS.ca1.key)
    stale = s.sign_with_nonce(s.abi.encode("batch_count"), 0)
    assert fails(submit(stale.raw))[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "NONCE_TOO_LOW")
    # within the message limit but above the transaction limit
    assert fails(submit(b"\x02" + b"\x01" * 200_000))[:2] == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TRANSACTION_TOO_LARGE",
    )
    # above the server's message limit: refused by gRPC itself
    code, _, _ = fails(submit(b"\x02" + b"\x01" * (server.server.cfg.max_message_bytes + 10)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_get_receipt_bad_and_unknown(stub: Stub) -> None:
    def get(h: bytes) -> Callable[[], Any]:
        return lambda: stub.GetTransactionReceipt(
            ledger_pb2.GetTransactionReceiptRequest(tx_hash=h)
        )

    code, reason, msg = fails(get(b"\x01" * 31))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_LENGTH")
    assert "tx_hash must be 32 bytes" in msg
    assert fails(get(b"\x01" * 32))[:2] == (grpc.StatusCode.NOT_FOUND, "TRANSACTION_NOT_FOUND")


def test_get_nonce(client: LedgerClient, stub: Stub) -> None:
    code, _reason, msg = fails(
        lambda: stub.GetNonce(ledger_pb2.GetNonceRequest(address=b"\x01" * 19))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "address must be 20 bytes" in msg
    anchor(client, 1)
    assert client.nonce(Actors.addr(ACTORS.ca1)) == (1, 1)
    assert client.nonce(Actors.addr(ACTORS.outsider)) == (0, 0)


# -- reads ----------------------------------------------------------------------------------


def test_call(client: LedgerClient, stub: Stub, artifact: ContractArtifact) -> None:
    anchor(client, 1)
    assert client.view("batch_count") == (1,)
    assert client.view("is_validator", ACTORS.op1.address) == (True,)
    data = client.abi.encode("batch_count")
    to = client.contract().address

    def call(**kw: Any) -> Callable[[], Any]:
        req = ledger_pb2.LedgerCallRequest(**{"to": to, "data": data, **kw})
        return lambda: stub.Call(req)

    assert fails(call(to=b"\x00" * 19))[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_LENGTH")
    req = ledger_pb2.LedgerCallRequest(to=to, data=data, sender=b"\x01" * 21)
    assert fails(lambda: stub.Call(req))[0] == grpc.StatusCode.INVALID_ARGUMENT
    code, _, msg = fails(call(gas=10**12))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "gas budget" in msg
    assert fails(call(data=b"\x00" * 200_000))[:2] == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "CALL_TOO_LARGE",
    )
    denied = client.abi.encode("anchor_batch", b"\x01" * 32, 1, ACTORS.ca1_cert_hash)
    code, reason, msg = fails(call(data=denied))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "EXECUTION_REVERTED")
    assert "caller is not a validator" in msg
    # a precondition failure, not an authority one
    dup = client.abi.encode("anchor_batch", hashlib.sha256(b"r1").digest(), 1, ACTORS.ca1_cert_hash)
    req2 = ledger_pb2.LedgerCallRequest(to=to, data=dup, sender=Actors.addr(ACTORS.ca1))
    code, _, msg = fails(lambda: stub.Call(req2))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "root already anchored" in msg
    # gas_used is enough to run the transaction
    ok = client.abi.encode("anchor_batch", b"\x44" * 32, 1, ACTORS.ca1_cert_hash)
    req3 = ledger_pb2.LedgerCallRequest(to=to, data=ok, sender=Actors.addr(ACTORS.ca1))
    gas = stub.Call(req3).gas_used
    s = client.signer(ACTORS.ca1.key)
    assert client.submit(
        s.build("anchor_batch", b"\x44" * 32, 1, ACTORS.ca1_cert_hash, gas=gas)
    ).success


def test_status_and_contract(
    client: LedgerClient, artifact: ContractArtifact, server: RunningServer
) -> None:
    st = client.status()
    assert st.chain_id == CHAIN_ID and st.head_block == 0 and st.evm_version == "prague"
    assert st.event_cursor == 7  # the genesis deployment's events
    assert st.contract_address == server.node.engine.contract_address
    assert abs(st.now.seconds - time.time()) < 60
    anchor(client, 1)
    st2 = client.status()
    assert st2.head_block == 1 and st2.event_cursor == 8 and st2.head_hash != st.head_hash
    c = client.contract()
    assert c.name == "CertificateRegistry" and c.address == st.contract_address
    assert json.loads(c.abi_json) == json.loads(json.dumps(artifact.abi, sort_keys=True))
    assert c.genesis_hash == st.genesis_hash and c.chain_id == CHAIN_ID


def test_batches(client: LedgerClient, stub: Stub) -> None:
    r = anchor(client, 1)
    b = client.batch(1)
    assert b.root == hashlib.sha256(b"r1").digest() and b.size == 4 and b.tx_hash == r.tx_hash
    assert b.ca_cert_hash == ACTORS.ca1_cert_hash and b.block_number == r.block_number
    assert client.batch_by_root(b.root) == b
    assert fails(lambda: stub.GetBatch(ledger_pb2.GetBatchRequest(batch_id=0)))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert fails(lambda: stub.GetBatch(ledger_pb2.GetBatchRequest(batch_id=2)))[:2] == (
        grpc.StatusCode.NOT_FOUND,
        "BATCH_NOT_FOUND",
    )
    assert fails(lambda: stub.GetBatchByRoot(ledger_pb2.GetBatchByRootRequest(root=b"\x01")))[
        :2
    ] == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "BAD_LENGTH",
    )
    assert fails(lambda: stub.GetBatchByRoot(ledger_pb2.GetBatchByRootRequest(root=b"\x01" * 32)))[
        0
    ] == (grpc.StatusCode.NOT_FOUND)


def test_certificate_status(client: LedgerClient, stub: Stub) -> None:
    certs = [hashlib.sha256(b"c%d" % i).digest() for i in range(3)]
    tree = MerkleTree([certificate_leaf_entry(c, ACTORS.op1_key_hash) for c in certs])
    ca = client.signer(ACTORS.ca1.key)
    client.send(ca, "anchor_batch", tree.root, tree.size, ACTORS.ca1_cert_hash)
    unknown = client.certificate_status(certs[0])
    assert not unknown.recorded and unknown.state == ledger_pb2.LEDGER_CERT_STATE_GOOD
    op = client.signer(ACTORS.op1.key)
    client.send(op, "suspend", certs[0], ACTORS.op1_key_hash, 1, 0, tree.audit_path(0))
    client.send(op, "revoke", certs[1], ACTORS.op1_key_hash, 1, 1, tree.audit_path(1), 1)
    s0 = client.certificate_status(certs[0])
    assert s0.recorded and s0.state == ledger_pb2.LEDGER_CERT_STATE_SUSPENDED and s0.reason == 6
    assert s0.changed_by == Actors.addr(ACTORS.op1) and s0.batch_id == 1
    s1 = client.certificate_status(certs[1], ACTORS.ca1_cert_hash)
    assert s1.state == ledger_pb2.LEDGER_CERT_STATE_REVOKED and s1.reason == 1
    assert s1.as_of_cursor == client.status().event_cursor >= s1.cursor > 0
    # filtering by another issuer finds nothing recorded
    assert not client.certificate_status(certs[1], ACTORS.ca2_cert_hash).recorded

    def get(**kw: bytes) -> Callable[[], Any]:
        return lambda: stub.GetCertificateStatus(ledger_pb2.GetCertificateStatusRequest(**kw))

    assert fails(get(cert_hash=b""))[0] == grpc.StatusCode.INVALID_ARGUMENT
    code, _, msg = fails(get(cert_hash=certs[0], ca_cert_hash=b"\x01" * 20))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "ca_cert_hash must be 32 bytes" in msg


# -- events ---------------------------------------------------------------------------------


def test_stream_history_filter_and_resume(client: LedgerClient, stub: Stub) -> None:
    for i in range(3):
        anchor(client, i)
    everything = list(client.events(0))
    assert [e.cursor for e in everything] == list(range(1, 11))
    assert everything[0].event_name == "ValidatorAdded"
    batches = list(client.events(0, names=["BatchAnchored"]))
    assert [json.loads(e.args_json)["batch_id"] for e in batches] == [1, 2, 3]
    checkpoint = batches[0].cursor
    assert [e.cursor for e in client.events(checkpoint)] == [checkpoint + 1, checkpoint + 2]
    assert list(client.events(everything[-1].cursor)) == []

    def stream(**kw: Any) -> Callable[[], Any]:
        return lambda: list(stub.StreamEvents(ledger_pb2.StreamEventsRequest(**kw)))

    code, reason, _ = fails(stream(event_names=["Nope"]))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_EVENT")
    code, reason, _ = fails(stream(after_cursor=10_000))
    assert (code, reason) == (grpc.StatusCode.OUT_OF_RANGE, "CURSOR_AHEAD")


def test_follow_receives_live_events_and_survives_disconnects(
    client: LedgerClient, server: RunningServer
) -> None:
    service = server.server.service
    assert service is not None
    start = client.status().event_cursor
    call = client.events(start - 1, follow=True)
    received: list[ledger_pb2.LedgerEvent] = []
    done = threading.Event()

    def consume() -> None:
        try:
            for e in call:
                received.append(e)
                if len(received) == 4:
                    done.set()
        except grpc.RpcError:
            pass

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    for i in range(3):
        anchor(client, i)
    assert done.wait(10), received
    assert [e.cursor for e in received] == list(range(start, start + 4))
    assert [e.event_name for e in received[1:]] == ["BatchAnchored"] * 3
    assert service.active_streams == 1
    call.cancel()  # the client goes away
    t.join(5)
    deadline = time.monotonic() + 5
    while (service.active_streams or service.watch.waiters) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.active_streams == 0 and service.watch.waiters == 0
    # the node keeps working and a new follower resumes from its checkpoint
    anchor(client, 99)
    resumed = list(client.events(received[-1].cursor))
    assert [e.cursor for e in resumed] == [received[-1].cursor + 1]


def test_shutdown_ends_follow_streams(server: RunningServer, client: LedgerClient) -> None:
    call = client.events(0, follow=True)
    seen: list[int] = []
    ended = threading.Event()

    def consume() -> None:
        try:
            for e in call:
                seen.append(e.cursor)
        except grpc.RpcError:
            pass
        ended.set()

    threading.Thread(target=consume, daemon=True).start()
    deadline = time.monotonic() + 5
    while len(seen) < 7 and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    server.runner.call(server.server.stop(grace=5))  # what SIGTERM does in ``serve``
    assert ended.wait(3), "the follow stream did not end at shutdown"
    assert time.monotonic() - t0 < 2.5  # streams end at once instead of holding the grace
    assert seen == list(range(1, 8))
    assert server.server.node is None  # the node closed after the server


def test_metrics_endpoint(tmp_path: Path, genesis_file: Path, pki: Path) -> None:
    import socket
    import urllib.request

    from tests.ledger.node.conftest import node_config, start_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    rs = start_server(
        node_config(tmp_path / "m", genesis_file, pki, metrics_listen=f"127.0.0.1:{metrics_port}")
    )
    try:
        with LedgerClient.connect(rs.target, TlsConfig.from_dir(pki, "ca-node")) as c:
            anchor(c, 1)
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
        text = body.decode()
        assert "mpkix_ledger_head_block 1.0" in text
        assert "mpkix_ledger_transactions_total 1.0" in text
        assert "mpkix_ledger_event_cursor 8.0" in text
    finally:
        rs.runner.stop(grace=0.5)


def test_python_m_ledger_help() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "ledger", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    for flag in ("--state-dir", "--genesis", "--tls-cert", "--tls-ca", "--port-file"):
        assert flag in out.stdout
