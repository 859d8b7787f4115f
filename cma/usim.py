"""Emulated USIM of the CMA (paper §4.1.1; TS 33.102 §6.3.3).

A real phone keeps K and OPc inside the SIM; the emulation keeps them in ``usim.json`` (mode
0600) together with the SQN memory, which is rewritten atomically after every accepted
challenge so a replayed AUTN is refused even across restarts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from mpkix.aka.milenage import Milenage, UsimResult, UsimSuccess, usim_authenticate
from mpkix.aka.sqn import UsimSqnState


def _atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class EmulatedUsim:
    imsi: str
    k: bytes
    opc: bytes
    sqn_state: UsimSqnState
    path: Path | None = None

    def __post_init__(self) -> None:
        self._milenage = Milenage(self.k, self.opc)

    @property
    def milenage(self) -> Milenage:
        return self._milenage

    def authenticate(self, rand: bytes, autn: bytes) -> UsimResult:
        """Run the USIM's AUTN check; persists the SQN memory when a challenge is accepted."""
        result = usim_authenticate(self._milenage, rand, autn, self.sqn_state)
        if isinstance(result, UsimSuccess) and self.path is not None:
            self.save()
        return result

    def to_dict(self) -> dict[str, object]:
        return {
            "imsi": self.imsi,
            "k": self.k.hex(),
            "opc": self.opc.hex(),
            "sqn": self.sqn_state.to_dict(),
        }

    def save(self, path: Path | None = None) -> None:
        target = path or self.path
        if target is None:
            raise ValueError("no path to save the USIM to")
        _atomic_write(target, json.dumps(self.to_dict(), indent=1).encode())
        self.path = target

    @classmethod
    def load(cls, path: Path) -> EmulatedUsim:
        doc = json.loads(path.read_text())
        return cls(
            imsi=str(doc["imsi"]),
            k=bytes.fromhex(doc["k"]),
            opc=bytes.fromhex(doc["opc"]),
            sqn_state=UsimSqnState.from_dict(doc["sqn"]),
            path=path,
        )
