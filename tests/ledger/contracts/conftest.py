"""Fixtures: one eth-tester (py-evm) chain per module, deployed once, snapshot per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from ledger.contracts import Role
from tests.ledger.contracts.support import (
    CA1_CERT,
    CA2_CERT,
    OP1_KEY,
    OP2_KEY,
    Chain,
    Registry,
    label32,
)


@pytest.fixture(scope="module")
def chain() -> Chain:
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    return Chain(tester=tester, w3=w3, accounts=list(w3.eth.accounts))


@pytest.fixture(scope="module")
def _registry(chain: Chain) -> Registry:
    ca1, ca2, op1, op2, outsider = chain.accounts[1:6]
    contract = chain.deploy(
        [ca1, ca2, op1, op2],
        [Role.CA, Role.CA, Role.OPERATOR, Role.OPERATOR],
        [label32("ca-1"), label32("ca-2"), label32("operator-1"), label32("operator-2")],
        [CA1_CERT, CA2_CERT, OP1_KEY, OP2_KEY],
        [ca1, ca2, op1, op2],
    )
    return Registry(chain, contract, ca1, ca2, op1, op2, outsider)


@pytest.fixture
def registry(_registry: Registry) -> Iterator[Registry]:
    """The main registry, with the chain rolled back after each test."""
    snapshot = _registry.chain.tester.take_snapshot()
    yield _registry
    _registry.chain.tester.revert_to_snapshot(snapshot)


@pytest.fixture
def snapshot(chain: Chain) -> Iterator[None]:
    """Roll the chain back after the test."""
    snap = chain.tester.take_snapshot()
    yield
    chain.tester.revert_to_snapshot(snap)
