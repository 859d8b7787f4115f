"""Deploy the ``CertificateRegistry`` to an external JSON-RPC chain (ARCHITECTURE §2.4).

The embedded node deploys the registry inside its genesis state (decision 0504); a Besu or
GoQuorum network, or anvil, gets it through one ordinary contract-creation transaction signed
by a deployer key (decision 0904). The constructor arguments come from the same genesis-like
configuration (validators with roles and labels, trust anchors, threshold, proposal TTL), built
by :func:`ledger.node.genesis.deployment_code`, so both backends start from the same state.

The deployer has no role in the contract; after the deployment its key is no longer needed.
Run it once per network and hand every node the printed address and block number::

    DEPLOYER_KEY=0x… python -m ledger.backends.deploy \\
        --url https://besu-1.example:8545 --genesis genesis.json --key-env DEPLOYER_KEY

It prints ``{"address": …, "block_number": …, "chain_id": …, "tx_hash": …, …}``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from ledger.backends.jsonrpc import JsonRpcError, RpcConnection
from ledger.contracts import ContractArtifact, load_artifact
from ledger.node.abi import ContractAbi
from ledger.node.genesis import (
    GenesisAnchor,
    GenesisConfig,
    GenesisError,
    GenesisValidator,
    deployment_code,
)

__all__ = [
    "DeployError",
    "Deployment",
    "deploy",
    "deploy_from_genesis",
    "deploy_registry",
    "main",
]

SEND_ATTEMPTS = 5


def _qty(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


class DeployError(RuntimeError):
    """The registry could not be deployed (nothing usable was created)."""


@dataclass(frozen=True)
class Deployment:
    """Where the registry now lives; ``block_number`` is the ``from_block`` for followers."""

    address: str  # checksummed
    chain_id: int
    block_number: int
    tx_hash: bytes
    deployer: str
    gas_used: int

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "chain_id": self.chain_id,
            "block_number": self.block_number,
            "tx_hash": _hex(self.tx_hash),
            "deployer": self.deployer,
            "gas_used": self.gas_used,
        }


def _config(
    chain_id: int,
    validators: Sequence[GenesisValidator],
    anchors: Sequence[GenesisAnchor],
    threshold: int,
    proposal_ttl: int,
) -> GenesisConfig:
    if not validators:
        raise DeployError("at least one validator is required")
    if threshold < 0 or proposal_ttl < 0:
        raise DeployError("threshold and proposal_ttl must not be negative")
    return GenesisConfig(
        chain_id=chain_id,
        validators=tuple(validators),
        trust_anchors=tuple(anchors),
        threshold=threshold,
        proposal_ttl=proposal_ttl,
    )


def _hint(reason: str) -> str:
    if "opcode" in reason.lower():
        return (
            f"{reason} (the network may predate the artifact's EVM version: compile with "
            "`python -m ledger.contracts.compile --evm-version london --output …`)"
        )
    return reason


def deploy(
    url: str,
    deployer_key: bytes | str,
    validators: Sequence[GenesisValidator],
    anchors: Sequence[GenesisAnchor] = (),
    threshold: int = 0,
    proposal_ttl: int = 0,
    *,
    poa: bool = False,
    gas_price: int | None = None,
    artifact: ContractArtifact | None = None,
    timeout: float = 120.0,
    headers: Mapping[str, str] | None = None,
    verify: bool | str = True,
    cert: str | tuple[str, str] | None = None,
    expect_chain_id: int | None = None,
) -> Deployment:
    """Deploy the registry with these constructor arguments; return where it landed.

    The constructor is dry-run first (``eth_estimateGas``), so a configuration the contract
    refuses ("duplicate validator", …) raises :class:`DeployError` before anything is sent.
    ``expect_chain_id`` refuses a node of another chain.
    """
    artifact = artifact if artifact is not None else load_artifact()
    rpc = RpcConnection(
        url,
        poa=poa,
        request_timeout=min(timeout, 30.0),
        headers=headers,
        verify=verify,
        cert=cert,
    )
    try:
        account: LocalAccount = Account.from_key(deployer_key)
    except (ValueError, TypeError) as e:
        raise DeployError(f"invalid deployer key: {e}") from None
    try:
        chain_id = rpc.chain_id
        if expect_chain_id is not None and chain_id != expect_chain_id:
            raise DeployError(
                f"the node at {url} serves chain {chain_id}, the configuration names "
                f"chain {expect_chain_id}"
            )
        cfg = _config(chain_id, validators, anchors, threshold, proposal_ttl)
        try:
            init_code = deployment_code(cfg, artifact)
        except GenesisError as e:
            raise DeployError(str(e)) from None
        return _send_creation(
            rpc, account, init_code, artifact, gas_price, timeout, len(cfg.validators)
        )
    except JsonRpcError as e:
        raise DeployError(str(e)) from e


def _send_creation(
    rpc: RpcConnection,
    account: LocalAccount,
    init_code: bytes,
    artifact: ContractArtifact,
    gas_price: int | None,
    timeout: float,
    validator_count: int,
) -> Deployment:
    latest = rpc.block("latest")
    block_gas_limit = _qty(latest["gasLimit"])
    gas, reverted = rpc.estimate_gas(
        {"from": account.address, "data": _hex(init_code)}, block_gas_limit, block_gas_limit
    )
    if reverted:
        raise DeployError(f"the registry constructor would revert: {_hint(reverted)}")
    fees = rpc.fee_fields(gas_price, latest)
    tx: dict[str, Any] = {
        "chainId": rpc.chain_id,
        "gas": gas,
        "value": 0,
        "data": init_code,
        **fees,
    }
    if "maxFeePerGas" in fees:
        tx["type"] = 2
    nonce = rpc.pending_nonce(account.address)
    for _ in range(3):
        signed = account.sign_transaction({**tx, "nonce": nonce})
        raw, tx_hash = bytes(signed.raw_transaction), bytes(signed.hash)
        result = rpc.send_raw(raw, tx_hash, what="deploy", attempts=SEND_ATTEMPTS, backoff=0.2)
        if result == "ok":
            break
        # stale nonce (another transaction of the deployer) or fees: sign again, fresh values
        nonce = max(rpc.pending_nonce(account.address), nonce)
        tx.update(rpc.fee_fields(gas_price))
    else:
        raise DeployError("the deployment was refused three times with a stale nonce or fee")
    receipt = rpc.wait_receipt(tx_hash, timeout=timeout, poll_interval=0.5)
    if _qty(receipt.get("status", "0x1")) != 1:
        request = {"from": account.address, "data": _hex(init_code), "gas": hex(gas)}
        raise DeployError(
            f"the deployment transaction 0x{tx_hash.hex()} reverted: "
            f"{_hint(rpc.replay_revert(request, receipt))}"
        )
    address = receipt.get("contractAddress")
    if not isinstance(address, str):
        raise DeployError(f"the receipt of 0x{tx_hash.hex()} names no contract address")
    address = to_checksum_address(address)
    code = rpc.code(address)
    if code != artifact.runtime_bytecode:
        raise DeployError(f"the code at {address} is not the registry's runtime bytecode")
    count = ContractAbi(artifact.abi)["validator_count"]
    answer = rpc.request("eth_call", [{"to": address, "data": _hex(count.encode())}, "latest"])
    if count.decode_output(bytes.fromhex(str(answer)[2:])) != (validator_count,):
        raise DeployError(f"the registry at {address} does not list the configured validators")
    return Deployment(
        address=address,
        chain_id=rpc.chain_id,
        block_number=_qty(receipt["blockNumber"]),
        tx_hash=tx_hash,
        deployer=str(account.address),
        gas_used=_qty(receipt.get("gasUsed", "0x0")),
    )


def deploy_registry(
    url: str,
    deployer_key: bytes | str,
    validators: Sequence[GenesisValidator],
    anchors: Sequence[GenesisAnchor] = (),
    threshold: int = 0,
    proposal_ttl: int = 0,
    **options: Any,
) -> str:
    """Deploy the registry and return its (checksummed) address; see :func:`deploy`."""
    return deploy(
        url, deployer_key, validators, anchors, threshold, proposal_ttl, **options
    ).address


def deploy_from_genesis(
    url: str,
    deployer_key: bytes | str,
    cfg: GenesisConfig,
    *,
    check_chain_id: bool = True,
    **options: Any,
) -> Deployment:
    """Deploy with the validators, trust anchors, threshold and TTL of a genesis configuration
    (its ``chain_id`` must match the node's unless ``check_chain_id`` is false; chain parameters
    such as ``gas_limit`` and ``deployer`` belong to the embedded node and are ignored)."""
    return deploy(
        url,
        deployer_key,
        cfg.validators,
        cfg.trust_anchors,
        cfg.threshold,
        cfg.proposal_ttl,
        artifact=options.pop("artifact", None) or cfg.load_artifact(),
        expect_chain_id=cfg.chain_id if check_chain_id else None,
        **options,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ledger.backends.deploy --url … --genesis … --key-env VAR``."""
    parser = argparse.ArgumentParser(
        prog="python -m ledger.backends.deploy",
        description="Deploy the CertificateRegistry to a JSON-RPC chain (Besu, GoQuorum, anvil).",
    )
    from ledger.backends.deploy_cli import add_arguments, run

    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
