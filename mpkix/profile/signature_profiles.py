"""MSS signature profiles and ``mss:`` URIs (decision record 0301).

Signature profiles come from the Mobile Signature Service material (ETSI TS 102 204 / TR 102 206,
the Methics ``mss`` URI scheme): ``mss:<service>:<operation>:<LoA>[:<SSCD>]``, e.g.
``mss:mpkix:authn:loa3:app``. Every ppCert carries exactly one profile: its URI inside the MPKIX
extension and its policy OID in certificatePolicies. ``satisfies`` implements the signature-profile
comparison of MSS_SignatureReq (``exact`` | ``minimum`` | ``better``) that the IAS SDK applies.

Parsing is strict: lower case only, the component vocabularies of the MSS material, no query or
fragment, at most 128 characters. An empty service (``mss::authn:loa3``) and an absent SSCD are
accepted because the material defines them as the interoperable wildcard forms; registered
profiles always have both.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from cryptography.x509 import ObjectIdentifier

from mpkix.profile.oids import profile_policy_oid

ComparisonMode = Literal["exact", "minimum", "better"]
COMPARISON_MODES: Final[frozenset[str]] = frozenset({"exact", "minimum", "better"})

#: PKI operations of the MSS material.
OPERATIONS: Final[frozenset[str]] = frozenset(
    {"sign", "authn", "encrypt", "pop", "popo", "consent", "anonymous", "digest"}
)

#: Levels of assurance (the number after ``loa``) of the MSS material.
LOA_LEVELS: Final[frozenset[int]] = frozenset({2, 3, 4})

#: Technical assurance of the signature creation device, higher is stronger. A software key in a
#: mobile app is the weakest; server-side signing keeps the key in the MSSP's HSM; a UICC (``sim``,
#: including eSIM) and a removable secure element (``se``) are tamper-resistant hardware held by the
#: user and rank equal.
SSCD_RANK: Final[Mapping[str, int]] = MappingProxyType({"app": 1, "server": 2, "se": 3, "sim": 3})

MAX_URI_LENGTH: Final = 128

_SERVICE_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
_LOA_RE: Final = re.compile(r"loa([0-9])(?:\.([a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?))?")


class SignatureProfileError(ValueError):
    """An ``mss:`` URI that does not follow the grammar, or an unknown profile."""


@dataclass(frozen=True, slots=True)
class MssUri:
    """A parsed ``mss:`` signature-profile URI; ``str()`` gives its canonical form."""

    service: str
    operation: str
    loa: int
    loa_extension: str | None = None
    sscd: str | None = None

    def __str__(self) -> str:
        loa = f"loa{self.loa}" + (f".{self.loa_extension}" if self.loa_extension else "")
        base = f"mss:{self.service}:{self.operation}:{loa}"
        return f"{base}:{self.sscd}" if self.sscd is not None else base

    @property
    def is_complete(self) -> bool:
        """True when service and SSCD are both given (no wildcard part)."""
        return bool(self.service) and self.sscd is not None


def parse_mss_uri(uri: str) -> MssUri:
    """Parse ``mss:<service>:<operation>:<LoA>[.<ext>][:<SSCD>]`` strictly (results cached)."""
    if not isinstance(uri, str):
        raise SignatureProfileError("signature profile URI must be a string")
    return _parse_mss_uri(uri)


@functools.lru_cache(maxsize=512)
def _parse_mss_uri(uri: str) -> MssUri:
    if len(uri) > MAX_URI_LENGTH:
        raise SignatureProfileError(f"signature profile URI longer than {MAX_URI_LENGTH}")
    if not uri.startswith("mss:"):
        raise SignatureProfileError(f"not an mss: URI: {uri!r}")
    if not uri.isascii() or any(c in uri for c in "?#/ ") or uri != uri.lower():
        raise SignatureProfileError(
            f"mss: URI must be lower-case ASCII without path, query or fragment: {uri!r}"
        )
    parts = uri[4:].split(":")
    if len(parts) not in (3, 4):
        raise SignatureProfileError(f"mss: URI needs 3 or 4 components after 'mss:': {uri!r}")
    service, operation, loa_text = parts[0], parts[1], parts[2]
    if service and _SERVICE_RE.fullmatch(service) is None:
        raise SignatureProfileError(f"invalid service name {service!r}")
    if operation not in OPERATIONS:
        raise SignatureProfileError(f"unknown PKI operation {operation!r}")
    loa_match = _LOA_RE.fullmatch(loa_text)
    if loa_match is None or int(loa_match.group(1)) not in LOA_LEVELS:
        raise SignatureProfileError(f"invalid level of assurance {loa_text!r}")
    sscd: str | None = None
    if len(parts) == 4:
        sscd = parts[3]
        if sscd not in SSCD_RANK:
            raise SignatureProfileError(f"unknown SSCD {sscd!r}")
    return MssUri(service, operation, int(loa_match.group(1)), loa_match.group(2), sscd)


def _as_uri(value: MssUri | str) -> MssUri:
    return value if isinstance(value, MssUri) else parse_mss_uri(value)


def _loa_at_least(granted: MssUri, required: MssUri) -> bool:
    # A LoA extension adds requirements of its own, so only the same extension meets it.
    if required.loa_extension is not None and granted.loa_extension != required.loa_extension:
        return False
    return granted.loa >= required.loa


def _sscd_at_least(granted: MssUri, required: MssUri) -> bool:
    if required.sscd is None:
        return True
    if granted.sscd is None:
        return False
    return SSCD_RANK[granted.sscd] >= SSCD_RANK[required.sscd]


def satisfies(
    granted: MssUri | str, required: MssUri | str, mode: ComparisonMode = "minimum"
) -> bool:
    """Signature-profile comparison of the MSS material.

    ``exact``: every component given in ``required`` equals ``granted``'s (an empty service or
    an absent SSCD in ``required`` matches any). ``minimum``: same service and operation, LoA and
    SSCD at least as strong. ``better``: ``minimum`` and strictly stronger in LoA or SSCD.
    """
    if mode not in COMPARISON_MODES:
        raise SignatureProfileError(f"unknown comparison mode {mode!r}")
    g, r = _as_uri(granted), _as_uri(required)
    if r.service and g.service != r.service:
        return False
    if g.operation != r.operation:
        return False
    if mode == "exact":
        return (
            g.loa == r.loa
            and g.loa_extension == r.loa_extension
            and (r.sscd is None or g.sscd == r.sscd)
        )
    if not (_loa_at_least(g, r) and _sscd_at_least(g, r)):
        return False
    if mode == "minimum":
        return True
    stronger_loa = g.loa > r.loa
    stronger_sscd = (
        r.sscd is not None and g.sscd is not None and SSCD_RANK[g.sscd] > SSCD_RANK[r.sscd]
    )
    return stronger_loa or stronger_sscd


def satisfies_any(
    granted: MssUri | str, required: Iterable[MssUri | str], mode: ComparisonMode = "minimum"
) -> bool:
    """True when ``granted`` satisfies at least one of ``required`` (MSS_SignatureReq semantics)."""
    return any(satisfies(granted, r, mode) for r in required)


@dataclass(frozen=True, slots=True)
class SignatureProfile:
    """A registered MPKIX signature profile: its URI, policy OID and a description."""

    number: int
    uri: MssUri
    policy_oid: ObjectIdentifier
    description: str

    @property
    def uri_text(self) -> str:
        return str(self.uri)


def _profile(number: int, uri: str, description: str) -> SignatureProfile:
    parsed = parse_mss_uri(uri)
    if not parsed.is_complete or str(parsed) != uri:
        raise SignatureProfileError(f"registered profile URI {uri!r} is not canonical")
    return SignatureProfile(number, parsed, profile_policy_oid(number), description)


_REGISTERED: Final = (
    _profile(1, "mss:mpkix:authn:loa2:app", "authentication, one-click, key in the CMA app"),
    _profile(2, "mss:mpkix:authn:loa3:app", "authentication, operator-verified, key in the app"),
    _profile(3, "mss:mpkix:authn:loa3:sim", "authentication, operator-verified, key on the UICC"),
    _profile(4, "mss:mpkix:authn:loa4:sim", "authentication, face-to-face registration, UICC"),
    _profile(5, "mss:mpkix:sign:loa3:app", "plain-text signing, operator-verified, key in the app"),
    _profile(6, "mss:mpkix:sign:loa4:sim", "plain-text signing, face-to-face registration, UICC"),
    _profile(7, "mss:mpkix:anonymous:loa3:app", "attribute-only authentication, key in the app"),
)

#: Registered profiles by canonical URI.
PROFILES: Final[Mapping[str, SignatureProfile]] = MappingProxyType(
    {p.uri_text: p for p in _REGISTERED}
)
#: Registered profiles by policy OID.
PROFILES_BY_POLICY: Final[Mapping[ObjectIdentifier, SignatureProfile]] = MappingProxyType(
    {p.policy_oid: p for p in _REGISTERED}
)

#: The profile a CMS requests when the CMA names none.
DEFAULT_PROFILE_URI: Final = "mss:mpkix:authn:loa3:app"


def get_profile(uri: str) -> SignatureProfile:
    """The registered profile for ``uri`` (parsed strictly first)."""
    parsed = parse_mss_uri(uri)
    try:
        return PROFILES[str(parsed)]
    except KeyError:
        raise SignatureProfileError(f"signature profile {uri!r} is not registered") from None


def profile_for_policy(oid: ObjectIdentifier) -> SignatureProfile | None:
    """The registered profile whose policy OID is ``oid``, if any."""
    return PROFILES_BY_POLICY.get(oid)


def profile_for_uri(uri: str) -> SignatureProfile | None:
    """The registered profile for ``uri`` if it is registered and well formed, else ``None``."""
    profile = PROFILES.get(uri)
    if profile is not None:
        return profile
    try:
        return PROFILES.get(str(parse_mss_uri(uri)))
    except SignatureProfileError:
        return None
