"""Revocation, suspension and resumption: by the issuing CA or the subject's operator only."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.contracts import CertState, RevocationReason, certificate_leaf_entry
from mpkix.merkle import MerkleTree, leaf_hash
from tests.ledger.contracts.support import (
    CA1_CERT,
    CA2_CERT,
    OP1_KEY,
    OP2_KEY,
    AnchoredBatch,
    CertRef,
    Registry,
    anchor_batch,
    events,
    h,
    reverts,
)

KEY = RevocationReason.KEY_COMPROMISE


@pytest.fixture
def batch(registry: Registry) -> AnchoredBatch:
    """A CA1 batch of five certificates: subjects of op1, op2, op1, no operator, op2."""
    keys = [OP1_KEY, OP2_KEY, OP1_KEY, bytes(32), OP2_KEY]
    return anchor_batch(registry, registry.ca1, CA1_CERT, keys)


def status(registry: Registry, cert: CertRef, ca: bytes = CA1_CERT) -> tuple[int, int, int, int]:
    result: tuple[int, int, int, int] = registry.contract.functions.status_of(
        ca, cert.cert_hash
    ).call()
    return result


def block_time(registry: Registry, receipt: dict[str, int]) -> int:
    return int(registry.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def test_issuing_ca_revokes(registry: Registry, batch: AnchoredBatch) -> None:
    cert = batch.certs[0]
    assert status(registry, cert) == (CertState.GOOD, 0, 0, 0)
    receipt = registry.tx(registry.contract.functions.revoke(*cert.args(), KEY), registry.ca1)
    t = block_time(registry, receipt)
    assert events(registry.contract, "CertificateRevoked", receipt) == [
        {
            "ca_cert_hash": CA1_CERT,
            "cert_hash": cert.cert_hash,
            "batch_id": batch.batch_id,
            "reason": KEY,
            "timestamp": t,
            "by": registry.ca1,
        }
    ]
    assert status(registry, cert) == (CertState.REVOKED, KEY, t, batch.batch_id)
    # neighbours are untouched
    assert status(registry, batch.certs[1])[0] == CertState.GOOD


def test_another_ca_cannot_revoke(registry: Registry, batch: AnchoredBatch) -> None:
    with reverts("caller is not the issuing CA"):
        registry.tx(registry.contract.functions.revoke(*batch.certs[0].args(), KEY), registry.ca2)
    assert status(registry, batch.certs[0])[0] == CertState.GOOD


def test_another_ca_anchoring_a_foreign_certificate_cannot_touch_its_status(
    registry: Registry, batch: AnchoredBatch
) -> None:
    """CA2 slips CA1's certificate hash into its own batch: its revocation lands in CA2's scope."""
    victim = batch.certs[0]
    tree = MerkleTree([certificate_leaf_entry(victim.cert_hash, victim.operator_key_hash)])
    registry.tx(registry.contract.functions.anchor_batch(tree.root, 1, CA2_CERT), registry.ca2)
    forged = CertRef(victim.cert_hash, victim.operator_key_hash, batch.batch_id + 1, 0, [])
    registry.tx(registry.contract.functions.revoke(*forged.args(), KEY), registry.ca2)
    assert status(registry, victim, CA2_CERT)[0] == CertState.REVOKED
    assert status(registry, victim, CA1_CERT)[0] == CertState.GOOD  # what verifiers of CA1 read


def test_subjects_operator_revokes(registry: Registry, batch: AnchoredBatch) -> None:
    cert = batch.certs[1]  # an op2 subscriber
    receipt = registry.tx(
        registry.contract.functions.revoke(*cert.args(), RevocationReason.PRIVILEGE_WITHDRAWN),
        registry.op2,
    )
    (event,) = events(registry.contract, "CertificateRevoked", receipt)
    assert (event["by"], event["reason"], event["ca_cert_hash"]) == (
        registry.op2,
        RevocationReason.PRIVILEGE_WITHDRAWN,
        CA1_CERT,
    )
    assert status(registry, cert)[:2] == (CertState.REVOKED, RevocationReason.PRIVILEGE_WITHDRAWN)


def test_another_operator_cannot_revoke(registry: Registry, batch: AnchoredBatch) -> None:
    cert = batch.certs[0]  # op1's subscriber
    revoke = registry.contract.functions.revoke
    with reverts("caller is not the subject's operator"):
        registry.tx(revoke(*cert.args(), KEY), registry.op2)
    # claiming the certificate for itself breaks the Merkle proof
    claimed = dataclasses.replace(cert, operator_key_hash=OP2_KEY)
    with reverts("certificate not in batch"):
        registry.tx(revoke(*claimed.args(), KEY), registry.op2)
    with reverts("caller is not the subject's operator"):
        registry.tx(registry.contract.functions.suspend(*cert.args()), registry.op2)
    assert status(registry, cert)[0] == CertState.GOOD


def test_certificate_without_operator(registry: Registry, batch: AnchoredBatch) -> None:
    cert = batch.certs[3]
    with reverts("certificate has no operator"):
        registry.tx(registry.contract.functions.revoke(*cert.args(), KEY), registry.op1)
    registry.tx(registry.contract.functions.revoke(*cert.args(), KEY), registry.ca1)
    assert status(registry, cert)[0] == CertState.REVOKED


def test_operator_may_not_claim_ca_compromise(registry: Registry, batch: AnchoredBatch) -> None:
    cert = batch.certs[0]
    revoke = registry.contract.functions.revoke
    for reason in (RevocationReason.CA_COMPROMISE, RevocationReason.AA_COMPROMISE):
        with reverts("reason reserved for the issuing CA"):
            registry.tx(revoke(*cert.args(), reason), registry.op1)
    registry.tx(revoke(*cert.args(), RevocationReason.CA_COMPROMISE), registry.ca1)
    assert status(registry, cert)[1] == RevocationReason.CA_COMPROMISE


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (6, "use suspend for certificateHold"),
        (8, "use resume for removeFromCRL"),
        (7, "invalid revocation reason"),
        (11, "invalid revocation reason"),
        (255, "invalid revocation reason"),
    ],
)
def test_invalid_reasons(
    registry: Registry, batch: AnchoredBatch, reason: int, message: str
) -> None:
    with reverts(message):
        registry.tx(
            registry.contract.functions.revoke(*batch.certs[0].args(), reason), registry.ca1
        )


def test_every_valid_reason_is_accepted(registry: Registry, batch: AnchoredBatch) -> None:
    keys = [OP1_KEY] * 8
    many = anchor_batch(registry, registry.ca1, CA1_CERT, keys, tag="reasons")
    valid = [0, 1, 2, 3, 4, 5, 9, 10]
    for cert, reason in zip(many.certs, valid, strict=True):
        registry.tx(registry.contract.functions.revoke(*cert.args(), reason), registry.ca1)
        assert status(registry, cert)[:2] == (CertState.REVOKED, reason)


def test_double_revocation_is_rejected(registry: Registry, batch: AnchoredBatch) -> None:
    cert = batch.certs[2]
    revoke = registry.contract.functions.revoke
    registry.tx(revoke(*cert.args(), KEY), registry.op1)
    first = status(registry, cert)
    with reverts("certificate already revoked"):
        registry.tx(revoke(*cert.args(), RevocationReason.SUPERSEDED), registry.op1)
    with reverts("certificate already revoked"):
        registry.tx(revoke(*cert.args(), RevocationReason.SUPERSEDED), registry.ca1)
    assert status(registry, cert) == first


def test_suspend_resume_then_revoke(registry: Registry, batch: AnchoredBatch) -> None:
    cert = batch.certs[0]
    fns = registry.contract.functions

    receipt = registry.tx(fns.suspend(*cert.args()), registry.op1)
    t = block_time(registry, receipt)
    assert events(registry.contract, "CertificateSuspended", receipt) == [
        {
            "ca_cert_hash": CA1_CERT,
            "cert_hash": cert.cert_hash,
            "batch_id": batch.batch_id,
            "timestamp": t,
            "by": registry.op1,
        }
    ]
    assert status(registry, cert) == (
        CertState.SUSPENDED,
        RevocationReason.CERTIFICATE_HOLD,
        t,
        batch.batch_id,
    )
    with reverts("certificate already suspended"):
        registry.tx(fns.suspend(*cert.args()), registry.ca1)

    receipt = registry.tx(fns.resume(*cert.args()), registry.ca1)  # the CA lifts the hold
    t = block_time(registry, receipt)
    assert events(registry.contract, "CertificateResumed", receipt) == [
        {
            "ca_cert_hash": CA1_CERT,
            "cert_hash": cert.cert_hash,
            "batch_id": batch.batch_id,
            "timestamp": t,
            "by": registry.ca1,
        }
    ]
    assert status(registry, cert) == (
        CertState.GOOD,
        RevocationReason.REMOVE_FROM_CRL,
        t,
        batch.batch_id,
    )
    with reverts("certificate is not suspended"):
        registry.tx(fns.resume(*cert.args()), registry.op1)

    # suspended again, then revoked while suspended
    registry.tx(fns.suspend(*cert.args()), registry.op1)
    registry.tx(fns.revoke(*cert.args(), KEY), registry.op1)
    assert status(registry, cert)[:2] == (CertState.REVOKED, KEY)


def test_revoked_stays_revoked(registry: Registry, batch: AnchoredBatch) -> None:
    cert = batch.certs[4]
    fns = registry.contract.functions
    registry.tx(fns.revoke(*cert.args(), RevocationReason.CESSATION_OF_OPERATION), registry.op2)
    with reverts("certificate is revoked"):
        registry.tx(fns.resume(*cert.args()), registry.op2)
    with reverts("certificate is revoked"):
        registry.tx(fns.suspend(*cert.args()), registry.ca1)
    assert status(registry, cert)[:2] == (
        CertState.REVOKED,
        RevocationReason.CESSATION_OF_OPERATION,
    )


def test_resume_of_a_good_certificate(registry: Registry, batch: AnchoredBatch) -> None:
    with reverts("certificate is not suspended"):
        registry.tx(registry.contract.functions.resume(*batch.certs[0].args()), registry.ca1)


def test_non_validators_cannot_change_status(registry: Registry, batch: AnchoredBatch) -> None:
    fns = registry.contract.functions
    cert = batch.certs[0]
    with reverts("caller is not a validator"):
        registry.tx(fns.revoke(*cert.args(), KEY), registry.outsider)
    with reverts("caller is not a validator"):
        registry.tx(fns.suspend(*cert.args()), registry.outsider)
    with reverts("caller is not a validator"):
        registry.tx(fns.resume(*cert.args()), registry.outsider)


def test_bad_certificate_references(registry: Registry, batch: AnchoredBatch) -> None:
    revoke = registry.contract.functions.revoke
    cert = batch.certs[2]
    bad_proof = [cert.proof[0][:-1] + bytes([cert.proof[0][-1] ^ 1]), *cert.proof[1:]]
    cases = [
        (dataclasses.replace(cert, proof=bad_proof), "certificate not in batch"),
        (dataclasses.replace(cert, leaf_index=1), "certificate not in batch"),
        (dataclasses.replace(cert, leaf_index=5), "certificate not in batch"),
        (dataclasses.replace(cert, proof=cert.proof[:-1]), "certificate not in batch"),
        (dataclasses.replace(cert, cert_hash=h("unknown certificate")), "certificate not in batch"),
        (dataclasses.replace(cert, batch_id=batch.batch_id + 1), "unknown batch"),
        (dataclasses.replace(cert, batch_id=0), "unknown batch"),
        (dataclasses.replace(cert, cert_hash=bytes(32)), "certificate hash is zero"),
    ]
    for ref, message in cases:
        with reverts(message):
            registry.tx(revoke(*ref.args(), KEY), registry.ca1)
    assert status(registry, cert)[0] == CertState.GOOD


def test_revocation_is_scoped_to_the_batch_that_holds_it(
    registry: Registry, batch: AnchoredBatch
) -> None:
    """The same operator's subscriber in another CA's batch is revoked in that CA's scope."""
    other = anchor_batch(registry, registry.ca2, CA2_CERT, [OP1_KEY], tag="ca2")
    cert = other.certs[0]
    with reverts("certificate not in batch"):
        registry.tx(
            registry.contract.functions.revoke(*dataclasses.replace(cert, batch_id=1).args(), KEY),
            registry.op1,
        )
    registry.tx(registry.contract.functions.revoke(*cert.args(), KEY), registry.op1)
    assert status(registry, cert, CA2_CERT)[0] == CertState.REVOKED


