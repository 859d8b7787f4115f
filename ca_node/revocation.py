"""The CA's own revocation authority (ARCHITECTURE §2.4): revoke, suspend or resume a ppCert it
issued, by serial, signing the registry transaction with the CA's validator key."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca_node.anchoring import inclusion_of_serial
from ca_node.keys import ISSUING_CERT_FILE
from ca_node.store import IssuedStore
from ledger.backends.base import LedgerBackend
from ledger.status import Action, StatusResult, change_status
from mpkix._internal.sqlite import connect


class UnknownCertificate(LookupError):
    pass


def revoke_by_ca(
    state_dir: Path, backend: LedgerBackend, serial: str, action: Action, reason: int = 0
) -> StatusResult:
    store = IssuedStore(state_dir / "issued.sqlite")
    try:
        rec = store.by_serial(serial)
    finally:
        store.close()
    if rec is None:
        raise UnknownCertificate(f"this CA issued no certificate with serial {serial}")
    issuing = x509.load_pem_x509_certificate((state_dir / "ca" / ISSUING_CERT_FILE).read_bytes())
    ca_hash = hashlib.sha256(issuing.public_bytes(serialization.Encoding.DER)).digest()
    st = backend.status()
    conn = connect(state_dir / "issued.sqlite")
    try:
        inclusion = inclusion_of_serial(
            conn, rec.serial, ca_hash, st.chain_id, st.registry_address
        )
    finally:
        conn.close()
    if inclusion is None:
        raise UnknownCertificate(f"certificate {serial} is not anchored yet; retry shortly")
    return change_status(backend, action, rec.cert_der, inclusion, reason)
