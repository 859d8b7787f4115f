"""EAP / EAP-AKA' packet encoding, strict decoding and AT_MAC (RFC 3748, 4187, 5448)."""

from __future__ import annotations

import hashlib
import hmac
import random
from typing import Any

import pytest

from mpkix.aka.eap import (
    AkaPrimeBody,
    AkaSubtype,
    AtAutn,
    AtAuts,
    AtBidding,
    AtCheckcode,
    AtClientErrorCode,
    AtIdentity,
    AtKdf,
    AtKdfInput,
    AtMac,
    AtNotification,
    AtPermanentIdReq,
    AtRand,
    AtRes,
    AtResultInd,
    ClientErrorCode,
    EapCode,
    EapFormatError,
    EapPacket,
    IdentityBody,
    NakBody,
    authentication_reject,
    challenge_request,
    challenge_response,
    client_error,
    compute_at_mac,
    decode_packet,
    failure,
    identity_request,
    identity_response,
    parse_challenge_request,
    parse_challenge_response,
    success,
    sync_failure_response,
    verify_at_mac,
)
from tests.mpkix.aka._vectors import h, rfc5448_cases

CASE1 = rfc5448_cases()[0]
K_AUT = h(CASE1["K_aut"])
RAND, AUTN, RES = h(CASE1["RAND"]), h(CASE1["AUTN"]), h(CASE1["RES"])


def _hmac128(key: bytes, packet: bytes, mac_at: int) -> bytes:
    zeroed = packet[:mac_at] + bytes(16) + packet[mac_at + 16 :]
    return hmac.digest(key, zeroed, hashlib.sha256)[:16]


def _packet(code: int, ident: int, payload: bytes) -> bytes:
    return bytes([code, ident]) + (4 + len(payload)).to_bytes(2, "big") + payload


def _aka(code: int, subtype: int, attrs: bytes, ident: int = 9) -> bytes:
    return _packet(code, ident, bytes([50, subtype, 0, 0]) + attrs)


# --- exact wire layouts ------------------------------------------------------------------------


def test_success_failure_layout() -> None:
    assert success(7) == bytes.fromhex("03070004")
    assert failure(255) == bytes.fromhex("04ff0004")
    assert decode_packet(success(7)) == EapPacket(EapCode.SUCCESS, 7)


def test_identity_layout() -> None:
    assert identity_response(1, "0555444333222111") == b"\x02\x01\x00\x15\x01" + b"0555444333222111"
    assert identity_request(0) == bytes.fromhex("0100000501")
    pkt = decode_packet(identity_response(1, b"\x00bin"))
    assert pkt.body == IdentityBody(b"\x00bin")


def test_reject_client_error_and_sync_failure_layout() -> None:
    assert authentication_reject(3) == bytes.fromhex("0203000832020000")
    assert client_error(4, ClientErrorCode.UNABLE_TO_PROCESS) == bytes.fromhex(
        "0204000c320e0000" + "16010000"
    )
    auts = bytes(range(14))
    assert sync_failure_response(5, auts) == (
        bytes.fromhex("0205001c" + "32040000") + b"\x04\x04" + auts + bytes.fromhex("18010001")
    )


def test_challenge_request_layout_and_mac() -> None:
    raw = challenge_request(0x93, RAND, AUTN, "WLAN", K_AUT)
    expected_head = (
        bytes.fromhex("01930050" + "32010000")
        + b"\x01\x05\x00\x00"
        + RAND
        + b"\x02\x05\x00\x00"
        + AUTN
        + b"\x17\x02\x00\x04WLAN"
        + b"\x18\x01\x00\x01"
        + b"\x0b\x05\x00\x00"
    )
    assert raw[:-16] == expected_head
    assert raw[-16:] == _hmac128(K_AUT, raw, len(raw) - 16)
    assert compute_at_mac(K_AUT, raw) == raw[-16:]
    assert verify_at_mac(K_AUT, raw)


