"""PpCertAuthInterceptor and the example IAS over real mutual TLS with real ppCerts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.wrappers_pb2 import StringValue
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from ias_sdk import (
    LedgerMirror,
    PpCertAuthInterceptor,
    Verifier,
    bundle_metadata,
    current_subject,
)
from ias_sdk.examples import age_gated_service
from mpkix.profile.ppcert import PpCertParams
from mpkix.rpc.errors import error_reason
from tests.ias_sdk.support import CMS_ADDRESS, OPERATOR_ID, Issued, World, der
from tests.mpkix.profile.helpers import make_ppcsr


class LoopThread:
    """An asyncio loop on its own thread, for grpc.aio servers under test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture(scope="module")
def live_mirror(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerMirror]:
    m = LedgerMirror(
        tmp_path_factory.mktemp("ias-mirror") / "m.sqlite",
        world.source(),
        poll_interval=0.02,
        max_staleness=30,
    )
    m.sync()
    m.start()
    yield m
    m.close()


def client_roots(world: World) -> bytes:
    """The MPKIX CA roots the IAS accepts in TLS (the rogue one too: the SDK must refuse it)."""
    return b"".join(ca.root_pem for ca in (world.ca1, world.ca2, world.ca3, world.rogue))


def server_credentials(world: World, *, client_auth: bool = True) -> grpc.ServerCredentials:
    pki = world.pki
    return grpc.ssl_server_credentials(
        [((pki / "ias-server.key").read_bytes(), (pki / "ias-server.pem").read_bytes())],
        root_certificates=client_roots(world) if client_auth else None,
        require_client_auth=client_auth,
    )


@pytest.fixture(scope="module")
def example(world: World, loop: LoopThread, live_mirror: LedgerMirror) -> Iterator[int]:
    server, port = loop.run(
        age_gated_service.start(live_mirror, "127.0.0.1:0", server_credentials(world))
    )
    yield port
    loop.run(server.stop(0))


def channel(world: World, port: int, client: Issued | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=(world.pki / "ca.pem").read_bytes(),
        private_key=client.key_pem() if client else None,
        certificate_chain=client.tls_chain_pem() if client else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", creds)


def hello(ch: grpc.Channel, metadata: Any = None) -> str:
    stub = ch.unary_unary(
        age_gated_service.HELLO,
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )
    reply: StringValue = stub(StringValue(value="hi"), metadata=metadata, timeout=10)
    return reply.value


def refusal(ch: grpc.Channel, metadata: Any = None) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        hello(ch, metadata)
    err = info.value
    return err.code(), error_reason(err)  # type: ignore[arg-type]


def test_valid_client_is_greeted_as_its_pseudonym(world: World, example: int) -> None:
    [alice] = world.issue_batch(1)
    with channel(world, example, alice) as ch:
        # The bundle travels in metadata; the TLS certificate must be the bundle's certificate.
        for _ in range(50):  # the follower picks the new batch up within a few polls
            try:
                text = hello(ch, bundle_metadata(alice.bundle))
                break
            except grpc.RpcError as e:
                assert error_reason(e) == "UNKNOWN_BATCH"  # type: ignore[arg-type]
                time.sleep(0.02)
        else:
            pytest.fail("the example never accepted a valid client")
        assert text.startswith("Hello pp-") and "operator 310-260" in text
        # Remembered inclusion: later calls on any channel may omit the bundle.
        assert hello(ch) == text


def test_client_without_its_bundle_is_not_anchored(world: World, example: int) -> None:
    [bob, carol] = world.issue_batch(2)
    with channel(world, example, bob) as ch:
        assert refusal(ch) == (grpc.StatusCode.UNAUTHENTICATED, "NOT_ANCHORED")
        # Carol's bundle does not vouch for Bob's certificate.
        assert refusal(ch, bundle_metadata(carol.bundle)) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "MALFORMED",
        )
        assert refusal(ch, (("mpkix-bundle-bin", b"\x0a\xff"),))[0] == (
            grpc.StatusCode.UNAUTHENTICATED
        )


def _wait_until_known(world: World, port: int, who: Issued) -> None:
    with channel(world, port, who) as ch:
        for _ in range(200):
            try:
                hello(ch, bundle_metadata(who.bundle))
                return
            except grpc.RpcError as e:
                if error_reason(e) != "UNKNOWN_BATCH":  # type: ignore[arg-type]
                    raise
                time.sleep(0.02)
    pytest.fail("batch never reached the mirror")


