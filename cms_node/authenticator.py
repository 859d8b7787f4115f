"""EAP-AKA' server of the CMS (paper §4.1.1 steps 1-5; RFC 5448, RFC 9048; TS 33.102 §6.3).

Sessions live in memory for a short time (default 120 s): a challenge is answered once; a
response replayed after that, a wrong RES or AT_MAC, an expired session and an unknown identity
all end in the same UNAUTHENTICATED answer, so an unauthenticated caller cannot tell them
apart. Unknown identities even receive a well-formed decoy challenge. On a synchronization
failure the HSS recovers SQN_MS from AT_AUTS and a fresh challenge is sent.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from enum import Enum

import grpc

from cms_node.hss.store import SubscriberStore
from mpkix.aka import eap
from mpkix.aka.kdf import AkaPrimeKeys, amf_separation_bit_set, derive_keys_from_aka
from mpkix.aka.milenage import Milenage, ResyncError, generate_vector, resynchronize
from mpkix.aka.sqn import next_sqn
from mpkix.rpc.errors import ServiceError, invalid

log = logging.getLogger("mpkix.cms.eap")

# RFC 5448 §3 / TS 23.003 §19.3: permanent identity for EAP-AKA' = "6" + IMSI [@realm].
IDENTITY_RE = re.compile(r"^6(?P<imsi>\d{14,15})(@[A-Za-z0-9.-]{1,200})?$")
AUTH_FAILED = "EAP-AKA' authentication failed; start a new authentication"
MAX_SQN_RETRIES = 8


class SessionState(Enum):
    CHALLENGED = 1
    AUTHENTICATED = 2
    USED = 3


@dataclass
class Session:
    session_id: str
    identity: bytes
    imsi: str | None  # None for a decoy session (unknown identity)
    rand: bytes
    xres: bytes
    keys: AkaPrimeKeys
    identifier: int
    expires_at: float
    state: SessionState = SessionState.CHALLENGED
    resyncs: int = 0
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthenticatedSubscriber:
    session_id: str
    imsi: str
    identity: bytes
    keys: AkaPrimeKeys


class EapAkaPrimeAuthenticator:
    """Issues challenges from HSS vectors and checks responses; thread-safe."""

    def __init__(
        self,
        hss: SubscriberStore,
        network_name: str,
        *,
        session_ttl: float = 120.0,
        max_sessions: int = 100_000,
    ) -> None:
        self._hss = hss
        self.network_name = network_name.encode()
        self._ttl = session_ttl
        self._max = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._decoy_key = secrets.token_bytes(32)
        self.failures: dict[str, int] = {}

    # -- bookkeeping ------------------------------------------------------------------------
    def _count(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def _expire(self, now: float) -> None:
        dead = [sid for sid, s in self._sessions.items() if s.expires_at <= now]
        for sid in dead:
            del self._sessions[sid]

    def live_sessions(self) -> int:
        """Unexpired sessions (for metrics)."""
        now = time.monotonic()
        with self._lock:
            return sum(1 for s in self._sessions.values() if s.expires_at > now)

    def _put(self, s: Session) -> None:
        with self._lock:
            if len(self._sessions) >= self._max:
                self._expire(time.monotonic())
                if len(self._sessions) >= self._max:
                    raise ServiceError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "too many authentications in progress; retry shortly",
                    )
            self._sessions[s.session_id] = s

    def _get(self, session_id: str) -> Session:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None:
                self._count("unknown_session")
                raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, AUTH_FAILED)
            if s.expires_at <= time.monotonic():
                del self._sessions[session_id]
                self._count("expired_session")
                raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, AUTH_FAILED)
            return s

    def _drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    # -- vectors ----------------------------------------------------------------------------
    def _fresh_vector_session(
        self, identity: bytes, imsi: str, identifier: int, session_id: str | None = None
    ) -> tuple[Session, bytes]:
        sub = self._hss.get(imsi)
        if sub is None:
            raise LookupError(imsi)
        m = Milenage(sub.k, sub.opc)
        current = sub.sqn
        for _ in range(MAX_SQN_RETRIES):
            new = next_sqn(current)
            if self._hss.advance_sqn(imsi, current, new):
                break
            fresh = self._hss.get(imsi)
            assert fresh is not None
            current = fresh.sqn
        else:
            raise ServiceError(
                grpc.StatusCode.ABORTED, "subscriber busy with concurrent authentications; retry"
            )
        vec = generate_vector(m, new, sub.amf)
        _, _, keys = derive_keys_from_aka(identity, vec.ck, vec.ik, self.network_name, vec.autn)
        packet = eap.challenge_request(
            identifier, vec.rand, vec.autn, self.network_name, keys.k_aut
        )
        s = Session(
            session_id=session_id or secrets.token_urlsafe(24),
            identity=identity,
            imsi=imsi,
            rand=vec.rand,
            xres=vec.xres,
            keys=keys,
            identifier=identifier,
            expires_at=time.monotonic() + self._ttl,
        )
        return s, packet

    def _decoy_session(self, identity: bytes, identifier: int) -> tuple[Session, bytes]:
        """A challenge indistinguishable on the wire from a real one, for unknown identities."""
        rand = os.urandom(16)
        autn = os.urandom(6) + b"\x80\x00" + os.urandom(8)
        k = hmac.new(self._decoy_key, identity, "sha256").digest()[:16]
        _, _, keys = derive_keys_from_aka(identity, k, k, self.network_name, autn)
        packet = eap.challenge_request(identifier, rand, autn, self.network_name, keys.k_aut)
        s = Session(
            session_id=secrets.token_urlsafe(24),
            identity=identity,
            imsi=None,
            rand=rand,
            xres=os.urandom(8),
            keys=keys,
            identifier=identifier,
            expires_at=time.monotonic() + self._ttl,
        )
        return s, packet

    # -- protocol ---------------------------------------------------------------------------
    def start(self, eap_packet: bytes) -> tuple[Session, bytes]:
        """EAP-Response/Identity in; (session, EAP-Request/AKA'-Challenge) out."""
        try:
            pkt = eap.decode_packet(eap_packet)
        except eap.EapFormatError as e:
            raise invalid(f"not a valid EAP packet: {e}") from None
        if pkt.code != eap.EapCode.RESPONSE or not isinstance(pkt.body, eap.IdentityBody):
            raise invalid("expected an EAP-Response/Identity packet (RFC 3748 §5.1)")
        identity = bytes(pkt.body.identity)
        try:
            text = identity.decode("ascii")
        except UnicodeDecodeError:
            raise invalid("the identity must be an ASCII NAI") from None
        m = IDENTITY_RE.match(text)
        if m is None:
            raise invalid(
                "the identity must be an EAP-AKA' permanent NAI: '6' + IMSI [@realm] "
                "(RFC 5448 §3, TS 23.003 §19.3)"
            )
        identifier = (pkt.identifier + 1) & 0xFF
        try:
            s, packet = self._fresh_vector_session(identity, m.group("imsi"), identifier)
        except LookupError:
            self._count("unknown_identity")
            s, packet = self._decoy_session(identity, identifier)
        self._put(s)
        return s, packet

    def complete(self, session_id: str, eap_packet: bytes) -> tuple[bool, bytes, Session]:
        """Challenge response in. Returns (authenticated, EAP packet to send, session).

        ``authenticated`` is False after a successful resynchronization, with a fresh
        challenge to send. Every authentication failure raises UNAUTHENTICATED.
        """
        s = self._get(session_id)
        if s.state is not SessionState.CHALLENGED:
            self._drop(session_id)
            self._count("replayed_response")
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, AUTH_FAILED)
        try:
            pkt = eap.decode_packet(eap_packet)
            body = pkt.aka
        except eap.EapFormatError as e:
            raise invalid(f"not a valid EAP-AKA' packet: {e}") from None
        if pkt.code != eap.EapCode.RESPONSE:
            raise invalid("expected an EAP-Response")
        if pkt.identifier != s.identifier:
            raise invalid("EAP Identifier does not match the outstanding request")
        sub = body.subtype
        if sub == eap.AkaSubtype.SYNCHRONIZATION_FAILURE:
            return self._resync(s, body)
        if sub == eap.AkaSubtype.CHALLENGE:
            return self._check_response(s, eap_packet)
        # Authentication-Reject / Client-Error: the peer refused; end the session.
        self._drop(session_id)
        self._count(f"peer_{sub.name.lower()}")
        raise ServiceError(
            grpc.StatusCode.UNAUTHENTICATED,
            f"the peer ended the authentication ({sub.name}); start a new authentication",
        )

    def _check_response(self, s: Session, data: bytes) -> tuple[bool, bytes, Session]:
        try:
            resp = eap.parse_challenge_response(data)
        except eap.EapFormatError as e:
            raise invalid(f"malformed AKA'-Challenge response: {e}") from None
        # Consume the challenge before checking: a second try with the same session fails.
        s.state = SessionState.USED
        ok_mac = eap.verify_at_mac(s.keys.k_aut, data)
        ok_res = s.imsi is not None and hmac.compare_digest(resp.res, s.xres)
        if not (ok_mac and ok_res):
            self._drop(s.session_id)
            self._count("bad_mac" if not ok_mac else "bad_res")
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, AUTH_FAILED)
        s.state = SessionState.AUTHENTICATED
        s.expires_at = time.monotonic() + self._ttl
        return True, eap.success((s.identifier + 1) & 0xFF), s

    def _resync(self, s: Session, body: eap.AkaPrimeBody) -> tuple[bool, bytes, Session]:
        self._drop(s.session_id)
        auts_attr = body.find(eap.AtAuts)
        if auts_attr is None:
            raise invalid("Synchronization-Failure without AT_AUTS")
        if s.imsi is None or s.resyncs >= 1:
            self._count("resync_refused")
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, AUTH_FAILED)
        sub = self._hss.get(s.imsi)
        assert sub is not None
        try:
            sqn_ms = resynchronize(Milenage(sub.k, sub.opc), s.rand, auts_attr.auts)
        except ResyncError:
            self._count("bad_auts")
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, AUTH_FAILED) from None
        if sqn_ms >= sub.sqn:
            self._hss.set_sqn(s.imsi, sqn_ms)
        identifier = (s.identifier + 1) & 0xFF
        # Same session id: the CMA keeps using the handle StartAuthentication gave it
        # (CompleteAuthenticationResponse has no field for a new one).
        fresh, packet = self._fresh_vector_session(
            s.identity, s.imsi, identifier, session_id=s.session_id
        )
        fresh.resyncs = s.resyncs + 1
        self._put(fresh)
        return False, packet, fresh

    def authenticated(self, session_id: str) -> AuthenticatedSubscriber:
        """The subscriber of an authenticated, unexpired session (UNAUTHENTICATED otherwise)."""
        s = self._get(session_id)
        if s.state is not SessionState.AUTHENTICATED or s.imsi is None:
            raise ServiceError(
                grpc.StatusCode.UNAUTHENTICATED,
                "this session is not authenticated; complete EAP-AKA' first",
            )
        return AuthenticatedSubscriber(s.session_id, s.imsi, s.identity, s.keys)

    def bind_transaction(self, session_id: str, transaction_id: str, *, commit: bool) -> None:
        """One authentication, one enrollment: the session's K_encr/K_aut belong to one ppCert.

        A successful SubmitPpCsr binds the session to its transaction id (``commit=True``);
        retries of that transaction pass, another transaction on the same session is
        FAILED_PRECONDITION (checked with ``commit=False`` before any work).
        """
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None:
                return
            if commit:
                s.extra.setdefault("transaction_id", transaction_id)
            bound = s.extra.get("transaction_id", transaction_id)
        if bound != transaction_id:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this authentication was already used for another enrollment; "
                "authenticate again for a new ppCert",
                reason="SESSION_ALREADY_USED",
            )

    def finish(self, session_id: str) -> None:
        """Forget an authenticated session once its enrollment is done."""
        self._drop(session_id)


def check_amf(autn: bytes) -> bool:
    return amf_separation_bit_set(autn)
