"""ledger.backends.jsonrpc.JsonRpcBackend against a real anvil node (npm @foundry-rs/anvil)."""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_canonical_address
from web3.exceptions import ExtraDataLengthError

from ca_node.ledger_anchor import RegistryAnchorer
from deploy.pki import create_root, issue_node_cert
from ias_sdk.mirror import LedgerMirror
from ledger.backends.base import LedgerBackend, RegistryEvent
from ledger.backends.deploy import deploy
from ledger.backends.jsonrpc import (
    CURSOR_LOG_BITS,
    CursorAhead,
    JsonRpcBackend,
    LedgerUnavailable,
    NoSigningKey,
    RegistryNotFound,
    TransactionNotConfirmed,
    TransactionRejected,
    ViewReverted,
    cursor_of,
    split_cursor,
)
from ledger.contracts import CertState, RevocationReason, Role, certificate_leaf_entry
from ledger.node.genesis import GenesisAnchor, GenesisValidator
from mpkix.merkle import MerkleTree
from tests.ledger.backends.conftest import Net
from tests.ledger.backends.support import Anvil, RpcProxy
from tests.ledger.contracts.support import CA1_CERT, CA2_CERT, OP1_KEY, OP2_KEY, h, label32

pytestmark = pytest.mark.anvil


def _tree(n: int, tag: str) -> tuple[MerkleTree, list[bytes], list[bytes]]:
    """A batch of ``n`` certificates alternating between operator 1 and 2 (decision 0401)."""
    certs = [h(f"{tag} cert {i}") for i in range(n)]
    keys = [OP1_KEY if i % 2 == 0 else OP2_KEY for i in range(n)]
    entries = [certificate_leaf_entry(c, k) for c, k in zip(certs, keys, strict=True)]
    return MerkleTree(entries), certs, keys


def _batch_events(events: list[RegistryEvent]) -> list[RegistryEvent]:
    return [e for e in events if e.name == "BatchAnchored"]


def _nonce(node: Anvil, key: str, tag: str = "latest") -> int:
    return int(node.rpc("eth_getTransactionCount", [Account.from_key(key).address, tag]), 16)


# -- cursors -----------------------------------------------------------------------------------


def test_cursor_packs_block_and_log_index() -> None:
    assert cursor_of(5, 3) == (5 << CURSOR_LOG_BITS) | 3
    assert split_cursor(cursor_of(123_456, 7)) == (123_456, 7)
    assert cursor_of(2, 0) > cursor_of(1, (1 << CURSOR_LOG_BITS) - 1)
    for bad in ((1, -1), (1, 1 << CURSOR_LOG_BITS), (-1, 0)):
        with pytest.raises(ValueError):
            cursor_of(*bad)
    with pytest.raises(ValueError):
        split_cursor(-1)


# -- deployment, status, events ----------------------------------------------------------------


def test_status_and_constructor_events(net: Net) -> None:
    reader: LedgerBackend = net.backend()  # mypy checks the Protocol structurally
    st = reader.status()
    assert st.chain_id == 31337
    assert st.registry_address == bytes(to_canonical_address(net.address))
    assert st.head_block >= net.deployment.block_number and st.head_time > 1.6e9
    events = reader.events_after(0, 100)
    assert st.event_cursor == events[-1].cursor
    names = [e.name for e in events]
    assert names == ["ValidatorAdded"] * 4 + ["TrustAnchorAdded"] * 4 + ["ThresholdChanged"]
    assert all(e.block_number == net.deployment.block_number for e in events)
    assert all(e.tx_hash == net.deployment.tx_hash for e in events)
    first = events[0]
    assert first.args == {"account": net.addr("ca1"), "role": Role.CA, "label": label32("ca-1")}
    assert events[-1].args == {"old_threshold": 0, "new_threshold": 3}
    assert reader.call("validator_count") == 4
    assert reader.call("threshold") == 3


