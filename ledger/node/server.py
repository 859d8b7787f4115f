"""Running a ledger node as a gRPC server (ARCHITECTURE §1: TLS 1.3 with mutual TLS between
nodes, health checking, reflection, graceful shutdown, durable state under the state dir).

:class:`NodeConfig` says where the state lives and how to serve; :func:`serve` runs a node in
the foreground until SIGTERM/SIGINT (``python -m ledger``); :class:`LedgerServer` is the same
node for embedding on an event loop (tests, local clusters; see ``mpkix.rpc.ServerRunner``).

Shutdown: the health status turns NOT_SERVING, live event streams end (followers resume from
their cursor), in-flight calls get ``grace`` seconds, the block being built commits, queued
transactions are refused with UNAVAILABLE (never applied), and the database closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc

from ledger.node.genesis import GenesisError, load_genesis
from ledger.node.node import LedgerNode
from ledger.node.server_args import add_arguments
from ledger.node.service import LedgerService
from mpkix.rpc.server import BuiltServer, ServiceSpec, build_server
from mpkix.rpc.tls import TlsConfig, server_credentials
from mpkix.v1 import ledger_pb2, ledger_pb2_grpc

log = logging.getLogger("ledger.node.server")

LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name


@dataclass
class NodeConfig:
    """Configuration of one ledger node process."""

    state_dir: Path
    genesis: Path
    listen: str = "127.0.0.1:0"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Root that client certificates must chain to; set → mutual TLS (``require_client_auth``).
    tls_ca: Path | None = None
    require_client_auth: bool = True
    max_message_bytes: int = 512 * 1024
    max_block_txs: int = 500
    pool_size: int = 10_000
    gap_timeout_s: float = 5.0
    grace_s: float = 5.0
    # Written with the bound port once serving (useful with ``listen`` port 0).
    port_file: Path | None = None
    metrics_listen: str | None = None

    def credentials(self) -> grpc.ServerCredentials | None:
        """gRPC server credentials, or None for plaintext (loopback only)."""
        if self.tls_cert is None and self.tls_key is None:
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise ValueError("TLS needs both a certificate and a key")
        mutual = self.tls_ca is not None and self.require_client_auth
        tls = TlsConfig(
            ca=self.tls_ca.read_bytes() if self.tls_ca is not None else b"",
            cert=self.tls_cert.read_bytes(),
            key=self.tls_key.read_bytes(),
        )
        return server_credentials(tls, require_client_auth=mutual)


class LedgerServer:
    """A ledger node with its gRPC server; create and start inside the serving event loop."""

    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.node: LedgerNode | None = None
        self.service: LedgerService | None = None
        self.server: BuiltServer | None = None

    async def start(self) -> BuiltServer:
        cfg = self.cfg
        genesis = load_genesis(cfg.genesis)
        loop = asyncio.get_running_loop()
        self.node = await loop.run_in_executor(
            None,
            lambda: LedgerNode(
                cfg.state_dir,
                genesis,
                max_block_txs=cfg.max_block_txs,
                pool_size=cfg.pool_size,
                gap_timeout=cfg.gap_timeout_s,
            ).start(),
        )
        try:
            self.service = LedgerService(self.node)
            self.server = await build_server(
                [
                    ServiceSpec(
                        LEDGER_SERVICE, self.service, ledger_pb2_grpc.add_LedgerServicer_to_server
                    )
                ],
                cfg.listen,
                cfg.credentials(),
                max_message_bytes=cfg.max_message_bytes,
            )
        except BaseException:
            self.node.stop()
            raise
        if cfg.metrics_listen:
            from ledger.node.metrics import serve_metrics

            serve_metrics(self.node, cfg.metrics_listen)
        if cfg.port_file is not None:
            tmp = cfg.port_file.with_suffix(".tmp")
            tmp.write_text(f"{self.server.port}\n")
            os.replace(tmp, cfg.port_file)
        status = self.node.status()
        log.info(
            "ledger node serving on port %d: chain %d, head %d, registry 0x%s",
            self.server.port,
            status.chain_id,
            status.head_number,
            status.contract_address.hex(),
        )
        return self.server

    async def begin_shutdown(self) -> None:
        """Stop advertising health and end live event streams."""
        if self.server is not None:
            await self.server.set_serving(False)
        if self.service is not None:
            await self.service.close()

    async def close(self) -> None:
        """After the gRPC server stopped: finish the block in progress and close the node."""
        await self.begin_shutdown()
        if self.node is not None:
            node, self.node = self.node, None
            await asyncio.get_running_loop().run_in_executor(None, node.stop)

    async def stop(self, grace: float | None = None) -> None:
        await self.begin_shutdown()
        if self.server is not None:
            await self.server.server.stop(self.cfg.grace_s if grace is None else grace)
        await self.close()


async def _serve_until_signal(cfg: NodeConfig) -> None:
    server = LedgerServer(cfg)
    built = await server.start()
    print(f"ledger node serving on port {built.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down (grace %.1f s)", cfg.grace_s)
    await server.stop()


def serve(cfg: NodeConfig) -> int:
    """Run a ledger node in the foreground until SIGTERM/SIGINT; returns the exit status."""
    from ledger.node.chain import GenesisMismatch
    from ledger.node.node import StateDirLocked

    try:
        asyncio.run(_serve_until_signal(cfg))
    except (GenesisError, GenesisMismatch, StateDirLocked, ValueError, OSError) as e:
        log.error("ledger node failed to start: %s", e)
        print(f"error: {e}", flush=True)
        return 2
    return 0


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    return NodeConfig(
        state_dir=args.state_dir,
        genesis=args.genesis,
        listen=args.listen,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        require_client_auth=not args.no_client_auth,
        max_message_bytes=args.max_message_bytes,
        max_block_txs=args.max_block_txs,
        grace_s=args.grace,
        port_file=args.port_file,
        metrics_listen=args.metrics_listen,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger", description="Run an MPKIX ledger node (embedded EVM)."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return serve(config_from_args(args))
