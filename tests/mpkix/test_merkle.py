"""Tests for mpkix.merkle against RFC 6962/9162 reference values and a recursive model."""

from __future__ import annotations

import hashlib
import time

import pytest

from mpkix.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_path,
    verify_inclusion,
)

# The Certificate Transparency reference tree (RFC 6962 test data, used by the CT and
# Trillian test suites): eight leaf entries and the published MTH of every prefix.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
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
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (0-based leaf index, tree size, audit path) from the same reference data.
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def _mth(entries: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, written recursively as in the RFC (the model under test)."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two smaller than n
    return hashlib.sha256(b"\x01" + _mth(entries[:k]) + _mth(entries[k:])).digest()


def _path(m: int, entries: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]), recursively."""
    n = len(entries)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, entries[:k]), _mth(entries[k:])]
    return [*_path(m - k, entries[k:]), _mth(entries[:k])]


def _shape(m: int, n: int) -> list[bool]:
    """Bottom-up sides of PATH(m, D[n]): True where the sibling is on the right."""
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_shape(m, k), True]
    return [*_shape(m - k, n - k), False]


def _entries(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") + b"cert" for i in range(n)]


def _flip(b: bytes, pos: int = 0) -> bytes:
    return b[:pos] + bytes([b[pos] ^ 0x01]) + b[pos + 1 :]


def test_hash_primitives_are_domain_separated() -> None:
    assert leaf_hash(b"") == bytes.fromhex(CT_ROOTS[1])
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = leaf_hash(b"l"), leaf_hash(b"r")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != node_hash(right, left)
    # A leaf whose data looks like two child hashes must not collide with the node.
    assert leaf_hash(left + right) != node_hash(left, right)


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    tree = MerkleTree([])
    assert tree.root == EMPTY_ROOT == bytes.fromhex(CT_ROOTS[0])
    assert tree.size == 0
    with pytest.raises(IndexError):
        tree.audit_path(0)


@pytest.mark.parametrize("size", range(len(CT_ROOTS)))
def test_reference_roots(size: int) -> None:
    assert MerkleTree(CT_LEAVES[:size]).root.hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path_hex"), CT_INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, path_hex: list[str]) -> None:
    tree = MerkleTree(CT_LEAVES[:size])
    path = tree.audit_path(index)
    assert [p.hex() for p in path] == path_hex
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(CT_LEAVES[index], index, size, path, root)
    assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, path, root, hashed=True)
    assert not verify_inclusion(CT_LEAVES[index], index, size, path, bytes.fromhex(CT_ROOTS[0]))


def test_every_index_of_every_size_up_to_70_verifies_and_tampering_fails() -> None:
    entries = _entries(70)
    for size in range(1, 71):
        prefix = entries[:size]
        tree = MerkleTree(prefix)
        root = tree.root
        assert root == _mth(prefix)
        for index in range(size):
            path = tree.audit_path(index)
            assert path == _path(index, prefix)
            assert verify_inclusion(prefix[index], index, size, path, root)
            # wrong entry, wrong index, wrong size, wrong root
            assert not verify_inclusion(_flip(prefix[index]), index, size, path, root)
            for other in (index - 1, index + 1):
                if 0 <= other < size:
                    assert not verify_inclusion(prefix[index], other, size, path, root)
            # A wrong size fails unless it gives this leaf the very same proof shape (a leaf in
            # a complete left subtree proves the same way in larger trees: RFC 9162 binds the
            # size only through the path's shape).
            for other_size in (size - 1, size + 1, size + 2, 2 * size):
                if other_size < 1:
                    continue
                same_shape = index < other_size and _shape(index, other_size) == _shape(index, size)
                assert verify_inclusion(prefix[index], index, other_size, path, root) == same_shape
            assert not verify_inclusion(prefix[index], index, size, path, _flip(root, 31))
            # any flipped byte anywhere in the path
            for j, node in enumerate(path):
                bad = [*path[:j], _flip(node, j % 32), *path[j + 1 :]]
                assert not verify_inclusion(prefix[index], index, size, bad, root)
            # truncated and extended paths
            if path:
                assert not verify_inclusion(prefix[index], index, size, path[:-1], root)
            assert not verify_inclusion(prefix[index], index, size, [*path, root], root)


def test_index_and_size_out_of_range() -> None:
    tree = MerkleTree(_entries(5))
    path = tree.audit_path(4)
    assert not verify_inclusion(_entries(5)[4], 5, 5, path, tree.root)
    assert not verify_inclusion(_entries(5)[4], -1, 5, path, tree.root)
    assert not verify_inclusion(_entries(5)[4], 0, 0, [], EMPTY_ROOT)
    with pytest.raises(IndexError):
        tree.audit_path(5)
    with pytest.raises(IndexError):
        tree.audit_path(-1)
    with pytest.raises(ValueError, match="outside a tree"):
        root_from_inclusion_path(tree.leaf_hash(0), 7, 5, path)


def test_malformed_hashes_are_rejected() -> None:
    tree = MerkleTree(_entries(4))
    path = tree.audit_path(1)
    short = [path[0][:31], *path[1:]]
    assert not verify_inclusion(_entries(4)[1], 1, 4, short, tree.root)
    assert not verify_inclusion(b"\x00" * 31, 1, 4, path, tree.root, hashed=True)
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree.from_leaf_hashes([b"\x00" * 33])


def test_prehashed_leaves_build_the_same_tree() -> None:
    entries = _entries(13)
    a = MerkleTree(entries)
    b = MerkleTree.from_leaf_hashes([leaf_hash(e) for e in entries])
    assert a.root == b.root
    assert a.audit_paths() == b.audit_paths()
    assert len(a) == 13 and a.leaf_hash(3) == leaf_hash(entries[3])


def test_root_from_path_reports_why_it_fails() -> None:
    tree = MerkleTree(_entries(6))
    path = tree.audit_path(2)
    with pytest.raises(ValueError, match="longer"):
        root_from_inclusion_path(tree.leaf_hash(2), 2, 6, [*path, path[0]])
    with pytest.raises(ValueError, match="shorter"):
        root_from_inclusion_path(tree.leaf_hash(2), 2, 6, path[:1])
    assert root_from_inclusion_path(tree.leaf_hash(2), 2, 6, path) == tree.root


def test_ten_thousand_leaves_with_all_paths_is_fast() -> None:
    entries = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(10_000)]
    start = time.perf_counter()
    tree = MerkleTree(entries)
    paths = tree.audit_paths()
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"building 10,000 leaves and their paths took {elapsed:.3f}s"
    assert tree.root == _mth(entries)
    for i in (0, 1, 4095, 4096, 8191, 8192, 9998, 9999):
        assert verify_inclusion(entries[i], i, 10_000, paths[i], tree.root)
