"""A node's ledger validator key (secp256k1), kept as ``ledger.key`` (mode 0600) in its state
directory. CA and CMS nodes sign their own registry transactions with it; the ledger node holds
no one's secret (decision 0500)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from eth_account import Account

KEY_FILE = "ledger.key"


def ensure_validator_key(state_dir: Path) -> tuple[bytes, str]:
    """Create the key on first use; returns (private key, checksummed address)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / KEY_FILE
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_bytes(32).hex() + "\n")
        os.replace(tmp, path)
    return load_validator_key(state_dir)


def load_validator_key(state_dir: Path) -> tuple[bytes, str]:
    raw = bytes.fromhex((state_dir / KEY_FILE).read_text().strip())
    if len(raw) != 32:
        raise ValueError(f"{state_dir / KEY_FILE}: expected 32 hex-encoded bytes")
    return raw, str(Account.from_key(raw).address)
