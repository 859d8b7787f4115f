"""Both peers end to end: EAP-AKA' with Milenage, USIM SQN state and RFC 5448 keys.

The server (CMS role) holds K/OPc and the HSS counter; the peer (CMA role) holds the emulated
USIM. Only bytes pass between them, as on the wire.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from mpkix.aka.eap import (
    AkaSubtype,
    AtAuts,
    EapCode,
    authentication_reject,
    challenge_request,
    challenge_response,
    decode_packet,
    failure,
    identity_response,
    parse_challenge_request,
    parse_challenge_response,
    success,
    sync_failure_response,
    verify_at_mac,
)
from mpkix.aka.kdf import AkaPrimeKeys, amf_separation_bit_set, derive_keys_from_aka
from mpkix.aka.milenage import (
    AuthVector,
    Milenage,
    UsimMacFailure,
    UsimSuccess,
    UsimSyncFailure,
    generate_vector,
    resynchronize,
    usim_authenticate,
)
from mpkix.aka.sqn import UsimSqnState, next_sqn
from tests.mpkix.aka._vectors import h, load

SET = load("milenage-ts35208.json")["test_sets"][6]
K, OPC = h(SET["K"]), h(SET["OPc"])
IDENTITY = b"0001010123456789@nai.epc.mnc001.mcc001.3gppnetwork.org"
NETWORK = b"WLAN"
AMF = b"\x80\x01"


@dataclass
class Server:
    milenage: Milenage = field(default_factory=lambda: Milenage(K, OPC))
    sqn: int = 0
    amf: bytes = AMF
    identity: bytes = b""
    vector: AuthVector | None = None
    keys: AkaPrimeKeys | None = None
    identifier: int = 0

    def on_identity(self, raw: bytes) -> bytes:
        pkt = decode_packet(raw)
        assert pkt.code == EapCode.RESPONSE
        self.identity = pkt.body.identity  # type: ignore[union-attr]
        return self._challenge()

    def _challenge(self) -> bytes:
        self.sqn = next_sqn(self.sqn)
        self.vector = generate_vector(self.milenage, self.sqn, self.amf)
        _, _, self.keys = derive_keys_from_aka(
            self.identity, self.vector.ck, self.vector.ik, NETWORK, self.vector.autn
        )
        self.identifier = (self.identifier + 1) % 256
        return challenge_request(
            self.identifier, self.vector.rand, self.vector.autn, NETWORK, self.keys.k_aut
        )

    def on_response(self, raw: bytes) -> bytes:
        assert self.vector is not None and self.keys is not None
        pkt = decode_packet(raw)
        if pkt.identifier != self.identifier:
            return failure(self.identifier)
        body = pkt.aka
        if body.subtype == AkaSubtype.SYNCHRONIZATION_FAILURE:
            self.sqn = resynchronize(self.milenage, self.vector.rand, body.require(AtAuts).auts)
            return self._challenge()
        if body.subtype != AkaSubtype.CHALLENGE or not verify_at_mac(self.keys.k_aut, raw):
            return failure(self.identifier)
        if not hmac.compare_digest(parse_challenge_response(raw).res, self.vector.xres):
            return failure(self.identifier)
        return success(self.identifier)


@dataclass
class Peer:
    milenage: Milenage = field(default_factory=lambda: Milenage(K, OPC))
    usim: UsimSqnState = field(default_factory=UsimSqnState)
    keys: AkaPrimeKeys | None = None

    def on_challenge(self, raw: bytes) -> bytes:
        req = parse_challenge_request(raw)  # no key needed yet
        if not amf_separation_bit_set(req.autn) or 1 not in req.kdfs:
            return authentication_reject(req.identifier)
        result = usim_authenticate(self.milenage, req.rand, req.autn, self.usim)
        if isinstance(result, UsimMacFailure):
            return authentication_reject(req.identifier)
        if isinstance(result, UsimSyncFailure):
            return sync_failure_response(req.identifier, result.auts)
        assert isinstance(result, UsimSuccess)
        _, _, keys = derive_keys_from_aka(
            IDENTITY, result.ck, result.ik, req.network_name, req.autn
        )
        if not verify_at_mac(keys.k_aut, raw):  # now the server's MAC can be checked
            return authentication_reject(req.identifier)
        self.keys = keys
        return challenge_response(req.identifier, result.res, keys.k_aut)


def test_round_trip_authenticates_both_ways_and_agrees_on_keys() -> None:
    server, peer = Server(), Peer()
    challenge = server.on_identity(identity_response(0, IDENTITY))
    response = peer.on_challenge(challenge)
    assert decode_packet(response).aka.subtype == AkaSubtype.CHALLENGE
    outcome = decode_packet(server.on_response(response))
    assert outcome.code == EapCode.SUCCESS
    assert peer.keys == server.keys and peer.keys is not None
    assert len(peer.keys.msk) == 64 and len(peer.keys.k_encr) == 16
    assert peer.usim.sqn_ms == server.sqn


def test_second_run_uses_fresh_keys() -> None:
    server, peer = Server(), Peer()
    first = peer.on_challenge(server.on_identity(identity_response(0, IDENTITY)))
    assert decode_packet(server.on_response(first)).code == EapCode.SUCCESS
    keys_one = peer.keys
    second = peer.on_challenge(server.on_identity(identity_response(0, IDENTITY)))
    assert decode_packet(server.on_response(second)).code == EapCode.SUCCESS
    assert peer.keys != keys_one


def test_resynchronisation_through_eap() -> None:
    server, peer = Server(), Peer()
    for _ in range(3):  # the card moves ahead with a different network element
        v = generate_vector(peer.milenage, next_sqn(peer.usim.sqn_ms), AMF)
        assert isinstance(usim_authenticate(peer.milenage, v.rand, v.autn, peer.usim), UsimSuccess)
    challenge = server.on_identity(identity_response(0, IDENTITY))
    sync = peer.on_challenge(challenge)
    assert decode_packet(sync).aka.subtype == AkaSubtype.SYNCHRONIZATION_FAILURE
    retry = server.on_response(sync)
    assert server.sqn == next_sqn(peer.usim.sqn_ms)
    response = peer.on_challenge(retry)
    assert decode_packet(server.on_response(response)).code == EapCode.SUCCESS
    assert peer.keys == server.keys


def test_rogue_server_without_k_is_rejected_by_the_peer() -> None:
    rogue = Server(milenage=Milenage(bytes(16), OPC))
    answer = Peer().on_challenge(rogue.on_identity(identity_response(0, IDENTITY)))
    assert decode_packet(answer).aka.subtype == AkaSubtype.AUTHENTICATION_REJECT


def test_challenge_with_a_forged_at_mac_is_rejected_by_the_peer() -> None:
    server, peer = Server(), Peer()
    raw = bytearray(server.on_identity(identity_response(0, IDENTITY)))
    raw[-1] ^= 0x01
    answer = peer.on_challenge(bytes(raw))
    assert decode_packet(answer).aka.subtype == AkaSubtype.AUTHENTICATION_REJECT


def test_peer_refuses_amf_without_separation_bit() -> None:
    server, peer = Server(amf=b"\x00\x01"), Peer()
    answer = peer.on_challenge(server.on_identity(identity_response(0, IDENTITY)))
    assert decode_packet(answer).aka.subtype == AkaSubtype.AUTHENTICATION_REJECT
    assert peer.usim.sqn_ms == 0


def test_impostor_peer_without_k_gets_failure() -> None:
    server = Server()
    impostor = Peer(milenage=Milenage(bytes(16), OPC))
    challenge = server.on_identity(identity_response(0, IDENTITY))
    # The impostor cannot verify AUTN; forge a response with a guessed RES and key.
    req = parse_challenge_request(challenge)
    assert isinstance(
        usim_authenticate(impostor.milenage, req.rand, req.autn, impostor.usim), UsimMacFailure
    )
    forged = challenge_response(req.identifier, bytes(8), bytes(32))
    assert decode_packet(server.on_response(forged)).code == EapCode.FAILURE


def test_tampered_response_gets_failure() -> None:
    server, peer = Server(), Peer()
    response = bytearray(peer.on_challenge(server.on_identity(identity_response(0, IDENTITY))))
    response[13] ^= 0x01  # inside AT_RES
    assert decode_packet(server.on_response(bytes(response))).code == EapCode.FAILURE


def test_right_mac_but_wrong_res_gets_failure() -> None:
    server, peer = Server(), Peer()
    challenge = server.on_identity(identity_response(0, IDENTITY))
    peer.on_challenge(challenge)
    assert peer.keys is not None
    wrong = challenge_response(server.identifier, bytes(8), peer.keys.k_aut)
    assert decode_packet(server.on_response(wrong)).code == EapCode.FAILURE
