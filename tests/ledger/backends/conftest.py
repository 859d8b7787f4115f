"""Fixtures: real anvil nodes (one per session and fee mode) and a fresh registry per test.

anvil is searched for (``$ANVIL_BIN``, ``.venv/node``, ``PATH``) and installed with
``tools/setup-anvil.sh`` when missing; only if that fails are the tests skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_canonical_address

from ledger.backends.deploy import Deployment, deploy
from ledger.backends.jsonrpc import JsonRpcBackend
from ledger.contracts import Role
from ledger.node.genesis import GenesisAnchor, GenesisValidator
from tests.ledger.backends.support import Anvil, find_anvil, install_anvil, start_anvil
from tests.ledger.contracts.support import CA1_CERT, CA2_CERT, OP1_KEY, OP2_KEY, label32

_install_note: list[str] = []


def _binary() -> str:
    binary = find_anvil()
    if binary is None:
        _install_note.append(install_anvil())
        binary = find_anvil()
    if binary is None:
        pytest.skip(
            "anvil not found and `tools/setup-anvil.sh` could not install it "
            f"(npm @foundry-rs/anvil; or set ANVIL_BIN): {_install_note[-1]}"
        )
    return binary


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    """anvil at the artifact's hardfork with its default fees (base fee 1 gwei, funded keys)."""
    node = start_anvil(_binary(), "--hardfork", "cancun")
    yield node
    node.stop()


@pytest.fixture(scope="session")
def free_anvil() -> Iterator[Anvil]:
    """anvil as a free-gas permissioned network: base fee 0, gas price 0, no priority fee."""
    node = start_anvil(
        _binary(),
        "--hardfork",
        "cancun",
        "--base-fee",
        "0",
        "--gas-price",
        "0",
        "--no-priority-fee",
    )
    yield node
    node.stop()


@dataclass
class Net:
    """A registry freshly deployed on anvil, with the validators' keys.

    Dev accounts: 0 deployer, 1 CA-1 (owns CA1_CERT), 2 CA-2 (owns CA2_CERT), 3 operator 1
    (OP1_KEY), 4 operator 2 (OP2_KEY), 5 outsider (no role).
    """

    anvil: Anvil
    deployment: Deployment
    url: str

    @property
    def address(self) -> str:
        return self.deployment.address

    def key(self, who: str) -> str:
        return self.anvil.keys[ROLES[who]]

    def addr(self, who: str) -> bytes:
        return bytes(to_canonical_address(Account.from_key(self.key(who)).address))

    def backend(self, who: str | None = None, **options: Any) -> JsonRpcBackend:
        options.setdefault("poll_interval", 0.02)
        options.setdefault("from_block", self.deployment.block_number)
        key = self.key(who) if who is not None else None
        return JsonRpcBackend(options.pop("url", self.url), self.address, key, **options)


ROLES = {"deployer": 0, "ca1": 1, "ca2": 2, "op1": 3, "op2": 4, "outsider": 5}


def deploy_net(node: Anvil, threshold: int = 0, **options: Any) -> Net:
    addr = {
        who: bytes(to_canonical_address(Account.from_key(node.keys[i]).address))
        for who, i in ROLES.items()
    }
    validators = [
        GenesisValidator(addr["ca1"], Role.CA, label32("ca-1")),
        GenesisValidator(addr["ca2"], Role.CA, label32("ca-2")),
        GenesisValidator(addr["op1"], Role.OPERATOR, label32("310-260")),
        GenesisValidator(addr["op2"], Role.OPERATOR, label32("208-01")),
    ]
    anchors = [
        GenesisAnchor(CA1_CERT, addr["ca1"]),
        GenesisAnchor(CA2_CERT, addr["ca2"]),
        GenesisAnchor(OP1_KEY, addr["op1"]),
        GenesisAnchor(OP2_KEY, addr["op2"]),
    ]
    deployment = deploy(node.url, node.keys[0], validators, anchors, threshold, 0, **options)
    return Net(anvil=node, deployment=deployment, url=node.url)


@pytest.fixture
def net(anvil: Anvil) -> Net:
    """A fresh registry (4 validators, majority threshold 3) on the session's anvil."""
    return deploy_net(anvil)
