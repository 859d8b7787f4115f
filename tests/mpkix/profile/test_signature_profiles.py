from __future__ import annotations

import pytest

from mpkix.profile.oids import PROFILE_POLICY_ARC
from mpkix.profile.signature_profiles import (
    DEFAULT_PROFILE_URI,
    PROFILES,
    MssUri,
    SignatureProfileError,
    get_profile,
    parse_mss_uri,
    profile_for_policy,
    profile_for_uri,
    satisfies,
    satisfies_any,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mss:mpkix:authn:loa3:app", MssUri("mpkix", "authn", 3, None, "app")),
        ("mss:operator:authn:loa4:sim", MssUri("operator", "authn", 4, None, "sim")),
        ("mss:mobileconnect:authn:loa2:sim", MssUri("mobileconnect", "authn", 2, None, "sim")),
        ("mss::authn:loa2", MssUri("", "authn", 2, None, None)),
        ("mss::sign:loa3", MssUri("", "sign", 3, None, None)),
        ("mss:bank-x:popo:loa3.kyc:se", MssUri("bank-x", "popo", 3, "kyc", "se")),
        ("mss:m:anonymous:loa3:server", MssUri("m", "anonymous", 3, None, "server")),
    ],
)
def test_parse_valid(uri: str, expected: MssUri) -> None:
    parsed = parse_mss_uri(uri)
    assert parsed == expected
    assert str(parsed) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "mss:",
        "http://mobileconnect/something/LoA2",
        "MSS:mpkix:authn:loa3:app",
        "mss:mpkix:authn:LoA3:app",
        "mss:mpkix:authn",
        "mss:mpkix:authn:loa3:app:extra",
        "mss:mpkix:login:loa3:app",
        "mss:mpkix:authn:loa5:app",
        "mss:mpkix:authn:loa1:app",
        "mss:mpkix:authn:loa:app",
        "mss:mpkix:authn:loa3.:app",
        "mss:mpkix:authn:loa3.-x:app",
        "mss:mpkix:authn:loa3:phone",
        "mss:mpkix:authn:loa3:",
        "mss:-mpkix:authn:loa3:app",
        "mss:mp kix:authn:loa3:app",
        "mss:mpkix:authn:loa3:app?ECC=true",
        "mss:mpkix:authn:loa3:app#ECC",
        "mss:mpkix/x:authn:loa3:app",
        "mss:mpkïx:authn:loa3:app",
        "mss:" + "a" * 130 + ":authn:loa3:app",
    ],
)
def test_parse_rejects(uri: str) -> None:
    with pytest.raises(SignatureProfileError):
        parse_mss_uri(uri)


def test_parse_rejects_non_string() -> None:
    with pytest.raises(SignatureProfileError):
        parse_mss_uri(b"mss:mpkix:authn:loa3:app")  # type: ignore[arg-type]


def test_registry_is_consistent() -> None:
    assert DEFAULT_PROFILE_URI in PROFILES
    numbers = [p.number for p in PROFILES.values()]
    assert len(set(numbers)) == len(numbers)
    for uri, profile in PROFILES.items():
        assert profile.uri.is_complete
        assert str(profile.uri) == uri
        assert profile.policy_oid.dotted_string == f"{PROFILE_POLICY_ARC}.{profile.number}"
        assert profile_for_policy(profile.policy_oid) is profile
        assert get_profile(uri) is profile
        assert profile_for_uri(uri) is profile


def test_unknown_profile() -> None:
    with pytest.raises(SignatureProfileError, match="not registered"):
        get_profile("mss:other:authn:loa3:app")
    assert profile_for_uri("mss:other:authn:loa3:app") is None
    assert profile_for_uri("garbage") is None


@pytest.mark.parametrize(
    ("granted", "required", "exact", "minimum", "better"),
    [
        # identical
        ("mss:mpkix:authn:loa3:app", "mss:mpkix:authn:loa3:app", True, True, False),
        # stronger LoA
        ("mss:mpkix:authn:loa4:app", "mss:mpkix:authn:loa3:app", False, True, True),
        # weaker LoA
        ("mss:mpkix:authn:loa2:app", "mss:mpkix:authn:loa3:app", False, False, False),
        # stronger SSCD (UICC over app)
        ("mss:mpkix:authn:loa3:sim", "mss:mpkix:authn:loa3:app", False, True, True),
        # weaker SSCD
        ("mss:mpkix:authn:loa4:app", "mss:mpkix:authn:loa3:sim", False, False, False),
        # equal-rank SSCDs: se vs sim
        ("mss:mpkix:authn:loa3:se", "mss:mpkix:authn:loa3:sim", False, True, False),
        # server ranks above app
        ("mss:mpkix:authn:loa3:server", "mss:mpkix:authn:loa3:app", False, True, True),
        # other operation never satisfies
        ("mss:mpkix:sign:loa4:sim", "mss:mpkix:authn:loa3:app", False, False, False),
        # other service never satisfies
        ("mss:other:authn:loa4:sim", "mss:mpkix:authn:loa3:app", False, False, False),
        # wildcard service and SSCD in the requirement
        ("mss:mpkix:authn:loa3:app", "mss::authn:loa3", True, True, False),
        ("mss:mpkix:authn:loa4:app", "mss::authn:loa3", False, True, True),
        ("mss:mpkix:authn:loa2:sim", "mss::authn:loa3", False, False, False),
        # granted without SSCD cannot meet an SSCD requirement
        ("mss:mpkix:authn:loa4", "mss:mpkix:authn:loa3:app", False, False, False),
        # LoA extensions must match
        ("mss:bank:authn:loa3.kyc:sim", "mss:bank:authn:loa3.kyc:sim", True, True, False),
        ("mss:bank:authn:loa4:sim", "mss:bank:authn:loa3.kyc:sim", False, False, False),
        ("mss:bank:authn:loa4.kyc:sim", "mss:bank:authn:loa3.kyc:sim", False, True, True),
        ("mss:bank:authn:loa3.kyc:sim", "mss:bank:authn:loa3:sim", False, True, False),
    ],
)
def test_satisfies_modes(
    granted: str, required: str, exact: bool, minimum: bool, better: bool
) -> None:
    assert satisfies(granted, required, "exact") is exact
    assert satisfies(granted, required, "minimum") is minimum
    assert satisfies(granted, required, "better") is better
    assert satisfies(parse_mss_uri(granted), parse_mss_uri(required), "minimum") is minimum


def test_satisfies_any_and_bad_mode() -> None:
    required = ["mss:mpkix:sign:loa3:app", "mss:mpkix:authn:loa3:app"]
    assert satisfies_any("mss:mpkix:authn:loa3:sim", required, "minimum")
    assert not satisfies_any("mss:mpkix:authn:loa2:sim", required, "minimum")
    with pytest.raises(SignatureProfileError):
        satisfies("mss:mpkix:authn:loa3:app", "mss:mpkix:authn:loa3:app", "atleast")  # type: ignore[arg-type]
    with pytest.raises(SignatureProfileError):
        satisfies("mss:mpkix:authn:loa3:app", "not-a-uri")
