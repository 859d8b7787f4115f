"""Attribute sealing and the sealed ppCSR submission envelope (ARCHITECTURE §2.1 step 2, paper
§4.1.2 and §5.2 step 2; decision record 0302).

The paper seals each attribute as ``Enc(Hash(value, K_aut), K_encr)`` with SHA-1 and AES. MPKIX uses
HMAC-SHA-256 and AES-128-GCM with the attribute identifier as associated data:

* ``digest = HMAC-SHA-256(K_aut, attr_id ‖ 0x00 ‖ UTF-8(canonical value))``
* ``sealed = nonce(12) ‖ AES-128-GCM(K_encr, digest, aad=attr_id)`` — always 60 bytes.

The submission envelope (§5.2 step 2: ``Enc(ppCSR ‖ MAC(ppCSR, K_aut), K_encr)``) is
``nonce(12) ‖ AES-128-GCM(K_encr, plaintext ‖ HMAC-SHA-256(K_aut, plaintext), aad)``.

K_encr is the 128-bit EAP-AKA' K_encr and K_aut the 256-bit K_aut of RFC 5448 §3.3. ``Sealer`` keeps
one AESGCM object per key pair for the hot path (the CMS checks every attribute of a ppCSR with
the same keys); the module-level functions share a small cache of AESGCM objects.
"""

from __future__ import annotations

import functools
import hmac
import os
import re
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_LEN: Final = 12
DIGEST_LEN: Final = 32
TAG_LEN: Final = 16
#: Length of every sealed attribute value: nonce ‖ ciphertext(digest) ‖ tag.
SEALED_LEN: Final = NONCE_LEN + DIGEST_LEN + TAG_LEN
#: Shortest possible sealed submission (empty plaintext).
MIN_SUBMISSION_LEN: Final = NONCE_LEN + DIGEST_LEN + TAG_LEN
K_ENCR_LEN: Final = 16
MIN_K_AUT_LEN: Final = 16

#: Attribute identifiers: an ASCII letter then letters, digits, ``_ . -``; never a 0x00 byte, so
#: ``attr_id ‖ 0x00 ‖ value`` is unambiguous.
ATTR_ID_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


class SealingError(ValueError):
    """Base class of every sealing failure."""


class SealedValueMalformed(SealingError):
    """A sealed attribute value of the wrong length."""


class SealedValueTampered(SealingError):
    """A sealed attribute value that fails AES-GCM authentication (wrong key, id or bytes)."""


class SubmissionTruncated(SealingError):
    """A sealed submission too short to hold nonce, MAC and tag."""


class SubmissionDecryptError(SealingError):
    """A sealed submission that fails AES-GCM authentication under K_encr."""


class SubmissionMacMismatch(SealingError):
    """A sealed submission that decrypts but whose inner HMAC under K_aut is wrong."""


def validate_attr_id(attr_id: str) -> bytes:
    """Check ``attr_id`` against ``ATTR_ID_RE`` and return its ASCII bytes."""
    if not isinstance(attr_id, str) or ATTR_ID_RE.fullmatch(attr_id) is None:
        raise SealingError(f"invalid attribute identifier {attr_id!r}")
    return attr_id.encode("ascii")


def _check_keys(k_encr: bytes, k_aut: bytes | None) -> None:
    if len(k_encr) != K_ENCR_LEN:
        raise SealingError(f"K_encr must be {K_ENCR_LEN} bytes (AES-128)")
    if k_aut is not None and len(k_aut) < MIN_K_AUT_LEN:
        raise SealingError(f"K_aut must be at least {MIN_K_AUT_LEN} bytes")


