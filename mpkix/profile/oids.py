"""Object identifiers of the MPKIX certificate profile (decision record 0300).

MPKIX has no registered enterprise number, so its arc is derived from one random UUID generated
once (``MPKIX_UUID``). The X.667 form ``2.25.<UUID as one 128-bit integer>`` was the first choice,
but a 128-bit arc breaks common parsers: pkilint's DER decoder (pyasn1-fasder), Go's crypto/x509
(components capped at int32) and wolfSSL (word32) reject such certificates outright. MPKIX
therefore uses the other registration-free GUID arc, Microsoft's ``1.2.840.113556.1.8000.2554``,
under which the GUID ``aaaabbbb-cccc-dddd-eeee-ffffffgggggg`` is the OID
``….2554.A.B.C.D.E.F.G`` (each hex chunk as an integer): every arc is at most 24 bits::

    MPKIX_ARC        1.2.840.113556.1.8000.2554.50650.50798.22232.16729.47437.3532192.813777
      .1             certificate policies
        .1.1           the MPKIX certificate policy (every ppCert)
        .1.2.<n>       one policy per signature profile (see ``signature_profiles``)
      .2             extensions
        .2.1           id-mpkix-ce-ppCertInfo: sealed attributes, ``mss:`` URI, operator id
        .2.2           id-mpkix-ce-sealedAttributes: the ppCSR extension request
      .3             access methods
        .3.1           id-mpkix-ad-cmsGrpc: serving CMS gRPC endpoint (subjectInfoAccess)

Arcs are never reused: a retired profile keeps its number. A deployment that registers an IANA
Private Enterprise Number changes ``MPKIX_ARC`` only.
"""

from __future__ import annotations

import uuid
from typing import Final

from cryptography.x509 import ObjectIdentifier

#: The one UUID the MPKIX arc is derived from (generated once, see docs/decisions/0300).
MPKIX_UUID: Final = uuid.UUID("c5dac66e-56d8-4159-b94d-35e5a00c6ad1")

#: Microsoft's arc for GUID-derived OIDs (no registration needed).
GUID_OID_BASE: Final = "1.2.840.113556.1.8000.2554"


def guid_arc(guid: uuid.UUID) -> str:
    """``GUID_OID_BASE.A.B.C.D.E.F.G`` for ``aaaabbbb-cccc-dddd-eeee-ffffffgggggg``."""
    h = guid.hex
    chunks = (h[0:4], h[4:8], h[8:12], h[12:16], h[16:20], h[20:26], h[26:32])
    return ".".join([GUID_OID_BASE, *(str(int(c, 16)) for c in chunks)])


#: The MPKIX arc: ``guid_arc(MPKIX_UUID)``.
MPKIX_ARC: Final = guid_arc(MPKIX_UUID)
#: The same UUID in X.667 form; documented for reference, not used in certificates (see above).
MPKIX_X667_OID: Final = f"2.25.{MPKIX_UUID.int}"


def _oid(suffix: str) -> ObjectIdentifier:
    return ObjectIdentifier(f"{MPKIX_ARC}.{suffix}")


#: Arc of the certificate policies.
POLICY_ARC: Final = f"{MPKIX_ARC}.1"
#: The MPKIX certificate policy, asserted by every ppCert.
ID_MPKIX_CP: Final = _oid("1.1")
#: Arc under which each signature profile gets its own policy OID (``.1.2.<n>``).
PROFILE_POLICY_ARC: Final = f"{MPKIX_ARC}.1.2"

#: Certificate extension carrying the sealed attributes, ``mss:`` URI and operator id.
ID_MPKIX_CE_PPCERT_INFO: Final = _oid("2.1")
#: ppCSR extension (inside the PKCS#9 extensionRequest) carrying the sealed attributes.
ID_MPKIX_CE_SEALED_ATTRIBUTES: Final = _oid("2.2")

#: Subject Information Access method: "MPKIX CMS gRPC endpoint" (value: ``grpcs://host:port``).
ID_MPKIX_AD_CMS_GRPC: Final = _oid("3.1")


def profile_policy_oid(number: int) -> ObjectIdentifier:
    """Policy OID of signature profile number ``number`` (``MPKIX_ARC.1.2.<number>``)."""
    if number < 1:
        raise ValueError("profile numbers start at 1")
    return ObjectIdentifier(f"{PROFILE_POLICY_ARC}.{number}")