def test_revoked_client_is_denied(world: World, example: int) -> None:
    [dave] = world.issue_batch(1)
    _wait_until_known(world, example, dave)
    world.status_change("revoke", dave, 1, by=world.op_backend)
    t0 = time.monotonic()
    with channel(world, example, dave) as ch:
        while time.monotonic() - t0 < 10:
            try:
                hello(ch, bundle_metadata(dave.bundle))
                time.sleep(0.005)
            except grpc.RpcError as e:
                assert (e.code(), error_reason(e)) == (  # type: ignore[arg-type]
                    grpc.StatusCode.PERMISSION_DENIED,
                    "REVOKED",
                )
                break
        else:
            pytest.fail("revocation never took effect")


def test_profile_below_the_requirement_is_denied(world: World, example: int) -> None:
    [low] = world.issue_batch(1, profile="mss:mpkix:authn:loa2:app")
    with channel(world, example, low) as ch:
        for _ in range(200):
            code, reason = refusal(ch, bundle_metadata(low.bundle))
            if reason != "UNKNOWN_BATCH":
                break
            time.sleep(0.02)
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PROFILE_MISMATCH")


def test_certificate_of_an_unanchored_ca_is_refused(world: World, example: int) -> None:
    # The rogue CA's root is in the server's TLS roots, so the handshake succeeds; the ledger
    # does not list the CA, so the SDK refuses it.
    [good] = world.issue_batch(1)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = world.rogue.authority.issue(
        make_ppcsr(key), PpCertParams(operator_id=OPERATOR_ID, cms_address=CMS_ADDRESS)
    )
    bundle = type(good.bundle)()
    bundle.CopyFrom(good.bundle)
    bundle.certificate_der = der(cert)
    del bundle.ca_chain_der[:]
    bundle.ca_chain_der.extend(world.rogue.chain_der)
    rogue = Issued(key, bundle)
    with channel(world, example, rogue) as ch:
        assert refusal(ch, bundle_metadata(bundle)) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "UNTRUSTED_ISSUER",
        )


def test_client_without_certificate(
    world: World, example: int, loop: LoopThread, live_mirror: LedgerMirror
) -> None:
    # A server that requires client certificates refuses in the TLS handshake.
    with channel(world, example, None) as ch:
        code, _ = refusal(ch)
        assert code == grpc.StatusCode.UNAVAILABLE
    # On a TLS server without client authentication, the interceptor refuses; health is exempt.
    server, port = loop.run(_plain_tls_server(world, live_mirror))
    try:
        with channel(world, port, None) as ch:
            assert refusal(ch) == (grpc.StatusCode.UNAUTHENTICATED, "NO_CLIENT_CERTIFICATE")
            health = health_pb2_grpc.HealthStub(ch)
            reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        loop.run(server.stop(0))


async def _plain_tls_server(world: World, mirror: LedgerMirror) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(interceptors=[PpCertAuthInterceptor(mirror)])
    handler = grpc.unary_unary_rpc_method_handler(
        age_gated_service.hello,
        request_deserializer=StringValue.FromString,
        response_serializer=StringValue.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(age_gated_service.SERVICE, {"Hello": handler}),)
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(world, client_auth=False))
    await server.start()
    return server, port


STREAM_SERVICE = "mpkix.test.Streams"


async def _items(request: StringValue, context: Any) -> AsyncIterator[StringValue]:
    for i in range(3):
        yield StringValue(value=f"{current_subject().subject_id}:{i}")


async def _count(requests: Any, context: Any) -> StringValue:
    n = 0
    async for _ in requests:
        n += 1
    return StringValue(value=f"{current_subject().subject_id}:{n}")


async def _echo(requests: Any, context: Any) -> AsyncIterator[StringValue]:
    async for r in requests:
        yield StringValue(value=f"{current_subject().subject_id}:{r.value}")


async def _write_items(request: StringValue, context: Any) -> None:
    await context.write(StringValue(value=current_subject().subject_id))


async def _stream_server(
    world: World, mirror: LedgerMirror, verifier: Verifier
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(
        interceptors=[
            PpCertAuthInterceptor(
                verifier,
                method_profiles={
                    f"/{STREAM_SERVICE}/Echo": ("mss:mpkix:authn:loa4:sim", "minimum")
                },
            )
        ]
    )
    kw: dict[str, Any] = {
        "request_deserializer": StringValue.FromString,
        "response_serializer": StringValue.SerializeToString,
    }
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                STREAM_SERVICE,
                {
                    "Items": grpc.unary_stream_rpc_method_handler(_items, **kw),
                    "WriteItems": grpc.unary_stream_rpc_method_handler(_write_items, **kw),
                    "Count": grpc.stream_unary_rpc_method_handler(_count, **kw),
                    "Echo": grpc.stream_stream_rpc_method_handler(_echo, **kw),
                },
            ),
        )
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(world))
    await server.start()
    return server, port