def test_anchor_batch_and_views(net: Net) -> None:
    ca = net.backend("ca1")
    assert ca.account == Account.from_key(net.key("ca1")).address
    tree, _, _ = _tree(5, "views")
    assert ca.call("batch_of_root", tree.root) == 0
    out = ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT)
    assert out.success and out.revert_reason == "" and len(out.tx_hash) == 32
    [ev] = out.events
    assert ev.name == "BatchAnchored"
    assert ev.args["batch_id"] == 1 and ev.args["root"] == tree.root
    assert ev.args["size"] == 5 and ev.args["ca_cert_hash"] == CA1_CERT
    assert ev.args["timestamp"] == int(out.block_time) and ev.block_number == out.block_number
    assert ev.tx_hash == out.tx_hash
    assert ca.call("batch_of_root", tree.root) == 1
    root, size, ca_hash, anchored_at = ca.call("batch", 1)
    assert (root, size, ca_hash, anchored_at) == (tree.root, 5, CA1_CERT, int(out.block_time))
    assert ca.call("batch_count") == 1
    # The event in the outcome is the one a follower sees, with the same cursor.
    assert _batch_events(ca.events_after(0)) == [ev]
    receipt = net.anvil.rpc("eth_getTransactionReceipt", ["0x" + out.tx_hash.hex()])
    assert int(receipt["blockNumber"], 16) == out.block_number


def test_duplicate_root_is_a_reverted_transaction_with_its_reason(net: Net) -> None:
    ca = net.backend("ca1")
    tree, _, _ = _tree(3, "dup")
    assert ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT).success
    before = _nonce(net.anvil, net.key("ca1"))
    again = ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT)
    assert not again.success
    assert "root already anchored" in again.revert_reason
    assert again.events == [] and again.block_number > 0
    receipt = net.anvil.rpc("eth_getTransactionReceipt", ["0x" + again.tx_hash.hex()])
    assert receipt["status"] == "0x0"  # on chain, reverted, nonce used
    assert _nonce(net.anvil, net.key("ca1")) == before + 1
    assert ca.call("batch_count") == 1
    # Another CA cannot claim the root either; RegistryAnchorer resolves the retry by root.
    ca2 = net.backend("ca2")
    assert (
        "root already anchored"
        in ca2.transact("anchor_batch", tree.root, tree.size, CA2_CERT).revert_reason
    )
    anchorer = RegistryAnchorer(ca, b"ca1 certificate DER")  # CA1_CERT is its SHA-256
    assert anchorer.ca_cert_hash == CA1_CERT
    assert anchorer.anchor(tree.root, tree.size).batch_id == 1
    fresh, _, _ = _tree(4, "anchorer")
    receipt = anchorer.anchor(fresh.root, fresh.size)
    assert receipt.batch_id == 2 and len(receipt.tx_hash) == 32


@pytest.mark.parametrize(
    ("who", "args", "reason"),
    [
        ("outsider", (CA1_CERT,), "caller is not a validator"),
        ("op1", (OP1_KEY,), "only a CA validator may anchor batches"),
        ("ca2", (CA1_CERT,), "CA trust anchor not owned by caller"),
        ("ca1", (h("unknown CA"),), "CA certificate is not a trust anchor"),
    ],
)
def test_writes_by_the_wrong_account_are_refused(
    net: Net, who: str, args: tuple[bytes], reason: str
) -> None:
    out = net.backend(who).transact("anchor_batch", h(f"root by {who}"), 4, *args)
    assert not out.success
    assert out.revert_reason == reason
    assert net.backend().call("batch_count") == 0


