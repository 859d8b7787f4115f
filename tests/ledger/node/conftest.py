"""Fixtures for the ledger node: deterministic validator keys, a genesis, engines, nodes and a
TLS gRPC server on 127.0.0.1 (cluster PKI from ``deploy.pki``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from deploy.pki import init_cluster_pki
from ledger.contracts import ContractArtifact, load_artifact
from ledger.node.chain import ChainEngine
from ledger.node.client import LedgerClient
from ledger.node.genesis import GenesisConfig, parse_genesis
from ledger.node.node import LedgerNode
from ledger.node.server import LedgerServer, NodeConfig
from ledger.node.signer import LocalSigner
from mpkix.rpc.server import BuiltServer, ServerRunner
from mpkix.rpc.tls import TlsConfig

CHAIN_ID = 60631


def _key(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(
        hashlib.sha256(b"mpkix-ledger-test:" + name.encode()).digest()
    )
    return acct


@dataclass(frozen=True)
class Actors:
    ca1: LocalAccount
    ca2: LocalAccount
    op1: LocalAccount
    outsider: LocalAccount
    ca1_cert_hash: bytes
    ca2_cert_hash: bytes
    op1_key_hash: bytes

    @staticmethod
    def addr(acct: LocalAccount) -> bytes:
        return bytes.fromhex(acct.address[2:])


ACTORS = Actors(
    ca1=_key("ca1"),
    ca2=_key("ca2"),
    op1=_key("op1"),
    outsider=_key("outsider"),
    ca1_cert_hash=hashlib.sha256(b"ca1 certificate DER").digest(),
    ca2_cert_hash=hashlib.sha256(b"ca2 certificate DER").digest(),
    op1_key_hash=hashlib.sha256(b"op1 endorsement key SPKI").digest(),
)


def genesis_doc(**overrides: Any) -> dict[str, Any]:
    a = ACTORS
    doc: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "validators": [
            {"address": a.ca1.address, "role": "ca", "label": "ca-1"},
            {"address": a.op1.address, "role": "operator", "label": "310-260"},
            {"address": a.ca2.address, "role": "ca", "label": "ca-2"},
        ],
        "trust_anchors": [
            {"hash": "0x" + a.ca1_cert_hash.hex(), "owner": a.ca1.address},
            {"hash": "0x" + a.op1_key_hash.hex(), "owner": a.op1.address},
            {"hash": "0x" + a.ca2_cert_hash.hex(), "owner": a.ca2.address},
        ],
        "threshold": 2,
        "timestamp": 1_700_000_000,
    }
    doc.update(overrides)
    return doc


@pytest.fixture(scope="session")
def artifact() -> ContractArtifact:
    return load_artifact()


@pytest.fixture(scope="session")
def genesis() -> GenesisConfig:
    return parse_genesis(genesis_doc())


@pytest.fixture
def genesis_file(tmp_path: Path) -> Path:
    p = tmp_path / "genesis.json"
    p.write_text(json.dumps(genesis_doc()))
    return p


@pytest.fixture
def engine(
    tmp_path: Path, genesis: GenesisConfig, artifact: ContractArtifact
) -> Iterator[ChainEngine]:
    eng = ChainEngine(tmp_path / "chain.sqlite", genesis, artifact)
    yield eng
    eng.close()


def signer_for(
    acct: LocalAccount, genesis: GenesisConfig, artifact: ContractArtifact, nonce: int = 0
) -> LocalSigner:
    return LocalSigner(
        acct.key,
        chain_id=genesis.chain_id,
        contract_address=genesis.contract_address,
        abi=artifact.abi,
        next_nonce=nonce,
        gas=500_000,
    )


@pytest.fixture
def node(
    tmp_path: Path, genesis: GenesisConfig, artifact: ContractArtifact
) -> Iterator[LedgerNode]:
    n = LedgerNode(tmp_path / "node", genesis, artifact).start()
    yield n
    n.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ledger-pki")
    init_cluster_pki(d, ["ledger", "ca-node", "cms-node"])
    return d


def node_config(state_dir: Path, genesis_path: Path, pki: Path, **kw: Any) -> NodeConfig:
    return NodeConfig(
        state_dir=state_dir,
        genesis=genesis_path,
        listen="127.0.0.1:0",
        tls_cert=pki / "ledger.pem",
        tls_key=pki / "ledger.key",
        tls_ca=pki / "ca.pem",
        **kw,
    )


@dataclass
class RunningServer:
    runner: ServerRunner
    server: LedgerServer
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def node(self) -> LedgerNode:
        assert self.server.node is not None
        return self.server.node


def start_server(cfg: NodeConfig) -> RunningServer:
    holder: dict[str, LedgerServer] = {}

    async def factory() -> BuiltServer:
        holder["s"] = LedgerServer(cfg)
        return await holder["s"].start()

    runner = ServerRunner(factory, name="ledger-test")
    port = runner.start()
    runner.on_stop.append(holder["s"].close)
    return RunningServer(runner, holder["s"], port)


@pytest.fixture
def server(tmp_path: Path, genesis_file: Path, pki: Path) -> Iterator[RunningServer]:
    rs = start_server(node_config(tmp_path / "state", genesis_file, pki))
    yield rs
    rs.runner.stop(grace=0.5)


@pytest.fixture
def client(server: RunningServer, pki: Path) -> Iterator[LedgerClient]:
    c = LedgerClient.connect(server.target, TlsConfig.from_dir(pki, "ca-node"), timeout=20)
    yield c
    c.close()
