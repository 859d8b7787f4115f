"""Revoke, suspend and resume a certificate in the registry (ARCHITECTURE §2.4).

Used by the CA (its own authority) and by an operator's CMS (the user's request). Each call
proves the certificate's place in its anchored batch (leaf = SHA-256(cert) ‖ operator key hash,
decision 0401) and the contract checks that the caller is the issuing CA or the subject's
operator. Repeating a request whose effect is already recorded returns the recorded state
instead of failing, so clients may retry safely; a revoked certificate stays revoked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from enum import Enum

import grpc

from ledger.backends.base import LedgerBackend
from ledger.contracts import CertState
from mpkix.rpc.errors import ServiceError, invalid
from mpkix.v1 import common_pb2, lifecycle_pb2


class Action(Enum):
    REVOKE = "revoke"
    SUSPEND = "suspend"
    RESUME = "resume"


class StatusChangeRefused(Exception):
    """The registry refused the change (``reason`` is its revert message)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


STATE_NAMES = {CertState.GOOD: "active", CertState.SUSPENDED: "suspended",
               CertState.REVOKED: "revoked"}
_TARGET = {Action.REVOKE: CertState.REVOKED, Action.SUSPEND: CertState.SUSPENDED,
           Action.RESUME: CertState.GOOD}


_FROM_PROTO: dict[int, Action] = {
    lifecycle_pb2.REVOKE: Action.REVOKE,
    lifecycle_pb2.SUSPEND: Action.SUSPEND,
    lifecycle_pb2.RESUME: Action.RESUME,
}


def action_from_proto(value: int) -> Action:
    """The ``StatusAction`` of a Lifecycle/CaAdmin request; INVALID_ARGUMENT otherwise."""
    action = _FROM_PROTO.get(int(value))
    if action is None:
        raise invalid("action must be REVOKE, SUSPEND or RESUME")
    return action


def refused_error(action: Action, what: str, e: StatusChangeRefused) -> ServiceError:
    """How both status services report a change the registry refused."""
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"the ledger refused to {action.value} {what}: {e.reason}",
        reason="STATUS_CHANGE_REFUSED",
    )


@dataclass(frozen=True)
class StatusResult:
    state: str
    reason: int
    changed_at: dt.datetime
    tx_hash: bytes  # empty when the state was already what was asked


def _already(action: Action, state: CertState, reason: int) -> bool:
    """Is the effect of ``action`` already recorded? (resume: resumed = reason removeFromCRL)"""
    if action == Action.RESUME:
        return state == CertState.GOOD and reason == 8
    return state == _TARGET[action]


def current_status(
    backend: LedgerBackend, ca_cert_hash: bytes, cert_hash: bytes
) -> tuple[CertState, int, int]:
    """(state, reason, updated_at unix seconds) from ``status_of``."""
    state, reason, updated_at, _batch = backend.call("status_of", ca_cert_hash, cert_hash)
    return CertState(int(state)), int(reason), int(updated_at)


def change_status(
    backend: LedgerBackend,
    action: Action,
    certificate_der: bytes,
    inclusion: common_pb2.MerkleInclusion,
    reason: int = 0,
) -> StatusResult:
    cert_hash = hashlib.sha256(certificate_der).digest()
    ca_hash = bytes(inclusion.issuer_ca_sha256)
    state, cur_reason, updated = current_status(backend, ca_hash, cert_hash)
    if _already(action, state, cur_reason):
        return StatusResult(
            STATE_NAMES[state], cur_reason, dt.datetime.fromtimestamp(updated, dt.UTC), b""
        )
    if state == CertState.REVOKED:
        raise StatusChangeRefused("certificate is revoked")
    if action == Action.RESUME and state != CertState.SUSPENDED:
        raise StatusChangeRefused("certificate is not suspended")
    args = [
        cert_hash,
        bytes(inclusion.operator_key_hash),
        int(inclusion.batch_id),
        int(inclusion.leaf_index),
        [bytes(h) for h in inclusion.audit_path],
    ]
    if action == Action.REVOKE:
        args.append(reason)
    out = backend.transact(action.value, *args)
    if not out.success:
        # A concurrent identical request may have landed first: report the recorded state.
        state, cur_reason, updated = current_status(backend, ca_hash, cert_hash)
        if _already(action, state, cur_reason):
            return StatusResult(
                STATE_NAMES[state], cur_reason, dt.datetime.fromtimestamp(updated, dt.UTC), b""
            )
        raise StatusChangeRefused(out.revert_reason or f"{action.value} reverted")
    state, cur_reason, updated = current_status(backend, ca_hash, cert_hash)
    return StatusResult(
        STATE_NAMES[state], cur_reason, dt.datetime.fromtimestamp(updated, dt.UTC), out.tx_hash
    )
