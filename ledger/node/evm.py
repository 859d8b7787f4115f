"""The node's EVM: py-evm's Prague rules with the few changes a private chain needs (decision 0502).

* Blocks come every few milliseconds, so several may share one wall-clock second: a child's
  timestamp may equal its parent's (Ethereum requires strictly later). Timestamps never go
  backwards and never run ahead of the clock.
* Transaction and receipt roots are built with :mod:`ledger.node.ordered_trie` (same bytes,
  ~8x faster than inserting into a ``HexaryTrie``).
* Deposit requests (EIP-6110) are only scanned for when the deposit contract exists, which it
  never does here; the resulting requests hash is the same.

Fees: the genesis base fee is 0 and the producer keeps every block's gas at or under the EIP-1559
target, so the base fee stays 0 under the unmodified London rules (the "zero base fee" mode of
permissioned networks such as Besu). Gas is still metered and bounded per block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth.abc import (
    BlockAPI,
    BlockHeaderAPI,
    ReceiptAPI,
    SignedTransactionAPI,
    WithdrawalAPI,
)
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.constants import DEPOSIT_CONTRACT_ADDRESS, DEPOSIT_REQUEST_TYPE
from eth_typing import Address, Hash32
from eth_utils.exceptions import ValidationError

from ledger.node.ordered_trie import ordered_trie_root_and_nodes

#: The EVM revision the node runs; the registry must be compiled for it (vyper ``evm_version``).
EVM_VERSION = "prague"


class MpkixVM(PragueVM):  # type: ignore[misc]
    """Prague with same-second blocks, fast block tries and no deposit-log scan."""

    fork = "prague"

    @classmethod
    def validate_header(cls, header: BlockHeaderAPI, parent_header: BlockHeaderAPI) -> None:
        if parent_header is not None and header.timestamp == parent_header.timestamp:
            # Same-second child: validate everything else against the parent as if it were
            # one second older (only the timestamp rule reads the parent's timestamp).
            parent_header = parent_header.copy(timestamp=parent_header.timestamp - 1)
        super().validate_header(header, parent_header)

    def set_block_transactions_and_withdrawals(
        self,
        base_block: BlockAPI,
        new_header: BlockHeaderAPI,
        transactions: Sequence[SignedTransactionAPI],
        receipts: Sequence[ReceiptAPI],
        withdrawals: Sequence[WithdrawalAPI] | None = None,
    ) -> BlockAPI:
        if withdrawals:
            raise ValidationError("the MPKIX ledger has no withdrawals")
        tx_root, tx_nodes = ordered_trie_root_and_nodes([tx.encode() for tx in transactions])
        receipt_root, receipt_nodes = ordered_trie_root_and_nodes([r.encode() for r in receipts])
        self.chaindb.persist_trie_data_dict({Hash32(k): v for k, v in tx_nodes.items()})
        self.chaindb.persist_trie_data_dict({Hash32(k): v for k, v in receipt_nodes.items()})
        header = new_header.copy(transaction_root=tx_root, receipt_root=receipt_root)
        return base_block.copy(transactions=transactions, header=header)  # type: ignore[no-any-return]

    def process_deposit_request_data(self, block: BlockAPI) -> None:
        if self.state.get_code(Address(DEPOSIT_CONTRACT_ADDRESS)):
            super().process_deposit_request_data(block)
        else:
            block.block_requests.append(DEPOSIT_REQUEST_TYPE)


def genesis_header(**params: Any) -> BlockHeaderAPI:
    """A Prague genesis header with the post-merge constants and the given fields."""
    return MpkixVM.create_genesis_header(difficulty=0, **params)  # type: ignore[no-any-return]