def test_governance_needs_two_of_three(anvil: Anvil) -> None:
    keys = anvil.keys
    addr = [bytes(to_canonical_address(Account.from_key(k).address)) for k in keys]
    ca, op1, op2, newcomer = addr[1], addr[3], addr[4], addr[6]
    deployment = deploy(
        anvil.url,
        keys[0],
        [
            GenesisValidator(ca, Role.CA, label32("ca-1")),
            GenesisValidator(op1, Role.OPERATOR, label32("op-1")),
            GenesisValidator(op2, Role.OPERATOR, label32("op-2")),
        ],
        [GenesisAnchor(CA1_CERT, ca)],
        threshold=2,
    )

    def backend(i: int) -> JsonRpcBackend:
        return JsonRpcBackend(
            anvil.url,
            deployment.address,
            keys[i],
            poll_interval=0.02,
            from_block=deployment.block_number,
        )

    proposer, approver = backend(1), backend(3)
    assert proposer.call("threshold") == 2
    out = proposer.transact("propose_add_validator", newcomer, Role.CA, label32("ca-new"))
    assert out.success
    [created] = [e for e in out.events if e.name == "ProposalCreated"]
    pid = created.args["proposal_id"]
    assert [e.name for e in out.events] == ["ProposalCreated", "ProposalApproved"]
    assert not proposer.call("is_validator", newcomer)  # one approval of two
    assert proposer.call("approvals", pid) == 1
    # The proposer cannot approve twice; an outsider cannot approve at all.
    assert proposer.transact("approve", pid).revert_reason == "proposal already approved by caller"
    assert backend(5).transact("approve", pid).revert_reason == "caller is not a validator"
    assert not proposer.call("is_validator", newcomer)
    done = approver.transact("approve", pid)
    assert done.success
    assert [e.name for e in done.events] == [
        "ProposalApproved",
        "ValidatorAdded",
        "ProposalExecuted",
    ]
    assert proposer.call("is_validator", newcomer)
    assert proposer.call("validator_count") == 4
    assert approver.transact("execute", pid).revert_reason == "proposal already executed"


def test_revocation_with_merkle_proofs(net: Net) -> None:
    ca, op1, op2 = net.backend("ca1"), net.backend("op1"), net.backend("op2")
    tree, certs, keys = _tree(7, "revoke")
    anchored = ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT)
    batch_id = anchored.events[0].args["batch_id"]

    def ref(i: int) -> tuple[Any, ...]:
        return (certs[i], keys[i], batch_id, i, tree.audit_path(i))

    # leaf 2 belongs to operator 1: operator 2 is refused, operator 1 revokes.
    refused = op2.transact("revoke", *ref(2), RevocationReason.KEY_COMPROMISE)
    assert refused.revert_reason == "caller is not the subject's operator"
    # Substituting its own key hash breaks the proof.
    forged = op2.transact(
        "revoke", certs[2], OP2_KEY, batch_id, 2, tree.audit_path(2), RevocationReason.UNSPECIFIED
    )
    assert forged.revert_reason == "certificate not in batch"
    assert ca.call("status_of", CA1_CERT, certs[2])[0] == CertState.GOOD
    by_operator = op1.transact("revoke", *ref(2), RevocationReason.KEY_COMPROMISE)
    assert by_operator.success
    [ev] = by_operator.events
    assert ev.name == "CertificateRevoked"
    assert ev.args == {
        "ca_cert_hash": CA1_CERT,
        "cert_hash": certs[2],
        "batch_id": batch_id,
        "reason": RevocationReason.KEY_COMPROMISE,
        "timestamp": int(by_operator.block_time),
        "by": net.addr("op1"),
    }
    state, reason, _, in_batch = ca.call("status_of", CA1_CERT, certs[2])
    assert (state, reason, in_batch) == (CertState.REVOKED, RevocationReason.KEY_COMPROMISE, 1)
    # The CA revokes another subscriber's certificate (leaf 5, operator 2).
    by_ca = ca.transact("revoke", *ref(5), RevocationReason.CA_COMPROMISE)
    assert by_ca.success
    assert ca.call("status_of", CA1_CERT, certs[5])[0] == CertState.REVOKED
    assert ca.transact("revoke", *ref(5), 1).revert_reason == "certificate already revoked"
    # Operators may not claim cACompromise; the other CA is not the issuer.
    assert (
        op2.transact("revoke", *ref(3), RevocationReason.CA_COMPROMISE).revert_reason
        == "reason reserved for the issuing CA"
    )
    assert (
        net.backend("ca2").transact("revoke", *ref(3), 1).revert_reason
        == "caller is not the issuing CA"
    )


