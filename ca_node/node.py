"""CA node assembly: CA key material, issued store, operator keys and the gRPC server."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from ca_node.admin_service import DEFAULT_ADMINS, CaAdminService
from ca_node.anchoring import AnchorBatcher, leaf_entry
from ca_node.authority import CertificateAuthority
from ca_node.issuance_service import IssuancePolicy, IssuanceService
from ca_node.ledger_anchor import RegistryAnchorer
from ca_node.revocation import CaRevoker
from ca_node.store import IssuedStore
from mpkix._internal.metrics import MetricsServer, serve_metrics
from mpkix.endorsement import OperatorKeyRegistry, StaticOperatorKeys
from mpkix.rpc.server import BuiltServer, ServiceSpec, build_server
from mpkix.rpc.tls import TlsConfig, server_credentials
from mpkix.v1 import ca_admin_pb2, ca_admin_pb2_grpc, issuance_pb2, issuance_pb2_grpc

if TYPE_CHECKING:
    from ledger.backends.base import LedgerBackend

ISSUANCE_SERVICE = issuance_pb2.DESCRIPTOR.services_by_name["Issuance"].full_name
CA_ADMIN_SERVICE = ca_admin_pb2.DESCRIPTOR.services_by_name["CaAdmin"].full_name


@dataclass
class CaNodeConfig:
    """Where a CA node keeps its state and how it serves.

    ``state_dir/ca`` holds the CA key and chain (``mpkix ca init``), ``state_dir/issued.sqlite``
    the issued certificates, ``state_dir/operators.json`` the registered operator keys.
    """

    state_dir: Path
    tls: TlsConfig
    listen: str = "127.0.0.1:0"
    validity_days: int = 365
    endorsement_max_age_s: int = 300
    ca_passphrase: bytes | None = None
    operators: OperatorKeyRegistry | None = None
    max_message_bytes: int = 1024 * 1024
    # Ledger (HOST:PORT of an embedded node or a ledger file, ledger/backends/config.py) where
    # issued batches are anchored; None: no anchoring.
    ledger_target: str | None = None
    anchor_window_s: float = 0.2
    anchor_timeout_s: float = 20.0
    # Common names of the mutual-TLS client certificates allowed to call CaAdmin.
    admin_clients: frozenset[str] = DEFAULT_ADMINS
    # host:port for Prometheus /metrics (ca_node/metrics.py); None: off.
    metrics_listen: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


class CaNode:
    """A running CA node (create inside the event loop that serves it)."""

    def __init__(self, cfg: CaNodeConfig) -> None:
        self.cfg = cfg
        self.authority = CertificateAuthority.load(cfg.state_dir / "ca", cfg.ca_passphrase)
        self.store = IssuedStore(cfg.state_dir / "issued.sqlite")
        operators = cfg.operators or StaticOperatorKeys.from_file(
            cfg.state_dir / "operators.json"
        )
        self._operators = operators
        self.server: BuiltServer | None = None
        self.batcher: AnchorBatcher | None = None
        self.backend: LedgerBackend | None = None
        self.service: IssuanceService | None = None
        self.metrics: MetricsServer | None = None

    async def _start_anchoring(self) -> AnchorBatcher:
        from ledger.backends.config import open_backend
        from ledger.validator_key import ensure_validator_key

        assert self.cfg.ledger_target is not None
        key, _ = ensure_validator_key(self.cfg.state_dir)
        backend = await asyncio.to_thread(
            open_backend, self.cfg.ledger_target, self.cfg.tls, private_key=key
        )
        self.backend = backend
        issuing_der = self.authority.certificate.public_bytes(serialization.Encoding.DER)
        anchorer = await asyncio.to_thread(RegistryAnchorer, backend, issuing_der)
        batcher = AnchorBatcher(
            str(self.cfg.state_dir / "issued.sqlite"),
            anchorer,
            window_s=self.cfg.anchor_window_s,
        )
        await batcher.start(
            [(serial, leaf_entry(der, opkh)) for serial, der, opkh in self.store.unbatched()]
        )
        return batcher

    async def start(self) -> BuiltServer:
        if self.cfg.ledger_target:
            self.batcher = await self._start_anchoring()
        self.service = IssuanceService(
            self.authority,
            self._operators,
            self.store,
            IssuancePolicy(
                validity=dt.timedelta(days=self.cfg.validity_days),
                endorsement_max_age=dt.timedelta(seconds=self.cfg.endorsement_max_age_s),
                anchor_timeout=dt.timedelta(seconds=self.cfg.anchor_timeout_s),
            ),
            batcher=self.batcher,
        )
        self.server = await build_server(
            [
                ServiceSpec(
                    ISSUANCE_SERVICE,
                    self.service,
                    issuance_pb2_grpc.add_IssuanceServicer_to_server,
                ),
                ServiceSpec(
                    CA_ADMIN_SERVICE,
                    CaAdminService(self._revoker(), self.cfg.admin_clients),
                    ca_admin_pb2_grpc.add_CaAdminServicer_to_server,
                ),
            ],
            self.cfg.listen,
            server_credentials(self.cfg.tls, require_client_auth=True),
            max_message_bytes=self.cfg.max_message_bytes,
        )
        if self.cfg.metrics_listen:
            from ca_node.metrics import CaCollector

            self.metrics = serve_metrics(CaCollector(self), self.cfg.metrics_listen)
        return self.server

    def _revoker(self) -> CaRevoker | None:
        if self.backend is None:
            return None
        return CaRevoker(
            self.store,
            self.cfg.state_dir / "issued.sqlite",
            self.authority.certificate.public_bytes(serialization.Encoding.DER),
            self.backend,
        )

    async def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.batcher is not None:
            await self.batcher.close()
        if self.backend is not None:
            self.backend.close()
        self.store.close()
