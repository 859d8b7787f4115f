from __future__ import annotations

import uuid

import pytest
from cryptography import x509

from mpkix.profile import oids
from mpkix.profile.signature_profiles import PROFILES


def test_arc_is_the_guid_arc_of_the_fixed_uuid() -> None:
    u = oids.MPKIX_UUID
    assert u.version == 4
    parts = oids.MPKIX_ARC.removeprefix(oids.GUID_OID_BASE + ".").split(".")
    assert len(parts) == 7
    # Re-assemble the UUID hex from the chunk widths 4,4,4,4,4,6,6.
    widths = (4, 4, 4, 4, 4, 6, 6)
    rebuilt = "".join(f"{int(p):0{w}x}" for p, w in zip(parts, widths, strict=True))
    assert uuid.UUID(rebuilt) == u


def test_x667_form_is_documented_but_not_used() -> None:
    assert f"2.25.{oids.MPKIX_UUID.int}" == oids.MPKIX_X667_OID
    assert not oids.MPKIX_ARC.startswith("2.25.")


def _all_mpkix_oids() -> list[x509.ObjectIdentifier]:
    return [
        oids.ID_MPKIX_CP,
        oids.ID_MPKIX_CE_PPCERT_INFO,
        oids.ID_MPKIX_CE_SEALED_ATTRIBUTES,
        oids.ID_MPKIX_AD_CMS_GRPC,
        *(p.policy_oid for p in PROFILES.values()),
    ]


def test_every_arc_fits_in_31_bits() -> None:
    # Go's crypto/x509 caps components at int32 and pkilint's decoder at 32 bits.
    for oid in _all_mpkix_oids():
        assert all(int(a) < 2**31 for a in oid.dotted_string.split(".")), oid


def test_oids_are_distinct_and_under_the_arc() -> None:
    all_oids = _all_mpkix_oids()
    assert len(set(all_oids)) == len(all_oids)
    for oid in all_oids:
        assert oid.dotted_string.startswith(oids.MPKIX_ARC + ".")


def test_profile_policy_numbers_start_at_one() -> None:
    assert oids.profile_policy_oid(3).dotted_string == oids.PROFILE_POLICY_ARC + ".3"
    with pytest.raises(ValueError):
        oids.profile_policy_oid(0)