def test_events_after_returns_everything_in_order_and_resumes(net: Net) -> None:
    ca, op1 = net.backend("ca1"), net.backend("op1")
    outcomes = []
    for i in range(4):
        tree, certs, keys = _tree(2 + i, f"events {i}")
        outcomes.append(ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT))
    tree, certs, keys = _tree(3, "events revoke")
    anchored = ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT)
    bid = anchored.events[0].args["batch_id"]
    outcomes.append(anchored)
    outcomes.append(op1.transact("suspend", certs[0], keys[0], bid, 0, tree.audit_path(0)))
    outcomes.append(ca.transact("resume", certs[0], keys[0], bid, 0, tree.audit_path(0)))
    assert all(o.success for o in outcomes)

    reader = net.backend()
    everything = reader.events_after(0, 10_000)
    cursors = [e.cursor for e in everything]
    assert cursors == sorted(set(cursors))  # strictly increasing
    assert everything[9:] == [e for o in outcomes for e in o.events]
    assert [e.name for e in everything[9:]] == ["BatchAnchored"] * 5 + [
        "CertificateSuspended",
        "CertificateResumed",
    ]
    assert reader.status().event_cursor == cursors[-1]
    # Resuming from any cursor, in pages of 2, gives the same sequence.
    pages: list[RegistryEvent] = []
    cursor = 0
    while page := reader.events_after(cursor, 2):
        assert len(page) <= 2
        pages += page
        cursor = page[-1].cursor
    assert pages == everything
    assert reader.events_after(cursors[4], 3) == everything[5:8]
    assert reader.events_after(cursors[-1]) == []
    # One block per eth_getLogs request: the same answer across many small ranges.
    narrow = net.backend(log_chunk_blocks=1)
    assert narrow.events_after(0, 10_000) == everything
    assert narrow.status().event_cursor == cursors[-1]
    # A reader that only starts at genesis (no from_block) finds the same events.
    assert net.backend(from_block=0).events_after(0, 10_000) == everything
    head = reader.status().head_block
    with pytest.raises(CursorAhead):
        reader.events_after(cursor_of(head + 1000, 0))
    with pytest.raises(ValueError):
        reader.events_after(0, 0)


def test_the_ias_mirror_follows_the_jsonrpc_backend(net: Net) -> None:
    ca, op2 = net.backend("ca1"), net.backend("op2")
    tree, certs, keys = _tree(4, "mirror")
    bid = ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT).events[0].args["batch_id"]
    assert op2.transact("revoke", certs[1], keys[1], bid, 1, tree.audit_path(1), 1).success
    mirror = LedgerMirror(None, source=net.backend(), page_size=3)
    try:
        assert mirror.sync() == 4 + 4 + 1 + 2
        batch = mirror.batch(bid)
        assert batch is not None and batch.root == tree.root
        status = mirror.status(CA1_CERT, certs[1])
        assert status is not None and status.state == CertState.REVOKED
        assert ca.transact("suspend", certs[2], keys[2], bid, 2, tree.audit_path(2)).success
        assert mirror.sync() == 1
        status = mirror.status(CA1_CERT, certs[2])
        assert status is not None and status.state == CertState.SUSPENDED
    finally:
        mirror.close()


# -- retries and nonces ------------------------------------------------------------------------


def _is_send(req: dict[str, Any]) -> bool:
    return req.get("method") == "eth_sendRawTransaction"


def test_a_lost_reply_is_retried_with_the_same_bytes_and_applied_once(net: Net) -> None:
    proxy = RpcProxy(net.url)
    try:
        lost: list[str] = []

        def lose_first(req: dict[str, Any]) -> bool:
            if _is_send(req) and not lost:
                lost.append(req["params"][0])
                return True
            return False

        proxy.lose_reply = lose_first
        ca = net.backend("ca1", url=proxy.url, retry_backoff=0.01)
        before = _nonce(net.anvil, net.key("ca1"))
        tree, _, _ = _tree(2, "lost reply")
        out = ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT)
        assert out.success and len(lost) == 1
        sends = [m for m in proxy.methods if m == "eth_sendRawTransaction"]
        assert len(sends) == 2  # the same raw transaction, twice
        assert _nonce(net.anvil, net.key("ca1")) == before + 1
        assert ca.call("batch_count") == 1
        assert len(_batch_events(ca.events_after(0))) == 1
    finally:
        proxy.close()


