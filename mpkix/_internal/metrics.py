"""Prometheus ``/metrics`` for MPKIX nodes (ARCHITECTURE §1: every server exports metrics).

Collectors read the node's own state when Prometheus scrapes, so nothing is counted on the hot
path; each node supplies one collector (``ca_node.metrics``, ``cms_node.metrics``,
``ledger.node.metrics``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.registry import Collector


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_metrics(collector: Collector, listen: str) -> MetricsServer:
    """Expose ``/metrics`` on ``host:port`` (port 0: any free one) from a daemon thread."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics address {listen!r}: expected HOST:PORT")
    registry = CollectorRegistry()
    registry.register(collector)
    server, thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    return MetricsServer(server, thread)
