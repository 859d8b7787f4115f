"""The MPKIX certificate profile: OIDs, signature profiles, attribute sealing, ppCSR and ppCert
(ARCHITECTURE §2.1; paper §4.1.2-4.1.3, Fig. 4).

Modules: ``oids`` (private arc), ``signature_profiles`` (``mss:`` URIs, comparison), ``sealing``
(HMAC-SHA-256 + AES-128-GCM sealed attributes and submission envelope), ``extensions`` (strict DER
of the private extensions), ``ppcsr`` (build/parse the PKCS#10 ppCSR), ``ppcert`` (build/parse the
ppCert) and ``lint`` (the in-process profile linter run before signing).
"""

from mpkix.profile.lint import Finding, LintError, lint_ppcert
from mpkix.profile.ppcert import (
    PpCertError,
    PpCertParams,
    PpCertView,
    build_tbs,
    issue_ppcert,
    parse_ppcert,
)
from mpkix.profile.ppcsr import PpCsr, PpCsrError, build_ppcsr, new_subject_id, parse_ppcsr
from mpkix.profile.sealing import (
    Sealer,
    SealingError,
    attribute_digest,
    open_sealed,
    open_submission,
    seal,
    seal_submission,
    verify_sealed,
)
from mpkix.profile.signature_profiles import (
    DEFAULT_PROFILE_URI,
    MssUri,
    SignatureProfile,
    get_profile,
    parse_mss_uri,
    satisfies,
)

__all__ = [
    "DEFAULT_PROFILE_URI",
    "Finding",
    "LintError",
    "MssUri",
    "PpCertError",
    "PpCertParams",
    "PpCertView",
    "PpCsr",
    "PpCsrError",
    "Sealer",
    "SealingError",
    "SignatureProfile",
    "attribute_digest",
    "build_ppcsr",
    "build_tbs",
    "get_profile",
    "issue_ppcert",
    "lint_ppcert",
    "new_subject_id",
    "open_sealed",
    "open_submission",
    "parse_mss_uri",
    "parse_ppcert",
    "parse_ppcsr",
    "satisfies",
    "seal",
    "seal_submission",
    "verify_sealed",
]