def test_challenge_response_layout_and_res_bit_length() -> None:
    raw = challenge_response(0x93, RES, K_AUT)
    assert raw[:20] == bytes.fromhex("02930028" + "32010000" + "03030040") + RES
    assert raw[20:24] == b"\x0b\x05\x00\x00"
    assert verify_at_mac(K_AUT, raw)


@pytest.mark.parametrize(
    ("res_len", "attr_units"), [(4, 2), (5, 3), (6, 3), (8, 3), (9, 4), (12, 4), (16, 5)]
)
def test_at_res_lengths_and_padding(res_len: int, attr_units: int) -> None:
    res = bytes(range(1, res_len + 1))
    encoded = AtRes(res).encode()
    assert encoded[1] == attr_units and len(encoded) == 4 * attr_units
    assert int.from_bytes(encoded[2:4], "big") == 8 * res_len
    assert encoded[4 + res_len :] == bytes(len(encoded) - 4 - res_len)
    assert parse_challenge_response(challenge_response(1, res, K_AUT)).res == res


@pytest.mark.parametrize(
    ("name", "attr_units", "pad"), [("WLAN", 2, 0), ("HRPD5", 3, 3), ("5G:mnc093.mcc208", 5, 0)]
)
def test_at_kdf_input_actual_length_and_padding(name: str, attr_units: int, pad: int) -> None:
    encoded = AtKdfInput(name.encode()).encode()
    assert encoded[:4] == bytes([23, attr_units]) + len(name).to_bytes(2, "big")
    assert encoded[4:] == name.encode() + bytes(pad)


def test_every_attribute_round_trips() -> None:
    attrs = (
        AtRand(RAND),
        AtAutn(AUTN),
        AtRes(RES),
        AtAuts(bytes(14)),
        AtNotification(0x4000 | 1026),
        AtClientErrorCode(3),
        AtKdf(1),
        AtKdf(2),
        AtIdentity(b"0555444333222111@wlan.mnc001.mcc001.3gppnetwork.org"),
        AtKdfInput(b"WLAN"),
        AtCheckcode(bytes(32)),
        AtResultInd(),
        AtPermanentIdReq(),
        AtBidding(True),
        AtMac(bytes(16)),
    )
    pkt = EapPacket(EapCode.REQUEST, 42, AkaPrimeBody(AkaSubtype.CHALLENGE, attrs))
    again = decode_packet(pkt.encode())
    assert again == pkt
    assert again.aka.find_all(AtKdf) == (AtKdf(1), AtKdf(2))
    assert again.aka.require(AtNotification).pre_challenge
    assert not again.aka.require(AtNotification).success
    assert EapPacket.decode(pkt.encode()) == pkt


def test_nak_round_trip() -> None:
    pkt = EapPacket(EapCode.RESPONSE, 2, NakBody((50, 23)))
    assert pkt.encode() == bytes.fromhex("02020007" + "033217")
    assert decode_packet(pkt.encode()) == pkt


def test_empty_checkcode_and_bidding_flag() -> None:
    raw = _aka(1, 5, b"\x86\x01\x00\x00" + b"\x88\x01\x00\x00")
    body = decode_packet(raw).aka
    assert body.require(AtCheckcode).checkcode == b""
    assert body.require(AtBidding).supports_aka_prime is False


# --- strict decoding ---------------------------------------------------------------------------

