"""TLS material for MPKIX servers and clients.

Every link is TLS (ARCHITECTURE §3); links between nodes (CMS → CA, nodes → ledger) are mutual
TLS under the cluster's TLS root; the CMA ↔ CMS link authenticates the server by TLS and the
subscriber by EAP-AKA' (paper §4.1.1). gRPC's BoringSSL negotiates TLS 1.3 with any current peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import grpc


@dataclass(frozen=True)
class TlsConfig:
    """PEM material of one endpoint.

    ``cert``/``key`` identify this endpoint (server certificate, or client certificate for mTLS);
    ``ca`` is the root(s) used to verify the peer.
    """

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def from_files(
        cls, ca: Path | str, cert: Path | str | None = None, key: Path | str | None = None
    ) -> TlsConfig:
        return cls(
            ca=Path(ca).read_bytes(),
            cert=Path(cert).read_bytes() if cert else None,
            key=Path(key).read_bytes() if key else None,
        )

    @classmethod
    def from_dir(cls, directory: Path | str, name: str) -> TlsConfig:
        """Load ``ca.pem``, ``<name>.pem`` and ``<name>.key`` as laid out by ``mpkix pki init``."""
        d = Path(directory)
        return cls.from_files(d / "ca.pem", d / f"{name}.pem", d / f"{name}.key")


def server_credentials(tls: TlsConfig, *, require_client_auth: bool) -> grpc.ServerCredentials:
    """Server credentials; ``require_client_auth`` turns on mutual TLS against ``tls.ca``."""
    if tls.cert is None or tls.key is None:
        raise ValueError("a server needs its certificate and key")
    return grpc.ssl_server_credentials(
        [(tls.key, tls.cert)],
        root_certificates=tls.ca if require_client_auth else None,
        require_client_auth=require_client_auth,
    )


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    """Client credentials; presents ``tls.cert`` when set (mutual TLS)."""
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )


def channel_options(
    *, max_message_bytes: int = 4 * 1024 * 1024, server_name: str | None = None
) -> list[tuple[str, int | str]]:
    opts: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
    ]
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return opts


@overload
def secure_channel(
    target: str, tls: TlsConfig, *, server_name: str | None = None, aio: Literal[False] = False
) -> grpc.Channel: ...
@overload
def secure_channel(
    target: str, tls: TlsConfig, *, server_name: str | None = None, aio: Literal[True]
) -> grpc.aio.Channel: ...
def secure_channel(
    target: str, tls: TlsConfig, *, server_name: str | None = None, aio: bool = False
) -> grpc.Channel | grpc.aio.Channel:
    """A TLS channel to ``target`` (``host:port``); ``aio`` selects the asyncio flavour."""
    creds = channel_credentials(tls)
    opts = channel_options(server_name=server_name)
    if aio:
        return grpc.aio.secure_channel(target, creds, options=opts)
    return grpc.secure_channel(target, creds, options=opts)
