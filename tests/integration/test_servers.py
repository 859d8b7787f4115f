"""Every server: TLS 1.3, gRPC health checking and reflection (ARCHITECTURE §1)."""

from __future__ import annotations

import socket
import ssl

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from deploy.local import LocalCluster
from mpkix.rpc.tls import secure_channel
from tests.conftest import OPERATOR


def _ports(cluster: LocalCluster) -> dict[str, tuple[int, str]]:
    return {
        "cms": (cluster.cms_ports[OPERATOR], cluster.operators[0].node_name),
        "ca": (cluster.ca_port, cluster.ca_node_name),
    }


def _channel(cluster: LocalCluster, port: int, client_node: str) -> grpc.Channel:
    # Present a node certificate: the CA requires mutual TLS, the CMS accepts it.
    ch = secure_channel(f"127.0.0.1:{port}", cluster.tls(client_node))
    return ch


def test_health_reports_serving(cluster: LocalCluster) -> None:
    client = cluster.operators[0].node_name
    for name, (port, _) in _ports(cluster).items():
        with _channel(cluster, port, client) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING, name


def test_reflection_lists_the_mpkix_service(cluster: LocalCluster) -> None:
    client = cluster.operators[0].node_name
    expected = {"cms": "mpkix.v1.Enrollment", "ca": "mpkix.v1.Issuance"}
    for name, (port, _) in _ports(cluster).items():
        with _channel(cluster, port, client) as ch:
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            req = reflection_pb2.ServerReflectionRequest(list_services="")
            resp = next(iter(stub.ServerReflectionInfo(iter([req]), timeout=5)))
            names = {s.name for s in resp.list_services_response.service}
            assert expected[name] in names
            assert "grpc.health.v1.Health" in names


def test_servers_negotiate_tls13(cluster: LocalCluster) -> None:
    node = cluster.operators[0].node_name
    for name, (port, _) in _ports(cluster).items():
        ctx = ssl.create_default_context(cafile=str(cluster.tls_dir / "ca.pem"))
        ctx.set_alpn_protocols(["h2"])
        ctx.load_cert_chain(cluster.tls_dir / f"{node}.pem", cluster.tls_dir / f"{node}.key")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(
            raw, server_hostname="localhost"
        ) as tls:
            assert tls.version() == "TLSv1.3", name


def test_ca_refuses_clients_without_a_certificate(cluster: LocalCluster) -> None:
    from mpkix.v1 import issuance_pb2, issuance_pb2_grpc

    with secure_channel(f"127.0.0.1:{cluster.ca_port}", cluster.client_tls()) as ch:
        stub = issuance_pb2_grpc.IssuanceStub(ch)  # type: ignore[arg-type]
        try:
            stub.GetCaChain(issuance_pb2.GetCaChainRequest(), timeout=5)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        else:
            raise AssertionError("the CA answered a client without a certificate")
