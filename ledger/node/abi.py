"""Encoding contract calls and decoding results with a JSON ABI (Solidity ABI specification).

A call is ``selector ‖ encode(argument types, arguments)`` where the selector is the first four
bytes of ``keccak(name(type,…))``. Small and direct (``eth_abi``), so building a transaction or
decoding a view result costs microseconds rather than a web3 round of middleware.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from ledger.node.events import _canonical_type


@dataclass(frozen=True)
class AbiFunction:
    name: str
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    selector: bytes
    mutability: str

    def encode(self, *args: Any) -> bytes:
        if len(args) != len(self.input_types):
            raise TypeError(f"{self.name} takes {len(self.input_types)} arguments, got {len(args)}")
        return self.selector + abi_encode(list(self.input_types), list(args))

    def decode_output(self, data: bytes) -> tuple[Any, ...]:
        return tuple(abi_decode(list(self.output_types), data))


class ContractAbi:
    """Functions of a contract by name (the registry has no overloads)."""

    def __init__(self, abi: Sequence[dict[str, Any]]) -> None:
        self.functions: dict[str, AbiFunction] = {}
        for entry in abi:
            if entry.get("type") != "function":
                continue
            inputs = tuple(_canonical_type(p) for p in entry.get("inputs", []))
            outputs = tuple(_canonical_type(p) for p in entry.get("outputs", []))
            signature = f"{entry['name']}({','.join(inputs)})"
            self.functions[entry["name"]] = AbiFunction(
                name=entry["name"],
                input_types=inputs,
                output_types=outputs,
                selector=bytes(keccak(text=signature)[:4]),
                mutability=str(entry.get("stateMutability", "nonpayable")),
            )

    def __getitem__(self, name: str) -> AbiFunction:
        try:
            return self.functions[name]
        except KeyError:
            raise KeyError(f"the contract has no function {name!r}") from None

    def encode(self, name: str, *args: Any) -> bytes:
        return self[name].encode(*args)
