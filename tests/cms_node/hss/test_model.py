"""Subscriber record validation and JSON form (cms_node.hss.model)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from cms_node.hss.model import AMF_DEFAULT, SQN_LIMIT, Subscriber, SubscriberValidationError

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "imsi": "310260000000001",
        "msisdn": "+13234567890",
        "given_name": "Linda",
        "family_name": "Smith",
        "gender": "F",
        "birthday": date(1950, 3, 4),
        "street_number": "12",
        "street": "Main St",
        "city": "Boise",
        "state": "ID",
        "zip": "83702",
        "k": K,
        "opc": OPC,
        "sqn": 32,
    }
    base.update(overrides)
    return base


def test_valid_record_and_defaults() -> None:
    s = Subscriber(**fields())
    assert s.amf == AMF_DEFAULT == b"\x80\x00"
    assert s.msisdn_digits == "13234567890"
    assert s.with_sqn(64).sqn == 64 and s.sqn == 32


def test_repr_hides_keys() -> None:
    text = repr(Subscriber(**fields()))
    assert K.hex() not in text and OPC.hex() not in text
    assert "k=" not in text and "opc=" not in text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("imsi", "31026000000001"),  # 14 digits
        ("imsi", "3102600000000011"),  # 16 digits
        ("imsi", "208010000000001"),  # MCC 208 is France
        ("imsi", "31026000000000a"),
        ("imsi", 310260000000001),
        ("msisdn", "13234567890"),  # no +
        ("msisdn", "+11234567890"),  # area code starts with 1
        ("msisdn", "+13231567890"),  # exchange starts with 1
        ("msisdn", "+19114567890"),  # N11 area code
        ("msisdn", "+442079460958"),  # not NANP
        ("given_name", ""),
        ("family_name", "  "),
        ("street_number", ""),
        ("street", None),
        ("city", ""),
        ("gender", "f"),
        ("gender", "female"),
        ("birthday", "1950-03-04"),
        ("birthday", datetime(1950, 3, 4)),
        ("state", "Id"),
        ("state", "IDA"),
        ("zip", "8370"),
        ("zip", "83702-1234"),
        ("k", K[:15]),
        ("k", bytearray(K)),
        ("opc", OPC + b"\x00"),
        ("amf", b"\x80"),
        ("sqn", -1),
        ("sqn", SQN_LIMIT),
        ("sqn", True),
        ("sqn", 1.0),
    ],
)
def test_invalid_field(field: str, value: object) -> None:
    with pytest.raises(SubscriberValidationError, match=field.split("_")[0]):
        Subscriber(**fields(**{field: value}))


def test_sqn_bounds_accepted() -> None:
    assert Subscriber(**fields(sqn=0)).sqn == 0
    assert Subscriber(**fields(sqn=SQN_LIMIT - 1)).sqn == SQN_LIMIT - 1


def test_json_round_trip() -> None:
    s = Subscriber(**fields(gender="X", amf=b"\x00\x01"))
    data = s.to_json_dict()
    assert data["k"] == K.hex() and data["opc"] == OPC.hex() and data["amf"] == "0001"
    assert data["birthday"] == "1950-03-04"
    assert Subscriber.from_json_dict(data) == s


@pytest.mark.parametrize(
    "change",
    [
        {"k": "zz"},
        {"birthday": "1950-02-30"},
        {"sqn": "32"},
        {"imsi": None},
    ],
)
def test_from_json_dict_rejects(change: dict[str, object]) -> None:
    data = Subscriber(**fields()).to_json_dict()
    data.update(change)
    with pytest.raises(SubscriberValidationError):
        Subscriber.from_json_dict(data)


def test_from_json_dict_missing_key() -> None:
    data = Subscriber(**fields()).to_json_dict()
    del data["opc"]
    with pytest.raises(SubscriberValidationError, match="opc"):
        Subscriber.from_json_dict(data)
