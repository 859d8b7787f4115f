"""The inlined ``PpCertInfo`` decoder (decision 0811) against the strict reference decoder: on a
valid encoding and on every single-byte edit, truncation and extension of it, both accept the
same inputs with the same result, and a refusal carries the strict decoder's message."""

from __future__ import annotations

import random

import pytest

from mpkix.profile import extensions
from mpkix.profile.extensions import (
    DerError,
    PpCertInfo,
    decode_ppcert_info,
    der_integer,
    der_octet_string,
    der_sequence,
    der_utf8string,
    encode_length,
    encode_ppcert_info,
)

PROFILE = "mss:mpkix:authn:loa3:app"


def _info(n: int = 5) -> bytes:
    sealed = {f"attr{i}": bytes([i]) * 60 for i in range(n)}
    return encode_ppcert_info(PpCertInfo(PROFILE, "310-260", sealed))


def _outcome(fn: object, der: bytes) -> tuple[str, object]:
    try:
        info = fn(der)  # type: ignore[operator]
    except DerError as e:
        return "error", str(e)
    return "ok", (info.signature_profile, info.operator_id, tuple(info.sealed.items()))


def _same(der: bytes) -> None:
    assert _outcome(decode_ppcert_info, der) == _outcome(extensions._strict_ppcert_info, der)


@pytest.mark.parametrize("n", [1, 5, 32])
def test_fast_path_takes_valid_encodings(n: int) -> None:
    der = _info(n)
    fast = extensions._fast_ppcert_info(der)
    assert fast is not None
    assert _outcome(lambda _: fast, der) == _outcome(extensions._strict_ppcert_info, der)


def test_every_single_byte_edit_is_judged_as_the_strict_decoder_does() -> None:
    der = _info(3)
    for i in range(len(der)):
        for value in {0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0xFF, der[i] ^ 0x01, der[i] ^ 0x80}:
            _same(der[:i] + bytes([value]) + der[i + 1 :])


def test_truncations_extensions_and_random_edits() -> None:
    der = _info(2)
    for cut in range(len(der)):
        _same(der[:cut])
    for extra in (b"\x00", b"\x30\x00", b"\x04\x00"):
        _same(der + extra)
    rng = random.Random(811)
    for _ in range(3000):
        b = bytearray(der)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        _same(bytes(b))


def _raw(*sealed: bytes, version: bytes = der_integer(1)) -> bytes:
    return der_sequence(
        version,
        b"\x16" + encode_length(len(PROFILE)) + PROFILE.encode(),
        der_utf8string("310-260"),
        der_sequence(*sealed),
    )


def _entry(attr_id: str, value: bytes = bytes(60)) -> bytes:
    return der_sequence(der_utf8string(attr_id), der_octet_string(value))


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (_raw(_entry("a"), _entry("a")), "duplicate sealed attribute"),
        (_raw(*(_entry(f"a{i}") for i in range(33))), "more than 32"),
        (_raw(_entry("9bad")), "invalid attribute identifier"),
        (_raw(_entry("a", bytes(59))), "59 bytes"),
        (_raw(), "SealedAttributes is empty"),
        (_raw(_entry("a"), version=der_integer(2)), "unsupported PpCertInfo version"),
        (_raw(_entry("a"), version=b"\x02\x02\x00\x01"), "non-minimal INTEGER"),
        (
            _raw(der_sequence(der_utf8string("a"), der_octet_string(bytes(60)), b"\x05\x00")),
            "SEQUENCE { UTF8String, OCTET STRING }",
        ),
        # non-minimal long-form length of the outer SEQUENCE
        (b"\x30\x82\x00\x05" + bytes(5), "non-minimal length"),
    ],
)
def test_refusals_name_what_is_wrong(der: bytes, message: str) -> None:
    assert extensions._fast_ppcert_info(der) is None
    with pytest.raises(DerError, match=message):
        decode_ppcert_info(der)


def test_invalid_ids_and_operators_are_not_remembered_as_valid() -> None:
    for _ in range(2):  # the second time the remembered-valid sets are warm
        with pytest.raises(DerError, match="invalid attribute identifier"):
            decode_ppcert_info(_raw(_entry("a"), _entry("-x")))
        bad_operator = der_sequence(
            der_integer(1),
            b"\x16" + encode_length(len(PROFILE)) + PROFILE.encode(),
            der_utf8string("-op"),
            der_sequence(_entry("a")),
        )
        with pytest.raises(DerError, match="invalid operator identifier"):
            decode_ppcert_info(bad_operator)
        assert decode_ppcert_info(_raw(_entry("a"))).sealed == {"a": bytes(60)}