def test_calling_again_after_an_unknown_outcome_resends_the_same_transaction(net: Net) -> None:
    proxy = RpcProxy(net.url)
    try:
        proxy.lose_reply = _is_send  # every send reaches anvil, no reply comes back
        ca = net.backend("ca1", url=proxy.url, send_attempts=2, retry_backoff=0.01)
        tree, _, _ = _tree(3, "unknown outcome")
        with pytest.raises(LedgerUnavailable):
            ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT)
        [in_doubt] = ca.unconfirmed
        proxy.lose_reply = lambda req: False
        out = ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT)
        # Not "root already anchored": the caller's retry is the first transaction itself.
        assert out.success and out.tx_hash == in_doubt
        assert ca.unconfirmed == []
        assert ca.call("batch_count") == 1
    finally:
        proxy.close()


def test_an_unsent_transaction_is_sent_before_the_next_one(net: Net) -> None:
    proxy = RpcProxy(net.url)
    try:
        proxy.lose_request = _is_send  # the node never sees the transaction
        ca = net.backend("ca1", url=proxy.url, send_attempts=2, retry_backoff=0.01)
        first, _, _ = _tree(2, "unsent")
        with pytest.raises(LedgerUnavailable):
            ca.transact("anchor_batch", first.root, first.size, CA1_CERT)
        assert ca.call("batch_count") == 0
        proxy.lose_request = lambda req: False
        second, _, _ = _tree(4, "after unsent")
        out = ca.transact("anchor_batch", second.root, second.size, CA1_CERT)
        assert out.success
        # The first one went out first (its nonce), so no gap held the second back.
        assert ca.call("batch_of_root", first.root) == 1
        assert ca.call("batch_of_root", second.root) == 2
    finally:
        proxy.close()


def test_nonce_taken_by_another_client_is_resynchronised(net: Net) -> None:
    proxy = RpcProxy(net.url)
    try:
        ca = net.backend("ca1", url=proxy.url)
        one, _, _ = _tree(2, "nonce one")
        assert ca.transact("anchor_batch", one.root, one.size, CA1_CERT).success
        # Another process with the same key sends a transaction behind this backend's back.
        other = net.backend("ca1")
        two, _, _ = _tree(3, "nonce two")
        assert other.transact("anchor_batch", two.root, two.size, CA1_CERT).success
        sent_before = proxy.methods.count("eth_sendRawTransaction")
        three, _, _ = _tree(4, "nonce three")
        out = ca.transact("anchor_batch", three.root, three.size, CA1_CERT)
        assert out.success
        # "nonce too low" for the stale nonce, then signed anew with the node's pending nonce.
        assert proxy.methods.count("eth_sendRawTransaction") - sent_before == 2
        assert ca.call("batch_count") == 3
        four, _, _ = _tree(5, "nonce four")
        assert ca.transact("anchor_batch", four.root, four.size, CA1_CERT).success
        assert proxy.methods.count("eth_sendRawTransaction") - sent_before == 3
    finally:
        proxy.close()


def test_cached_fees_below_a_risen_base_fee_are_refreshed(net: Net) -> None:
    proxy = RpcProxy(net.url)
    try:
        ca = net.backend("ca1", url=proxy.url, fee_cache_seconds=3600)
        assert ca.transact("anchor_batch", h("fees one"), 1, CA1_CERT).success
        net.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(50 * 10**9)])
        net.anvil.rpc("evm_mine")
        sent_before = proxy.methods.count("eth_sendRawTransaction")
        out = ca.transact("anchor_batch", h("fees two"), 1, CA1_CERT)
        assert out.success
        # refused ("max fee per gas less than block base fee"), re-signed with fresh fees
        assert proxy.methods.count("eth_sendRawTransaction") - sent_before == 2
        tx = net.anvil.rpc("eth_getTransactionByHash", ["0x" + out.tx_hash.hex()])
        assert int(tx["maxFeePerGas"], 16) >= 50 * 10**9
    finally:
        proxy.close()


