"""CA ``Issuance`` failure paths, called the way a CMS calls it (ARCHITECTURE §2.1 step 4, §3).

Each test talks to the running CA node over mutual TLS with a CMS node's cluster TLS material and
sends a forged, swapped, stale or malformed endorsement or ppCSR. The CA must answer with the
exact status code and ErrorInfo reason and store nothing; the correctly endorsed request that
follows is issued.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cma.keystore import generate_key
from deploy.local import LocalCluster
from deploy.pki import init_cluster_pki
from mpkix.profile.ppcsr import parse_ppcsr
from mpkix.rpc.tls import TlsConfig
from mpkix.v1 import issuance_pb2, issuance_pb2_grpc
from tests.integration.conftest import (
    ca_channel,
    expect_error,
    issue_request,
    make_ppcsr,
    operator_key,
)

PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
Stub = issuance_pb2_grpc.IssuanceStub


def request_id() -> str:
    return str(uuid.uuid4())


def ca_count(cluster: LocalCluster) -> int:
    assert cluster.ca is not None
    return cluster.ca.store.count()


def issue_ok(cluster: LocalCluster, issuance: Stub, csr_der: bytes, rid: str) -> x509.Certificate:
    """The correct request: endorsed by the real operator key; exactly one more certificate."""
    before = ca_count(cluster)
    resp = issuance.Issue(issue_request(operator_key(cluster), csr_der, rid), timeout=30)
    assert resp.request_id == rid
    cert = x509.load_der_x509_certificate(resp.bundle.certificate_der)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(*spki) == parse_ppcsr(csr_der).public_key.public_bytes(
        *spki
    )
    assert ca_count(cluster) == before + 1
    return cert


# --- 9: endorsement by an unknown operator key ----------------------------------------------------


def test_endorsement_by_unknown_key(cluster: LocalCluster, issuance: Stub) -> None:
    before = ca_count(cluster)
    csr, rid = make_ppcsr(), request_id()
    forged = issue_request(generate_key(), csr, rid)  # a fresh key, never registered
    err = expect_error(
        lambda: issuance.Issue(forged, timeout=30), PERMISSION_DENIED, "ENDORSEMENT_REJECTED"
    )
    assert "not a registered operator endorsement key" in err.details
    assert ca_count(cluster) == before
    issue_ok(cluster, issuance, csr, rid)


def test_endorsement_claiming_the_real_key_id(cluster: LocalCluster, issuance: Stub) -> None:
    """A fresh key's signature presented under the registered key's id does not verify."""
    before = ca_count(cluster)
    csr, rid = make_ppcsr(), request_id()
    forged = issue_request(generate_key(), csr, rid)
    forged.endorsement.key_id = issue_request(operator_key(cluster), csr, rid).endorsement.key_id
    err = expect_error(
        lambda: issuance.Issue(forged, timeout=30), PERMISSION_DENIED, "ENDORSEMENT_REJECTED"
    )
    assert "signature does not verify" in err.details
    assert ca_count(cluster) == before
    issue_ok(cluster, issuance, csr, rid)


def test_endorsement_body_tampered(cluster: LocalCluster, issuance: Stub) -> None:
    before = ca_count(cluster)
    csr, rid = make_ppcsr(), request_id()
    req = issue_request(operator_key(cluster), csr, rid)
    body = issuance_pb2.EndorsementBody.FromString(req.endorsement.body)
    body.signature_profile = "mss:mpkix:sign:loa4:sscd"
    req.endorsement.body = body.SerializeToString(deterministic=True)
    expect_error(lambda: issuance.Issue(req, timeout=30), PERMISSION_DENIED, "ENDORSEMENT_REJECTED")
    assert ca_count(cluster) == before


def test_endorsement_naming_another_operator(cluster: LocalCluster, issuance: Stub) -> None:
    before = ca_count(cluster)
    csr, rid = make_ppcsr(), request_id()
    req = issue_request(operator_key(cluster), csr, rid, operator_id="262-01")
    err = expect_error(
        lambda: issuance.Issue(req, timeout=30), PERMISSION_DENIED, "ENDORSEMENT_REJECTED"
    )
    assert "262-01" in err.details
    assert ca_count(cluster) == before


# --- 10: endorsement over a different ppCSR -------------------------------------------------------


def test_endorsement_over_another_ppcsr(cluster: LocalCluster, issuance: Stub) -> None:
    before = ca_count(cluster)
    csr_a, csr_b, rid = make_ppcsr(), make_ppcsr(), request_id()
    swapped = issue_request(operator_key(cluster), csr_b, rid, endorse_csr=csr_a)
    err = expect_error(
        lambda: issuance.Issue(swapped, timeout=30), PERMISSION_DENIED, "ENDORSEMENT_REJECTED"
    )
    assert "different ppCSR" in err.details
    assert ca_count(cluster) == before
    issue_ok(cluster, issuance, csr_b, rid)


# --- 16: stale (and future) endorsement -----------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "words"),
    [(dt.timedelta(minutes=-10), "older than"), (dt.timedelta(minutes=10), "future")],
)
def test_endorsement_out_of_time(
    cluster: LocalCluster, issuance: Stub, offset: dt.timedelta, words: str
) -> None:
    before = ca_count(cluster)
    csr, rid = make_ppcsr(), request_id()
    when = dt.datetime.now(dt.UTC) + offset
    req = issue_request(operator_key(cluster), csr, rid, now=when)
    err = expect_error(
        lambda: issuance.Issue(req, timeout=30), PERMISSION_DENIED, "ENDORSEMENT_REJECTED"
    )
    assert words in err.details
    assert ca_count(cluster) == before
    issue_ok(cluster, issuance, csr, rid)


# --- request shape --------------------------------------------------------------------------------


def test_missing_endorsement(cluster: LocalCluster, issuance: Stub) -> None:
    before = ca_count(cluster)
    req = issuance_pb2.IssueRequest(request_id=request_id(), csr_der=make_ppcsr())
    err = expect_error(lambda: issuance.Issue(req, timeout=30), INVALID_ARGUMENT)
    assert "endorsement is missing" in err.details
    assert ca_count(cluster) == before


def test_request_id_differs_from_endorsed_transaction(
    cluster: LocalCluster, issuance: Stub
) -> None:
    before = ca_count(cluster)
    csr = make_ppcsr()
    req = issue_request(operator_key(cluster), csr, request_id())
    req.request_id = request_id()
    err = expect_error(lambda: issuance.Issue(req, timeout=30), INVALID_ARGUMENT)
    assert "endorsed transaction id" in err.details
    assert ca_count(cluster) == before


@pytest.mark.parametrize("how", ["signature", "public_key"])
def test_endorsed_ppcsr_with_bad_self_signature(
    cluster: LocalCluster, issuance: Stub, how: str
) -> None:
    """Even an endorsed ppCSR needs a valid proof of possession (a CMS is not trusted for it)."""
    before = ca_count(cluster)
    good = make_ppcsr()
    if how == "signature":
        bad = bytearray(good)
        bad[-1] ^= 0x01
        csr = bytes(bad)
    else:
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        mine = parse_ppcsr(good).public_key.public_bytes(*spki)
        csr = good.replace(mine, generate_key().public_key().public_bytes(*spki))
        assert csr != good
    rid = request_id()
    req = issue_request(operator_key(cluster), csr, rid)
    err = expect_error(lambda: issuance.Issue(req, timeout=30), INVALID_ARGUMENT, "PPCSR_INVALID")
    assert "self-signature" in err.details
    assert ca_count(cluster) == before
    issue_ok(cluster, issuance, good, request_id())


def test_truncated_ppcsr(cluster: LocalCluster, issuance: Stub) -> None:
    before = ca_count(cluster)
    csr = make_ppcsr()[:-3]
    req = issue_request(operator_key(cluster), csr, request_id())
    expect_error(lambda: issuance.Issue(req, timeout=30), INVALID_ARGUMENT, "PPCSR_INVALID")
    assert ca_count(cluster) == before


def test_truncated_protobuf_on_the_wire(cluster: LocalCluster, ca_chan: grpc.Channel) -> None:
    """grpc-python's asyncio server reports an undecodable request as UNKNOWN (see
    test_enrollment_failures.test_truncated_protobuf_on_the_wire)."""
    before = ca_count(cluster)
    wire = issue_request(operator_key(cluster), make_ppcsr(), request_id()).SerializeToString()
    raw = ca_chan.unary_unary(
        "/mpkix.v1.Issuance/Issue", request_serializer=None, response_deserializer=None
    )
    err = expect_error(lambda: raw(wire[:-3], timeout=30), grpc.StatusCode.UNKNOWN)
    assert "DecodeError" in err.details
    assert ca_count(cluster) == before


def test_oversized_inputs(cluster: LocalCluster, issuance: Stub) -> None:
    before = ca_count(cluster)
    key = operator_key(cluster)
    big_csr = bytes(20 * 1024)  # above the CA's 16 KiB ppCSR bound, below its message limit
    req = issue_request(key, big_csr, request_id())
    err = expect_error(lambda: issuance.Issue(req, timeout=30), INVALID_ARGUMENT)
    assert "larger than" in err.details
    assert cluster.ca is not None
    limit = cluster.ca.cfg.max_message_bytes
    huge = issue_request(key, bytes(limit + 1), request_id())
    expect_error(lambda: issuance.Issue(huge, timeout=30), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert ca_count(cluster) == before


# --- 15: mutual TLS -------------------------------------------------------------------------------


def call_ca(cluster: LocalCluster, tls: TlsConfig) -> issuance_pb2.GetCaChainResponse:
    with ca_channel(cluster, tls) as ch:
        resp: issuance_pb2.GetCaChainResponse = Stub(ch).GetCaChain(
            issuance_pb2.GetCaChainRequest(), timeout=10
        )
        return resp


def test_ca_requires_a_cluster_client_certificate(cluster: LocalCluster, tmp_path: Path) -> None:
    root = (cluster.tls_dir / "ca.pem").read_bytes()
    # Without a client certificate the TLS handshake fails.
    err = expect_error(lambda: call_ca(cluster, TlsConfig(ca=root)), grpc.StatusCode.UNAVAILABLE)
    assert err.details
    # A client certificate from another root fails the same way.
    foreign = tmp_path / "foreign-pki"
    init_cluster_pki(foreign, ["cms-rogue"])
    rogue = TlsConfig(
        ca=root,
        cert=(foreign / "cms-rogue.pem").read_bytes(),
        key=(foreign / "cms-rogue.key").read_bytes(),
    )
    expect_error(lambda: call_ca(cluster, rogue), grpc.StatusCode.UNAVAILABLE)
    # The CMS node's own certificate gets through.
    assert call_ca(cluster, cluster.tls(cluster.operators[0].node_name)).ca_chain_der
