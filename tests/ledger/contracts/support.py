"""Helpers for the CertificateRegistry tests: chain wrapper, registry roles, revert matcher."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
from eth_tester import EthereumTester
from eth_tester.exceptions import TransactionFailed
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from ledger.contracts import certificate_leaf_entry, load_artifact
from mpkix.merkle import MerkleTree


def h(label: str) -> bytes:
    """A deterministic 32-byte hash standing in for sha256(DER) of a named object."""
    return hashlib.sha256(label.encode()).digest()


def label32(text: str) -> bytes:
    return text.encode().ljust(32, b"\x00")


CA1_CERT = h("ca1 certificate DER")
CA2_CERT = h("ca2 certificate DER")
OP1_KEY = h("operator 1 endorsement SPKI DER")
OP2_KEY = h("operator 2 endorsement SPKI DER")


@dataclass
class Chain:
    """A py-evm chain with web3 on top and the registry contract factory."""

    tester: EthereumTester
    w3: Web3
    accounts: list[str]

    def deploy(
        self,
        validators: Sequence[str],
        roles: Sequence[int],
        labels: Sequence[bytes],
        anchors: Sequence[bytes] = (),
        owners: Sequence[str] = (),
        threshold: int = 0,
        ttl: int = 0,
    ) -> Contract:
        return self.deploy_with_receipt(validators, roles, labels, anchors, owners, threshold, ttl)[
            0
        ]

    def deploy_with_receipt(
        self,
        validators: Sequence[str],
        roles: Sequence[int],
        labels: Sequence[bytes],
        anchors: Sequence[bytes] = (),
        owners: Sequence[str] = (),
        threshold: int = 0,
        ttl: int = 0,
    ) -> tuple[Contract, Any]:
        """Deploy the committed artifact; return the contract and the creation receipt."""
        artifact = load_artifact()
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(
            list(validators), list(roles), list(labels), list(anchors), list(owners), threshold, ttl
        ).transact({"from": self.accounts[0]})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        address = receipt["contractAddress"]
        return cast(Contract, self.w3.eth.contract(address=address, abi=artifact.abi)), receipt

    def transact(self, fn: Any, sender: str) -> Any:
        """Send a contract call as ``sender``; return the receipt."""
        tx = fn.transact({"from": sender})
        return self.w3.eth.wait_for_transaction_receipt(tx)


@dataclass
class Registry:
    """The main four-validator registry: two CAs and two operators, k = 3 (majority)."""

    chain: Chain
    contract: Contract
    ca1: str
    ca2: str
    op1: str
    op2: str
    outsider: str

    def tx(self, fn: Any, sender: str) -> Any:
        return self.chain.transact(fn, sender)


def reverts(message: str) -> Any:
    """``pytest.raises`` for a contract revert whose reason is exactly ``message``."""
    import re

    return pytest.raises(
        (ContractLogicError, TransactionFailed), match=rf"execution reverted: {re.escape(message)}$"
    )


def events(contract: Contract, name: str, receipt: Any) -> list[dict[str, Any]]:
    """Decoded ``name`` events of a receipt, as plain dicts of their args."""
    from web3.logs import DISCARD

    event: Callable[[], Any] = getattr(contract.events, name)
    return [dict(e["args"]) for e in event().process_receipt(receipt, errors=DISCARD)]


@dataclass(frozen=True)
class CertRef:
    """A certificate as the contract's status functions name it: entry, batch and proof."""

    cert_hash: bytes
    operator_key_hash: bytes
    batch_id: int
    leaf_index: int
    proof: list[bytes]

    def args(self) -> tuple[bytes, bytes, int, int, list[bytes]]:
        return (self.cert_hash, self.operator_key_hash, self.batch_id, self.leaf_index, self.proof)


@dataclass(frozen=True)
class AnchoredBatch:
    batch_id: int
    tree: MerkleTree
    certs: list[CertRef]
    receipt: Any


def anchor_batch(
    reg: Registry, ca: str, ca_cert: bytes, operator_keys: Sequence[bytes], tag: str = "b"
) -> AnchoredBatch:
    """Build a batch of one certificate per operator key, anchor it as ``ca``, return refs."""
    cert_hashes = [h(f"{tag}:{ca_cert.hex()}:cert {i}") for i in range(len(operator_keys))]
    pairs = list(zip(cert_hashes, operator_keys, strict=True))
    tree = MerkleTree([certificate_leaf_entry(c, k) for c, k in pairs])
    receipt = reg.tx(reg.contract.functions.anchor_batch(tree.root, tree.size, ca_cert), ca)
    batch_id = int(reg.contract.functions.batch_of_root(tree.root).call())
    certs = [CertRef(c, k, batch_id, i, tree.audit_path(i)) for i, (c, k) in enumerate(pairs)]
    return AnchoredBatch(batch_id, tree, certs, receipt)