GOOD = challenge_request(9, RAND, AUTN, "WLAN", K_AUT)
ATTRS_AT = 8  # attributes start after the 8-byte EAP-AKA' header


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated EAP header: 0 bytes"),
        (b"\x01\x01\x00", "truncated EAP header: 3 bytes"),
        (b"\x03\x01\x00\x03", "Length field 3 is below"),
        (b"\x03\x01\x00\x05", "truncated EAP packet: Length field says 5, got 4"),
        (b"\x03\x01\x00\x04\x00", "over-long EAP packet: Length field says 4, got 5"),
        (GOOD[:-1], "truncated EAP packet"),
        (GOOD + b"\x00\x00\x00\x00", "over-long EAP packet"),
        (b"\x05\x01\x00\x04", "unknown EAP Code 5"),
        (b"\x03\x01\x00\x05\x01", "EAP SUCCESS must be 4 bytes, got 5"),
        (b"\x01\x01\x00\x04", "EAP REQUEST without a Type"),
        (_packet(1, 1, b"\x04\x10" + bytes(16)), "unsupported EAP Type 4"),
        (_packet(1, 1, b"\x03\x32"), "Nak is only valid in a Response"),
        (_packet(2, 1, b"\x03"), "Nak without any desired type"),
        (_packet(1, 1, b"\x32\x01\x00"), "shorter than its 8-byte header"),
        (_aka(1, 3, b""), "unknown EAP-AKA' subtype 3"),
        (_aka(1, 1, b"\x01\x00\x00\x00"), "attribute type 1 at offset 8 has length 0"),
        (_aka(1, 1, b"\x01\x05\x00\x00" + bytes(12)), "claims 20 bytes, only 16 remain"),
        (_aka(1, 1, b"\x18\x01\x00\x01\x18\x01"), "truncated attribute at offset 12: 2 bytes"),
        (_aka(1, 1, b"\x63\x01\x00\x00"), "unknown non-skippable attribute type 99"),
        (_aka(1, 1, b"\x01\x04\x00\x00" + bytes(12)), "AT_RAND has length 4, expected 5"),
        (_aka(1, 1, b"\x0b\x06\x00\x00" + bytes(20)), "AT_MAC has length 6, expected 5"),
        (_aka(2, 4, b"\x04\x05" + bytes(18)), "AT_AUTS has length 5, expected 4"),
        (_aka(1, 1, b"\x18\x02\x00\x01\x00\x00\x00\x00"), "AT_KDF has length 2, expected 1"),
        (_aka(2, 1, b"\x03\x03\x00\x3c" + bytes(8)), "RES Length 60 bits"),
        (_aka(2, 1, b"\x03\x02\x00\x18" + bytes(4)), "RES Length 24 bits"),
        (_aka(2, 1, b"\x03\x06\x00\x88" + bytes(20)), "RES Length 136 bits"),
        (_aka(2, 1, b"\x03\x04\x00\x40" + bytes(12)), "AT_RES has length 4, expected 3"),
        (_aka(1, 1, b"\x17\x02\x00\x09WLAN"), "AT_KDF_INPUT actual length 9 exceeds"),
        (_aka(1, 1, b"\x17\x01\x00\x00"), "AT_KDF_INPUT network name must not be empty"),
        (_aka(1, 1, b"\x17\x03\x00\x04WLAN" + bytes(4)), "AT_KDF_INPUT has length 3, expected 2"),
        (_aka(2, 5, b"\x0e\x01\x00\x00"), "AT_IDENTITY identity must not be empty"),
        (_aka(2, 5, b"\x0e\x02\x00\x05abcd"), "AT_IDENTITY actual length 5 exceeds"),
        (_aka(1, 1, b"\x86\x02" + bytes(6)), "AT_CHECKCODE has length 2, expected 1 or 9"),
        (_aka(1, 12, b"\x0c\x02\x00\x00" + bytes(4)), "AT_NOTIFICATION has length 2"),
        (_aka(1, 1, (b"\x01\x05\x00\x00" + RAND) * 2), "duplicate AT_RAND at offset 28"),
        (_aka(1, 1, b"\x87\x01\x00\x00" * 2), "duplicate AT_RESULT_IND"),
    ],
)
def test_malformed_packets_raise_eap_format_error(data: bytes, message: str) -> None:
    with pytest.raises(EapFormatError, match=message):
        decode_packet(data)


def test_non_bytes_input_is_a_format_error() -> None:
    with pytest.raises(EapFormatError, match="must be bytes, not str"):
        decode_packet("03010004")  # type: ignore[arg-type]


