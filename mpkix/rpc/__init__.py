"""gRPC plumbing shared by every MPKIX server and client (ARCHITECTURE §1).

* :mod:`mpkix.rpc.tls` — TLS 1.3 credentials, mutual TLS between nodes.
* :mod:`mpkix.rpc.server` — asyncio servers with health, reflection, limits, graceful stop.
* :mod:`mpkix.rpc.errors` — one exception type services raise, mapped to gRPC status with
  rich ``google.rpc.Status`` details.
"""

from mpkix.rpc.errors import ServiceError, rpc_method
from mpkix.rpc.server import ServerRunner, ServiceSpec, build_server
from mpkix.rpc.tls import TlsConfig, channel_credentials, secure_channel, server_credentials

__all__ = [
    "ServerRunner",
    "ServiceError",
    "ServiceSpec",
    "TlsConfig",
    "build_server",
    "channel_credentials",
    "rpc_method",
    "secure_channel",
    "server_credentials",
]
