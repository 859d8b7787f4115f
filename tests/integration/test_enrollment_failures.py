"""ceIssuance failure paths at the CMS, over real TLS gRPC (ARCHITECTURE §2.1 steps 1-3, §3).

EAP-AKA' (RFC 5448, RFC 4187 §10.15, TS 33.102 §6.3.3/§6.3.5): wrong RES, wrong AT_MAC,
replayed responses, expired sessions, SQN resynchronization with a genuine and a forged AUTS,
unknown identities. ppCSR submission (paper §5.2 steps 2-3): a wrongly sealed attribute, a
broken self-signature, a submission sealed with other keys, truncated and oversized input.
Each bad input gets the exact status code and ErrorInfo reason, nothing is stored, and a
correct retry still works where that makes sense.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import time

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from cma.enrollment import EnrollmentError, EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from cms_node.authenticator import AUTH_FAILED
from deploy.local import LocalCluster
from mpkix.aka import eap
from mpkix.aka.kdf import amf_separation_bit_set
from mpkix.aka.sqn import IND_COUNT, UsimSqnState, join_sqn, split_sqn
from mpkix.attributes import ATTRIBUTE_IDS
from mpkix.envelope import submission_aad
from mpkix.profile.ppcsr import build_ppcsr
from mpkix.profile.sealing import MIN_SUBMISSION_LEN, Sealer
from mpkix.v1 import enrollment_pb2, enrollment_pb2_grpc
from tests.conftest import OPERATOR
from tests.integration.conftest import (
    Outcome,
    ShortTtlCms,
    Stored,
    authenticate,
    complete,
    expect_error,
    make_flow,
    sealed_request,
    start,
)

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
Stub = enrollment_pb2_grpc.EnrollmentStub

_index = itertools.count(10)


def flow(cluster: LocalCluster, sqn: UsimSqnState | None = None) -> EnrollmentFlow:
    """A flow for a subscriber no other test of this module uses."""
    return make_flow(cluster, next(_index), sqn)


def submit_ok(stub: Stub, f: EnrollmentFlow) -> enrollment_pb2.SubmitPpCsrResponse:
    resp = stub.SubmitPpCsr(f.submission(), timeout=30)
    f.verify(resp)
    return resp


def enroll_again(cluster: LocalCluster, stub: Stub, f: EnrollmentFlow) -> None:
    """The correct retry: authenticate afresh and enroll; exactly one more of each is stored."""
    before = Stored.of(cluster)
    authenticate(stub, f)
    submit_ok(stub, f)
    assert Stored.of(cluster) == before.plus(1)


def bad_response(
    f: EnrollmentFlow, packet: bytes, *, res: bytes | None = None, k_aut: bytes | None = None
) -> bytes:
    """Rebuild the CMA's challenge response with another RES and/or AT_MAC key."""
    assert f.keys is not None
    good = eap.parse_challenge_response(packet)
    return eap.challenge_response(
        good.identifier, res if res is not None else good.res, k_aut or f.keys.k_aut
    )


def flip(data: bytes, index: int = -1) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


# --- 1, 2: wrong RES, wrong AT_MAC ---------------------------------------------------------------


@pytest.mark.parametrize("what", ["res", "at_mac"])
def test_wrong_res_or_mac_is_unauthenticated(cluster: LocalCluster, stub: Stub, what: str) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    good = start(stub, f)
    assert f.keys is not None
    if what == "res":
        bad = bad_response(f, good, res=flip(eap.parse_challenge_response(good).res))
    else:
        bad = bad_response(f, good, k_aut=flip(f.keys.k_aut))
        assert eap.parse_challenge_response(bad).res == eap.parse_challenge_response(good).res
    err = expect_error(lambda: complete(stub, f.session_id, bad), UNAUTHENTICATED)
    assert err.details == AUTH_FAILED
    # The failed response consumed the challenge: even the right answer is now refused.
    expect_error(lambda: complete(stub, f.session_id, good), UNAUTHENTICATED)
    expect_error(lambda: stub.SubmitPpCsr(f.submission()), UNAUTHENTICATED)
    assert Stored.of(cluster) == before
    enroll_again(cluster, stub, f)