def test_unknown_skippable_attribute_is_ignored_but_still_covered_by_the_mac() -> None:
    head = GOOD[:-20]  # everything before AT_MAC
    skippable = b"\xc8\x02\x00\x00\xaa\xbb\xcc\xdd"  # type 200
    raw = bytearray(_aka(1, 1, head[ATTRS_AT:] + skippable + b"\x0b\x05\x00\x00" + bytes(16)))
    raw[-16:] = _hmac128(K_AUT, bytes(raw), len(raw) - 16)
    pkt = decode_packet(bytes(raw))
    assert [type(a) for a in pkt.aka.attributes] == [AtRand, AtAutn, AtKdfInput, AtKdf, AtMac]
    assert verify_at_mac(K_AUT, bytes(raw))
    raw[len(head) + 5] ^= 1  # a byte inside the ignored attribute
    assert not verify_at_mac(K_AUT, bytes(raw))


def test_repeated_at_kdf_is_allowed() -> None:
    raw = challenge_request(1, RAND, AUTN, b"WLAN", K_AUT, kdfs=(2, 1, 2))
    assert parse_challenge_request(raw).kdfs == (2, 1, 2)


@pytest.mark.parametrize("cut", range(1, len(GOOD)))
def test_every_truncation_is_refused(cut: int) -> None:
    with pytest.raises(EapFormatError):
        decode_packet(GOOD[:cut])


def test_random_mutations_only_ever_raise_eap_format_error() -> None:
    rng = random.Random(5448)
    samples = [
        GOOD,
        challenge_response(3, RES, K_AUT, checkcode=bytes(32), result_ind=True),
        sync_failure_response(4, bytes(14)),
        identity_response(5, "imsi"),
        client_error(6, 0),
    ]
    decoded = 0
    for _ in range(3000):
        raw = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            action = rng.random()
            if action < 0.6 and raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            elif action < 0.8 and raw:
                del raw[rng.randrange(len(raw)) :]
            else:
                raw += bytes([rng.randrange(256)])
        try:
            pkt = decode_packet(bytes(raw))
        except EapFormatError:
            continue
        decoded += 1
        assert decode_packet(pkt.encode()) == pkt
    assert decoded > 0


# --- AT_MAC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", range(len(GOOD)))
def test_any_tampered_byte_fails_mac_verification(position: int) -> None:
    raw = bytearray(GOOD)
    raw[position] ^= 0x01
    assert not verify_at_mac(K_AUT, bytes(raw))


def test_wrong_key_fails_and_right_key_passes() -> None:
    assert verify_at_mac(K_AUT, GOOD)
    assert verify_at_mac(K_AUT, decode_packet(GOOD))
    assert not verify_at_mac(h(rfc5448_cases()[1]["K_aut"]), GOOD)


def test_packets_without_mac() -> None:
    raw = sync_failure_response(1, bytes(14))
    assert not verify_at_mac(K_AUT, raw)
    assert not verify_at_mac(K_AUT, success(1))
    assert not verify_at_mac(K_AUT, b"\x01")
    with pytest.raises(EapFormatError, match="packet has no AT_MAC"):
        compute_at_mac(K_AUT, raw)
    with pytest.raises(EapFormatError, match="only exists in EAP-AKA'"):
        compute_at_mac(K_AUT, identity_response(1, "x"))


def test_k_aut_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="K_aut must be 32 bytes"):
        challenge_response(1, RES, K_AUT[:16])
    with pytest.raises(ValueError, match="K_aut must be 32 bytes"):
        verify_at_mac(K_AUT[:16], GOOD)


