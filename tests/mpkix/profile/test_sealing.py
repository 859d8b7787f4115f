from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mpkix.profile import sealing
from mpkix.profile.sealing import (
    SEALED_LEN,
    SealedValueMalformed,
    SealedValueTampered,
    Sealer,
    SealingError,
    SubmissionDecryptError,
    SubmissionMacMismatch,
    SubmissionTruncated,
    attribute_digest,
    open_sealed,
    open_submission,
    seal,
    seal_submission,
    verify_sealed,
)

K_ENCR = bytes(range(16))
K_AUT = bytes(range(32, 64))


def test_digest_is_hmac_sha256_of_id_nul_value() -> None:
    expected = hmac.new(K_AUT, b"birthday\x001990-01-02", hashlib.sha256).digest()
    assert attribute_digest(K_AUT, "birthday", "1990-01-02") == expected
    # UTF-8 of the value, not Latin-1
    expected_utf8 = hmac.new(K_AUT, "name\x00Zoë".encode(), hashlib.sha256).digest()
    assert attribute_digest(K_AUT, "name", "Zoë") == expected_utf8


def test_digest_separates_id_and_value() -> None:
    # "ab" ‖ 0 ‖ "c" must differ from "a" ‖ 0 ‖ "bc": ids cannot contain NUL.
    assert attribute_digest(K_AUT, "ab", "c") != attribute_digest(K_AUT, "a", "bc")


def test_seal_layout_and_round_trip() -> None:
    digest = attribute_digest(K_AUT, "phone", "+1-123-456-7789")
    nonce = bytes(12)
    blob = seal(K_ENCR, "phone", digest, nonce)
    assert len(blob) == SEALED_LEN == 60
    assert blob[:12] == nonce
    # Independent decryption with the attribute id as associated data.
    assert AESGCM(K_ENCR).decrypt(nonce, blob[12:], b"phone") == digest
    assert open_sealed(K_ENCR, "phone", blob) == digest
    assert verify_sealed(K_ENCR, K_AUT, "phone", "+1-123-456-7789", blob)


def test_random_nonces_differ() -> None:
    digest = attribute_digest(K_AUT, "phone", "1")
    assert seal(K_ENCR, "phone", digest) != seal(K_ENCR, "phone", digest)


@pytest.mark.parametrize("index", [0, 11, 12, 30, 43, 44, 59])
def test_tampered_byte_is_detected(index: int) -> None:
    blob = bytearray(seal(K_ENCR, "name", attribute_digest(K_AUT, "name", "Scott")))
    blob[index] ^= 0x01
    with pytest.raises(SealedValueTampered):
        open_sealed(K_ENCR, "name", bytes(blob))
    assert not verify_sealed(K_ENCR, K_AUT, "name", "Scott", bytes(blob))


def test_moved_to_another_attribute_is_detected() -> None:
    blob = seal(K_ENCR, "name", attribute_digest(K_AUT, "name", "Scott"))
    with pytest.raises(SealedValueTampered):
        open_sealed(K_ENCR, "surname", blob)


def test_wrong_k_encr_is_detected() -> None:
    blob = seal(K_ENCR, "name", attribute_digest(K_AUT, "name", "Scott"))
    with pytest.raises(SealedValueTampered):
        open_sealed(os.urandom(16), "name", blob)


@pytest.mark.parametrize("length", [0, 59, 61, 120])
def test_wrong_length_is_malformed(length: int) -> None:
    with pytest.raises(SealedValueMalformed):
        open_sealed(K_ENCR, "name", bytes(length))
    assert not verify_sealed(K_ENCR, K_AUT, "name", "x", bytes(length))


def test_verify_rejects_other_value_and_other_k_aut() -> None:
    blob = seal(K_ENCR, "name", attribute_digest(K_AUT, "name", "Scott"))
    assert verify_sealed(K_ENCR, K_AUT, "name", "Scott", blob)
    assert not verify_sealed(K_ENCR, K_AUT, "name", "Scott ", blob)
    assert not verify_sealed(K_ENCR, os.urandom(32), "name", "Scott", blob)


@pytest.mark.parametrize("attr_id", ["", "1abc", "a b", "a\x00b", "é", "a" * 65, "a/b"])
def test_bad_attribute_ids(attr_id: str) -> None:
    with pytest.raises(SealingError):
        attribute_digest(K_AUT, attr_id, "v")
    with pytest.raises(SealingError):
        seal(K_ENCR, attr_id, bytes(32))


