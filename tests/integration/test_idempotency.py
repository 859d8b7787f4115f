"""Idempotent ceIssuance (ARCHITECTURE §2.1 step 5: "a repeated request with the same transaction
ID returns the same result").

At the CMS the key is the CMA's transaction id, bound to the subscriber who first used it; at
the CA it is the request id, bound to the ppCSR it was first used for. Retries, sequential or
concurrent, return the stored certificate and store nothing new; reuse by someone else, or for
another ppCSR, is refused with ALREADY_EXISTS.
"""

from __future__ import annotations

import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc

from deploy.local import LocalCluster
from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc, issuance_pb2, issuance_pb2_grpc
from tests.integration.conftest import (
    Stored,
    authenticate,
    expect_error,
    issue_request,
    make_flow,
    make_ppcsr,
    operator_key,
)

Stub = enrollment_pb2_grpc.EnrollmentStub
_index = itertools.count(40)

# --- CMS: SubmitPpCsr and the transaction id ------------------------------------------------------


def test_same_transaction_returns_identical_response(cluster: LocalCluster, stub: Stub) -> None:
    before = Stored.of(cluster)
    f = make_flow(cluster, next(_index))
    authenticate(stub, f)
    request = f.submission()
    first = stub.SubmitPpCsr(request, timeout=30)
    f.verify(first)
    again = stub.SubmitPpCsr(request, timeout=30)
    assert again.SerializeToString() == first.SerializeToString()
    assert again.bundle.certificate_der == first.bundle.certificate_der
    assert Stored.of(cluster) == before.plus(1)

    # The CMA lost the answer and its session: it authenticates again and resubmits the same
    # transaction (re-sealed under the new session's keys): the stored answer comes back.
    authenticate(stub, f)
    retry = stub.SubmitPpCsr(f.submission(), timeout=30)
    assert retry.SerializeToString() == first.SerializeToString()
    assert Stored.of(cluster) == before.plus(1)


def test_concurrent_retries_of_one_transaction(cluster: LocalCluster, stub: Stub) -> None:
    """Retries racing the first attempt: each gets the stored answer or a retryable ABORTED,
    never an INTERNAL error; exactly one certificate and one subject are stored."""
    before = Stored.of(cluster)
    f = make_flow(cluster, next(_index))
    authenticate(stub, f)
    request = f.submission()

    def submit(_: int) -> enrollment_pb2.SubmitPpCsrResponse | grpc.StatusCode:
        try:
            resp: enrollment_pb2.SubmitPpCsrResponse = stub.SubmitPpCsr(request, timeout=30)
            return resp
        except grpc.RpcError as e:
            code: grpc.StatusCode = e.code()
            return code

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(submit, range(8)))
    answers = {r.SerializeToString() for r in results if not isinstance(r, grpc.StatusCode)}
    errors = {r for r in results if isinstance(r, grpc.StatusCode)}
    assert errors <= {grpc.StatusCode.ABORTED}, errors
    assert len(answers) == 1
    final = stub.SubmitPpCsr(request, timeout=30)
    assert final.SerializeToString() in answers
    f.verify(final)
    assert Stored.of(cluster) == before.plus(1)


def test_transaction_id_of_another_subscriber(cluster: LocalCluster, stub: Stub) -> None:
    first = make_flow(cluster, next(_index))
    authenticate(stub, first)
    first.verify(stub.SubmitPpCsr(first.submission(), timeout=30))
    before = Stored.of(cluster)

    other = make_flow(cluster, next(_index))
    other.transaction_id = first.transaction_id
    authenticate(stub, other)
    err = expect_error(
        lambda: stub.SubmitPpCsr(other.submission(), timeout=30),
        grpc.StatusCode.ALREADY_EXISTS,
        "TRANSACTION_ID_REUSED",
    )
    assert first.subject_id not in err.details
    assert Stored.of(cluster) == before
    # With its own transaction id the other subscriber enrolls.
    other.transaction_id = str(uuid.uuid4())
    other.verify(stub.SubmitPpCsr(other.submission(), timeout=30))
    assert Stored.of(cluster) == before.plus(1)


