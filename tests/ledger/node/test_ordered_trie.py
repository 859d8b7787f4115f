"""The one-pass index trie builder equals py-evm's HexaryTrie construction, byte for byte."""

from __future__ import annotations

import random

import pytest
import rlp
from eth.constants import BLANK_ROOT_HASH
from eth_hash.auto import keccak
from trie.hexary import HexaryTrie

from ledger.node.ordered_trie import ordered_trie_root_and_nodes


def reference(items: list[bytes]) -> tuple[bytes, dict[bytes, bytes]]:
    store: dict[bytes, bytes] = {}
    t = HexaryTrie(store, BLANK_ROOT_HASH)
    with t.squash_changes() as mt:
        for i, item in enumerate(items):
            mt[rlp.encode(i, sedes=rlp.sedes.big_endian_int)] = item
    return bytes(t.root_hash), store


@pytest.mark.parametrize("n", [1, 2, 3, 15, 16, 17, 127, 128, 129, 255, 256, 300, 1100])
def test_matches_hexary_trie(n: int) -> None:
    rnd = random.Random(n)
    items = [rnd.randbytes(rnd.choice([1, 2, 20, 31, 32, 33, 120])) for _ in range(n)]
    root, nodes = ordered_trie_root_and_nodes(items)
    ref_root, ref_nodes = reference(items)
    assert root == ref_root
    assert nodes == ref_nodes
    # every stored node is addressed by its hash
    assert all(keccak(v) == k for k, v in nodes.items())


def test_empty() -> None:
    assert ordered_trie_root_and_nodes([]) == (BLANK_ROOT_HASH, {})


def test_order_matters() -> None:
    a, b = b"\x01" * 40, b"\x02" * 40
    assert ordered_trie_root_and_nodes([a, b])[0] != ordered_trie_root_and_nodes([b, a])[0]
