"""ledger.backends.deploy: the registry deployed to a real anvil from a genesis configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.address import to_canonical_address

from ledger.backends.deploy import DeployError, deploy, deploy_registry, main
from ledger.backends.jsonrpc import JsonRpcBackend
from ledger.contracts import Role, load_artifact
from ledger.node.genesis import GenesisAnchor, GenesisConfig, GenesisValidator, write_genesis
from tests.ledger.backends.support import Anvil
from tests.ledger.contracts.support import CA1_CERT, OP1_KEY, label32

pytestmark = pytest.mark.anvil


def _validators(anvil: Anvil) -> tuple[list[GenesisValidator], list[GenesisAnchor]]:
    ca, op = (bytes(to_canonical_address(Account.from_key(anvil.keys[i]).address)) for i in (1, 3))
    return (
        [
            GenesisValidator(ca, Role.CA, label32("ca-1")),
            GenesisValidator(op, Role.OPERATOR, label32("310-260")),
        ],
        [GenesisAnchor(CA1_CERT, ca), GenesisAnchor(OP1_KEY, op)],
    )


def _genesis(tmp_path: Path, anvil: Anvil, chain_id: int = 31337) -> Path:
    validators, anchors = _validators(anvil)
    path = tmp_path / "genesis.json"
    write_genesis(
        path,
        GenesisConfig(
            chain_id=chain_id,
            validators=tuple(validators),
            trust_anchors=tuple(anchors),
            threshold=2,
            proposal_ttl=3600,
        ),
    )
    return path


def test_deploy_registry_returns_the_address_of_the_committed_code(anvil: Anvil) -> None:
    validators, anchors = _validators(anvil)
    address = deploy_registry(anvil.url, anvil.keys[0], validators, anchors)
    code = anvil.rpc("eth_getCode", [address, "latest"])
    assert bytes.fromhex(code[2:]) == load_artifact().runtime_bytecode
    reader = JsonRpcBackend(anvil.url, address)
    # Same decoding as the embedded backend (ledger.node.abi): addresses as lowercase hex.
    expected = tuple(Account.from_key(anvil.keys[i]).address.lower() for i in (1, 3))
    assert tuple(reader.call("validators")) == expected
    assert reader.call("threshold") == 2  # majority of 2
    assert reader.call("is_trust_anchor", OP1_KEY)


def test_cli_deploys_from_a_genesis_file(
    anvil: Anvil,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    genesis = _genesis(tmp_path, anvil)
    monkeypatch.setenv("MPKIX_DEPLOYER", anvil.keys[0])
    out_file = tmp_path / "deployment.json"
    argv = ["--url", anvil.url, "--genesis", str(genesis), "--key-env", "MPKIX_DEPLOYER"]
    assert main([*argv, "--output", str(out_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out_file.read_text())
    assert printed["chain_id"] == 31337
    assert printed["deployer"] == Account.from_key(anvil.keys[0]).address
    reader = JsonRpcBackend(anvil.url, printed["address"], from_block=printed["block_number"])
    assert reader.call("proposal_ttl") == 3600 and reader.call("threshold") == 2
    first = reader.events_after(0, 1)[0]
    assert first.block_number == printed["block_number"]
    assert first.tx_hash.hex() == printed["tx_hash"][2:]


def test_cli_refuses_another_chain_unless_told(
    anvil: Anvil,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    genesis = _genesis(tmp_path, anvil, chain_id=6063)
    monkeypatch.setenv("MPKIX_DEPLOYER", anvil.keys[0])
    argv = ["--url", anvil.url, "--genesis", str(genesis), "--key-env", "MPKIX_DEPLOYER"]
    assert main(argv) == 1
    assert "serves chain 31337, the configuration names chain 6063" in capsys.readouterr().err
    assert main([*argv, "--ignore-chain-id"]) == 0
    assert json.loads(capsys.readouterr().out)["chain_id"] == 31337


def test_cli_configuration_errors(
    anvil: Anvil,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    genesis = _genesis(tmp_path, anvil)
    monkeypatch.delenv("MPKIX_NO_SUCH_KEY", raising=False)
    base = ["--url", anvil.url, "--genesis", str(genesis)]
    assert main([*base, "--key-env", "MPKIX_NO_SUCH_KEY"]) == 2
    assert "MPKIX_NO_SUCH_KEY is not set" in capsys.readouterr().err
    monkeypatch.setenv("MPKIX_DEPLOYER", anvil.keys[0])
    assert main([*base, "--key-env", "MPKIX_DEPLOYER", "--header", "no colon"]) == 2
    assert "--header takes" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"chain_id": 1, "validators": []}')
    argv = ["--url", anvil.url, "--genesis", str(bad), "--key-env", "MPKIX_DEPLOYER"]
    assert main(argv) == 2
    assert "at least one validator" in capsys.readouterr().err
    monkeypatch.setenv("MPKIX_BAD_KEY", "0x1234")
    assert main([*base, "--key-env", "MPKIX_BAD_KEY"]) == 1
    assert "invalid deployer key" in capsys.readouterr().err


def test_constructor_refusal_is_reported_before_sending(anvil: Anvil) -> None:
    validators, anchors = _validators(anvil)
    deployer = Account.from_key(anvil.keys[0]).address
    before = anvil.rpc("eth_getTransactionCount", [deployer, "latest"])
    with pytest.raises(DeployError, match="would revert: threshold must be between 1 and"):
        deploy(anvil.url, anvil.keys[0], validators, anchors, threshold=5)
    stranger = bytes(to_canonical_address(Account.create().address))
    with pytest.raises(DeployError, match="trust anchor owner is not a validator"):
        deploy(anvil.url, anvil.keys[0], validators, [GenesisAnchor(CA1_CERT, stranger)])
    with pytest.raises(DeployError, match="at least one validator"):
        deploy(anvil.url, anvil.keys[0], [], anchors)
    assert anvil.rpc("eth_getTransactionCount", [deployer, "latest"]) == before


def test_unreachable_node_is_a_deploy_error(anvil: Anvil) -> None:
    validators, anchors = _validators(anvil)
    with pytest.raises(DeployError, match="unreachable"):
        deploy("http://127.0.0.1:9", anvil.keys[0], validators, anchors, timeout=2)