def test_removed_operator_key_cannot_revoke(registry: Registry, batch: AnchoredBatch) -> None:
    fns = registry.contract.functions
    registry.tx(fns.propose_remove_trust_anchor(OP1_KEY), registry.ca1)
    registry.tx(fns.approve(1), registry.ca2)
    registry.tx(fns.approve(1), registry.op2)
    with reverts("caller is not the subject's operator"):
        registry.tx(fns.revoke(*batch.certs[0].args(), KEY), registry.op1)
    registry.tx(fns.revoke(*batch.certs[0].args(), KEY), registry.ca1)


def test_views_agree_with_python_hashing(registry: Registry, batch: AnchoredBatch) -> None:
    fns = registry.contract.functions
    for cert in batch.certs:
        entry = certificate_leaf_entry(cert.cert_hash, cert.operator_key_hash)
        assert fns.leaf_hash(cert.cert_hash, cert.operator_key_hash).call() == leaf_hash(entry)
        assert fns.certificate_in_batch(*cert.args()).call()
        assert not fns.certificate_in_batch(*dataclasses.replace(cert, batch_id=9).args()).call()
    wrong = dataclasses.replace(batch.certs[0], operator_key_hash=OP2_KEY)
    assert not fns.certificate_in_batch(*wrong.args()).call()
