"""CA node assembly: CA key material, issued store, operator keys and the gRPC server."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from ca_node.authority import CertificateAuthority
from ca_node.issuance_service import IssuancePolicy, IssuanceService
from ca_node.store import IssuedStore
from mpkix.endorsement import OperatorKeyRegistry, StaticOperatorKeys
from mpkix.rpc.server import BuiltServer, ServiceSpec, build_server
from mpkix.rpc.tls import TlsConfig, server_credentials
from mpkix.v1 import issuance_pb2, issuance_pb2_grpc

ISSUANCE_SERVICE = issuance_pb2.DESCRIPTOR.services_by_name["Issuance"].full_name


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
        self.service = IssuanceService(
            self.authority,
            operators,
            self.store,
            IssuancePolicy(
                validity=dt.timedelta(days=cfg.validity_days),
                endorsement_max_age=dt.timedelta(seconds=cfg.endorsement_max_age_s),
            ),
        )
        self.server: BuiltServer | None = None

    async def start(self) -> BuiltServer:
        self.server = await build_server(
            [
                ServiceSpec(
                    ISSUANCE_SERVICE,
                    self.service,
                    issuance_pb2_grpc.add_IssuanceServicer_to_server,
                )
            ],
            self.cfg.listen,
            server_credentials(self.cfg.tls, require_client_auth=True),
            max_message_bytes=self.cfg.max_message_bytes,
        )
        return self.server

    async def close(self) -> None:
        self.store.close()
