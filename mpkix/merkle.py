"""Merkle hash trees as defined in RFC 9162 §2.1 (unchanged from RFC 6962 §2.1).

Hashing is domain-separated: ``leaf_hash(d) = SHA-256(0x00 ‖ d)`` and
``node_hash(l, r) = SHA-256(0x01 ‖ l ‖ r)``; the hash of an empty tree is ``SHA-256("")``.

``MerkleTree`` builds every level bottom-up in O(n) hashes. Pairing nodes left to right and
carrying a lone rightmost node up unchanged yields exactly the tree of RFC 9162 §2.1.1 (split
at the largest power of two smaller than n), so roots and audit paths (§2.1.3.1) match the
recursive definition. ``verify_inclusion`` is the verification algorithm of §2.1.3.2.

The CA nodes batch issued certificates into such a tree and anchor its root on the ledger
(ARCHITECTURE.md §2.4); ``CertificateRegistry.vy`` runs the same §2.1.3.2 algorithm on chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_path",
    "verify_inclusion",
]

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: MTH({d(0)}) = SHA-256(0x00 ‖ d(0))."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: interior node SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


class MerkleTree:
    """An immutable RFC 9162 Merkle tree over a list of leaf entries.

    ``levels[0]`` holds the leaf hashes, ``levels[-1]`` the single root (for a non-empty tree).
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves: Sequence[bytes], *, hashed: bool = False) -> None:
        """Build the tree over ``leaves`` (raw entries, or leaf hashes when ``hashed``)."""
        if hashed:
            for h in leaves:
                _check_hash(h, "leaf hash")
            level = list(leaves)
        else:
            level = [leaf_hash(d) for d in leaves]
        levels = [level]
        sha256 = hashlib.sha256
        while len(level) > 1:
            nxt = [
                sha256(NODE_PREFIX + level[i] + level[i + 1]).digest()
                for i in range(0, len(level) - 1, 2)
            ]
            if len(level) % 2:
                nxt.append(level[-1])  # a lone right node is carried up unchanged
            levels.append(nxt)
            level = nxt
        self._levels: list[list[bytes]] = levels

    @classmethod
    def from_leaf_hashes(cls, hashes: Sequence[bytes]) -> MerkleTree:
        """Build the tree from already computed leaf hashes."""
        return cls(hashes, hashed=True)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    @property
    def root(self) -> bytes:
        """MTH(D[n]); SHA-256("") for the empty tree."""
        if not self._levels[0]:
            return EMPTY_ROOT
        return self._levels[-1][0]

    def leaf_hash(self, index: int) -> bytes:
        """Leaf hash of entry ``index``."""
        self._check_index(index)
        return self._levels[0][index]

    def audit_path(self, index: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[n]): sibling hashes from the leaf up to the root."""
        self._check_index(index)
        path: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path

    def audit_paths(self) -> list[list[bytes]]:
        """Audit paths of every leaf, in leaf order."""
        return [self.audit_path(i) for i in range(self.size)]

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError(f"leaf index {index} outside a tree of size {self.size}")


def root_from_inclusion_path(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes]
) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1–6: the root that ``path`` proves for leaf hash ``leaf``.

    Raises ``ValueError`` where the algorithm says "fail" (index outside the tree, a path
    too long or too short for ``tree_size``, malformed hashes).
    """
    _check_hash(leaf, "leaf hash")
    if tree_size < 1 or not 0 <= index < tree_size:
        raise ValueError(f"leaf index {index} outside a tree of size {tree_size}")
    fn = index
    sn = tree_size - 1
    r = leaf
    for p in path:
        _check_hash(p, "audit path entry")
        if sn == 0:
            raise ValueError("audit path longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("audit path shorter than the tree is deep")
    return r


def verify_inclusion(
    leaf: bytes,
    index: int,
    tree_size: int,
    path: Sequence[bytes],
    root: bytes,
    *,
    hashed: bool = False,
) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove entry ``leaf`` at ``index`` in the tree ``root``?

    ``leaf`` is the raw entry, or its leaf hash when ``hashed`` is true.
    """
    try:
        lh = leaf if hashed else leaf_hash(leaf)
        return root_from_inclusion_path(lh, index, tree_size, path) == root
    except ValueError:
        return False


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")
