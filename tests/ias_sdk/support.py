"""A real MPKIX world for the IAS SDK tests: a ledger node (py-evm, gRPC over mutual TLS) whose
genesis registers real CA certificates and a real operator key, CAs that issue real ppCerts, and
batches anchored through the contract with the CA validator's key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ca_node.authority import CertificateAuthority
from ca_node.keys import CaMaterial, create_ca
from deploy.pki import init_cluster_pki
from ledger.backends.base import EventSource, RegistryEvent, TxOutcome
from ledger.backends.embedded import EmbeddedBackend
from ledger.contracts import certificate_leaf_entry
from mpkix.endorsement import key_id
from mpkix.merkle import MerkleTree
from mpkix.profile.ppcert import PpCertParams
from mpkix.rpc.tls import TlsConfig
from mpkix.v1 import common_pb2
from tests.ledger.node.conftest import RunningServer, node_config, start_server
from tests.mpkix.profile.helpers import make_ppcsr

CHAIN_ID = 60632
OPERATOR_ID = "310-260"
CMS_ADDRESS = "cms.op-a.example:8443"
DEFAULT_PROFILE = "mss:mpkix:authn:loa3:app"


def account(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(
        hashlib.sha256(b"mpkix-ias-test:" + name.encode()).digest()
    )
    return acct


def der(obj: Any) -> bytes:
    data: bytes = obj.public_bytes(serialization.Encoding.DER)
    return data


def pem(obj: Any) -> bytes:
    data: bytes = obj.public_bytes(serialization.Encoding.PEM)
    return data


@dataclass
class TestCa:
    material: CaMaterial
    authority: CertificateAuthority
    validator: LocalAccount | None
    backend: EmbeddedBackend | None = None

    @property
    def chain_der(self) -> list[bytes]:
        return [der(c) for c in self.material.chain]

    @property
    def cert_hash(self) -> bytes:
        return hashlib.sha256(der(self.material.issuing_cert)).digest()

    @property
    def root_pem(self) -> bytes:
        return pem(self.material.root_cert)


@dataclass
class Issued:
    """One issued and anchored ppCert with its subject's key."""

    key: ec.EllipticCurvePrivateKey
    bundle: common_pb2.CertificateBundle

    @property
    def cert_der(self) -> bytes:
        return bytes(self.bundle.certificate_der)

    @property
    def cert_hash(self) -> bytes:
        return hashlib.sha256(self.cert_der).digest()

    @property
    def inclusion(self) -> common_pb2.MerkleInclusion:
        return self.bundle.inclusion

    def tls_chain_pem(self) -> bytes:
        """Leaf then issuing CA, as a TLS client presents it."""
        from cryptography import x509

        leaf = x509.load_der_x509_certificate(self.cert_der)
        issuing = x509.load_der_x509_certificate(self.bundle.ca_chain_der[0])
        return pem(leaf) + pem(issuing)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass
class World:
    work: Path
    pki: Path
    server: RunningServer
    ca1: TestCa
    ca2: TestCa
    ca3: TestCa  # a second CA anchor owned by ca2's validator (for the removal test)
    rogue: TestCa  # never anchored on the ledger
    operator_key: ec.EllipticCurvePrivateKey
    operator: LocalAccount
    op_backend: EmbeddedBackend
    chain_id: int
    registry: bytes
    _sources: list[EmbeddedBackend] = field(default_factory=list)

    @property
    def operator_key_hash(self) -> bytes:
        return key_id(self.operator_key.public_key())

    @property
    def target(self) -> str:
        return self.server.target

    def tls(self, name: str = "ias") -> TlsConfig:
        return TlsConfig.from_dir(self.pki, name)

    def source(self) -> EmbeddedBackend:
        """A fresh read-only connection (closed at the end of the session)."""
        b = EmbeddedBackend.connect(self.target, self.tls(), timeout=20)
        self._sources.append(b)
        return b

    def backend_for(self, acct: LocalAccount) -> EmbeddedBackend:
        b = EmbeddedBackend.connect(
            self.target, self.tls("ca-node"), private_key=acct.key, timeout=20
        )
        self._sources.append(b)
        return b

    def issue_batch(
        self,
        n: int = 1,
        *,
        ca: TestCa | None = None,
        anchor_as: TestCa | None = None,
        profile: str = DEFAULT_PROFILE,
        operator_id: str = OPERATOR_ID,
        operator_key_hash: bytes | None = None,
        validity_days: int = 365,
    ) -> list[Issued]:
        """Issue ``n`` ppCerts with ``ca`` and anchor their batch with ``anchor_as``'s key."""
        ca = ca or self.ca1
        anchor_as = anchor_as or ca
        op_hash = self.operator_key_hash if operator_key_hash is None else operator_key_hash
        params = PpCertParams(
            operator_id=operator_id,
            cms_address=CMS_ADDRESS,
            signature_profile=profile,
            validity_days=validity_days,
        )
        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(n)]
        ders = [der(ca.authority.issue(make_ppcsr(k), params)) for k in keys]
        tree = MerkleTree(
            [certificate_leaf_entry(hashlib.sha256(d).digest(), op_hash) for d in ders]
        )
        assert anchor_as.backend is not None
        out = anchor_as.backend.transact("anchor_batch", tree.root, n, anchor_as.cert_hash)
        assert out.success, out.revert_reason
        batch_id = next(int(e.args["batch_id"]) for e in out.events if e.name == "BatchAnchored")
        issued = []
        for i, (k, d) in enumerate(zip(keys, ders, strict=True)):
            inc = common_pb2.MerkleInclusion(
                batch_id=batch_id,
                leaf_index=i,
                tree_size=n,
                audit_path=tree.audit_path(i),
                root=tree.root,
                issuer_ca_sha256=anchor_as.cert_hash,
                anchor_tx_hash=out.tx_hash,
                operator_key_hash=op_hash,
                chain_id=self.chain_id,
                registry_address=self.registry,
            )
            bundle = common_pb2.CertificateBundle(
                certificate_der=d, ca_chain_der=ca.chain_der, inclusion=inc
            )
            issued.append(Issued(k, bundle))
        return issued

    def status_change(
        self, function: str, issued: Issued, *extra: Any, by: EmbeddedBackend | None = None
    ) -> TxOutcome:
        """``revoke``/``suspend``/``resume`` through the contract, with the Merkle proof."""
        inc = issued.inclusion
        backend = by or self.ca1.backend
        assert backend is not None
        out = backend.transact(
            function,
            issued.cert_hash,
            bytes(inc.operator_key_hash),
            inc.batch_id,
            inc.leaf_index,
            list(inc.audit_path),
            *extra,
        )
        assert out.success, out.revert_reason
        return out

    def close(self) -> None:
        for b in self._sources:
            b.close()


