"""asyncio gRPC servers with TLS, health checking, reflection and message limits (ARCHITECTURE §1).

:func:`build_server` assembles a server from :class:`ServiceSpec` entries; :class:`ServerRunner`
runs one on its own event-loop thread, which is how nodes are embedded in tests, the demo and
benchmarks; :func:`serve_forever` runs one in the foreground with graceful shutdown on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

log = logging.getLogger("mpkix.rpc")


@dataclass
class ServiceSpec:
    """One servicer to mount: ``add(servicer, server)`` is the generated ``add_*_to_server``."""

    name: str
    servicer: Any
    add: Callable[[Any, grpc.aio.Server], None]


@dataclass
class BuiltServer:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    services: list[str] = field(default_factory=list)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self.services]:
            await self.health.set(name, status)


async def build_server(
    services: Sequence[ServiceSpec],
    address: str,
    credentials: grpc.ServerCredentials | None,
    *,
    max_message_bytes: int = 4 * 1024 * 1024,
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
    max_concurrent_rpcs: int | None = None,
) -> BuiltServer:
    """Create, mount and start a server; returns it with the bound port (``:0`` picks one).

    ``credentials=None`` is refused unless the address is loopback: MPKIX never serves plaintext
    off-host.
    """
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    names = []
    for spec in services:
        spec.add(spec.servicer, server)
        names.append(spec.name)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME],
        server,
    )
    if credentials is None:
        host = address.rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            raise ValueError("plaintext gRPC is only allowed on loopback")
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"could not bind {address}")
    await server.start()
    built = BuiltServer(server=server, port=port, health=health, services=names)
    await built.set_serving(True)
    return built


ServerFactory = Callable[[], Coroutine[Any, Any, BuiltServer]]


class ServerRunner:
    """Runs an asyncio gRPC server on a dedicated thread and event loop.

    ``factory`` is awaited inside that loop (servicers that hold asyncio objects must be created
    there). ``on_stop`` coroutines run in the loop after the server stops.
    """

    def __init__(self, factory: ServerFactory, *, name: str = "grpc-server") -> None:
        self._factory = factory
        self._name = name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._built: BuiltServer | None = None
        self._started: Future[BuiltServer] = Future()
        self.on_stop: list[Callable[[], Awaitable[None]]] = []

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self, timeout: float = 30.0) -> int:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._factory(), self._loop)
        self._built = fut.result(timeout)
        return self._built.port

    @property
    def port(self) -> int:
        assert self._built is not None
        return self._built.port

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self, grace: float = 2.0) -> None:
        if self._built is None:
            return
        built = self._built
        self._built = None

        async def _stop() -> None:
            await built.set_serving(False)
            await built.server.stop(grace)
            for cb in self.on_stop:
                await cb()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(grace + 30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        with contextlib.suppress(Exception):
            self._loop.close()

    def __enter__(self) -> ServerRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve_forever(
    factory: ServerFactory,
    *,
    grace: float = 5.0,
    on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
    ready: Callable[[BuiltServer], None] | None = None,
) -> None:
    """Run a server until SIGTERM/SIGINT, then drain in-flight calls for ``grace`` seconds."""
    built = await factory()
    if ready is not None:
        ready(built)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down (grace %.1fs)", grace)
    await built.set_serving(False)
    await built.server.stop(grace)
    for cb in on_stop:
        await cb()
