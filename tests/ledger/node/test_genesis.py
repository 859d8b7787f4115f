"""Genesis file parsing and the genesis state with the registry deployed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth.db.atomic import AtomicDB
from eth_utils.crypto import keccak

from ledger.contracts import ContractArtifact
from ledger.node.chain import GENESIS_TX_HASH, ChainEngine, GenesisMismatch
from ledger.node.genesis import (
    DEFAULT_DEPLOYER,
    GenesisError,
    build_genesis,
    genesis_document,
    load_genesis,
    parse_genesis,
    write_genesis,
)
from tests.ledger.node.conftest import ACTORS, CHAIN_ID, Actors, genesis_doc


def test_parse_fields() -> None:
    cfg = parse_genesis(genesis_doc())
    assert cfg.chain_id == CHAIN_ID
    assert [v.address for v in cfg.validators] == [
        Actors.addr(ACTORS.ca1),
        Actors.addr(ACTORS.op1),
        Actors.addr(ACTORS.ca2),
    ]
    assert [int(v.role) for v in cfg.validators] == [1, 2, 1]
    assert cfg.validators[1].label == b"310-260".ljust(32, b"\0")
    assert cfg.trust_anchors[0].anchor_hash == ACTORS.ca1_cert_hash
    assert cfg.threshold == 2
    assert cfg.deployer == DEFAULT_DEPLOYER


def test_contract_address_is_create_address_of_deployer_nonce_0() -> None:
    deployer = "0x" + "42" * 20
    cfg = parse_genesis(genesis_doc(deployer=deployer))
    expected = keccak(rlp.encode([bytes.fromhex("42" * 20), 0]))[12:]
    assert cfg.contract_address == expected


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"chain_id": 0}, "chain_id"),
        ({"chain_id": "x"}, "chain_id"),
        ({"chain_id": 2**64}, "64 bits"),
        ({"validators": []}, "at least one validator"),
        ({"validators": [{"address": "0x1234", "role": "ca"}]}, "validators[0].address"),
        (
            {"validators": [{"address": ACTORS.ca1.address, "role": "root"}]},
            "validators[0].role",
        ),
        (
            {"validators": [{"address": ACTORS.ca1.address, "role": "ca", "label": "x" * 33}]},
            "longer than 32",
        ),
        (
            {
                "validators": [
                    {"address": ACTORS.ca1.address, "role": "ca"},
                    {"address": ACTORS.ca1.address, "role": "operator"},
                ]
            },
            "duplicate",
        ),
        (
            {"trust_anchors": [{"hash": "0x12", "owner": ACTORS.ca1.address}]},
            "trust_anchors[0].hash",
        ),
        ({"threshold": -1}, "threshold"),
        ({"gas_limit": 1000}, "gas_limit"),
        ({"surprise": 1}, "unknown genesis keys"),
        ({"deployer": "nope"}, "deployer"),
    ],
)
def test_parse_rejects(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(GenesisError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_genesis(genesis_doc(**patch))


def test_parse_rejects_missing_chain_id_and_non_object() -> None:
    doc = genesis_doc()
    del doc["chain_id"]
    with pytest.raises(GenesisError, match="chain_id is required"):
        parse_genesis(doc)
    with pytest.raises(GenesisError, match="JSON object"):
        parse_genesis([])  # type: ignore[arg-type]


def test_load_genesis_reports_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "g.json"
    bad.write_text("{not json")
    with pytest.raises(GenesisError, match="cannot read genesis"):
        load_genesis(bad)
    with pytest.raises(GenesisError, match="cannot read genesis"):
        load_genesis(tmp_path / "missing.json")


def test_genesis_is_deterministic_and_deploys_the_registry(artifact: ContractArtifact) -> None:
    cfg = parse_genesis(genesis_doc())
    a = build_genesis(AtomicDB(), cfg, artifact)
    b = build_genesis(AtomicDB(), cfg, artifact)
    assert a.header.hash == b.header.hash
    assert a.contract_address == cfg.contract_address
    names = [len(lg.topics) for lg in a.logs]
    assert names  # ValidatorAdded x3, TrustAnchorAdded x3, ThresholdChanged
    other = build_genesis(AtomicDB(), parse_genesis(genesis_doc(threshold=3)), artifact)
    assert other.header.hash != a.header.hash


def test_constructor_failure_is_reported(artifact: ContractArtifact) -> None:
    # a trust anchor owned by a non-validator makes the constructor revert
    doc = genesis_doc(trust_anchors=[{"hash": "0x" + "11" * 32, "owner": ACTORS.outsider.address}])
    with pytest.raises(GenesisError, match="constructor failed"):
        build_genesis(AtomicDB(), parse_genesis(doc), artifact)


def test_constructor_events_are_indexed_at_block_0(engine: ChainEngine) -> None:
    events = engine.index.events_after(0, 100)
    names = [e.name for e in events]
    assert names.count("ValidatorAdded") == 3
    assert names.count("TrustAnchorAdded") == 3
    assert names[-1] == "ThresholdChanged"
    assert [e.cursor for e in events] == list(range(1, len(events) + 1))
    assert all(e.block_number == 0 and e.tx_hash == GENESIS_TX_HASH for e in events)
    assert engine.index.validator_role(Actors.addr(ACTORS.op1)) == 2
    assert engine.index.validator_role(Actors.addr(ACTORS.outsider)) == 0
    assert {a for a, _, _ in engine.index.trust_anchors()} == {
        ACTORS.ca1_cert_hash,
        ACTORS.ca2_cert_hash,
        ACTORS.op1_key_hash,
    }


def test_restart_with_other_genesis_is_refused(
    tmp_path: Path, engine: ChainEngine, artifact: ContractArtifact
) -> None:
    path = engine.path
    engine.close()
    with pytest.raises(GenesisMismatch, match="another genesis"):
        ChainEngine(path, parse_genesis(genesis_doc(threshold=3)), artifact)
    again = ChainEngine(path, parse_genesis(genesis_doc()), artifact)
    assert again.head.block_number == 0
    again.close()


def test_artifact_path_relative_to_genesis_file(tmp_path: Path, artifact: ContractArtifact) -> None:
    from ledger.contracts import ARTIFACT_PATH

    (tmp_path / "art.json").write_text(ARTIFACT_PATH.read_text())
    p = tmp_path / "g.json"
    p.write_text(json.dumps(genesis_doc(artifact="art.json")))
    cfg = load_genesis(p)
    assert cfg.artifact_path == tmp_path / "art.json"
    assert cfg.load_artifact().bytecode == artifact.bytecode


def test_genesis_document_round_trip(tmp_path: Path) -> None:
    cfg = parse_genesis(genesis_doc(proposal_ttl=3600, deployer="0x" + "ab" * 20))
    assert parse_genesis(genesis_document(cfg)) == cfg
    write_genesis(tmp_path / "g.json", cfg)
    assert load_genesis(tmp_path / "g.json") == cfg