def test_subject_id_reused_under_a_new_transaction(cluster: LocalCluster, stub: Stub) -> None:
    """A pseudonym names one ppCert: a new transaction for a subject id already enrolled is
    refused before the CA is asked, so no orphan certificate is issued."""
    f = make_flow(cluster, next(_index))
    authenticate(stub, f)
    f.verify(stub.SubmitPpCsr(f.submission(), timeout=30))
    before = Stored.of(cluster)
    f.transaction_id = str(uuid.uuid4())
    authenticate(stub, f)
    expect_error(
        lambda: stub.SubmitPpCsr(f.submission(), timeout=30),
        grpc.StatusCode.ALREADY_EXISTS,
        "SUBJECT_ID_REUSED",
    )
    assert Stored.of(cluster) == before


# --- CA: Issue and the request id -----------------------------------------------------------------


def test_ca_same_request_same_ppcsr(
    cluster: LocalCluster, issuance: issuance_pb2_grpc.IssuanceStub
) -> None:
    assert cluster.ca is not None
    before = cluster.ca.store.count()
    key, csr, rid = operator_key(cluster), make_ppcsr(), str(uuid.uuid4())
    first = issuance.Issue(issue_request(key, csr, rid), timeout=30)
    # A retry carries a fresh endorsement (new time, new ECDSA signature) over the same ppCSR.
    again = issuance.Issue(issue_request(key, csr, rid), timeout=30)
    assert again.bundle.certificate_der == first.bundle.certificate_der
    assert cluster.ca.store.count() == before + 1

    # Same request id, another ppCSR (properly endorsed): refused, nothing stored.
    other = issue_request(key, make_ppcsr(), rid)
    err = expect_error(
        lambda: issuance.Issue(other, timeout=30),
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_REUSED",
    )
    assert rid in err.details
    assert cluster.ca.store.count() == before + 1
    stored = cluster.ca.store.by_request(rid)
    assert stored is not None and stored.cert_der == first.bundle.certificate_der


def test_ca_concurrent_identical_requests(
    cluster: LocalCluster, issuance: issuance_pb2_grpc.IssuanceStub
) -> None:
    assert cluster.ca is not None
    before = cluster.ca.store.count()
    key, csr, rid = operator_key(cluster), make_ppcsr(), str(uuid.uuid4())
    requests = [issue_request(key, csr, rid) for _ in range(8)]

    def issue(req: issuance_pb2.IssueRequest) -> bytes:
        resp: issuance_pb2.IssueResponse = issuance.Issue(req, timeout=30)
        return bytes(resp.bundle.certificate_der)

    with ThreadPoolExecutor(8) as pool:
        certs = set(pool.map(issue, requests))
    assert len(certs) == 1
    assert cluster.ca.store.count() == before + 1


def test_one_authentication_one_ppcert(cluster: LocalCluster, stub: Stub) -> None:
    """K_encr/K_aut belong to one ppCert: a second transaction on the same session is refused."""
    f = make_flow(cluster, next(_index))
    authenticate(stub, f)
    f.verify(stub.SubmitPpCsr(f.submission(), timeout=30))
    before = Stored.of(cluster)
    first_tx = f.transaction_id
    f.transaction_id = str(uuid.uuid4())
    f.subject_id = "pp-" + "a" * 26
    expect_error(
        lambda: stub.SubmitPpCsr(f.submission(), timeout=30),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SESSION_ALREADY_USED",
    )
    assert Stored.of(cluster) == before
    # A retry of the first transaction on the same session still gets its stored answer.
    f.transaction_id = first_tx
    assert stub.SubmitPpCsr(f.submission(), timeout=30).transaction_id == first_tx
