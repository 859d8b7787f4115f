"""Client-side helpers for Ledger service errors, without importing the node (py-evm)."""

from __future__ import annotations

import grpc
from grpc_status import rpc_status

from mpkix.v1 import ledger_pb2

__all__ = ["receipt_from_error"]


def receipt_from_error(err: grpc.RpcError) -> ledger_pb2.LedgerReceipt | None:
    """The LedgerReceipt carried by a failed SubmitTransaction, if any (decision 0506)."""
    st = rpc_status.from_call(err)  # type: ignore[arg-type]
    if st is None:
        return None
    for d in st.details:
        receipt = ledger_pb2.LedgerReceipt()
        if d.Unpack(receipt):
            return receipt
    return None
