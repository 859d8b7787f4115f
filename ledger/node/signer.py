"""Client-side signing of registry transactions (for the CA and CMS nodes, tests and tools).

The ledger node never holds a validator's key: each validator signs its own transactions
(EIP-1559, EIP-155 chain id; secp256k1 through ``eth-account`` with ``coincurve``) and submits
the raw bytes. :class:`LocalSigner` builds and signs calls to the registry and hands out nonces.

Retries must resubmit the *same* signed bytes (:class:`SignedTx`): the node answers a
transaction it already has with that transaction's receipt, so a retry after a lost reply
cannot apply an operation twice. Only when the node says the nonce is used by something else
(``NONCE_TOO_LOW``) should the caller :meth:`LocalSigner.resync` and sign anew.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from ledger.node.abi import ContractAbi

DEFAULT_GAS = 1_000_000  # registry calls use 25k-400k; fees are zero, so headroom is free


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction ready to submit (and to resubmit unchanged on retry)."""

    raw: bytes
    tx_hash: bytes
    sender: bytes
    nonce: int
    function: str


class LocalSigner:
    """Signs registry calls for one account; thread-safe nonce assignment."""

    def __init__(
        self,
        private_key: bytes | str | LocalAccount,
        *,
        chain_id: int,
        contract_address: bytes,
        abi: Sequence[dict[str, Any]],
        next_nonce: int = 0,
        gas: int = DEFAULT_GAS,
    ) -> None:
        self.account: LocalAccount = (
            private_key if isinstance(private_key, LocalAccount) else Account.from_key(private_key)
        )
        self.address = bytes.fromhex(self.account.address[2:])
        self.chain_id = chain_id
        self.contract_address = bytes(contract_address)
        self._to = to_checksum_address(self.contract_address)
        self.abi = ContractAbi(abi)
        self.gas = gas
        self._nonce = next_nonce
        self._lock = threading.Lock()

    @property
    def next_nonce(self) -> int:
        with self._lock:
            return self._nonce

    def resync(self, next_nonce: int) -> None:
        """Adopt the node's view of the next nonce (``GetNonce``'s pending nonce)."""
        with self._lock:
            self._nonce = next_nonce

    def sign_call(self, data: bytes, *, gas: int | None = None, function: str = "") -> SignedTx:
        """Sign a call of the registry with ``data``, taking the next nonce."""
        with self._lock:
            nonce = self._nonce
            self._nonce += 1
        return self.sign_with_nonce(data, nonce, gas=gas, function=function)

    def sign_with_nonce(
        self, data: bytes, nonce: int, *, gas: int | None = None, function: str = ""
    ) -> SignedTx:
        signed = self.account.sign_transaction(
            {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "maxFeePerGas": 0,
                "maxPriorityFeePerGas": 0,
                "gas": gas if gas is not None else self.gas,
                "to": self._to,
                "value": 0,
                "data": data,
            }
        )
        return SignedTx(
            raw=bytes(signed.raw_transaction),
            tx_hash=bytes(signed.hash),
            sender=self.address,
            nonce=nonce,
            function=function,
        )

    def build(self, function: str, *args: Any, gas: int | None = None) -> SignedTx:
        """Encode and sign ``function(*args)`` of the registry, e.g.
        ``signer.build("anchor_batch", root, size, ca_cert_hash)``."""
        return self.sign_call(self.abi.encode(function, *args), gas=gas, function=function)
