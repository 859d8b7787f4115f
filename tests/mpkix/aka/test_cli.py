"""``mpkix aka milenage`` and ``mpkix aka eap-aka-prime-keys`` against published vectors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mpkix.cli import main
from tests.mpkix.aka._vectors import milenage_sets, rfc5448_cases

MILENAGE_KEYS = {"opc", "mac_a", "mac_s", "res", "ck", "ik", "ak", "ak_star", "autn"}
KDF_KEYS = {"ck_prime", "ik_prime", "k_encr", "k_aut", "k_re", "msk", "emsk"}


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _milenage_argv(s: dict[str, Any], key_flag: str = "--op") -> list[str]:
    key = s["OP"] if key_flag == "--op" else s["OPc"]
    return [
        "aka",
        "milenage",
        "--k",
        s["K"],
        key_flag,
        key,
        "--rand",
        s["RAND"],
        "--sqn",
        s["SQN"],
        "--amf",
        s["AMF"],
    ]


@pytest.mark.parametrize("s", milenage_sets()[::3], ids=lambda s: s["id"])
@pytest.mark.parametrize("key_flag", ["--op", "--opc"])
def test_milenage_prints_the_published_values(
    capsys: pytest.CaptureFixture[str], s: dict[str, Any], key_flag: str
) -> None:
    rc, out, err = _run(capsys, _milenage_argv(s, key_flag))
    assert (rc, err) == (0, "")
    assert out.count("\n") == 1
    got = json.loads(out)
    assert set(got) == MILENAGE_KEYS
    sqn_xor_ak = (int(s["SQN"], 16) ^ int(s["f5"], 16)).to_bytes(6, "big").hex()
    assert got == {
        "opc": s["OPc"],
        "mac_a": s["f1"],
        "mac_s": s["f1star"],
        "res": s["f2"],
        "ck": s["f3"],
        "ik": s["f4"],
        "ak": s["f5"],
        "ak_star": s["f5star"],
        "autn": sqn_xor_ak + s["AMF"] + s["f1"],
    }


def test_milenage_accepts_0x_prefix_and_upper_case(capsys: pytest.CaptureFixture[str]) -> None:
    s = milenage_sets()[0]
    argv = _milenage_argv(s)
    argv[3] = "0x" + s["K"].upper()
    rc, out, _ = _run(capsys, argv)
    assert rc == 0 and json.loads(out)["res"] == s["f2"]


@pytest.mark.parametrize("c", rfc5448_cases(), ids=lambda c: f"case{c['case']}")
def test_eap_aka_prime_keys(capsys: pytest.CaptureFixture[str], c: dict[str, Any]) -> None:
    rc, out, err = _run(
        capsys,
        [
            "aka",
            "eap-aka-prime-keys",
            "--identity",
            c["identity"],
            "--network-name",
            c["network_name"],
            "--ck",
            c["CK"],
            "--ik",
            c["IK"],
            "--autn",
            c["AUTN"],
        ],
    )
    assert (rc, err) == (0, "")
    got = json.loads(out)
    assert set(got) == KDF_KEYS
    assert got == {
        "ck_prime": c["CK_prime"],
        "ik_prime": c["IK_prime"],
        "k_encr": c["K_encr"],
        "k_aut": c["K_aut"],
        "k_re": c["K_re"],
        "msk": c["MSK"],
        "emsk": c["EMSK"],
    }


S = milenage_sets()[0]
C = rfc5448_cases()[0]


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


KDF_ARGV = [
    "aka",
    "eap-aka-prime-keys",
    "--identity",
    C["identity"],
    "--network-name",
    "WLAN",
    "--ck",
    C["CK"],
    "--ik",
    C["IK"],
    "--autn",
    C["AUTN"],
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (_with(_milenage_argv(S), "--k", "zz" * 16), "--k: not a hex string"),
        (_with(_milenage_argv(S), "--k", S["K"][:-2]), "--k: expected 16 bytes (32 hex digits)"),
        (_with(_milenage_argv(S), "--op", "abc"), "--op: not a hex string"),
        (_with(_milenage_argv(S, "--opc"), "--opc", "00"), "--opc: expected 16 bytes"),
        (_with(_milenage_argv(S), "--rand", S["RAND"] + "00"), "--rand: expected 16 bytes"),
        (_with(_milenage_argv(S), "--sqn", "0102030405"), "--sqn: expected 6 bytes"),
        (_with(_milenage_argv(S), "--amf", "b9"), "--amf: expected 2 bytes"),
        (_with(KDF_ARGV, "--ck", "00"), "--ck: expected 16 bytes"),
        (_with(KDF_ARGV, "--ik", "g" * 32), "--ik: not a hex string"),
        (_with(KDF_ARGV, "--autn", C["AUTN"][:12]), "--autn: expected 16 bytes"),
        (_with(KDF_ARGV, "--network-name", ""), "--network-name: must not be empty"),
        (_with(KDF_ARGV, "--identity", ""), "--identity: must not be empty"),
    ],
)
def test_bad_values_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    rc, out, err = _run(capsys, argv)
    assert rc == 2 and out == ""
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["aka", "milenage", "--k", S["K"], "--rand", S["RAND"], "--sqn", S["SQN"], "--amf", "b9b9"],
        [*_milenage_argv(S), "--opc", S["OPc"]],
        ["aka"],
    ],
    ids=["neither-op-nor-opc", "both-op-and-opc", "no-subcommand"],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err
