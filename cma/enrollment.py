"""CMA side of ceIssuance as a sans-I/O state machine (paper §4.1; ARCHITECTURE §2.1).

:class:`EnrollmentFlow` builds each message and checks each answer; the drivers in
:mod:`cma.client` move the bytes over gRPC (blocking or asyncio). The flow authenticates the
network (AUTN's MAC-A, AT_MAC of the challenge, the expected network name), answers
resynchronization, seals the ppCSR under the session keys and finally verifies the returned
ppCert before anything is installed: CA signature over the chain, its own public key and
subject id, its sealed attributes, and the requested profile.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from cma.keystore import PrivateKey
from cma.usim import EmulatedUsim
from ledger.contracts import certificate_leaf_entry
from mpkix.aka import eap
from mpkix.aka.kdf import AkaPrimeKeys, amf_separation_bit_set, derive_keys_from_aka
from mpkix.aka.milenage import UsimMacFailure, UsimSuccess, UsimSyncFailure
from mpkix.envelope import submission_aad
from mpkix.merkle import verify_inclusion
from mpkix.profile.ppcert import parse_ppcert
from mpkix.profile.ppcsr import build_ppcsr, new_subject_id
from mpkix.profile.sealing import Sealer
from mpkix.v1 import common_pb2, enrollment_pb2

REALM = "nai.epc.mnc{mnc}.mcc{mcc}.3gppnetwork.org"


class EnrollmentError(Exception):
    """The network or the answer failed a check; nothing is installed."""


def permanent_identity(imsi: str) -> str:
    """EAP-AKA' permanent NAI: '6' ‖ IMSI @ realm (RFC 5448 §3; TS 23.003 §19.3.2)."""
    mcc, mnc = imsi[:3], imsi[3:6]
    return "6" + imsi + "@" + REALM.format(mcc=mcc, mnc=mnc.zfill(3))



@dataclass
class EnrollmentFlow:
    usim: EmulatedUsim
    attributes: dict[str, str]  # canonical values the user seals (mpkix.attributes)
    key: PrivateKey
    network_name: str = "WLAN"
    signature_profile: str = ""
    transaction_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    subject_id: str = field(default_factory=new_subject_id)
    identity: bytes = b""
    session_id: str = ""
    keys: AkaPrimeKeys | None = None
    csr_der: bytes = b""
    resynced: int = 0

    def __post_init__(self) -> None:
        self.identity = permanent_identity(self.usim.imsi).encode()

    # 1. EAP-Response/Identity ------------------------------------------------------------
    def identity_packet(self) -> bytes:
        return eap.identity_response(0, self.identity)

    # 2. Challenge → response (or synchronization failure) ----------------------------------
    def on_challenge(self, session_id: str, packet: bytes) -> bytes:
        """Check the network's challenge and answer it (paper §4.1.1 step 4)."""
        self.session_id = session_id
        try:
            ch = eap.parse_challenge_request(packet)
        except eap.EapFormatError as e:
            raise EnrollmentError(f"malformed challenge from the CMS: {e}") from None
        if ch.network_name != self.network_name.encode():
            raise EnrollmentError(
                f"challenge names network {ch.network_name!r}, expected {self.network_name!r}"
            )
        if eap.KDF_AKA_PRIME not in ch.kdfs[:1]:
            raise EnrollmentError("the CMS did not offer the EAP-AKA' KDF first")
        if not amf_separation_bit_set(ch.autn):
            raise EnrollmentError("AUTN's AMF separation bit is not set (RFC 5448 §3)")
        result = self.usim.authenticate(ch.rand, ch.autn)
        if isinstance(result, UsimMacFailure):
            raise EnrollmentError("the network failed authentication (MAC-A does not verify)")
        if isinstance(result, UsimSyncFailure):
            self.resynced += 1
            if self.resynced > 1:
                raise EnrollmentError("repeated synchronization failure")
            return eap.sync_failure_response(ch.identifier, result.auts)
        assert isinstance(result, UsimSuccess)
        _, _, keys = derive_keys_from_aka(
            self.identity, result.ck, result.ik, ch.network_name, ch.autn
        )
        if not eap.verify_at_mac(keys.k_aut, packet):
            raise EnrollmentError("the challenge's AT_MAC does not verify")
        self.keys = keys
        return eap.challenge_response(ch.identifier, result.res, keys.k_aut)

    def on_complete(self, resp: enrollment_pb2.CompleteAuthenticationResponse) -> bytes | None:
        """EAP-Success → None (done); a fresh challenge after resync → its answer."""
        Outcome = enrollment_pb2.CompleteAuthenticationResponse.Outcome
        if resp.outcome == Outcome.RESYNCHRONIZED:
            return self.on_challenge(self.session_id, bytes(resp.eap_packet))
        if resp.outcome != Outcome.AUTHENTICATED:
            raise EnrollmentError("unexpected authentication outcome")
        try:
            pkt = eap.decode_packet(bytes(resp.eap_packet))
        except eap.EapFormatError as e:
            raise EnrollmentError(f"malformed EAP-Success: {e}") from None
        if pkt.code != eap.EapCode.SUCCESS or self.keys is None:
            raise EnrollmentError("authentication did not end in EAP-Success")
        return None

    # 3. ppCSR ------------------------------------------------------------------------------
    def submission(self) -> enrollment_pb2.SubmitPpCsrRequest:
        """Enc(ppCSR ‖ MAC(ppCSR, K_aut), K_encr) (paper §5.2 step 2)."""
        if self.keys is None:
            raise EnrollmentError("not authenticated")
        sealer = Sealer(self.keys.k_encr, self.keys.k_aut)
        sealed = {a: sealer.seal_value(a, v) for a, v in sorted(self.attributes.items())}
        csr = build_ppcsr(self.key, self.subject_id, sealed)
        self.csr_der = csr.public_bytes(serialization.Encoding.DER)
        inner = enrollment_pb2.PpCsrSubmission(
            csr_der=self.csr_der,
            signature_profile=self.signature_profile,
            transaction_id=self.transaction_id,
        )
        blob = sealer.seal_submission(
            inner.SerializeToString(), submission_aad(self.session_id, self.transaction_id)
        )
        return enrollment_pb2.SubmitPpCsrRequest(
            session_id=self.session_id,
            transaction_id=self.transaction_id,
            sealed_submission=blob,
        )

    # 4. verify before install ------------------------------------------------------------
    def verify(
        self,
        resp: enrollment_pb2.SubmitPpCsrResponse,
        trusted_roots: list[x509.Certificate] | None = None,
    ) -> x509.Certificate:
        """Check the returned ppCert (ARCHITECTURE §2.1 step 5); returns it."""
        if resp.transaction_id != self.transaction_id or resp.subject_id != self.subject_id:
            raise EnrollmentError("the answer belongs to another transaction")
        bundle: common_pb2.CertificateBundle = resp.bundle
        try:
            cert = x509.load_der_x509_certificate(bundle.certificate_der)
            chain = [x509.load_der_x509_certificate(c) for c in bundle.ca_chain_der]
        except ValueError as e:
            raise EnrollmentError(f"undecodable certificate: {e}") from None
        if not chain:
            raise EnrollmentError("the answer carries no CA chain")
        verify_chain(cert, chain, trusted_roots)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if cert.public_key().public_bytes(*spki) != self.key.public_key().public_bytes(*spki):
            raise EnrollmentError("the ppCert certifies another public key")
        view = parse_ppcert(cert)
        if view.subject_id != self.subject_id:
            raise EnrollmentError("the ppCert names another subject id")
        if set(view.sealed) != set(self.attributes):
            raise EnrollmentError("the ppCert's sealed attributes differ from the ppCSR's")
        if self.signature_profile and view.signature_profile != self.signature_profile:
            raise EnrollmentError("the ppCert carries another signature profile")
        now = dt.datetime.now(dt.UTC)
        skewed = now + dt.timedelta(minutes=5)
        if not cert.not_valid_before_utc <= skewed < cert.not_valid_after_utc:
            raise EnrollmentError("the ppCert is not within its validity period")
        if bundle.HasField("inclusion"):
            _verify_inclusion(bundle, chain[0])
        return cert


