"""The interface every ledger backend implements (ARCHITECTURE §2.4, §2.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RegistryEvent:
    """One decoded ``CertificateRegistry`` event.

    ``cursor`` is strictly increasing along the chain for one backend, so a follower can resume
    with "everything after cursor N". ``args`` holds the decoded event arguments with byte
    values as ``bytes`` and integers as ``int``.
    """

    cursor: int
    name: str
    args: dict[str, Any]
    block_number: int
    block_time: float
    tx_hash: bytes = b""


@dataclass(frozen=True)
class BackendStatus:
    chain_id: int
    registry_address: bytes
    head_block: int
    head_time: float
    event_cursor: int  # cursor of the newest event (0: none yet)


@dataclass(frozen=True)
class TxOutcome:
    """A mined transaction: ``success`` False means it reverted (``revert_reason`` says why)."""

    tx_hash: bytes
    success: bool
    block_number: int
    block_time: float
    revert_reason: str = ""
    events: list[RegistryEvent] = field(default_factory=list)
    return_value: Any = None


class EventSource(Protocol):
    """Read side used by verifiers: status and the event history of the registry."""

    def status(self) -> BackendStatus: ...

    def events_after(self, cursor: int, limit: int = 1000) -> list[RegistryEvent]:
        """Events with ``cursor`` greater than the given one, oldest first, at most ``limit``."""
        ...

    def close(self) -> None: ...


class LedgerBackend(EventSource, Protocol):
    """Read/write access for a validator (a CA or CMS node) holding its own signing key."""

    @property
    def account(self) -> str:
        """The validator's address (0x…)."""
        ...

    def call(self, function: str, *args: Any) -> Any:
        """A view call on the registry; returns the decoded result."""
        ...

    def transact(self, function: str, *args: Any) -> TxOutcome:
        """Sign, send and wait for a registry call; safe to retry (same nonce, same bytes)."""
        ...