# --- 3: replayed challenge response --------------------------------------------------------------


def test_replayed_challenge_response(cluster: LocalCluster, stub: Stub) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    answer = start(stub, f)
    first_session = f.session_id
    assert complete(stub, first_session, answer).outcome == Outcome.AUTHENTICATED
    err = expect_error(lambda: complete(stub, first_session, answer), UNAUTHENTICATED)
    assert err.details == AUTH_FAILED
    # A replay on a session ends it (fail safe): it can no longer submit a ppCSR.
    expect_error(lambda: stub.SubmitPpCsr(f.submission()), UNAUTHENTICATED)

    # Replayed into a new session of the same subscriber (new RAND): refused as well.
    fresh = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=f.identity_packet()), timeout=10
    )
    assert fresh.session_id != first_session
    assert eap.parse_challenge_request(fresh.eap_packet).identifier == (
        eap.parse_challenge_response(answer).identifier
    )
    err = expect_error(lambda: complete(stub, fresh.session_id, answer), UNAUTHENTICATED)
    assert err.details == AUTH_FAILED
    assert Stored.of(cluster) == before
    enroll_again(cluster, stub, f)


# --- 4: expired session --------------------------------------------------------------------------


def test_expired_challenge_is_unauthenticated(
    cluster: LocalCluster, short_ttl_cms: ShortTtlCms
) -> None:
    stub = short_ttl_cms.stub
    state = short_ttl_cms.node.state
    before = (state.count_subjects(), state.count_enrollments())
    f = flow(cluster)
    t0 = dt.datetime.now(dt.UTC)
    resp = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=f.identity_packet()), timeout=10
    )
    # The advertised expiry is the node's session TTL (0.5 s), not a fixed default.
    expires = resp.expires_at.ToDatetime(tzinfo=dt.UTC)
    assert t0 < expires <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)
    answer = f.on_challenge(resp.session_id, resp.eap_packet)
    time.sleep(0.6)
    err = expect_error(lambda: complete(stub, f.session_id, answer), UNAUTHENTICATED)
    assert err.details == AUTH_FAILED
    assert (state.count_subjects(), state.count_enrollments()) == before
    # Retry within the TTL: authenticated.
    answer = start(stub, f)
    done = complete(stub, f.session_id, answer)
    assert done.outcome == Outcome.AUTHENTICATED
    assert done.expires_at.ToDatetime(tzinfo=dt.UTC) <= (
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)
    )


def test_expired_authenticated_session_cannot_submit(
    cluster: LocalCluster, short_ttl_cms: ShortTtlCms
) -> None:
    stub = short_ttl_cms.stub
    state = short_ttl_cms.node.state
    before = (state.count_subjects(), state.count_enrollments())
    ca_before = Stored.of(cluster).ca_certificates
    f = flow(cluster)
    authenticate(stub, f)
    request = f.submission()
    time.sleep(0.6)
    err = expect_error(lambda: stub.SubmitPpCsr(request), UNAUTHENTICATED)
    assert err.details == AUTH_FAILED
    assert (state.count_subjects(), state.count_enrollments()) == before
    assert Stored.of(cluster).ca_certificates == ca_before
    # Re-authenticate and submit promptly: the second node enrolls through the same CA.
    authenticate(stub, f)
    f.verify(stub.SubmitPpCsr(f.submission(), timeout=30))
    assert (state.count_subjects(), state.count_enrollments()) == (before[0] + 1, before[1] + 1)
    assert Stored.of(cluster).ca_certificates == ca_before + 1


# --- 5: SQN resynchronization ---------------------------------------------------------------------


def hss_sqn_of(cluster: LocalCluster, f: EnrollmentFlow) -> int:
    sub = cluster.cms[OPERATOR].hss.get(f.usim.imsi)
    assert sub is not None
    return sub.sqn


