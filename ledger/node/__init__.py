"""The embedded ledger node of MPKIX (ARCHITECTURE §2.4): py-evm chain with the
``CertificateRegistry`` deployed at genesis, durable in SQLite, served over gRPC.

* :class:`~ledger.node.server.NodeConfig`, :func:`~ledger.node.server.serve` — run a node.
* :class:`~ledger.node.node.LedgerNode` — the node in-process (submit, read, follow).
* :class:`~ledger.node.signer.LocalSigner` — sign registry calls on the validator's side.
* :class:`~ledger.node.client.LedgerClient` — typed gRPC client with safe retries.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Lazy exports (PEP 562): clients and the IAS SDK import ledger.node.client without py-evm.
_EXPORTS = {
    "LedgerClient": "ledger.node.client",
    "TransactionReverted": "ledger.node.client",
    "GenesisConfig": "ledger.node.genesis",
    "genesis_document": "ledger.node.genesis",
    "load_genesis": "ledger.node.genesis",
    "parse_genesis": "ledger.node.genesis",
    "write_genesis": "ledger.node.genesis",
    "LedgerNode": "ledger.node.node",
    "LedgerServer": "ledger.node.server",
    "NodeConfig": "ledger.node.server",
    "serve": "ledger.node.server",
    "LocalSigner": "ledger.node.signer",
    "SignedTx": "ledger.node.signer",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger.node' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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
