"""MPKIX IAS SDK: verify users' ppCerts against a local mirror of the ledger (ARCHITECTURE §2.5).

Typical use in an Internet Application Service::

    from ias_sdk import LedgerMirror, PpCertAuthInterceptor, current_subject, verify
    from ledger.backends.embedded import EmbeddedBackend

    source = EmbeddedBackend.connect("ledger.example:7443", tls)
    mirror = LedgerMirror("ias-mirror.sqlite", source, max_staleness=30).start()
    subject = verify(bundle, mirror=mirror, required_profile="mss:mpkix:authn:loa3:app")

    server = grpc.aio.server(interceptors=[PpCertAuthInterceptor(mirror)])
    # handlers call current_subject() for the verified caller

Verification never calls the ledger: the mirror follows the registry's events in the
background and every check is a local lookup (decision records 0800–0809).
"""

from ias_sdk.interceptor import (
    BUNDLE_METADATA_KEY,
    PpCertAuthInterceptor,
    bundle_metadata,
    current_subject,
    status_code_for,
)
from ias_sdk.mirror import (
    BatchRecord,
    CertificateStatus,
    Freshness,
    LedgerMirror,
    MirrorError,
    MirrorSourceMismatch,
    MirrorStale,
    TrustAnchorRecord,
    ValidatorRecord,
)
from ias_sdk.verify import (
    Reason,
    VerificationError,
    VerifiedSubject,
    Verifier,
    verifier_for,
    verify,
)

__all__ = [
    "BUNDLE_METADATA_KEY",
    "BatchRecord",
    "CertificateStatus",
    "Freshness",
    "LedgerMirror",
    "MirrorError",
    "MirrorSourceMismatch",
    "MirrorStale",
    "PpCertAuthInterceptor",
    "Reason",
    "TrustAnchorRecord",
    "ValidatorRecord",
    "VerificationError",
    "VerifiedSubject",
    "Verifier",
    "bundle_metadata",
    "current_subject",
    "status_code_for",
    "verifier_for",
    "verify",
]