def _verify_inclusion(bundle: common_pb2.CertificateBundle, issuing: x509.Certificate) -> None:
    """The ledger proof names the issuing CA and proves the ppCert's leaf (RFC 9162 §2.1.3.2;
    leaf = SHA-256(cert) ‖ operator key hash, decision 0401) under the root it carries. Whether
    that root is anchored is the verifier's check against its ledger mirror (ias_sdk)."""
    inc = bundle.inclusion
    issuer_hash = hashlib.sha256(issuing.public_bytes(serialization.Encoding.DER)).digest()
    if bytes(inc.issuer_ca_sha256) != issuer_hash:
        raise EnrollmentError("the ledger proof names another issuing CA")
    try:
        entry = certificate_leaf_entry(
            hashlib.sha256(bundle.certificate_der).digest(), bytes(inc.operator_key_hash)
        )
    except ValueError as e:
        raise EnrollmentError(f"malformed ledger proof: {e}") from None
    if not verify_inclusion(
        entry, inc.leaf_index, inc.tree_size, list(inc.audit_path), bytes(inc.root)
    ):
        raise EnrollmentError("the ledger proof does not prove this ppCert under its batch root")


def _verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    pub = issuer.public_key()
    sig_hash = cert.signature_hash_algorithm
    if sig_hash is None:
        raise EnrollmentError("unsupported signature algorithm")
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(sig_hash))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), sig_hash)
        else:
            raise EnrollmentError("unsupported CA key type")
    except Exception as e:
        if isinstance(e, EnrollmentError):
            raise
        raise EnrollmentError(
            f"{cert.subject.rfc4514_string() or 'certificate'} is not signed by "
            f"{issuer.subject.rfc4514_string()}"
        ) from None
    if cert.issuer != issuer.subject:
        raise EnrollmentError("issuer name does not match the CA certificate")


def verify_chain(
    leaf: x509.Certificate,
    chain: list[x509.Certificate],
    trusted_roots: list[x509.Certificate] | None = None,
) -> None:
    """Leaf → chain[0] → … → chain[-1]; the last must be self-signed and, if given, trusted."""
    cur = leaf
    for ca in chain:
        _verify_signed_by(cur, ca)
        cur = ca
    _verify_signed_by(cur, cur)
    if trusted_roots is not None:
        der = cur.public_bytes(serialization.Encoding.DER)
        if all(r.public_bytes(serialization.Encoding.DER) != der for r in trusted_roots):
            raise EnrollmentError("the CA chain does not end at a trusted root")