def test_bad_keys_digest_and_nonce() -> None:
    with pytest.raises(SealingError):
        seal(bytes(32), "a", bytes(32))  # AES-256 key: not the 128-bit K_encr
    with pytest.raises(SealingError):
        attribute_digest(bytes(8), "a", "v")
    with pytest.raises(SealingError):
        seal(K_ENCR, "a", bytes(31))
    with pytest.raises(SealingError):
        seal(K_ENCR, "a", bytes(32), nonce=bytes(11))
    with pytest.raises(SealingError):
        Sealer(bytes(15), K_AUT)
    with pytest.raises(SealingError):
        Sealer(K_ENCR, bytes(15))


def test_sealer_matches_module_functions() -> None:
    s = Sealer(K_ENCR, K_AUT)
    assert s.digest("gender", "F") == attribute_digest(K_AUT, "gender", "F")
    blob = s.seal_value("gender", "F")
    assert open_sealed(K_ENCR, "gender", blob) == s.open("gender", blob)
    assert s.verify("gender", "F", blob)
    assert not s.verify("gender", "M", blob)
    assert not s.verify("gender", "F", blob[:-1] + bytes([blob[-1] ^ 1]))
    assert s.seal("gender", s.digest("gender", "F"), bytes(12)) == seal(
        K_ENCR, "gender", attribute_digest(K_AUT, "gender", "F"), bytes(12)
    )


# --- submission envelope (§5.2 step 2) -------------------------------------------------------


def test_submission_round_trip_and_layout() -> None:
    plaintext = b"\x30\x82ppcsr-bytes" * 20
    blob = seal_submission(K_ENCR, K_AUT, plaintext, b"txn-1")
    assert len(blob) == 12 + len(plaintext) + 32 + 16
    inner = AESGCM(K_ENCR).decrypt(blob[:12], blob[12:], b"txn-1")
    assert inner == plaintext + hmac.new(K_AUT, plaintext, hashlib.sha256).digest()
    assert open_submission(K_ENCR, K_AUT, blob, b"txn-1") == plaintext
    assert Sealer(K_ENCR, K_AUT).open_submission(blob, b"txn-1") == plaintext


def test_empty_submission() -> None:
    blob = Sealer(K_ENCR, K_AUT).seal_submission(b"")
    assert len(blob) == sealing.MIN_SUBMISSION_LEN
    assert open_submission(K_ENCR, K_AUT, blob) == b""


@pytest.mark.parametrize("length", [0, 12, 59])
def test_truncated_submission(length: int) -> None:
    blob = seal_submission(K_ENCR, K_AUT, b"x" * 40)
    with pytest.raises(SubmissionTruncated):
        open_submission(K_ENCR, K_AUT, blob[:length])


def test_submission_decrypt_failures() -> None:
    blob = seal_submission(K_ENCR, K_AUT, b"payload", b"aad")
    flipped = blob[:20] + bytes([blob[20] ^ 0x80]) + blob[21:]
    with pytest.raises(SubmissionDecryptError):
        open_submission(K_ENCR, K_AUT, flipped, b"aad")
    with pytest.raises(SubmissionDecryptError):
        open_submission(K_ENCR, K_AUT, blob, b"other aad")
    with pytest.raises(SubmissionDecryptError):
        open_submission(os.urandom(16), K_AUT, blob, b"aad")
    with pytest.raises(SubmissionDecryptError):
        open_submission(K_ENCR, K_AUT, blob[:-1], b"aad")


def test_submission_mac_mismatch() -> None:
    # Right K_encr, wrong K_aut: the envelope decrypts but the inner MAC fails.
    blob = seal_submission(K_ENCR, os.urandom(32), b"payload")
    with pytest.raises(SubmissionMacMismatch):
        open_submission(K_ENCR, K_AUT, blob)
    # A correctly encrypted plaintext whose MAC bytes were altered before encryption.
    nonce = os.urandom(12)
    mac = bytearray(hmac.new(K_AUT, b"payload", hashlib.sha256).digest())
    mac[0] ^= 1
    forged = nonce + AESGCM(K_ENCR).encrypt(nonce, b"payload" + bytes(mac), b"")
    with pytest.raises(SubmissionMacMismatch):
        open_submission(K_ENCR, K_AUT, forged)


def test_submission_errors_are_distinct_types() -> None:
    kinds = {SubmissionTruncated, SubmissionDecryptError, SubmissionMacMismatch}
    assert all(issubclass(k, SealingError) for k in kinds)
    assert not any(issubclass(a, b) for a in kinds for b in kinds if a is not b)