def test_streaming_methods_see_the_subject(
    world: World, loop: LoopThread, live_mirror: LedgerMirror
) -> None:
    [erin] = world.issue_batch(1)
    assert live_mirror.wait_for_cursor(world.source().status().event_cursor, 10)
    verifier = Verifier(live_mirror)
    server, port = loop.run(_stream_server(world, live_mirror, verifier))
    md = bundle_metadata(erin.bundle)
    kw: dict[str, Any] = {
        "request_serializer": StringValue.SerializeToString,
        "response_deserializer": StringValue.FromString,
    }
    try:
        with channel(world, port, erin) as ch:
            pid = verifier.verify(erin.bundle).subject_id
            items = ch.unary_stream(f"/{STREAM_SERVICE}/Items", **kw)
            assert [r.value for r in items(StringValue(), metadata=md, timeout=5)] == [
                f"{pid}:0",
                f"{pid}:1",
                f"{pid}:2",
            ]
            written = ch.unary_stream(f"/{STREAM_SERVICE}/WriteItems", **kw)
            assert [r.value for r in written(StringValue(), metadata=md, timeout=5)] == [pid]
            count = ch.stream_unary(f"/{STREAM_SERVICE}/Count", **kw)
            reply = count(iter([StringValue(), StringValue()]), metadata=md, timeout=5)
            assert reply.value == f"{pid}:2"
            echo = ch.stream_stream(f"/{STREAM_SERVICE}/Echo", **kw)
            with pytest.raises(grpc.RpcError) as info:
                list(echo(iter([StringValue(value="x")]), metadata=md, timeout=5))
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED  # loa4:sim required
            assert error_reason(info.value) == "PROFILE_MISMATCH"  # type: ignore[arg-type]
    finally:
        loop.run(server.stop(0))


def test_stale_mirror_is_unavailable(world: World, loop: LoopThread, tmp_path: Path) -> None:
    now = [time.time()]
    mirror = LedgerMirror(
        tmp_path / "m.sqlite", world.source(), max_staleness=5, clock=lambda: now[0]
    )
    mirror.sync()
    [frank] = world.issue_batch(1)
    mirror.sync()
    server, port = loop.run(
        age_gated_service.start(mirror, "127.0.0.1:0", server_credentials(world))
    )
    try:
        with channel(world, port, frank) as ch:
            assert hello(ch, bundle_metadata(frank.bundle)).startswith("Hello")
            now[0] += 60
            assert refusal(ch, bundle_metadata(frank.bundle)) == (
                grpc.StatusCode.UNAVAILABLE,
                "MIRROR_STALE",
            )
    finally:
        loop.run(server.stop(0))
        mirror.close()


def test_current_subject_outside_a_call_and_bad_configuration(live_mirror: LedgerMirror) -> None:
    with pytest.raises(LookupError):
        current_subject()
    with pytest.raises(ValueError):
        PpCertAuthInterceptor(live_mirror, required_profile="mss:mpkix:authn:loa9:app")
    with pytest.raises(ValueError):
        PpCertAuthInterceptor(live_mirror, profile_mode="roughly")


def test_concurrent_callers_each_see_their_own_subject(world: World, example: int) -> None:
    people = world.issue_batch(3)
    for who in people:
        _wait_until_known(world, example, who)
    verifier = Verifier(LedgerMirror(None, world.source()))
    verifier.mirror.sync()
    pseudonyms = [verifier.verify(who.bundle).subject_id for who in people]
    verifier.mirror.close()
    channels = [channel(world, example, who) for who in people]
    try:
        stubs = [
            ch.unary_unary(
                age_gated_service.HELLO,
                request_serializer=StringValue.SerializeToString,
                response_deserializer=StringValue.FromString,
            )
            for ch in channels
        ]
        futures = [
            (i, stubs[i].future(StringValue(value=str(n)), metadata=bundle_metadata(who.bundle)))
            for n in range(20)
            for i, who in enumerate(people)
        ]
        for i, fut in futures:
            assert fut.result(timeout=10).value.startswith(f"Hello {pseudonyms[i]}:")
    finally:
        for ch in channels:
            ch.close()