def usim_ahead_of(cluster: LocalCluster, f: EnrollmentFlow, by: int = 1000) -> int:
    """Make the USIM's SQN memory ``by`` SEQ steps ahead of the HSS for every IND; returns
    the SEQ it is at."""
    seq = split_sqn(hss_sqn_of(cluster, f))[0] + by
    f.usim.sqn_state = UsimSqnState(
        seq_ms=[seq] * IND_COUNT, highest_sqn=join_sqn(seq, IND_COUNT - 1)
    )
    return seq


def test_sqn_resynchronization_then_enrollment(cluster: LocalCluster, stub: Stub) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    usim_seq = usim_ahead_of(cluster, f)
    usim_sqn = f.usim.sqn_state.sqn_ms
    answer = start(stub, f)
    body = eap.decode_packet(answer).aka
    assert body.subtype == eap.AkaSubtype.SYNCHRONIZATION_FAILURE
    assert body.find(eap.AtAuts) is not None
    assert f.keys is None

    done = complete(stub, f.session_id, answer)
    assert done.outcome == Outcome.RESYNCHRONIZED
    hss_sqn = hss_sqn_of(cluster, f)
    assert hss_sqn > usim_sqn  # the HSS moved past the USIM's SQN_MS recovered from AUTS
    fresh_answer = f.on_complete(done)  # the USIM accepts the fresh challenge
    assert fresh_answer is not None and f.usim.sqn_state.sqn_ms == hss_sqn
    assert split_sqn(hss_sqn)[0] == usim_seq + 1

    done = complete(stub, f.session_id, fresh_answer)
    assert done.outcome == Outcome.AUTHENTICATED
    assert f.on_complete(done) is None
    submit_ok(stub, f)
    assert Stored.of(cluster) == before.plus(1)


def test_forged_auts_is_unauthenticated(cluster: LocalCluster, stub: Stub) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    resp = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=f.identity_packet()), timeout=10
    )
    hss_sqn = hss_sqn_of(cluster, f)
    ch = eap.parse_challenge_request(resp.eap_packet)
    forged = eap.sync_failure_response(ch.identifier, os.urandom(14))
    err = expect_error(lambda: complete(stub, resp.session_id, forged), UNAUTHENTICATED)
    assert err.details == AUTH_FAILED
    # The HSS did not trust the forged SQN_MS.
    assert hss_sqn_of(cluster, f) == hss_sqn
    assert Stored.of(cluster) == before
    enroll_again(cluster, stub, f)


def test_second_sync_failure_in_one_session_is_refused(cluster: LocalCluster, stub: Stub) -> None:
    f = flow(cluster)
    usim_ahead_of(cluster, f)
    answer = start(stub, f)
    done = complete(stub, f.session_id, answer)
    assert done.outcome == Outcome.RESYNCHRONIZED
    # Answer the fresh challenge with another (genuine) synchronization failure.
    ch = eap.parse_challenge_request(done.eap_packet)
    again = eap.sync_failure_response(
        ch.identifier, eap.decode_packet(answer).aka.require(eap.AtAuts).auts
    )
    err = expect_error(lambda: complete(stub, f.session_id, again), UNAUTHENTICATED)
    assert err.details == AUTH_FAILED


# --- 6: unknown identity --------------------------------------------------------------------------


def unknown_imsi(cluster: LocalCluster) -> str:
    hss = cluster.cms[OPERATOR].hss
    known = make_flow(cluster, 0).usim.imsi
    for n in range(999_999_999, 0, -7919):
        imsi = known[:6] + f"{n:09d}"
        if hss.get(imsi) is None:
            return imsi
    raise AssertionError("no free IMSI")


