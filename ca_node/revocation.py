"""The CA's own revocation authority (ARCHITECTURE §2.4): revoke, suspend or resume a ppCert it
issued, by serial. The CA node signs the registry transaction with its validator key; the proof
of the certificate's place in its batch is rebuilt from the CA's anchoring tables."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ca_node.anchoring import inclusion_of_serial
from ca_node.store import IssuedStore
from ledger.backends.base import LedgerBackend
from ledger.status import Action, StatusResult, change_status
from mpkix._internal.sqlite import connect

# RFC 5280 §5.3.1 CRLReason values a CA may revoke with (6/8 are suspend/resume, 7 is unused).
CA_REASONS = frozenset({0, 1, 2, 3, 4, 5, 9, 10})
_SERIAL = re.compile(r"[0-9a-f]{1,40}")  # RFC 5280 §4.1.2.2: at most 20 octets


class UnknownCertificate(LookupError):
    """This CA issued no such certificate, or it is not anchored yet."""


def normalize_serial(serial: str) -> str:
    """Lowercase hex without ``0x`` or leading zeros; ValueError for anything else."""
    s = serial.strip().lower().removeprefix("0x").lstrip("0")
    if not _SERIAL.fullmatch(s):  # empty here: no digits or zero (RFC 5280 serials are > 0)
        raise ValueError(f"serial {serial!r} is not a hexadecimal certificate serial number")
    return s


class CaRevoker:
    """Status changes of this CA's certificates through ``backend`` (the node's validator key)."""

    def __init__(
        self, store: IssuedStore, db_path: Path, issuing_der: bytes, backend: LedgerBackend
    ) -> None:
        self._store = store
        self._db_path = db_path
        self._ca_hash = hashlib.sha256(issuing_der).digest()
        self._backend = backend

    def change(self, serial: str, action: Action, reason: int = 0) -> StatusResult:
        if action is Action.REVOKE and reason not in CA_REASONS:
            raise ValueError(
                f"reason {reason} is not a revocation reason (RFC 5280 CRLReason "
                f"{sorted(CA_REASONS)}; suspend for certificateHold)"
            )
        serial = normalize_serial(serial)
        rec = self._store.by_serial(serial)
        if rec is None:
            raise UnknownCertificate(f"this CA issued no certificate with serial {serial}")
        st = self._backend.status()
        conn = connect(self._db_path)
        try:
            inclusion = inclusion_of_serial(
                conn, rec.serial, self._ca_hash, st.chain_id, st.registry_address
            )
        finally:
            conn.close()
        if inclusion is None:
            raise UnknownCertificate(f"certificate {serial} is not anchored yet; retry shortly")
        return change_status(self._backend, action, rec.cert_der, inclusion, reason)
