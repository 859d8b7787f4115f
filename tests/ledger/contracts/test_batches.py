"""Batch anchoring: only a CA validator, for a CA trust anchor it owns, once per root."""

from __future__ import annotations

from ledger.contracts import Role
from mpkix.merkle import MerkleTree
from tests.ledger.contracts.support import (
    CA1_CERT,
    CA2_CERT,
    OP1_KEY,
    OP2_KEY,
    Registry,
    anchor_batch,
    events,
    h,
    reverts,
)

ROOT = MerkleTree([b"entry one", b"entry two", b"entry three"]).root


def test_ca_anchors_a_batch(registry: Registry) -> None:
    reg = registry.contract
    assert reg.functions.batch_count().call() == 0
    receipt = registry.tx(reg.functions.anchor_batch(ROOT, 3, CA1_CERT), registry.ca1)
    block = registry.chain.w3.eth.get_block(receipt["blockNumber"])
    assert events(reg, "BatchAnchored", receipt) == [
        {
            "batch_id": 1,
            "root": ROOT,
            "size": 3,
            "ca_cert_hash": CA1_CERT,
            "timestamp": block["timestamp"],
        }
    ]
    assert reg.functions.batch(1).call() == (ROOT, 3, CA1_CERT, block["timestamp"])
    assert reg.functions.batch_of_root(ROOT).call() == 1
    assert reg.functions.batch_count().call() == 1
    # the return value, as seen by a dry run of the next anchoring
    other = h("another root")
    assert reg.functions.anchor_batch(other, 1, CA2_CERT).call({"from": registry.ca2}) == 2


def test_ids_count_up_across_cas(registry: Registry) -> None:
    b1 = anchor_batch(registry, registry.ca1, CA1_CERT, [OP1_KEY], tag="x")
    b2 = anchor_batch(registry, registry.ca2, CA2_CERT, [OP2_KEY, OP1_KEY], tag="x")
    assert (b1.batch_id, b2.batch_id) == (1, 2)
    assert registry.contract.functions.batch(2).call()[1:3] == (2, CA2_CERT)


def test_unknown_batch_is_all_zero(registry: Registry) -> None:
    assert registry.contract.functions.batch(99).call() == (bytes(32), 0, bytes(32), 0)
    assert registry.contract.functions.batch_of_root(ROOT).call() == 0


def test_same_root_cannot_be_anchored_twice(registry: Registry) -> None:
    reg = registry.contract
    registry.tx(reg.functions.anchor_batch(ROOT, 3, CA1_CERT), registry.ca1)
    with reverts("root already anchored"):
        registry.tx(reg.functions.anchor_batch(ROOT, 3, CA1_CERT), registry.ca1)
    with reverts("root already anchored"):
        registry.tx(reg.functions.anchor_batch(ROOT, 5, CA2_CERT), registry.ca2)
    # a retrying node learns the id of the batch it already anchored
    assert reg.functions.batch_of_root(ROOT).call() == 1
    assert reg.functions.batch_count().call() == 1


def test_only_a_ca_validator_anchors(registry: Registry) -> None:
    anchor = registry.contract.functions.anchor_batch
    with reverts("caller is not a validator"):
        registry.tx(anchor(ROOT, 3, CA1_CERT), registry.outsider)
    with reverts("only a CA validator may anchor batches"):
        registry.tx(anchor(ROOT, 3, CA1_CERT), registry.op1)
    with reverts("only a CA validator may anchor batches"):
        registry.tx(anchor(ROOT, 3, OP1_KEY), registry.op1)


def test_ca_anchors_only_under_its_own_trust_anchor(registry: Registry) -> None:
    anchor = registry.contract.functions.anchor_batch
    with reverts("CA trust anchor not owned by caller"):
        registry.tx(anchor(ROOT, 3, CA2_CERT), registry.ca1)
    with reverts("CA certificate is not a trust anchor"):
        registry.tx(anchor(ROOT, 3, h("a CA nobody registered")), registry.ca1)
    with reverts("CA certificate is not a trust anchor"):
        registry.tx(anchor(ROOT, 3, OP1_KEY), registry.ca1)  # an operator key is no CA


def test_malformed_batches_are_rejected(registry: Registry) -> None:
    anchor = registry.contract.functions.anchor_batch
    with reverts("batch root is zero"):
        registry.tx(anchor(bytes(32), 3, CA1_CERT), registry.ca1)
    with reverts("batch size is zero"):
        registry.tx(anchor(ROOT, 0, CA1_CERT), registry.ca1)
    with reverts("batch size too large"):
        registry.tx(anchor(ROOT, 2**64, CA1_CERT), registry.ca1)
    registry.tx(anchor(ROOT, 2**64 - 1, CA1_CERT), registry.ca1)
    assert registry.contract.functions.batch(1).call()[1] == 2**64 - 1


def test_removed_ca_anchor_can_no_longer_anchor(registry: Registry) -> None:
    reg = registry.contract
    registry.tx(reg.functions.propose_remove_trust_anchor(CA1_CERT), registry.ca2)
    registry.tx(reg.functions.approve(1), registry.op1)
    registry.tx(reg.functions.approve(1), registry.op2)
    assert not reg.functions.is_trust_anchor(CA1_CERT).call()
    assert reg.functions.role_of(registry.ca1).call() == Role.CA
    with reverts("CA certificate is not a trust anchor"):
        registry.tx(reg.functions.anchor_batch(ROOT, 3, CA1_CERT), registry.ca1)