def test_unknown_identity_gets_decoy_challenge(cluster: LocalCluster, stub: Stub) -> None:
    before = Stored.of(cluster)
    # Reference: the answer to a wrong RES of a known subscriber.
    known = flow(cluster)
    good = start(stub, known)
    wrong = bad_response(known, good, res=os.urandom(8))
    known_err = expect_error(lambda: complete(stub, known.session_id, wrong), UNAUTHENTICATED)

    usim = EmulatedUsim(unknown_imsi(cluster), os.urandom(16), os.urandom(16), UsimSqnState())
    stranger = EnrollmentFlow(usim=usim, attributes=dict(known.attributes), key=generate_key())
    resp = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=stranger.identity_packet()),
        timeout=10,
    )
    # A well-formed challenge, shaped like a real one.
    ch = eap.parse_challenge_request(resp.eap_packet)
    assert resp.session_id
    assert ch.network_name == b"WLAN" and ch.kdfs == (eap.KDF_AKA_PRIME,)
    assert amf_separation_bit_set(ch.autn)
    assert len(ch.rand) == 16 and len(ch.autn) == 16
    # The CMA's check of MAC-A fails: the network does not know this subscriber's K.
    with pytest.raises(EnrollmentError, match="MAC-A"):
        stranger.on_challenge(resp.session_id, resp.eap_packet)
    arbitrary = eap.challenge_response(ch.identifier, os.urandom(8), os.urandom(32))
    err = expect_error(lambda: complete(stub, resp.session_id, arbitrary), UNAUTHENTICATED)
    assert err.details == known_err.details == AUTH_FAILED
    assert err.reason == known_err.reason
    # A synchronization failure on a decoy gets the same answer (no resync oracle either).
    resp = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=stranger.identity_packet()),
        timeout=10,
    )
    ch = eap.parse_challenge_request(resp.eap_packet)
    auts = eap.sync_failure_response(ch.identifier, os.urandom(14))
    err = expect_error(lambda: complete(stub, resp.session_id, auts), UNAUTHENTICATED)
    assert (err.details, err.reason) == (known_err.details, known_err.reason)
    assert Stored.of(cluster) == before


def test_decoy_challenge_has_real_challenge_length(cluster: LocalCluster, stub: Stub) -> None:
    known = flow(cluster)
    real = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=known.identity_packet()), timeout=10
    )
    usim = EmulatedUsim(unknown_imsi(cluster), os.urandom(16), os.urandom(16), UsimSqnState())
    stranger = EnrollmentFlow(usim=usim, attributes={}, key=generate_key())
    decoy = stub.StartAuthentication(
        enrollment_pb2.StartAuthenticationRequest(eap_packet=stranger.identity_packet()),
        timeout=10,
    )
    assert len(decoy.eap_packet) == len(real.eap_packet)
    assert len(decoy.session_id) == len(real.session_id)


# --- 7: wrongly sealed attribute ------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ATTRIBUTE_IDS)
def test_wrong_attribute_is_permission_denied(
    cluster: LocalCluster, stub: Stub, attribute: str
) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    authenticate(stub, f)
    right = dict(f.attributes)
    f.attributes = {**right, attribute: right[attribute] + " x"}
    err = expect_error(
        lambda: stub.SubmitPpCsr(f.submission(), timeout=30),
        grpc.StatusCode.PERMISSION_DENIED,
        "ATTRIBUTE_MISMATCH",
    )
    assert attribute in err.details
    assert Stored.of(cluster) == before
    # Same session, same transaction id, the right values: issued.
    f.attributes = right
    submit_ok(stub, f)
    assert Stored.of(cluster) == before.plus(1)


# --- 8: ppCSR self-signature does not match its key -----------------------------------------------


def broken_ppcsr(f: EnrollmentFlow, how: str) -> bytes:
    assert f.keys is not None
    sealer = Sealer(f.keys.k_encr, f.keys.k_aut)
    sealed = {a: sealer.seal_value(a, v) for a, v in sorted(f.attributes.items())}
    der = build_ppcsr(f.key, f.subject_id, sealed).public_bytes(serialization.Encoding.DER)
    if how == "signature":
        return flip(der)  # last byte of the ECDSA signature's s
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    mine = f.key.public_key().public_bytes(*spki)
    other = generate_key().public_key().public_bytes(*spki)
    assert len(mine) == len(other) and der.count(mine) == 1
    return der.replace(mine, other)


