"""The contract's RFC 9162 §2.1.3.2 verifier agrees with mpkix.merkle, reference data included."""

from __future__ import annotations

import hashlib

import pytest
from web3.contract import Contract

from ledger.contracts import MAX_PROOF_LENGTH, Role
from mpkix.merkle import MerkleTree, leaf_hash, verify_inclusion
from tests.ledger.contracts.support import Chain, label32

# RFC 6962 reference tree (see tests/mpkix/test_merkle.py)
CT_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOT_8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
CT_PATH_5_OF_8 = [
    bytes.fromhex(x)
    for x in (
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    )
]


@pytest.fixture(scope="module")
def registry(chain: Chain) -> Contract:
    return chain.deploy([chain.accounts[9]], [Role.CA], [label32("verifier")])


def test_reference_vector_on_chain(registry: Contract) -> None:
    verify = registry.functions.verify_inclusion
    lh = leaf_hash(CT_LEAVES[5])
    assert verify(lh, 5, 8, CT_PATH_5_OF_8, CT_ROOT_8).call()
    assert not verify(lh, 4, 8, CT_PATH_5_OF_8, CT_ROOT_8).call()
    assert not verify(lh, 5, 6, CT_PATH_5_OF_8, CT_ROOT_8).call()
    assert not verify(lh, 5, 9, CT_PATH_5_OF_8, CT_ROOT_8).call()
    assert not verify(lh, 5, 8, CT_PATH_5_OF_8[:2], CT_ROOT_8).call()


def test_every_leaf_of_small_trees(registry: Contract) -> None:
    verify = registry.functions.verify_inclusion
    entries = [hashlib.sha256(bytes([i])).digest() * 2 for i in range(12)]
    for size in range(1, 12):
        tree = MerkleTree(entries[:size])
        for index in range(size):
            path = tree.audit_path(index)
            lh = tree.leaf_hash(index)
            assert verify(lh, index, size, path, tree.root).call(), (index, size)
            # one wrong-size probe per leaf; the Python verifier is the oracle
            other = size + 1
            expected = verify_inclusion(lh, index, other, path, tree.root, hashed=True)
            assert verify(lh, index, other, path, tree.root).call() == expected
        if size > 1:
            assert not verify(tree.leaf_hash(0), size, size, tree.audit_path(0), tree.root).call()


def test_a_thousand_leaf_batch(registry: Contract) -> None:
    verify = registry.functions.verify_inclusion
    tree = MerkleTree([i.to_bytes(64, "big") for i in range(1000)])
    for index in (0, 1, 511, 512, 767, 998, 999):
        path = tree.audit_path(index)
        assert len(path) <= 10
        assert verify(tree.leaf_hash(index), index, 1000, path, tree.root).call()
        flipped = [path[0], bytes([path[1][0] ^ 0x80]) + path[1][1:], *path[2:]]
        assert not verify(tree.leaf_hash(index), index, 1000, flipped, tree.root).call()


def test_degenerate_inputs(registry: Contract) -> None:
    verify = registry.functions.verify_inclusion
    one = MerkleTree([b"only"])
    assert verify(one.leaf_hash(0), 0, 1, [], one.root).call()
    assert not verify(one.leaf_hash(0), 0, 0, [], one.root).call()
    assert not verify(one.leaf_hash(0), 0, 1, [one.root], one.root).call()
    # a path longer than the contract accepts is refused at ABI decoding
    with pytest.raises(Exception):  # noqa: B017 - the node reports a bare revert
        verify(one.leaf_hash(0), 0, 2**64, [one.root] * (MAX_PROOF_LENGTH + 1), one.root).call()
