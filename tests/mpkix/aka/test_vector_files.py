"""The vector files are what the other tests rely on: each must name its source."""

from __future__ import annotations

import pytest

from tests.mpkix.aka._vectors import load


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("milenage-ts35207.json", "TS 35.207"),
        ("milenage-ts35208.json", "TS 35.208"),
        ("milenage-auts-hostapd.json", "hostapd"),
        ("eap-aka-prime-rfc5448-case1.json", "RFC 5448"),
        ("eap-aka-prime-rfc5448-cases2-4.json", "RFC 5448"),
    ],
)
def test_every_vector_file_names_its_source(name: str, spec: str) -> None:
    assert spec in load(name)["source"]


def test_ts35208_has_all_twenty_sets_in_order() -> None:
    assert [s["test_set"] for s in load("milenage-ts35208.json")["test_sets"]] == list(range(1, 21))
