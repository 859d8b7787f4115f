"""Genesis configuration and the genesis state with the registry deployed (decision 0504).

The genesis JSON (ARCHITECTURE §2.4) names the chain, the initial validators (CA nodes and
operator CMS nodes), the initial trust anchors and the approval threshold::

    {
      "chain_id": 6063,
      "validators": [{"address": "0x…", "role": "ca", "label": "ca-1"},
                     {"address": "0x…", "role": "operator", "label": "310-260"}],
      "trust_anchors": [{"hash": "0x<sha256 of CA cert DER or operator key SPKI>",
                         "owner": "0x…"}],
      "threshold": 0,            # 0: majority of the validators
      "proposal_ttl": 0,         # seconds a governance proposal stays open; 0: forever
      "gas_limit": 100000000,    # optional
      "timestamp": 0,            # optional, genesis block time
      "deployer": "0x…",         # optional; the registry is at address(deployer, nonce 0)
      "validator_balance_wei": "1000000000000000000000000",   # optional
      "artifact": "path/to/CertificateRegistry.json"          # optional, relative to the file
    }

The registry is deployed *in* the genesis state: the constructor runs once, as a contract
creation from ``deployer`` with nonce 0, and its code, storage and the deployer's nonce become
part of block 0. No key signs it, so the node holds no secret, and every node given the same
file computes the same genesis hash and contract address. The default deployer is an address
derived from a hash (``keccak("mpkix.ledger.genesis-deployer")[12:]``), for which no key exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp
from eth.abc import AtomicDatabaseAPI, BlockHeaderAPI
from eth.constants import BLANK_ROOT_HASH
from eth.vm.chain_context import ChainContext
from eth.vm.spoof import SpoofTransaction
from eth_abi.abi import encode as abi_encode
from eth_typing import Address
from eth_utils.address import is_hex_address, to_canonical_address, to_checksum_address
from eth_utils.crypto import keccak

from ledger.contracts import ContractArtifact, Role, load_artifact
from ledger.node.evm import MpkixVM, genesis_header

DEFAULT_DEPLOYER = keccak(b"mpkix.ledger.genesis-deployer")[12:]
DEFAULT_GAS_LIMIT = 100_000_000
DEFAULT_VALIDATOR_BALANCE = 10**24
SUPPORTED_EVM_VERSIONS = ("london", "paris", "shanghai", "cancun", "prague")


class GenesisError(ValueError):
    """The genesis configuration is invalid."""


@dataclass(frozen=True)
class GenesisValidator:
    address: bytes
    role: Role
    label: bytes  # 32 bytes


@dataclass(frozen=True)
class GenesisAnchor:
    anchor_hash: bytes  # 32 bytes
    owner: bytes


@dataclass(frozen=True)
class GenesisConfig:
    """The parsed genesis file (see the module docstring for the JSON form)."""

    chain_id: int
    validators: tuple[GenesisValidator, ...]
    trust_anchors: tuple[GenesisAnchor, ...] = ()
    threshold: int = 0
    proposal_ttl: int = 0
    gas_limit: int = DEFAULT_GAS_LIMIT
    timestamp: int = 0
    deployer: bytes = DEFAULT_DEPLOYER
    validator_balance: int = DEFAULT_VALIDATOR_BALANCE
    artifact_path: Path | None = field(default=None, compare=False)

    @property
    def contract_address(self) -> bytes:
        """The registry address: CREATE address of (deployer, nonce 0)."""
        return contract_address_for(self.deployer, 0)

    def load_artifact(self) -> ContractArtifact:
        return load_artifact(self.artifact_path)

    def identity(self, artifact: ContractArtifact) -> str:
        """A digest of everything that determines block 0 (stored; checked on restart)."""
        doc = {
            "chain_id": self.chain_id,
            "validators": [[v.address.hex(), int(v.role), v.label.hex()] for v in self.validators],
            "trust_anchors": [[a.anchor_hash.hex(), a.owner.hex()] for a in self.trust_anchors],
            "threshold": self.threshold,
            "proposal_ttl": self.proposal_ttl,
            "gas_limit": self.gas_limit,
            "timestamp": self.timestamp,
            "deployer": self.deployer.hex(),
            "validator_balance": str(self.validator_balance),
            "bytecode_sha256": hashlib.sha256(artifact.bytecode).hexdigest(),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def contract_address_for(sender: bytes, nonce: int) -> bytes:
    """CREATE address (Yellow Paper eq. 86): ``keccak(rlp([sender, nonce]))[12:]``."""
    return bytes(keccak(rlp.encode([sender, nonce]))[12:])


def _address(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not is_hex_address(value):
        raise GenesisError(f"{what}: expected a 0x-prefixed 20-byte hex address, got {value!r}")
    return bytes(to_canonical_address(value))


def _bytes32(value: Any, what: str) -> bytes:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise GenesisError(f"{what}: expected 0x-prefixed 32-byte hex, got {value!r}")


def _label(value: Any, what: str) -> bytes:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        return _bytes32(value, what)
    if not isinstance(value, str):
        raise GenesisError(f"{what}: expected a string label, got {value!r}")
    raw = value.encode("utf-8")
    if len(raw) > 32:
        raise GenesisError(f"{what}: label longer than 32 bytes: {value!r}")
    return raw.ljust(32, b"\x00")


def _role(value: Any, what: str) -> Role:
    names = {"ca": Role.CA, "operator": Role.OPERATOR}
    if isinstance(value, str) and value.lower() in names:
        return names[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2):
        return Role(value)
    raise GenesisError(f"{what}: role must be 'ca' or 'operator', got {value!r}")


def _int(value: Any, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise GenesisError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value, 0)
        except ValueError:
            raise GenesisError(f"{what}: expected an integer, got {value!r}") from None
    if not isinstance(value, int) or value < minimum:
        raise GenesisError(f"{what}: expected an integer >= {minimum}, got {value!r}")
    return value


_KNOWN_KEYS = {
    "chain_id",
    "validators",
    "trust_anchors",
    "threshold",
    "proposal_ttl",
    "gas_limit",
    "timestamp",
    "deployer",
    "validator_balance_wei",
    "artifact",
    "comment",
}


def parse_genesis(doc: Mapping[str, Any], base_dir: Path | None = None) -> GenesisConfig:
    """Validate and parse a genesis document; ``base_dir`` resolves a relative artifact path."""
    if not isinstance(doc, Mapping):
        raise GenesisError("genesis must be a JSON object")
    unknown = set(doc) - _KNOWN_KEYS
    if unknown:
        raise GenesisError(f"unknown genesis keys: {sorted(unknown)}")
    if "chain_id" not in doc:
        raise GenesisError("chain_id is required")
    chain_id = _int(doc["chain_id"], "chain_id", minimum=1)
    if chain_id >= 2**64:
        raise GenesisError("chain_id must fit in 64 bits")
    raw_validators = doc.get("validators")
    if not isinstance(raw_validators, Sequence) or not raw_validators:
        raise GenesisError("validators: at least one validator is required")
    validators = []
    for i, v in enumerate(raw_validators):
        if not isinstance(v, Mapping):
            raise GenesisError(f"validators[{i}]: expected an object")
        validators.append(
            GenesisValidator(
                address=_address(v.get("address"), f"validators[{i}].address"),
                role=_role(v.get("role"), f"validators[{i}].role"),
                label=_label(v.get("label", ""), f"validators[{i}].label"),
            )
        )
    if len({v.address for v in validators}) != len(validators):
        raise GenesisError("validators: duplicate address")
    anchors = []
    for i, a in enumerate(doc.get("trust_anchors", [])):
        if not isinstance(a, Mapping):
            raise GenesisError(f"trust_anchors[{i}]: expected an object")
        anchors.append(
            GenesisAnchor(
                anchor_hash=_bytes32(a.get("hash"), f"trust_anchors[{i}].hash"),
                owner=_address(a.get("owner"), f"trust_anchors[{i}].owner"),
            )
        )
    artifact_path = None
    if "artifact" in doc:
        if not isinstance(doc["artifact"], str):
            raise GenesisError("artifact: expected a path string")
        artifact_path = Path(doc["artifact"])
        if not artifact_path.is_absolute() and base_dir is not None:
            artifact_path = base_dir / artifact_path
    gas_limit = _int(doc.get("gas_limit", DEFAULT_GAS_LIMIT), "gas_limit", minimum=5_000_000)
    return GenesisConfig(
        chain_id=chain_id,
        validators=tuple(validators),
        trust_anchors=tuple(anchors),
        threshold=_int(doc.get("threshold", 0), "threshold"),
        proposal_ttl=_int(doc.get("proposal_ttl", 0), "proposal_ttl"),
        gas_limit=gas_limit,
        timestamp=_int(doc.get("timestamp", 0), "timestamp"),
        deployer=(_address(doc["deployer"], "deployer") if "deployer" in doc else DEFAULT_DEPLOYER),
        validator_balance=_int(
            doc.get("validator_balance_wei", DEFAULT_VALIDATOR_BALANCE), "validator_balance_wei"
        ),
        artifact_path=artifact_path,
    )


def genesis_document(cfg: GenesisConfig) -> dict[str, Any]:
    """The JSON document of ``cfg`` (``parse_genesis(genesis_document(cfg)) == cfg``)."""
    role_names = {Role.CA: "ca", Role.OPERATOR: "operator"}
    doc: dict[str, Any] = {
        "chain_id": cfg.chain_id,
        "validators": [
            {
                "address": to_checksum_address(v.address),
                "role": role_names[v.role],
                "label": "0x" + v.label.hex(),
            }
            for v in cfg.validators
        ],
        "trust_anchors": [
            {"hash": "0x" + a.anchor_hash.hex(), "owner": to_checksum_address(a.owner)}
            for a in cfg.trust_anchors
        ],
        "threshold": cfg.threshold,
        "proposal_ttl": cfg.proposal_ttl,
        "gas_limit": cfg.gas_limit,
        "timestamp": cfg.timestamp,
        "deployer": to_checksum_address(cfg.deployer),
        "validator_balance_wei": str(cfg.validator_balance),
    }
    if cfg.artifact_path is not None:
        doc["artifact"] = str(cfg.artifact_path)
    return doc


def write_genesis(path: Path | str, cfg: GenesisConfig) -> None:
    """Write ``cfg`` as a genesis JSON file (what ``mpkix cluster`` hands every ledger node)."""
    Path(path).write_text(json.dumps(genesis_document(cfg), indent=2) + "\n", encoding="utf-8")


def load_genesis(path: Path | str) -> GenesisConfig:
    """Read and parse a genesis JSON file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise GenesisError(f"cannot read genesis file {p}: {e}") from e
    return parse_genesis(doc, base_dir=p.parent)


