"""Ledger backends behind one interface (ARCHITECTURE §2.4).

* ``embedded`` — the py-evm ledger node process (``mpkix ledger serve``), reached over gRPC;
* ``jsonrpc`` — any Ethereum JSON-RPC endpoint (anvil in tests; Besu/GoQuorum QBFT in
  production), through web3.

Writers (CA and CMS nodes) use :class:`LedgerBackend`; verifiers (the IAS SDK mirror) only need
its :class:`EventSource` part.
"""

from ledger.backends.base import (
    BackendStatus,
    EventSource,
    LedgerBackend,
    RegistryEvent,
    TxOutcome,
)

__all__ = ["BackendStatus", "EventSource", "LedgerBackend", "RegistryEvent", "TxOutcome"]