@pytest.mark.parametrize("how", ["signature", "public_key"])
def test_ppcsr_self_signature_mismatch(cluster: LocalCluster, stub: Stub, how: str) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    authenticate(stub, f)
    request = sealed_request(f, broken_ppcsr(f, how))
    err = expect_error(
        lambda: stub.SubmitPpCsr(request, timeout=30), INVALID_ARGUMENT, "PPCSR_INVALID"
    )
    assert "self-signature" in err.details
    assert Stored.of(cluster) == before
    submit_ok(stub, f)
    assert Stored.of(cluster) == before.plus(1)


# --- 13: sealed with the wrong keys ---------------------------------------------------------------


@pytest.mark.parametrize("keys", ["both", "k_encr", "k_aut", "other_session"])
def test_submission_sealed_with_wrong_keys(cluster: LocalCluster, stub: Stub, keys: str) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    authenticate(stub, f)
    assert f.keys is not None
    csr = f.submission()  # builds f.csr_der with the right seals inside
    k_encr, k_aut = f.keys.k_encr, f.keys.k_aut
    if keys in ("both", "k_encr"):
        k_encr = os.urandom(16)
    if keys in ("both", "k_aut"):
        k_aut = os.urandom(32)
    aad_session = "another-session-id" if keys == "other_session" else None
    request = sealed_request(f, f.csr_der, sealer=Sealer(k_encr, k_aut), aad_session_id=aad_session)
    assert request.sealed_submission != csr.sealed_submission
    expect_error(
        lambda: stub.SubmitPpCsr(request, timeout=30), UNAUTHENTICATED, "SUBMISSION_NOT_AUTHENTIC"
    )
    assert Stored.of(cluster) == before
    submit_ok(stub, f)
    assert Stored.of(cluster) == before.plus(1)


def test_submission_before_authentication_is_unauthenticated(
    cluster: LocalCluster, stub: Stub
) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    start(stub, f)  # challenged, not yet answered
    request = f.submission()
    err = expect_error(lambda: stub.SubmitPpCsr(request, timeout=30), UNAUTHENTICATED)
    assert "not authenticated" in err.details
    expect_error(
        lambda: stub.SubmitPpCsr(
            enrollment_pb2.SubmitPpCsrRequest(
                session_id="no-such-session",
                transaction_id=f.transaction_id,
                sealed_submission=request.sealed_submission,
            ),
            timeout=30,
        ),
        UNAUTHENTICATED,
    )
    assert Stored.of(cluster) == before


def test_inner_transaction_id_must_match(cluster: LocalCluster, stub: Stub) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    authenticate(stub, f)
    f.submission()
    assert f.keys is not None
    sealer = Sealer(f.keys.k_encr, f.keys.k_aut)
    inner = enrollment_pb2.PpCsrSubmission(csr_der=f.csr_der, transaction_id="other-transaction")
    blob = sealer.seal_submission(
        inner.SerializeToString(), submission_aad(f.session_id, f.transaction_id)
    )
    request = enrollment_pb2.SubmitPpCsrRequest(
        session_id=f.session_id, transaction_id=f.transaction_id, sealed_submission=blob
    )
    err = expect_error(lambda: stub.SubmitPpCsr(request, timeout=30), INVALID_ARGUMENT)
    assert "transaction_id" in err.details
    assert Stored.of(cluster) == before


# --- 11: truncated messages -----------------------------------------------------------------------


def test_truncated_eap_packets(cluster: LocalCluster, stub: Stub) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    identity = f.identity_packet()
    err = expect_error(
        lambda: stub.StartAuthentication(
            enrollment_pb2.StartAuthenticationRequest(eap_packet=identity[:-3]), timeout=10
        ),
        INVALID_ARGUMENT,
    )
    assert "truncated" in err.details
    answer = start(stub, f)
    err = expect_error(lambda: complete(stub, f.session_id, answer[:-3]), INVALID_ARGUMENT)
    assert "truncated" in err.details
    # A malformed packet does not consume the challenge: the whole answer still works.
    done = complete(stub, f.session_id, answer)
    assert done.outcome == Outcome.AUTHENTICATED
    assert f.on_complete(done) is None
    assert Stored.of(cluster) == before
    submit_ok(stub, f)
    assert Stored.of(cluster) == before.plus(1)