def build_world(work: Path) -> World:
    pki = work / "pki"
    pki.mkdir()
    init_cluster_pki(pki, ["ledger", "ca-node", "ias", "ias-server"])
    ca1_acct, ca2_acct, op_acct = account("ca1"), account("ca2"), account("op1")
    ca1 = create_ca(work / "ca1", name="Test CA One")
    ca2 = create_ca(work / "ca2", name="Test CA Two")
    ca3 = create_ca(work / "ca3", name="Test CA Three")
    rogue = create_ca(work / "rogue", name="Rogue CA")
    op_key = ec.generate_private_key(ec.SECP256R1())
    world_cas = {
        "ca1": TestCa(ca1, CertificateAuthority(ca1.issuing_key, ca1.chain), ca1_acct),
        "ca2": TestCa(ca2, CertificateAuthority(ca2.issuing_key, ca2.chain), ca2_acct),
        "ca3": TestCa(ca3, CertificateAuthority(ca3.issuing_key, ca3.chain), ca2_acct),
        "rogue": TestCa(rogue, CertificateAuthority(rogue.issuing_key, rogue.chain), None),
    }
    genesis = {
        "chain_id": CHAIN_ID,
        "validators": [
            {"address": ca1_acct.address, "role": "ca", "label": "ca-1"},
            {"address": op_acct.address, "role": "operator", "label": OPERATOR_ID},
            {"address": ca2_acct.address, "role": "ca", "label": "ca-2"},
        ],
        "trust_anchors": [
            {"hash": "0x" + world_cas["ca1"].cert_hash.hex(), "owner": ca1_acct.address},
            {"hash": "0x" + key_id(op_key.public_key()).hex(), "owner": op_acct.address},
            {"hash": "0x" + world_cas["ca2"].cert_hash.hex(), "owner": ca2_acct.address},
            {"hash": "0x" + world_cas["ca3"].cert_hash.hex(), "owner": ca2_acct.address},
        ],
        "threshold": 0,
    }
    genesis_path = work / "genesis.json"
    genesis_path.write_text(json.dumps(genesis))
    server = start_server(node_config(work / "ledger-state", genesis_path, pki))
    status_backend = EmbeddedBackend.connect(server.target, TlsConfig.from_dir(pki, "ias"))
    st = status_backend.status()
    status_backend.close()
    world = World(
        work=work,
        pki=pki,
        server=server,
        ca1=world_cas["ca1"],
        ca2=world_cas["ca2"],
        ca3=world_cas["ca3"],
        rogue=world_cas["rogue"],
        operator_key=op_key,
        operator=op_acct,
        op_backend=None,  # type: ignore[arg-type]
        chain_id=st.chain_id,
        registry=st.registry_address,
    )
    world.ca1.backend = world.backend_for(ca1_acct)
    world.ca2.backend = world.backend_for(ca2_acct)
    world.ca3.backend = world.ca2.backend
    world.op_backend = world.backend_for(op_acct)
    return world


class CountingSource:
    """Wraps a real event source and counts the events it hands out (a test spy)."""

    def __init__(self, inner: EventSource, *, stop_at: int | None = None) -> None:
        self.inner = inner
        self.fetched: list[int] = []
        self.stop_at = stop_at  # hide events after this cursor (a ledger "as of" cursor)

    def status(self) -> Any:
        st = self.inner.status()
        if self.stop_at is not None and st.event_cursor > self.stop_at:
            from dataclasses import replace

            st = replace(st, event_cursor=self.stop_at)
        return st

    def events_after(self, cursor: int, limit: int = 1000) -> list[RegistryEvent]:
        events = self.inner.events_after(cursor, limit)
        if self.stop_at is not None:
            events = [e for e in events if e.cursor <= self.stop_at]
        self.fetched.extend(e.cursor for e in events)
        return events

    def close(self) -> None:
        self.inner.close()


class FaultySource:
    """A real source whose page at ``bad_cursor`` carries a corrupted event."""

    def __init__(
        self, inner: EventSource, bad_cursor: int, corrupt: Callable[[RegistryEvent], RegistryEvent]
    ) -> None:
        self.inner = inner
        self.bad_cursor = bad_cursor
        self.corrupt = corrupt

    def status(self) -> Any:
        return self.inner.status()

    def events_after(self, cursor: int, limit: int = 1000) -> list[RegistryEvent]:
        return [
            self.corrupt(e) if e.cursor == self.bad_cursor else e
            for e in self.inner.events_after(cursor, limit)
        ]

    def close(self) -> None:
        self.inner.close()
