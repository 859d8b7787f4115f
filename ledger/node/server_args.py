"""Command-line options of the ledger node, importable without py-evm (``mpkix --help``)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The node's command-line options (shared by ``python -m ledger`` and ``mpkix ledger``)."""
    parser.add_argument("--state-dir", required=True, type=Path, help="chain database directory")
    parser.add_argument("--genesis", required=True, type=Path, help="genesis JSON file")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port (default %(default)s)")
    parser.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="server key (PEM)")
    parser.add_argument("--tls-ca", type=Path, help="root for client certificates (mutual TLS)")
    parser.add_argument(
        "--no-client-auth", action="store_true", help="TLS without client certificates"
    )
    parser.add_argument("--port-file", type=Path, help="write the bound port here when ready")
    parser.add_argument("--max-block-txs", type=int, default=500)
    parser.add_argument("--max-message-bytes", type=int, default=512 * 1024)
    parser.add_argument("--grace", type=float, default=5.0, help="shutdown grace seconds")
    parser.add_argument("--metrics-listen", help="host:port for Prometheus /metrics")
    parser.add_argument("--log-level", default="INFO")