def test_receipt_timeout_then_retry_waits_for_the_same_transaction(net: Net) -> None:
    node = net.anvil
    ca = net.backend("ca1", receipt_timeout=0.3)
    tree, _, _ = _tree(2, "not mined")
    node.rpc("evm_setAutomine", [False])
    try:
        with pytest.raises(TransactionNotConfirmed) as info:
            ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT)
        tx_hash = info.value.tx_hash
        assert ca.unconfirmed == [tx_hash]
        node.rpc("evm_mine")
    finally:
        node.rpc("evm_setAutomine", [True])
    out = ca.transact("anchor_batch", tree.root, tree.size, CA1_CERT)
    assert out.success and out.tx_hash == tx_hash
    assert ca.call("batch_count") == 1


def test_revert_found_by_replay_when_the_estimate_passed(net: Net) -> None:
    """Two CAs race for one root inside one block: both estimates pass, the second reverts
    and its reason is recovered by replaying it on its own block."""
    node = net.anvil
    ca1, ca2 = net.backend("ca1"), net.backend("ca2")
    root = h("raced root")
    results: dict[str, Any] = {}

    def send(name: str, backend: JsonRpcBackend, anchor: bytes) -> None:
        results[name] = backend.transact("anchor_batch", root, 9, anchor)

    node.rpc("evm_setAutomine", [False])
    try:
        threads = [
            threading.Thread(target=send, args=("ca1", ca1, CA1_CERT)),
            threading.Thread(target=send, args=("ca2", ca2, CA2_CERT)),
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while int(node.rpc("txpool_status")["pending"], 16) < 2:
            assert time.monotonic() < deadline, f"transactions not sent: {results}"
            time.sleep(0.005)
        node.rpc("evm_mine")
    finally:
        node.rpc("evm_setAutomine", [True])
    for t in threads:
        t.join(timeout=10)
    outcomes = sorted(results.values(), key=lambda o: o.success)
    assert [o.success for o in outcomes] == [False, True]
    assert outcomes[0].block_number == outcomes[1].block_number
    assert outcomes[0].revert_reason == "root already anchored"


# -- failure paths -----------------------------------------------------------------------------


def test_read_only_backend_cannot_write(net: Net) -> None:
    reader = net.backend()
    with pytest.raises(NoSigningKey):
        _ = reader.account
    with pytest.raises(NoSigningKey):
        reader.transact("anchor_batch", h("ro"), 1, CA1_CERT)


def test_wrong_arguments_send_nothing(net: Net) -> None:
    ca = net.backend("ca1")
    before = _nonce(net.anvil, net.key("ca1"), "pending")
    with pytest.raises(TypeError):
        ca.transact("anchor_batch", h("args"), 1)
    with pytest.raises(KeyError):
        ca.transact("no_such_function")
    assert _nonce(net.anvil, net.key("ca1"), "pending") == before


def test_view_revert_is_reported(net: Net) -> None:
    reader = net.backend()
    # 65 hashes exceed the contract's DynArray bound: the ABI decoder reverts (no reason).
    with pytest.raises(ViewReverted):
        reader.call("verify_inclusion", h("leaf"), 0, 1, [h("p")] * 65, h("root"))
    # A one-leaf tree's root is its leaf hash; anything else is not included.
    assert reader.call("verify_inclusion", h("leaf"), 0, 1, [], h("leaf")) is True
    assert reader.call("verify_inclusion", h("leaf"), 0, 1, [], h("root")) is False


def test_no_registry_at_the_address(net: Net) -> None:
    with pytest.raises(RegistryNotFound):
        JsonRpcBackend(net.url, "0x" + "42" * 20).status()
    with pytest.raises(RegistryNotFound):
        JsonRpcBackend(net.url, "0x" + "42" * 20, net.key("ca1")).transact(
            "anchor_batch", h("nowhere"), 1, CA1_CERT
        )
    with pytest.raises(ValueError):
        JsonRpcBackend(net.url, "0x1234")


def test_unreachable_node(net: Net) -> None:
    proxy = RpcProxy(net.url)
    url = proxy.url
    proxy.close()
    backend = JsonRpcBackend(url, net.address, request_timeout=2)
    backend.rpc.provider.exception_retry_configuration = None  # type: ignore[assignment]
    with pytest.raises(LedgerUnavailable):
        backend.status()


def test_insufficient_funds_is_rejected_and_the_nonce_kept(net: Net) -> None:
    pauper = Account.create()
    backend = JsonRpcBackend(net.url, net.address, pauper.key, poll_interval=0.02)
    with pytest.raises(TransactionRejected, match=r"(?i)insufficient funds"):
        backend.transact("anchor_batch", h("poor"), 1, CA1_CERT)
    assert backend.unconfirmed == []
    net.anvil.rpc("anvil_setBalance", [pauper.address, hex(10**18)])
    out = backend.transact("anchor_batch", h("poor"), 1, CA1_CERT)
    assert out.revert_reason == "caller is not a validator"  # mined, with nonce 0
    assert _nonce(net.anvil, pauper.key.hex()) == 1


def test_a_kept_transaction_the_node_now_refuses_is_dropped(net: Net) -> None:
    pauper = Account.create()
    net.anvil.rpc("anvil_setBalance", [pauper.address, hex(10**18)])
    proxy = RpcProxy(net.url)
    try:
        proxy.lose_request = _is_send
        backend = JsonRpcBackend(
            proxy.url, net.address, pauper.key, poll_interval=0.02, send_attempts=1
        )
        with pytest.raises(LedgerUnavailable):
            backend.transact("anchor_batch", h("kept"), 1, CA1_CERT)
        assert len(backend.unconfirmed) == 1
        proxy.lose_request = lambda req: False
        net.anvil.rpc("anvil_setBalance", [pauper.address, "0x0"])
        # The kept transaction is resent first, refused (no funds) and dropped; the new one too.
        with pytest.raises(TransactionRejected):
            backend.transact("anchor_batch", h("next"), 1, CA1_CERT)
        assert backend.unconfirmed == []
        net.anvil.rpc("anvil_setBalance", [pauper.address, hex(10**18)])
        out = backend.transact("anchor_batch", h("next"), 1, CA1_CERT)
        assert out.revert_reason == "caller is not a validator"
        assert _nonce(net.anvil, pauper.key.hex()) == 1  # nonce 0: nothing was skipped
    finally:
        proxy.close()


def test_free_gas_network_with_unfunded_validators(free_anvil: Anvil) -> None:
    ca_key, op_key = Account.create(), Account.create()
    deployment = deploy(
        free_anvil.url,
        free_anvil.keys[0],
        [
            GenesisValidator(bytes(to_canonical_address(ca_key.address)), Role.CA, label32("c")),
            GenesisValidator(bytes(to_canonical_address(op_key.address)), Role.OPERATOR, b"o" * 32),
        ],
        [GenesisAnchor(CA1_CERT, bytes(to_canonical_address(ca_key.address)))],
    )
    tree, _, _ = _tree(3, "free")
    for gas_price in (
        None,
        0,
    ):  # EIP-1559 with zero fees; legacy at price 0  # EIP-1559 with zero fees; legacy at price 0
        ca = JsonRpcBackend(
            free_anvil.url, deployment.address, ca_key.key, poll_interval=0.02, gas_price=gas_price
        )
        root = h(f"free {gas_price}")
        out = ca.transact("anchor_batch", root, 3, CA1_CERT)
        assert out.success, out.revert_reason
        tx = free_anvil.rpc("eth_getTransactionByHash", ["0x" + out.tx_hash.hex()])
        assert tx["type"] == ("0x2" if gas_price is None else "0x0")
    assert free_anvil.rpc("eth_getBalance", [ca_key.address, "latest"]) == "0x0"
    assert ca.call("batch_count") == 2 and tree.size == 3


def test_poa_extra_data_does_not_break_reads(net: Net) -> None:
    """QBFT/IBFT blocks carry a long extraData that web3's block formatter refuses without
    ExtraDataToPOAMiddleware; the backend reads raw JSON and works either way."""
    proxy = RpcProxy(net.url)
    qbft_extra = "0x" + "f8" + "ab" * 96

    def long_extra(req: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        if req.get("method", "").startswith("eth_getBlockBy") and answer.get("result"):
            answer["result"]["extraData"] = qbft_extra
        return answer

    proxy.rewrite = long_extra
    try:
        plain = net.backend("ca1", url=proxy.url)
        assert plain.status().head_block >= net.deployment.block_number
        assert plain.transact("anchor_batch", h("poa"), 2, CA1_CERT).success
        with pytest.raises(ExtraDataLengthError):
            plain.web3.eth.get_block("latest")
        poa = net.backend(url=proxy.url, poa=True)
        block = poa.web3.eth.get_block("latest")
        assert block["proofOfAuthorityData"].hex().removeprefix("0x") == qbft_extra[2:]
        assert len(poa.events_after(0)) == 10
    finally:
        proxy.close()


def test_http_headers_reach_the_node(net: Net) -> None:
    proxy = RpcProxy(net.url)
    try:
        reader = net.backend(url=proxy.url, headers={"Authorization": "Bearer test-jwt"})
        reader.status()
        assert proxy.headers_seen
        assert all(h_.get("Authorization") == "Bearer test-jwt" for h_ in proxy.headers_seen)
    finally:
        proxy.close()


def test_mutual_tls_in_front_of_the_node(net: Net, tmp_path: Path) -> None:
    """An operator terminates TLS (with client certificates) in front of the node's RPC."""
    create_root(tmp_path)
    issue_node_cert(tmp_path, "rpc-gateway")
    issue_node_cert(tmp_path, "ca-node")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.pem"))
    ctx.load_cert_chain(tmp_path / "rpc-gateway.pem", tmp_path / "rpc-gateway.key")
    ctx.verify_mode = ssl.CERT_REQUIRED
    proxy = RpcProxy(net.url, tls=ctx)
    try:
        assert proxy.url.startswith("https://")
        client_cert = (str(tmp_path / "ca-node.pem"), str(tmp_path / "ca-node.key"))
        ca = net.backend("ca1", url=proxy.url, verify=str(tmp_path / "ca.pem"), cert=client_cert)
        assert ca.transact("anchor_batch", h("over tls"), 1, CA1_CERT).success
        assert ca.status().event_cursor > 0
        for refused in (
            net.backend(url=proxy.url, verify=str(tmp_path / "ca.pem")),  # no client certificate
            net.backend(url=proxy.url, cert=client_cert),  # the gateway's CA is not trusted
        ):
            refused.rpc.provider.exception_retry_configuration = None  # type: ignore[assignment]
            with pytest.raises(LedgerUnavailable):
                refused.status()
    finally:
        proxy.close()


def test_constructor_options_are_checked(net: Net) -> None:
    refused: list[dict[str, Any]] = [
        {"poll_interval": 0},
        {"send_attempts": 0},
        {"confirmations": -1},
        {"gas_price": -1},
        {"log_chunk_blocks": 0},
        {"retry_backoff": -1},
    ]
    for bad in refused:
        with pytest.raises(ValueError):
            JsonRpcBackend(net.url, net.address, **bad)


def test_confirmations_hold_back_recent_blocks(net: Net) -> None:
    ca = net.backend("ca1")
    out = ca.transact("anchor_batch", h("confirm"), 1, CA1_CERT)
    lagging = net.backend(confirmations=2)
    assert lagging.status().head_block == out.block_number - 2
    assert _batch_events(lagging.events_after(0)) == []
    net.anvil.rpc("anvil_mine", ["0x2"])
    assert [e.tx_hash for e in _batch_events(lagging.events_after(0))] == [out.tx_hash]