def test_truncated_sealed_submission(cluster: LocalCluster, stub: Stub) -> None:
    before = Stored.of(cluster)
    f = flow(cluster)
    authenticate(stub, f)
    good = f.submission()
    short = enrollment_pb2.SubmitPpCsrRequest()
    short.CopyFrom(good)
    short.sealed_submission = good.sealed_submission[: MIN_SUBMISSION_LEN - 1]
    err = expect_error(lambda: stub.SubmitPpCsr(short, timeout=30), INVALID_ARGUMENT)
    assert "truncated" in err.details
    # Cut by a few bytes only, the AEAD cannot tell truncation from tampering.
    short.sealed_submission = good.sealed_submission[:-3]
    expect_error(
        lambda: stub.SubmitPpCsr(short, timeout=30), UNAUTHENTICATED, "SUBMISSION_NOT_AUTHENTIC"
    )
    assert Stored.of(cluster) == before
    f.verify(stub.SubmitPpCsr(good, timeout=30))
    assert Stored.of(cluster) == before.plus(1)


METHODS = {
    "StartAuthentication": "/mpkix.v1.Enrollment/StartAuthentication",
    "CompleteAuthentication": "/mpkix.v1.Enrollment/CompleteAuthentication",
    "SubmitPpCsr": "/mpkix.v1.Enrollment/SubmitPpCsr",
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_truncated_protobuf_on_the_wire(
    cluster: LocalCluster, cms_chan: grpc.Channel, stub: Stub, method: str
) -> None:
    """An undecodable request body never reaches the servicer. grpc-python's asyncio server
    deserializes before calling the handler and reports the DecodeError as UNKNOWN
    ("Unexpected <class 'DecodeError'>: ...", _cygrpc/aio/server.pyx.pxi ``_handle_exceptions``)."""
    before = Stored.of(cluster)
    f = flow(cluster)
    answer = start(stub, f)
    message = {
        "StartAuthentication": enrollment_pb2.StartAuthenticationRequest(
            eap_packet=f.identity_packet()
        ),
        "CompleteAuthentication": enrollment_pb2.CompleteAuthenticationRequest(
            session_id=f.session_id, eap_packet=answer
        ),
    }.get(method)
    if message is None:
        done = complete(stub, f.session_id, answer)
        f.on_complete(done)
        message = f.submission()
    raw = cms_chan.unary_unary(METHODS[method], request_serializer=None, response_deserializer=None)
    wire = message.SerializeToString()[:-3]
    with pytest.raises(Exception):  # noqa: B017 - the parse must fail for the test to mean much
        type(message).FromString(wire)
    err = expect_error(lambda: raw(wire, timeout=10), grpc.StatusCode.UNKNOWN)
    assert "DecodeError" in err.details
    assert Stored.of(cluster) == before


# --- 12: oversized messages -----------------------------------------------------------------------


def test_oversized_messages_are_resource_exhausted(cluster: LocalCluster, stub: Stub) -> None:
    before = Stored.of(cluster)
    limit = cluster.cms[OPERATOR].cfg.max_message_bytes
    assert limit == 64 * 1024
    f = flow(cluster)
    err = expect_error(
        lambda: stub.StartAuthentication(
            enrollment_pb2.StartAuthenticationRequest(eap_packet=b"\x02" * (limit + 1)),
            timeout=10,
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert "larger than max" in err.details
    authenticate(stub, f)
    good = f.submission()
    big = enrollment_pb2.SubmitPpCsrRequest()
    big.CopyFrom(good)
    big.sealed_submission = os.urandom(limit)
    expect_error(lambda: stub.SubmitPpCsr(big, timeout=30), grpc.StatusCode.RESOURCE_EXHAUSTED)
    # Below the transport limit but above the CMS's submission bound: refused before decryption.
    big.sealed_submission = os.urandom(40 * 1024)
    err = expect_error(lambda: stub.SubmitPpCsr(big, timeout=30), INVALID_ARGUMENT)
    assert "larger than" in err.details
    assert Stored.of(cluster) == before
    f.verify(stub.SubmitPpCsr(good, timeout=30))
    assert Stored.of(cluster) == before.plus(1)
