"""verify(): every check against a real ledger node, real CAs and real ppCerts."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca_node.authority import CertificateAuthority
from ca_node.keys import build_ca
from ias_sdk import LedgerMirror, Reason, VerificationError, Verifier, verify
from ias_sdk._internal.certs import analyze_issuer, analyze_leaf
from ledger.contracts import certificate_leaf_entry
from mpkix.merkle import MerkleTree
from mpkix.profile.ppcert import PpCertParams
from mpkix.profile.signature_profiles import SignatureProfileError
from mpkix.v1 import common_pb2
from tests.ias_sdk.support import (
    CMS_ADDRESS,
    DEFAULT_PROFILE,
    OPERATOR_ID,
    Issued,
    World,
    der,
    pem,
)
from tests.mpkix.profile.helpers import make_ppcsr


def reason_of(item: object, mirror: LedgerMirror, **kw: object) -> Reason:
    with pytest.raises(VerificationError) as info:
        verify(item, mirror=mirror, **kw)  # type: ignore[arg-type]
    return info.value.reason


def copy(bundle: common_pb2.CertificateBundle) -> common_pb2.CertificateBundle:
    out = common_pb2.CertificateBundle()
    out.CopyFrom(bundle)
    return out


@pytest.fixture(scope="module")
def batch(world: World) -> list[Issued]:
    return world.issue_batch(5)


# -- the good path --------------------------------------------------------------------------


def test_a_valid_bundle_verifies(world: World, batch: list[Issued], mirror: LedgerMirror) -> None:
    issued = batch[2]
    subject = verify(issued.bundle, mirror=mirror)
    cert = x509.load_der_x509_certificate(issued.cert_der)
    assert subject.subject_id == cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert subject.operator_id == "310-260"
    assert subject.cms_address == "grpcs://cms.op-a.example:8443"
    assert subject.signature_profile == DEFAULT_PROFILE
    assert subject.serial == cert.serial_number
    assert subject.not_after == cert.not_valid_after_utc
    assert subject.sealed_attribute_ids == ("address", "birthday", "gender", "name", "phone")
    assert subject.ca_cert_hash == world.ca1.cert_hash
    assert subject.batch_id == issued.inclusion.batch_id
    assert subject.cert_hash == hashlib.sha256(issued.cert_der).digest()
    assert subject.operator_key_hash == world.operator_key_hash
    # Serialized bytes verify the same way, and every leaf of the batch does.
    assert verify(issued.bundle.SerializeToString(), mirror=mirror) == subject
    for other in batch:
        assert verify(other.bundle, mirror=mirror).cert_hash == other.cert_hash


def test_size_and_root_come_from_the_ledger_not_the_bundle(
    batch: list[Issued], mirror: LedgerMirror
) -> None:
    bundle = copy(batch[0].bundle)
    bundle.inclusion.tree_size = 4  # a lie the verifier ignores: size 5 is on the ledger
    assert verify(bundle, mirror=mirror).batch_id == bundle.inclusion.batch_id
    bundle.inclusion.root = os.urandom(32)
    assert reason_of(bundle, mirror) is Reason.BAD_PROOF


# -- anchoring ------------------------------------------------------------------------------


def test_wrong_audit_path_is_bad_proof(batch: list[Issued], mirror: LedgerMirror) -> None:
    bundle = copy(batch[1].bundle)
    bundle.inclusion.audit_path[0] = os.urandom(32)
    assert reason_of(bundle, mirror) is Reason.BAD_PROOF
    shorter = copy(batch[1].bundle)
    del shorter.inclusion.audit_path[-1]
    assert reason_of(shorter, mirror) is Reason.BAD_PROOF
    moved = copy(batch[1].bundle)
    moved.inclusion.leaf_index = 3
    assert reason_of(moved, mirror) is Reason.BAD_PROOF
    not_hashes = copy(batch[1].bundle)
    not_hashes.inclusion.audit_path[0] = b"short"
    assert reason_of(not_hashes, mirror) is Reason.BAD_PROOF


def test_another_leafs_path_is_bad_proof(batch: list[Issued], mirror: LedgerMirror) -> None:
    bundle = copy(batch[0].bundle)
    bundle.inclusion.CopyFrom(batch[1].inclusion)  # a real path, but for another certificate
    assert reason_of(bundle, mirror) is Reason.BAD_PROOF


def test_swapped_operator_key_hash_is_bad_proof(batch: list[Issued], mirror: LedgerMirror) -> None:
    bundle = copy(batch[0].bundle)
    bundle.inclusion.operator_key_hash = os.urandom(32)
    assert reason_of(bundle, mirror) is Reason.BAD_PROOF


def test_unknown_batch(batch: list[Issued], mirror: LedgerMirror) -> None:
    bundle = copy(batch[0].bundle)
    bundle.inclusion.batch_id = 10_000
    assert reason_of(bundle, mirror) is Reason.UNKNOWN_BATCH


def test_batch_anchored_before_the_mirror_synced_is_unknown_until_sync(
    world: World, mirror: LedgerMirror
) -> None:
    [fresh] = world.issue_batch(1)
    assert reason_of(fresh.bundle, mirror) is Reason.UNKNOWN_BATCH
    mirror.sync()
    assert verify(fresh.bundle, mirror=mirror).cert_hash == fresh.cert_hash


def test_batch_of_another_ca_is_refused(world: World, mirror: LedgerMirror) -> None:
    # ca1's certificate put into a batch that ca2 anchored (ca2 may anchor whatever it likes).
    [issued] = world.issue_batch(1, ca=world.ca1, anchor_as=world.ca2)
    mirror.sync()
    assert reason_of(issued.bundle, mirror) is Reason.BATCH_ISSUER_MISMATCH


def test_bundle_without_inclusion_is_not_anchored(
    batch: list[Issued], mirror: LedgerMirror
) -> None:
    bundle = copy(batch[0].bundle)
    bundle.ClearField("inclusion")
    assert reason_of(bundle, mirror) is Reason.NOT_ANCHORED


def test_bare_certificate_needs_its_bundle_first(
    world: World, batch: list[Issued], mirror: LedgerMirror
) -> None:
    issued = batch[3]
    chain_pem = issued.tls_chain_pem()
    verifier = Verifier(mirror)
    for bare in (chain_pem, issued.cert_der, x509.load_der_x509_certificate(issued.cert_der)):
        with pytest.raises(VerificationError) as info:
            verifier.verify(bare)
        assert info.value.reason is Reason.NOT_ANCHORED
    verifier.verify(issued.bundle)  # remembered from now on
    assert verifier.verify(chain_pem).cert_hash == issued.cert_hash
    assert verifier.verify(issued.cert_der).cert_hash == issued.cert_hash
    forgetful = Verifier(mirror, remember_inclusions=False)
    forgetful.verify(issued.bundle)
    with pytest.raises(VerificationError) as info:
        forgetful.verify(issued.cert_der)
    assert info.value.reason is Reason.NOT_ANCHORED


def test_bundle_for_another_ledger(batch: list[Issued], mirror: LedgerMirror) -> None:
    other_chain = copy(batch[0].bundle)
    other_chain.inclusion.chain_id = 1
    assert reason_of(other_chain, mirror) is Reason.WRONG_LEDGER
    other_registry = copy(batch[0].bundle)
    other_registry.inclusion.registry_address = os.urandom(20)
    assert reason_of(other_registry, mirror) is Reason.WRONG_LEDGER


# -- issuer and signatures ------------------------------------------------------------------


def test_issuer_not_anchored(world: World, mirror: LedgerMirror) -> None:
    # The rogue CA issues a real ppCert and presents a real batch of ca1's.
    [issued] = world.issue_batch(1)
    mirror.sync()
    rogue_bundle = copy(issued.bundle)
    rogue_cert = world.rogue.authority.issue(
        make_ppcsr(), PpCertParams(operator_id=OPERATOR_ID, cms_address=CMS_ADDRESS)
    )
    rogue_bundle.certificate_der = der(rogue_cert)
    del rogue_bundle.ca_chain_der[:]
    rogue_bundle.ca_chain_der.extend(world.rogue.chain_der)
    assert reason_of(rogue_bundle, mirror) is Reason.UNTRUSTED_ISSUER
    no_chain = copy(issued.bundle)
    del no_chain.ca_chain_der[:]
    assert reason_of(no_chain, mirror) is Reason.UNTRUSTED_ISSUER


def test_removed_ca_anchor_is_untrusted(world: World, tmp_path: Path) -> None:
    [issued] = world.issue_batch(1, ca=world.ca3)
    mirror = LedgerMirror(tmp_path / "m.sqlite", world.source())
    mirror.sync()
    assert verify(issued.bundle, mirror=mirror).ca_cert_hash == world.ca3.cert_hash
    assert world.ca2.backend is not None
    proposed = world.ca2.backend.transact("propose_remove_trust_anchor", world.ca3.cert_hash)
    assert proposed.success, proposed.revert_reason
    pid = next(int(e.args["proposal_id"]) for e in proposed.events if e.name == "ProposalCreated")
    approved = world.op_backend.transact("approve", pid)
    assert approved.success, approved.revert_reason
    assert any(e.name == "TrustAnchorRemoved" for e in approved.events)
    mirror.sync()
    with pytest.raises(VerificationError) as info:
        verify(issued.bundle, mirror=mirror)
    assert info.value.reason is Reason.UNTRUSTED_ISSUER
    assert "removed" in info.value.message
    mirror.close()


def test_tampered_certificate_is_bad_signature(batch: list[Issued], mirror: LedgerMirror) -> None:
    issued = batch[4]
    subject_id = verify(issued.bundle, mirror=mirror).subject_id.encode()
    tampered_id = subject_id[:-1] + (b"a" if subject_id[-1:] != b"a" else b"b")
    bundle = copy(issued.bundle)
    assert issued.cert_der.count(subject_id) == 1
    bundle.certificate_der = issued.cert_der.replace(subject_id, tampered_id)
    assert reason_of(bundle, mirror) is Reason.BAD_SIGNATURE


def test_chain_of_another_trusted_ca(
    world: World, batch: list[Issued], mirror: LedgerMirror
) -> None:
    bundle = copy(batch[0].bundle)
    del bundle.ca_chain_der[:]
    bundle.ca_chain_der.extend(world.ca2.chain_der)  # trusted, but did not issue this cert
    assert reason_of(bundle, mirror) is Reason.BAD_CHAIN


def test_chain_that_does_not_link(world: World, batch: list[Issued], mirror: LedgerMirror) -> None:
    bundle = copy(batch[0].bundle)
    bundle.ca_chain_der[1] = world.rogue.chain_der[1]  # ca1's issuing CA under the rogue root
    assert reason_of(bundle, mirror) is Reason.BAD_CHAIN


def test_issuing_certificate_must_be_a_ca(world: World) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder(
            issuer_name=name,
            subject_name=name,
            public_key=key.public_key(),
            serial_number=x509.random_serial_number(),
            not_valid_before=now,
            not_valid_after=now + dt.timedelta(days=1),
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    info = analyze_issuer((der(cert),))
    assert info.problem is not None and info.problem[0] == "BAD_CHAIN"
    assert analyze_issuer(tuple(world.ca1.chain_der)).problem is None
    garbage = analyze_issuer((b"\x30\x03\x02\x01\x00",))
    assert garbage.problem is not None and garbage.problem[0] == "MALFORMED"


def test_certificate_that_is_not_a_ppcert(world: World, mirror: LedgerMirror) -> None:
    ca = world.ca1.material
    now = dt.datetime.now(dt.UTC)
    plain = x509.CertificateBuilder(
        issuer_name=ca.issuing_cert.subject,
        subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")]),
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=now - dt.timedelta(minutes=1),
        not_valid_after=now + dt.timedelta(days=1),
    ).sign(ca.issuing_key, hashes.SHA256())
    cert_der = der(plain)
    entry = certificate_leaf_entry(hashlib.sha256(cert_der).digest(), world.operator_key_hash)
    tree = MerkleTree([entry])
    assert world.ca1.backend is not None
    out = world.ca1.backend.transact("anchor_batch", tree.root, 1, world.ca1.cert_hash)
    assert out.success
    batch_id = next(int(e.args["batch_id"]) for e in out.events if e.name == "BatchAnchored")
    mirror.sync()
    bundle = common_pb2.CertificateBundle(
        certificate_der=cert_der,
        ca_chain_der=world.ca1.chain_der,
        inclusion=common_pb2.MerkleInclusion(
            batch_id=batch_id, leaf_index=0, operator_key_hash=world.operator_key_hash
        ),
    )
    assert reason_of(bundle, mirror) is Reason.MALFORMED


# -- validity -------------------------------------------------------------------------------


def test_expired_and_not_yet_valid(batch: list[Issued], mirror: LedgerMirror) -> None:
    cert = x509.load_der_x509_certificate(batch[0].cert_der)
    after = cert.not_valid_after_utc + dt.timedelta(seconds=1)
    assert reason_of(batch[0].bundle, mirror, now=after) is Reason.EXPIRED
    before = cert.not_valid_before_utc - dt.timedelta(seconds=1)
    assert reason_of(batch[0].bundle, mirror, now=before) is Reason.NOT_YET_VALID
    assert verify(batch[0].bundle, mirror=mirror, now=cert.not_valid_after_utc).serial
    with pytest.raises(ValueError):
        verify(batch[0].bundle, mirror=mirror, now=dt.datetime(2030, 1, 1))  # naive time


def test_issuing_ca_expiry_is_checked(
    world: World, batch: list[Issued], mirror: LedgerMirror
) -> None:
    ca_end = world.ca1.material.issuing_cert.not_valid_after_utc
    assert reason_of(batch[0].bundle, mirror, now=ca_end + dt.timedelta(days=1)) is Reason.EXPIRED


# -- operator -------------------------------------------------------------------------------


def test_operator_key_not_anchored(world: World, mirror: LedgerMirror) -> None:
    [issued] = world.issue_batch(1, operator_key_hash=os.urandom(32))
    [no_operator] = world.issue_batch(1, operator_key_hash=bytes(32))
    mirror.sync()
    assert reason_of(issued.bundle, mirror) is Reason.UNTRUSTED_OPERATOR
    assert reason_of(no_operator.bundle, mirror) is Reason.UNTRUSTED_OPERATOR


def test_certificate_naming_another_operator(world: World, mirror: LedgerMirror) -> None:
    [issued] = world.issue_batch(1, operator_id="310-410")
    mirror.sync()
    assert reason_of(issued.bundle, mirror) is Reason.OPERATOR_MISMATCH


# -- status ---------------------------------------------------------------------------------


def test_revoked_by_the_ca(world: World, tmp_path: Path) -> None:
    [issued, neighbour] = world.issue_batch(2)
    mirror = LedgerMirror(tmp_path / "m.sqlite", world.source())
    mirror.sync()
    verifier = Verifier(mirror)
    verifier.verify(issued.bundle)  # cached as valid: the cache must not hide the revocation
    world.status_change("revoke", issued, 1)
    mirror.sync()
    with pytest.raises(VerificationError) as info:
        verifier.verify(issued.bundle)
    assert info.value.reason is Reason.REVOKED
    assert "keyCompromise" in info.value.message
    assert verifier.verify(neighbour.bundle).cert_hash == neighbour.cert_hash
    mirror.close()


def test_revoked_by_the_operator(world: World, mirror: LedgerMirror) -> None:
    [issued] = world.issue_batch(1)
    world.status_change("revoke", issued, 9, by=world.op_backend)
    mirror.sync()
    assert reason_of(issued.bundle, mirror) is Reason.REVOKED


def test_suspended_then_resumed(world: World, mirror: LedgerMirror) -> None:
    [issued] = world.issue_batch(1)
    mirror.sync()
    verify(issued.bundle, mirror=mirror)
    world.status_change("suspend", issued, by=world.op_backend)
    mirror.sync()
    assert reason_of(issued.bundle, mirror) is Reason.SUSPENDED
    world.status_change("resume", issued)
    mirror.sync()
    assert verify(issued.bundle, mirror=mirror).cert_hash == issued.cert_hash
    status = mirror.status(world.ca1.cert_hash, issued.cert_hash)
    assert status is not None and (status.state, status.reason) == (0, 8)


def test_revocation_is_scoped_to_the_issuing_ca(world: World, mirror: LedgerMirror) -> None:
    # ca2 anchors ca1's certificate hash in a batch of its own and revokes it there (0402):
    # the record lands under ca2's hash, which no verifier of ca1's certificate reads.
    [issued] = world.issue_batch(1)
    [foreign] = world.issue_batch(1, ca=world.ca1, anchor_as=world.ca2)
    entry = certificate_leaf_entry(issued.cert_hash, world.operator_key_hash)
    tree = MerkleTree([entry, os.urandom(64)])
    assert world.ca2.backend is not None
    out = world.ca2.backend.transact("anchor_batch", tree.root, 2, world.ca2.cert_hash)
    batch_id = next(int(e.args["batch_id"]) for e in out.events if e.name == "BatchAnchored")
    rev = world.ca2.backend.transact(
        "revoke", issued.cert_hash, world.operator_key_hash, batch_id, 0, tree.audit_path(0), 1
    )
    assert rev.success, rev.revert_reason
    mirror.sync()
    assert mirror.status(world.ca2.cert_hash, issued.cert_hash) is not None
    assert verify(issued.bundle, mirror=mirror).cert_hash == issued.cert_hash
    assert foreign.cert_hash != issued.cert_hash


# -- profiles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "required", "mode", "ok"),
    [
        ("mss:mpkix:authn:loa3:app", "mss:mpkix:authn:loa3:app", "exact", True),
        ("mss:mpkix:authn:loa3:app", "mss:mpkix:authn:loa2:app", "exact", False),
        ("mss:mpkix:authn:loa3:app", "mss:mpkix:authn:loa2:app", "minimum", True),
        ("mss:mpkix:authn:loa3:app", "mss:mpkix:authn:loa2:app", "better", True),
        ("mss:mpkix:authn:loa3:app", "mss:mpkix:authn:loa3:app", "better", False),
        ("mss:mpkix:authn:loa3:app", "mss:mpkix:authn:loa3:sim", "minimum", False),
        ("mss:mpkix:authn:loa3:sim", "mss:mpkix:authn:loa3:app", "better", True),
        ("mss:mpkix:authn:loa2:app", "mss:mpkix:authn:loa3:app", "minimum", False),
        ("mss:mpkix:sign:loa3:app", "mss:mpkix:authn:loa2:app", "minimum", False),
        ("mss:mpkix:authn:loa3:app", "mss::authn:loa3", "exact", True),
    ],
)
def test_profile_modes(
    world: World,
    profiled: dict[str, Issued],
    mirror: LedgerMirror,
    granted: str,
    required: str,
    mode: str,
    ok: bool,
) -> None:
    bundle = profiled[granted].bundle
    if ok:
        got = verify(bundle, mirror=mirror, required_profile=required, profile_mode=mode)
        assert got.signature_profile == granted
    else:
        reason = reason_of(bundle, mirror, required_profile=required, profile_mode=mode)
        assert reason is Reason.PROFILE_MISMATCH


@pytest.fixture(scope="module")
def profiled(world: World) -> dict[str, Issued]:
    out = {}
    for uri in (
        "mss:mpkix:authn:loa2:app",
        "mss:mpkix:authn:loa3:app",
        "mss:mpkix:authn:loa3:sim",
        "mss:mpkix:sign:loa3:app",
    ):
        [out[uri]] = world.issue_batch(1, profile=uri)
    return out


def test_bad_profile_requirement_is_a_configuration_error(
    batch: list[Issued], mirror: LedgerMirror
) -> None:
    with pytest.raises(SignatureProfileError):
        verify(batch[0].bundle, mirror=mirror, required_profile="mss:mpkix:AUTHN:loa3:app")
    with pytest.raises(ValueError):
        verify(
            batch[0].bundle,
            mirror=mirror,
            required_profile=DEFAULT_PROFILE,
            profile_mode="at-least",
        )


# -- malformed input ------------------------------------------------------------------------


def test_malformed_inputs(world: World, batch: list[Issued], mirror: LedgerMirror) -> None:
    cases: list[object] = [
        b"",
        b"\x0a\xff\xff",  # truncated protobuf
        b"\x30\x82\x01",  # truncated DER
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        b"\x0a" + b"\x00" * (70 * 1024),  # oversized
        common_pb2.CertificateBundle(ca_chain_der=world.ca1.chain_der),  # no certificate
    ]
    for item in cases:
        assert reason_of(item, mirror) is Reason.MALFORMED, item
    no_op_hash = copy(batch[0].bundle)
    no_op_hash.inclusion.ClearField("operator_key_hash")
    assert reason_of(no_op_hash, mirror) is Reason.MALFORMED
    garbage_chain = copy(batch[0].bundle)
    garbage_chain.ca_chain_der[0] = b"\x30\x03\x02\x01\x00"
    assert reason_of(garbage_chain, mirror) is Reason.MALFORMED
    with pytest.raises(TypeError):
        verify(12345, mirror=mirror)  # type: ignore[arg-type]


def test_pem_input_with_its_chain(batch: list[Issued], mirror: LedgerMirror) -> None:
    issued = batch[0]
    verifier = Verifier(mirror)
    verifier.verify(issued.bundle)
    text = (
        issued.tls_chain_pem() + pem(x509.load_der_x509_certificate(issued.bundle.ca_chain_der[1]))
    ).decode()
    assert verifier.verify(text).cert_hash == issued.cert_hash


def test_rsa_ca_and_mismatched_signature_algorithms(world: World) -> None:
    rsa_ca = build_ca(key_type="rsa2048", name="RSA CA")
    authority = CertificateAuthority(rsa_ca.issuing_key, rsa_ca.chain)
    params = PpCertParams(operator_id=OPERATOR_ID, cms_address=CMS_ADDRESS)
    cert_der = der(authority.issue(make_ppcsr(), params))
    issuer = analyze_issuer(tuple(der(c) for c in rsa_ca.chain))
    assert issuer.problem is None
    good = analyze_leaf(cert_der, issuer)
    assert good.problem is None and good.view is not None
    flipped = bytearray(cert_der)
    flipped[-5] ^= 0x01  # inside the RSA signature value
    assert analyze_leaf(bytes(flipped), issuer).problem == (
        "BAD_SIGNATURE",
        "CN=" + good.view.subject_id + " carries no valid signature of its issuing CA",
    )
    # An RSA-signed certificate naming the ECDSA CA ca1 as its issuer.
    ec_issuer = analyze_issuer(tuple(world.ca1.chain_der))
    impostor = x509.CertificateBuilder(
        issuer_name=world.ca1.material.issuing_cert.subject,
        subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor")]),
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=dt.datetime.now(dt.UTC),
        not_valid_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    ).sign(rsa_ca.issuing_key, hashes.SHA256())
    problem = analyze_leaf(der(impostor), ec_issuer).problem
    assert problem is not None and problem[0] == "BAD_SIGNATURE" and "does not fit" in problem[1]
