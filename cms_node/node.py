"""CMS node assembly: HSS, EAP-AKA' authenticator, durable state, CA link and gRPC server."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cms_node.authenticator import EapAkaPrimeAuthenticator
from cms_node.ca_client import IssuanceClient
from cms_node.enrollment_service import EnrollmentService, OperatorIdentity
from cms_node.hss.sqlite_store import SqliteSubscriberStore
from cms_node.lifecycle_service import LifecycleService
from cms_node.state import CmsState
from ledger.backends.base import LedgerBackend
from mpkix._internal.metrics import MetricsServer, serve_metrics
from mpkix.endorsement import PrivateKey
from mpkix.rpc.server import BuiltServer, ServiceSpec, build_server
from mpkix.rpc.tls import TlsConfig, server_credentials
from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc, lifecycle_pb2, lifecycle_pb2_grpc

ENROLLMENT_SERVICE = enrollment_pb2.DESCRIPTOR.services_by_name["Enrollment"].full_name
LIFECYCLE_SERVICE = lifecycle_pb2.DESCRIPTOR.services_by_name["Lifecycle"].full_name
ENDORSEMENT_KEY = "endorsement.key"


def create_endorsement_key(state_dir: Path) -> ec.EllipticCurvePublicKey:
    """Create the operator endorsement key (P-256) unless present; returns its public key."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / ENDORSEMENT_KEY
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.replace(tmp, path)
    pub = load_endorsement_key(state_dir).public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    return pub


def load_endorsement_key(state_dir: Path) -> PrivateKey:
    key = serialization.load_pem_private_key((state_dir / ENDORSEMENT_KEY).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@dataclass
class CmsNodeConfig:
    state_dir: Path
    hss_db: Path
    tls: TlsConfig  # server cert for CMAs and client cert for the CA link (mTLS)
    ca_target: str
    operator_id: str
    network_name: str = "WLAN"
    listen: str = "127.0.0.1:0"
    public_address: str | None = None  # written into ppCerts' SIA; default: the bound address
    session_ttl_s: float = 120.0
    max_message_bytes: int = 64 * 1024
    # Ledger (HOST:PORT or ledger file, ledger/backends/config.py) for user-requested
    # revocation/suspension (Lifecycle service); None: off.
    ledger_target: str | None = None
    # host:port for Prometheus /metrics (cms_node/metrics.py); None: off.
    metrics_listen: str | None = None


class CmsNode:
    """A running CMS node (create inside the event loop that serves it)."""

    def __init__(self, cfg: CmsNodeConfig) -> None:
        if not cfg.hss_db.exists():
            raise FileNotFoundError(f"HSS database {cfg.hss_db} does not exist")
        self.cfg = cfg
        self.hss = SqliteSubscriberStore(cfg.hss_db)
        self.state = CmsState(cfg.state_dir)
        self.authenticator = EapAkaPrimeAuthenticator(
            self.hss, cfg.network_name, session_ttl=cfg.session_ttl_s
        )
        self.ca = IssuanceClient(cfg.ca_target, cfg.tls)
        self.server: BuiltServer | None = None
        self.service: EnrollmentService | None = None
        self.ledger: LedgerBackend | None = None
        self.metrics: MetricsServer | None = None

    async def start(self) -> BuiltServer:
        host = self.cfg.listen.rpartition(":")[0]
        # Bind first when the port is chosen by the OS, so the SIA address is the real one.
        self.service = EnrollmentService(
            self.authenticator,
            self.hss,
            self.state,
            self.ca,
            OperatorIdentity(
                operator_id=self.cfg.operator_id,
                endorsement_key=load_endorsement_key(self.cfg.state_dir),
                cms_address=self.cfg.public_address or self.cfg.listen,
            ),
        )
        if self.cfg.ledger_target:
            from ledger.backends.config import open_backend
            from ledger.validator_key import ensure_validator_key

            key, _ = ensure_validator_key(self.cfg.state_dir)
            self.ledger = await asyncio.to_thread(
                open_backend, self.cfg.ledger_target, self.cfg.tls, private_key=key
            )
        lifecycle = LifecycleService(self.authenticator, self.state, self.ledger)
        self.server = await build_server(
            [
                ServiceSpec(
                    ENROLLMENT_SERVICE,
                    self.service,
                    enrollment_pb2_grpc.add_EnrollmentServicer_to_server,
                ),
                ServiceSpec(
                    LIFECYCLE_SERVICE,
                    lifecycle,
                    lifecycle_pb2_grpc.add_LifecycleServicer_to_server,
                ),
            ],
            self.cfg.listen,
            server_credentials(self.cfg.tls, require_client_auth=False),
            max_message_bytes=self.cfg.max_message_bytes,
        )
        if self.cfg.public_address is None:
            self.service._op = OperatorIdentity(
                operator_id=self.cfg.operator_id,
                endorsement_key=self.service._op.endorsement_key,
                cms_address=f"{host}:{self.server.port}",
            )
        if self.cfg.metrics_listen:
            from cms_node.metrics import CmsCollector

            self.metrics = serve_metrics(CmsCollector(self), self.cfg.metrics_listen)
        return self.server

    async def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.ledger is not None:
            self.ledger.close()
        await self.ca.close()
        self.state.close()
        self.hss.close()