# --- builders, packet invariants and readers --------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: success(256), "Identifier must be 0..255, got 256"),
        (lambda: failure(-1), "Identifier must be 0..255"),
        (lambda: challenge_request(1, RAND[:8], AUTN, "WLAN", K_AUT), "AT_RAND RAND must be 16"),
        (lambda: challenge_request(1, RAND, AUTN[:15], "WLAN", K_AUT), "AT_AUTN AUTN must be 16"),
        (lambda: challenge_request(1, RAND, AUTN, "", K_AUT), "network name must not be empty"),
        (lambda: challenge_request(1, RAND, AUTN, "WLAN", K_AUT, kdfs=()), "at least one AT_KDF"),
        (lambda: challenge_request(1, RAND, AUTN, "x" * 1017, K_AUT), "at most 1016 fit"),
        (lambda: challenge_response(1, b"abc", K_AUT), "AT_RES RES must be 4..16 bytes"),
        (lambda: sync_failure_response(1, bytes(13)), "AT_AUTS AUTS must be 14 bytes"),
        (lambda: client_error(1, 70000), "must be an integer in 0..65535"),
        (lambda: AtCheckcode(bytes(20)), "AT_CHECKCODE must be empty or 32 bytes"),
        (lambda: EapPacket(EapCode.SUCCESS, 1, IdentityBody()), "SUCCESS carries no data"),
        (lambda: EapPacket(EapCode.REQUEST, 1), "REQUEST needs a Type"),
        (lambda: EapPacket(EapCode.REQUEST, 1, NakBody((50,))), "only valid in a Response"),
        (lambda: EapPacket(EapCode.RESPONSE, 1, NakBody(())).encode(), "Nak needs at least one"),
        (lambda: EapPacket(EapCode.REQUEST, True, IdentityBody()), "Identifier must be an int"),
        (lambda: EapPacket(EapCode.SUCCESS, 1).aka, "not an EAP-AKA' packet"),
        (lambda: EapPacket(EapCode.REQUEST, 1, b"\x01"), "unsupported EAP body bytes"),  # type: ignore[arg-type]
    ],
)
def test_builder_and_packet_validation(call: Any, message: str) -> None:
    with pytest.raises(EapFormatError, match=message):
        call()


def test_parse_challenge_request_reads_without_keys() -> None:
    raw = challenge_request(17, RAND, AUTN, "WLAN", K_AUT, result_ind=True)
    req = parse_challenge_request(raw)
    assert (req.identifier, req.rand, req.autn, req.network_name) == (17, RAND, AUTN, b"WLAN")
    assert req.kdfs == (1,) and req.result_ind and req.mac == raw[-16:]


def test_parse_challenge_response_fields() -> None:
    raw = challenge_response(17, RES, K_AUT, checkcode=bytes(32), result_ind=True)
    resp = parse_challenge_response(raw)
    assert (resp.identifier, resp.res) == (17, RES)
    assert resp.checkcode == bytes(32) and resp.result_ind
    assert parse_challenge_response(challenge_response(1, RES, K_AUT)).checkcode is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (challenge_response(1, RES, K_AUT), "expected an EAP REQUEST, got RESPONSE"),
        (_aka(1, 5, b""), "expected an AKA'-Challenge, got IDENTITY"),
        (identity_request(1), "not an EAP-AKA' packet"),
        (_aka(1, 1, b"\x01\x05\x00\x00" + RAND), "CHALLENGE lacks AT_KDF"),
        (_aka(1, 1, b"\x18\x01\x00\x01\x01\x05\x00\x00" + RAND), "CHALLENGE lacks AT_AUTN"),
    ],
)
def test_parse_challenge_request_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(EapFormatError, match=message):
        parse_challenge_request(raw)


def test_parse_challenge_response_refuses_missing_mac() -> None:
    raw = EapPacket(EapCode.RESPONSE, 1, AkaPrimeBody(AkaSubtype.CHALLENGE, (AtRes(RES),)))
    with pytest.raises(EapFormatError, match="CHALLENGE lacks AT_MAC"):
        parse_challenge_response(raw.encode())
    with pytest.raises(EapFormatError, match="expected an EAP RESPONSE"):
        parse_challenge_response(GOOD)