class Sealer:
    """Sealing operations bound to one (K_encr, K_aut) pair; reuses one AESGCM object."""

    __slots__ = ("_aead", "_k_aut")

    def __init__(self, k_encr: bytes, k_aut: bytes) -> None:
        _check_keys(k_encr, k_aut)
        self._aead = AESGCM(bytes(k_encr))
        self._k_aut = bytes(k_aut)

    def digest(self, attr_id: str, canonical_value: str) -> bytes:
        """``HMAC-SHA-256(K_aut, attr_id ‖ 0x00 ‖ UTF-8(value))``."""
        return _digest(self._k_aut, validate_attr_id(attr_id), canonical_value)

    def seal(self, attr_id: str, digest: bytes, nonce: bytes | None = None) -> bytes:
        """``nonce ‖ AES-128-GCM(K_encr, digest, aad=attr_id)``."""
        return _seal(self._aead, validate_attr_id(attr_id), digest, nonce)

    def seal_value(self, attr_id: str, canonical_value: str) -> bytes:
        """Digest then seal one attribute value."""
        aid = validate_attr_id(attr_id)
        return _seal(self._aead, aid, _digest(self._k_aut, aid, canonical_value), None)

    def open(self, attr_id: str, blob: bytes) -> bytes:
        """Decrypt a sealed value back to its digest."""
        return _open(self._aead, validate_attr_id(attr_id), blob)

    def verify(self, attr_id: str, canonical_value: str, blob: bytes) -> bool:
        """True iff ``blob`` seals ``canonical_value`` (tampered or foreign blobs give False)."""
        aid = validate_attr_id(attr_id)
        try:
            digest = _open(self._aead, aid, blob)
        except SealingError:
            return False
        return hmac.compare_digest(digest, _digest(self._k_aut, aid, canonical_value))

    def seal_submission(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """``nonce ‖ AES-128-GCM(K_encr, plaintext ‖ HMAC-SHA-256(K_aut, plaintext), aad)``."""
        return _seal_submission(self._aead, self._k_aut, plaintext, aad)

    def open_submission(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Inverse of ``seal_submission``; distinct errors for truncation, decryption and MAC."""
        return _open_submission(self._aead, self._k_aut, blob, aad)


def _digest(k_aut: bytes, attr_id: bytes, canonical_value: str) -> bytes:
    return hmac.digest(k_aut, attr_id + b"\x00" + canonical_value.encode("utf-8"), "sha256")


def _seal(aead: AESGCM, attr_id: bytes, digest: bytes, nonce: bytes | None) -> bytes:
    if len(digest) != DIGEST_LEN:
        raise SealingError(f"digest must be {DIGEST_LEN} bytes")
    if nonce is None:
        nonce = os.urandom(NONCE_LEN)
    elif len(nonce) != NONCE_LEN:
        raise SealingError(f"nonce must be {NONCE_LEN} bytes")
    return nonce + aead.encrypt(nonce, digest, attr_id)


def _seal_submission(aead: AESGCM, k_aut: bytes, plaintext: bytes, aad: bytes) -> bytes:
    mac = hmac.digest(k_aut, plaintext, "sha256")
    nonce = os.urandom(NONCE_LEN)
    return nonce + aead.encrypt(nonce, plaintext + mac, aad)


def _open_submission(aead: AESGCM, k_aut: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < MIN_SUBMISSION_LEN:
        raise SubmissionTruncated(
            f"sealed submission of {len(blob)} bytes, at least {MIN_SUBMISSION_LEN} needed"
        )
    try:
        inner = aead.decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], aad)
    except InvalidTag:
        raise SubmissionDecryptError("sealed submission failed AES-GCM authentication") from None
    plaintext, mac = inner[:-DIGEST_LEN], inner[-DIGEST_LEN:]
    if not hmac.compare_digest(mac, hmac.digest(k_aut, plaintext, "sha256")):
        raise SubmissionMacMismatch("sealed submission MAC under K_aut does not match")
    return plaintext


def _open(aead: AESGCM, attr_id: bytes, blob: bytes) -> bytes:
    if len(blob) != SEALED_LEN:
        raise SealedValueMalformed(f"sealed value of {len(blob)} bytes, expected {SEALED_LEN}")
    try:
        return aead.decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], attr_id)
    except InvalidTag:
        raise SealedValueTampered("sealed value failed AES-GCM authentication") from None


@functools.lru_cache(maxsize=256)
def _aead_for(k_encr: bytes) -> AESGCM:
    _check_keys(k_encr, None)
    return AESGCM(k_encr)


def attribute_digest(k_aut: bytes, attr_id: str, canonical_value: str) -> bytes:
    """``HMAC-SHA-256(K_aut, attr_id ‖ 0x00 ‖ UTF-8(canonical_value))`` (32 bytes)."""
    if len(k_aut) < MIN_K_AUT_LEN:
        raise SealingError(f"K_aut must be at least {MIN_K_AUT_LEN} bytes")
    return _digest(bytes(k_aut), validate_attr_id(attr_id), canonical_value)


def seal(k_encr: bytes, attr_id: str, digest: bytes, nonce: bytes | None = None) -> bytes:
    """``nonce(12) ‖ AES-128-GCM(K_encr, digest, aad=attr_id)`` (60 bytes)."""
    return _seal(_aead_for(bytes(k_encr)), validate_attr_id(attr_id), digest, nonce)


def open_sealed(k_encr: bytes, attr_id: str, blob: bytes) -> bytes:
    """The digest inside ``blob``; ``SealedValueTampered`` / ``SealedValueMalformed`` otherwise."""
    return _open(_aead_for(bytes(k_encr)), validate_attr_id(attr_id), blob)


def verify_sealed(
    k_encr: bytes, k_aut: bytes, attr_id: str, canonical_value: str, blob: bytes
) -> bool:
    """True iff ``blob`` seals ``canonical_value`` under these keys (constant-time compare)."""
    expected = attribute_digest(k_aut, attr_id, canonical_value)
    try:
        digest = open_sealed(k_encr, attr_id, blob)
    except (SealedValueTampered, SealedValueMalformed):
        return False
    return hmac.compare_digest(digest, expected)


def seal_submission(k_encr: bytes, k_aut: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Sealed ppCSR submission: ``nonce ‖ AES-GCM(K_encr, plaintext ‖ HMAC(K_aut, pt), aad)``."""
    _check_keys(k_encr, k_aut)
    return _seal_submission(_aead_for(bytes(k_encr)), bytes(k_aut), plaintext, aad)


def open_submission(k_encr: bytes, k_aut: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    """Open a sealed submission; raises ``SubmissionTruncated``, ``SubmissionDecryptError`` or
    ``SubmissionMacMismatch``."""
    _check_keys(k_encr, k_aut)
    return _open_submission(_aead_for(bytes(k_encr)), bytes(k_aut), blob, aad)
