"""The committed artifact deploys and works on anvil (npm ``@foundry-rs/anvil``), if installed.

The binary is taken from ``$ANVIL_BIN``, ``PATH`` or ``node_modules`` under the repository; the
test is skipped without it. Runs at the artifact's EVM version and at anvil's default (latest)
hardfork, so the code stays valid on newer forks.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from ledger.contracts import (
    CertState,
    RevocationReason,
    Role,
    certificate_leaf_entry,
    load_artifact,
)
from mpkix.merkle import MerkleTree
from tests.ledger.backends.support import find_anvil
from tests.ledger.contracts.support import CA1_CERT, OP1_KEY, OP2_KEY, h, label32

pytestmark = pytest.mark.anvil

REPO = Path(__file__).resolve().parents[3]


def _anvil_binary() -> str | None:
    return find_anvil()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["artifact", "latest"])
def w3(request: pytest.FixtureRequest) -> Iterator[Web3]:
    binary = _anvil_binary()
    if binary is None:
        pytest.skip("anvil not installed (npm i @foundry-rs/anvil, or set ANVIL_BIN)")
    port = _free_port()
    cmd = [binary, "--port", str(port), "--silent"]
    if request.param == "artifact":
        cmd += ["--hardfork", load_artifact().evm_version]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        web3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 10}))
        deadline = time.monotonic() + 20
        while not web3.is_connected():
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("anvil did not start")
            time.sleep(0.05)
        yield web3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _tx(w3: Web3, fn: Any, sender: str) -> Any:
    return w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))


def test_registry_on_anvil(w3: Web3) -> None:
    artifact = load_artifact()
    accounts: list[str] = list(w3.eth.accounts)
    deployer, ca, op1, op2 = accounts[0], accounts[1], accounts[2], accounts[3]
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = _tx(
        w3,
        factory.constructor(
            [ca, op1, op2],
            [Role.CA, Role.OPERATOR, Role.OPERATOR],
            [label32("ca"), label32("op1"), label32("op2")],
            [CA1_CERT, OP1_KEY, OP2_KEY],
            [ca, op1, op2],
            0,
            0,
        ),
        deployer,
    )
    assert receipt["status"] == 1
    reg = cast(Contract, w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi))
    assert w3.eth.get_code(reg.address) == artifact.runtime_bytecode

    certs = [h(f"anvil cert {i}") for i in range(3)]
    keys = [OP1_KEY, OP2_KEY, OP1_KEY]
    tree = MerkleTree([certificate_leaf_entry(c, k) for c, k in zip(certs, keys, strict=True)])
    _tx(w3, reg.functions.anchor_batch(tree.root, tree.size, CA1_CERT), ca)
    batch_id = reg.functions.batch_of_root(tree.root).call()
    assert batch_id == 1

    ref = (certs[2], OP1_KEY, batch_id, 2, tree.audit_path(2))
    with pytest.raises(ContractLogicError, match="caller is not the subject's operator"):
        _tx(w3, reg.functions.revoke(*ref, RevocationReason.KEY_COMPROMISE), op2)
    receipt = _tx(w3, reg.functions.revoke(*ref, RevocationReason.KEY_COMPROMISE), op1)
    (event,) = reg.events.CertificateRevoked().process_receipt(receipt)
    assert event["args"]["cert_hash"] == certs[2]
    assert reg.functions.status_of(CA1_CERT, certs[2]).call()[0] == CertState.REVOKED
    with pytest.raises(ContractLogicError, match="certificate already revoked"):
        _tx(w3, reg.functions.revoke(*ref, RevocationReason.KEY_COMPROMISE), ca)
