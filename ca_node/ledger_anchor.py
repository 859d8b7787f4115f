"""Anchor batch roots in the ``CertificateRegistry`` through any :class:`LedgerBackend`.

Idempotent by root: before sending, the anchorer asks ``batch_of_root``; a transaction that
reverts with "root already anchored" (a retry racing a slow acknowledgement) is resolved the
same way. So a CA that retries after a ledger crash never anchors a batch twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from ca_node.anchoring import AnchorReceipt, AnchorRefused
from ledger.backends.base import LedgerBackend

__all__ = ["AnchorRefused", "RegistryAnchorer"]


class RegistryAnchorer:
    def __init__(self, backend: LedgerBackend, issuing_ca_der: bytes) -> None:
        self._backend = backend
        self.ca_cert_hash = hashlib.sha256(issuing_ca_der).digest()
        st = backend.status()
        self.chain_id = st.chain_id
        self.registry_address = st.registry_address

    def _existing(self, root: bytes) -> AnchorReceipt | None:
        batch_id = int(self._backend.call("batch_of_root", root))
        if batch_id == 0:
            return None
        _root, _size, _ca, anchored_at = self._backend.call("batch", batch_id)
        return AnchorReceipt(
            batch_id=batch_id,
            tx_hash=b"",
            anchored_at=dt.datetime.fromtimestamp(int(anchored_at), dt.UTC),
        )

    def anchor(self, root: bytes, size: int) -> AnchorReceipt:
        found = self._existing(root)
        if found is not None:
            return found
        # A view first: a CA whose trust anchor was removed must not fill blocks with reverts.
        if not self._backend.call("is_trust_anchor", self.ca_cert_hash):
            raise AnchorRefused("CA certificate is not a trust anchor")
        out = self._backend.transact("anchor_batch", root, size, self.ca_cert_hash)
        if not out.success:
            if "already anchored" in out.revert_reason:
                again = self._existing(root)
                if again is not None:
                    return again
            raise AnchorRefused(out.revert_reason or "anchor_batch reverted")
        batch_id = next(
            (int(e.args["batch_id"]) for e in out.events if e.name == "BatchAnchored"), 0
        )
        if batch_id == 0:
            again = self._existing(root)
            if again is None:
                raise AnchorRefused("anchor_batch succeeded but no BatchAnchored event was seen")
            return AnchorReceipt(again.batch_id, out.tx_hash, again.anchored_at)
        return AnchorReceipt(
            batch_id=batch_id,
            tx_hash=out.tx_hash,
            anchored_at=dt.datetime.fromtimestamp(out.block_time, dt.UTC),
        )
