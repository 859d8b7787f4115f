"""Example IAS: an age-gated service that admits callers by their ppCert (ARCHITECTURE §2.5).

It uses nothing but the public SDK (``ias_sdk``), gRPC and a ledger backend. ppQuery (asking
the subject's operator whether the subject is over 18) does not exist yet, so the service only
authenticates the caller (mutual TLS with the ppCert + its bundle in ``mpkix-bundle-bin``) and
greets the pseudonymous subject. Method: ``/mpkix.examples.AgeGatedService/Hello``
(``google.protobuf.StringValue`` in and out).

    python -m ias_sdk.examples.age_gated_service --listen 127.0.0.1:8443 \\
        --tls-cert ias.pem --tls-key ias.key --client-ca mpkix-ca-roots.pem \\
        --ledger 127.0.0.1:7443 --ledger-tls-ca ca.pem \\
        --ledger-tls-cert ias.pem --ledger-tls-key ias.key --mirror-db ias-mirror.sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.wrappers_pb2 import StringValue

from ias_sdk import LedgerMirror, PpCertAuthInterceptor, current_subject
from ledger.backends.config import open_backend
from mpkix.rpc.tls import TlsConfig

SERVICE = "mpkix.examples.AgeGatedService"
HELLO = f"/{SERVICE}/Hello"
#: Operator-verified identity is the least an age check can rest on.
REQUIRED_PROFILE = "mss:mpkix:authn:loa3:app"


async def hello(request: StringValue, context: grpc.aio.ServicerContext[Any, Any]) -> StringValue:
    subject = current_subject()  # set by the interceptor after verification
    return StringValue(
        value=f"Hello {subject.subject_id}: authenticated by operator {subject.operator_id} "
        f"({subject.signature_profile}); you said {request.value!r}"
    )


async def start(
    mirror: LedgerMirror, listen: str, credentials: grpc.ServerCredentials
) -> tuple[grpc.aio.Server, int]:
    """Start the service on ``listen``; returns the server and its port."""
    server = grpc.aio.server(
        interceptors=[PpCertAuthInterceptor(mirror, required_profile=REQUIRED_PROFILE)]
    )
    handler = grpc.unary_unary_rpc_method_handler(
        hello,
        request_deserializer=StringValue.FromString,
        response_serializer=StringValue.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Hello": handler}),)
    )
    port = server.add_secure_port(listen, credentials)
    await server.start()
    return server, port


async def _serve(args: argparse.Namespace) -> None:
    ledger_tls = None
    if args.ledger_tls_ca is not None:
        ledger_tls = TlsConfig.from_files(
            args.ledger_tls_ca, args.ledger_tls_cert, args.ledger_tls_key
        )
    source = open_backend(args.ledger, ledger_tls)
    mirror = LedgerMirror(args.mirror_db, source, max_staleness=args.max_staleness).start()
    credentials = grpc.ssl_server_credentials(
        [(args.tls_key.read_bytes(), args.tls_cert.read_bytes())],
        root_certificates=args.client_ca.read_bytes(),  # the MPKIX CAs' roots
        require_client_auth=True,
    )
    server, port = await start(mirror, args.listen, credentials)
    print(f"age-gated service on port {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(2.0)
    mirror.close()
    source.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--listen", default="127.0.0.1:8443")
    p.add_argument("--tls-cert", type=Path, required=True)
    p.add_argument("--tls-key", type=Path, required=True)
    p.add_argument("--client-ca", type=Path, required=True, help="MPKIX CA root certificates")
    p.add_argument("--ledger", required=True, metavar="HOST:PORT|FILE", help="ledger node or file")
    p.add_argument("--ledger-tls-ca", type=Path, help="embedded node: root of its TLS cert")
    p.add_argument("--ledger-tls-cert", type=Path)
    p.add_argument("--ledger-tls-key", type=Path)
    p.add_argument("--mirror-db", type=Path, default=Path("ias-mirror.sqlite"))
    p.add_argument("--max-staleness", type=float, default=30.0)
    asyncio.run(_serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
