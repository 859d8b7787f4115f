"""Human-readable reasons for failed EVM executions.

Vyper's ``assert cond, "reason"`` and ``raise "reason"`` revert with ``Error(string)``
(selector ``0x08c379a0``, Solidity ABI spec "Errors"); arithmetic and bounds failures revert
with ``Panic(uint256)`` (``0x4e487b71``) or no data at all.
"""

from __future__ import annotations

from eth.abc import ComputationAPI
from eth.exceptions import Revert
from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

ERROR_SELECTOR = bytes.fromhex("08c379a0")
PANIC_SELECTOR = bytes.fromhex("4e487b71")


def decode_revert_data(data: bytes) -> str:
    """The reason carried by revert data, or a description of it."""
    if data[:4] == ERROR_SELECTOR:
        try:
            return str(abi_decode(["string"], data[4:])[0])
        except (DecodingError, UnicodeDecodeError, ValueError):
            return "execution reverted (malformed Error(string) data)"
    if data[:4] == PANIC_SELECTOR and len(data) == 36:
        return f"panic 0x{int.from_bytes(data[4:], 'big'):02x}"
    if not data:
        return "execution reverted"
    return f"execution reverted with data 0x{data.hex()}"


def failure_of(computation: ComputationAPI) -> tuple[str, bytes]:
    """``(reason, revert_data)`` of a failed computation; ``("", b"")`` when it succeeded."""
    if computation.is_success:
        return "", b""
    error = computation.error
    if isinstance(error, Revert):
        data = bytes(error.args[0]) if error.args and isinstance(error.args[0], bytes) else b""
        return decode_revert_data(data), data
    return f"execution failed: {type(error).__name__}", b""
