"""The embedded ledger node of MPKIX (ARCHITECTURE §2.4): py-evm chain with the
``CertificateRegistry`` deployed at genesis, durable in SQLite, served over gRPC.

* :class:`~ledger.node.server.NodeConfig`, :func:`~ledger.node.server.serve` — run a node.
* :class:`~ledger.node.node.LedgerNode` — the node in-process (submit, read, follow).
* :class:`~ledger.node.signer.LocalSigner` — sign registry calls on the validator's side.
* :class:`~ledger.node.client.LedgerClient` — typed gRPC client with safe retries.
"""

from ledger.node.client import LedgerClient, TransactionReverted
from ledger.node.genesis import (
    GenesisConfig,
    genesis_document,
    load_genesis,
    parse_genesis,
    write_genesis,
)
from ledger.node.node import LedgerNode
from ledger.node.server import LedgerServer, NodeConfig, serve
from ledger.node.signer import LocalSigner, SignedTx

__all__ = [
    "GenesisConfig",
    "LedgerClient",
    "LedgerNode",
    "LedgerServer",
    "LocalSigner",
    "NodeConfig",
    "SignedTx",
    "TransactionReverted",
    "genesis_document",
    "load_genesis",
    "parse_genesis",
    "serve",
    "write_genesis",
]