def constructor_arguments(cfg: GenesisConfig) -> dict[str, Any]:
    """Values for the registry constructor's parameters, by parameter name."""
    return {
        "validators": [v.address for v in cfg.validators],
        "roles": [int(v.role) for v in cfg.validators],
        "labels": [v.label for v in cfg.validators],
        "anchor_hashes": [a.anchor_hash for a in cfg.trust_anchors],
        "anchor_owners": [a.owner for a in cfg.trust_anchors],
        "threshold": cfg.threshold,
        "proposal_ttl": cfg.proposal_ttl,
    }


def deployment_code(cfg: GenesisConfig, artifact: ContractArtifact) -> bytes:
    """Init code plus ABI-encoded constructor arguments, matched to the ABI by name."""
    ctor = next((e for e in artifact.abi if e.get("type") == "constructor"), None)
    inputs = ctor["inputs"] if ctor else []
    values = constructor_arguments(cfg)
    missing = [i["name"] for i in inputs if i["name"] not in values]
    if missing:
        raise GenesisError(f"the contract constructor needs arguments the genesis lacks: {missing}")
    types = [i["type"] for i in inputs]
    return artifact.bytecode + abi_encode(types, [values[i["name"]] for i in inputs])


@dataclass(frozen=True)
class GenesisLog:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class GenesisResult:
    header: BlockHeaderAPI
    contract_address: bytes
    logs: tuple[GenesisLog, ...]
    gas_used: int


