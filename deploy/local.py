"""A local MPKIX cluster on 127.0.0.1 with TLS: one CA node and one CMS node per operator,
each on its own event-loop thread (Boulder-style harness for tests, demo and benchmarks).

Everything lives under ``workdir``: ``tls/`` (cluster PKI), ``ca/`` (CA state), and
``cms-<operator>/`` per operator. The HSS database of each operator is given by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ca_node.admin_service import DEFAULT_ADMINS
from ca_node.keys import ISSUING_KEY_FILE, create_ca
from ca_node.node import CaNode, CaNodeConfig
from cms_node.node import CmsNode, CmsNodeConfig, create_endorsement_key
from deploy.pki import init_cluster_pki
from mpkix.endorsement import PublicKey, StaticOperatorKeys
from mpkix.rpc.server import BuiltServer, ServerRunner
from mpkix.rpc.tls import TlsConfig

ADMIN_NODE = next(iter(DEFAULT_ADMINS))  # the CA administrator client certificate (CaAdmin)


@dataclass
class OperatorSpec:
    operator_id: str
    hss_db: Path
    network_name: str = "WLAN"
    node_name: str = ""

    def __post_init__(self) -> None:
        if not self.node_name:
            self.node_name = "cms-" + self.operator_id.replace("-", "")


@dataclass
class LocalCluster:
    workdir: Path
    operators: list[OperatorSpec]
    ca_name: str = "MPKIX Demo CA"
    validity_days: int = 365
    ca_node_name: str = "ca-1"
    runners: list[ServerRunner] = field(default_factory=list)
    ca_port: int = 0
    cms_ports: dict[str, int] = field(default_factory=dict)
    ca: CaNode | None = None
    cms: dict[str, CmsNode] = field(default_factory=dict)
    # Run an embedded ledger node and anchor issued certificates on it (ARCHITECTURE §2.4).
    with_ledger: bool = False
    ledger_node_name: str = "ledger-1"
    ledger_port: int = 0
    anchor_window_s: float = 0.1
    ledger: Any = None
    # A ledger node run elsewhere (e.g. its own process, ``python -m ledger``) at host:port:
    # the genesis is still written under ``workdir`` but no in-process node is started.
    external_ledger_target: str | None = None
    # Serve Prometheus /metrics from the CA and CMS nodes on free ports (node.metrics.port).
    metrics: bool = False

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "tls"

    def tls(self, node: str) -> TlsConfig:
        return TlsConfig.from_dir(self.tls_dir, node)

    def client_tls(self) -> TlsConfig:
        """What a CMA needs: the cluster root to authenticate the CMS (no client cert)."""
        return TlsConfig(ca=(self.tls_dir / "ca.pem").read_bytes())

    def prepare(self) -> None:
        """Create the cluster PKI, the CA and each operator's endorsement key (idempotent)."""
        init_cluster_pki(
            self.tls_dir,
            [
                self.ca_node_name,
                self.ledger_node_name,
                ADMIN_NODE,
                *(o.node_name for o in self.operators),
            ],
        )
        ca_dir = self.workdir / "ca" / "ca"
        if not (ca_dir / ISSUING_KEY_FILE).exists():
            create_ca(ca_dir, name=self.ca_name)
        keys: dict[str, list[PublicKey]] = {}
        for op in self.operators:
            keys[op.operator_id] = [create_endorsement_key(self.cms_dir(op))]
        StaticOperatorKeys.write(self.workdir / "ca" / "operators.json", keys)
        if self.uses_ledger and not self.genesis_path.exists():
            from deploy.genesis import cluster_genesis
            from ledger.node.genesis import write_genesis

            write_genesis(
                self.genesis_path,
                cluster_genesis(
                    [self.workdir / "ca"],
                    {op.operator_id: self.cms_dir(op) for op in self.operators},
                ),
            )

    @property
    def genesis_path(self) -> Path:
        return self.workdir / "genesis.json"

    @property
    def uses_ledger(self) -> bool:
        """Whether the CA and CMS nodes anchor on (and revoke through) a ledger."""
        return self.with_ledger or self.external_ledger_target is not None

    @property
    def ledger_target(self) -> str:
        if self.external_ledger_target is not None:
            return self.external_ledger_target
        return f"127.0.0.1:{self.ledger_port}"

    def _start_ledger(self) -> None:
        from ledger.node.server import LedgerServer, NodeConfig

        tls = self.tls_dir

        async def make_ledger() -> BuiltServer:
            self.ledger = LedgerServer(
                NodeConfig(
                    state_dir=self.workdir / "ledger",
                    genesis=self.genesis_path,
                    listen="127.0.0.1:0",
                    tls_cert=tls / f"{self.ledger_node_name}.pem",
                    tls_key=tls / f"{self.ledger_node_name}.key",
                    tls_ca=tls / "ca.pem",
                )
            )
            built: BuiltServer = await self.ledger.start()
            return built

        runner = ServerRunner(make_ledger, name="ledger-node")
        self.ledger_port = runner.start(timeout=120)

        async def close() -> None:
            await self.ledger.close()

        runner.on_stop.append(close)
        self.runners.append(runner)

    def cms_dir(self, op: OperatorSpec) -> Path:
        return self.workdir / op.node_name

    def start(self) -> None:
        self.prepare()
        if self.with_ledger and self.external_ledger_target is None:
            self._start_ledger()

        async def make_ca() -> BuiltServer:
            self.ca = CaNode(
                CaNodeConfig(
                    state_dir=self.workdir / "ca",
                    tls=self.tls(self.ca_node_name),
                    validity_days=self.validity_days,
                    ledger_target=self.ledger_target if self.uses_ledger else None,
                    anchor_window_s=self.anchor_window_s,
                    metrics_listen="127.0.0.1:0" if self.metrics else None,
                )
            )
            return await self.ca.start()

        ca_runner = ServerRunner(make_ca, name="ca-node")
        self.ca_port = ca_runner.start()

        async def close_ca() -> None:
            if self.ca is not None:
                await self.ca.close()

        ca_runner.on_stop.append(close_ca)
        self.runners.append(ca_runner)
        for op in self.operators:
            self._start_cms(op)

    def _start_cms(self, op: OperatorSpec) -> None:
        async def make_cms() -> BuiltServer:
            node = CmsNode(
                CmsNodeConfig(
                    state_dir=self.cms_dir(op),
                    hss_db=op.hss_db,
                    tls=self.tls(op.node_name),
                    ca_target=f"127.0.0.1:{self.ca_port}",
                    operator_id=op.operator_id,
                    network_name=op.network_name,
                    metrics_listen="127.0.0.1:0" if self.metrics else None,
                    ledger_target=self.ledger_target if self.uses_ledger else None,
                )
            )
            self.cms[op.operator_id] = node
            return await node.start()

        runner = ServerRunner(make_cms, name=f"cms-node-{op.operator_id}")
        self.cms_ports[op.operator_id] = runner.start()

        async def close() -> None:
            await self.cms[op.operator_id].close()

        runner.on_stop.append(close)
        self.runners.append(runner)

    def stop(self) -> None:
        for r in reversed(self.runners):
            r.stop()
        self.runners.clear()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