def build_genesis(
    db: AtomicDatabaseAPI, cfg: GenesisConfig, artifact: ContractArtifact
) -> GenesisResult:
    """Write the genesis state into ``db`` and return the genesis header and deploy logs."""
    if artifact.evm_version not in SUPPORTED_EVM_VERSIONS:
        raise GenesisError(
            f"the contract targets EVM {artifact.evm_version!r}; this node runs up to prague"
        )
    context_header = genesis_header(
        gas_limit=cfg.gas_limit,
        timestamp=cfg.timestamp,
        base_fee_per_gas=0,
        state_root=BLANK_ROOT_HASH,
    )
    state = MpkixVM.build_state(db, context_header, ChainContext(cfg.chain_id), ())
    for v in cfg.validators:
        state.set_balance(Address(v.address), cfg.validator_balance)
    builder: Any = MpkixVM.get_transaction_builder()
    creation = builder.new_unsigned_dynamic_fee_transaction(
        chain_id=cfg.chain_id,
        nonce=0,
        max_priority_fee_per_gas=0,
        max_fee_per_gas=0,
        gas=cfg.gas_limit,
        to=b"",
        value=0,
        data=deployment_code(cfg, artifact),
        access_list=(),
    )
    spoof: Any = SpoofTransaction(creation, from_=cfg.deployer)
    computation = state.apply_transaction(spoof)
    if computation.is_error:
        raise GenesisError(f"the registry constructor failed: {computation.error!r}")
    address = cfg.contract_address
    if not state.get_code(Address(address)):
        raise GenesisError("the registry constructor left no code")
    state.persist()
    header = genesis_header(
        gas_limit=cfg.gas_limit,
        timestamp=cfg.timestamp,
        base_fee_per_gas=0,
        state_root=state.state_root,
        extra_data=b"mpkix-ledger",
    )
    logs = tuple(
        GenesisLog(
            address=bytes(addr),
            topics=tuple(t.to_bytes(32, "big") for t in topics),
            data=bytes(data),
        )
        for addr, topics, data in computation.get_log_entries()
    )
    return GenesisResult(
        header=header,
        contract_address=address,
        logs=logs,
        gas_used=computation.get_gas_used(),
    )
