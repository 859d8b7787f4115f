"""Shared builders for the profile and CA tests: real keys, real sealing, real certificates."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from mpkix.profile.extensions import PpCertInfo, encode_ppcert_info
from mpkix.profile.oids import ID_MPKIX_AD_CMS_GRPC, ID_MPKIX_CE_PPCERT_INFO, ID_MPKIX_CP
from mpkix.profile.ppcert import random_serial
from mpkix.profile.ppcsr import PpCsr, build_ppcsr, new_subject_id, parse_ppcsr
from mpkix.profile.sealing import Sealer
from mpkix.profile.signature_profiles import get_profile

ATTRIBUTES: Mapping[str, str] = {
    "name": "Scott Jordan",
    "gender": "M",
    "birthday": "1990-01-02",
    "phone": "+1-123-456-7789",
    "address": "1 Water Dr, Ann Arbor, MI",
}


def der(obj: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return obj.public_bytes(serialization.Encoding.DER)


def sealed_attributes(sealer: Sealer, values: Mapping[str, str] = ATTRIBUTES) -> dict[str, bytes]:
    return {a: sealer.seal_value(a, v) for a, v in values.items()}


def make_ppcsr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    sealer: Sealer | None = None,
) -> PpCsr:
    key = key or ec.generate_private_key(ec.SECP256R1())
    sealer = sealer or Sealer(os.urandom(16), os.urandom(32))
    return parse_ppcsr(der(build_ppcsr(key, new_subject_id(), sealed_attributes(sealer))))


@dataclass
class TbsParts:
    """Every field of a ppCert TBS, on profile by default; tests break one at a time."""

    issuer_cert: x509.Certificate
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    subject: x509.Name
    serial: int
    not_before: datetime.datetime
    not_after: datetime.datetime
    extensions: dict[x509.ObjectIdentifier, tuple[x509.ExtensionType, bool]]

    def builder(self) -> x509.CertificateBuilder:
        b = x509.CertificateBuilder(
            issuer_name=self.issuer_cert.subject,
            subject_name=self.subject,
            public_key=self.public_key,
            serial_number=self.serial,
            not_valid_before=self.not_before,
            not_valid_after=self.not_after,
        )
        for value, critical in self.extensions.values():
            b = b.add_extension(value, critical)
        return b


def on_profile_parts(
    issuer_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None = None,
    profile_uri: str = "mss:mpkix:authn:loa3:app",
) -> TbsParts:
    public_key = public_key or ec.generate_private_key(ec.SECP256R1()).public_key()
    sealer = Sealer(os.urandom(16), os.urandom(32))
    info = encode_ppcert_info(PpCertInfo(profile_uri, "310-260", sealed_attributes(sealer)))
    ca_ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    ku = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    exts: dict[x509.ObjectIdentifier, tuple[x509.ExtensionType, bool]] = {
        ExtensionOID.KEY_USAGE: (ku, True),
        ExtensionOID.EXTENDED_KEY_USAGE: (
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
            False,
        ),
        ExtensionOID.SUBJECT_KEY_IDENTIFIER: (
            x509.SubjectKeyIdentifier.from_public_key(public_key),
            False,
        ),
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER: (
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            False,
        ),
        ExtensionOID.CERTIFICATE_POLICIES: (
            x509.CertificatePolicies(
                [
                    x509.PolicyInformation(ID_MPKIX_CP, None),
                    x509.PolicyInformation(get_profile(profile_uri).policy_oid, None),
                ]
            ),
            False,
        ),
        ExtensionOID.SUBJECT_INFORMATION_ACCESS: (
            x509.SubjectInformationAccess(
                [
                    x509.AccessDescription(
                        ID_MPKIX_AD_CMS_GRPC,
                        x509.UniformResourceIdentifier("grpcs://cms.op-a.example:8443"),
                    )
                ]
            ),
            False,
        ),
        ID_MPKIX_CE_PPCERT_INFO: (x509.UnrecognizedExtension(ID_MPKIX_CE_PPCERT_INFO, info), False),
    }
    return TbsParts(
        issuer_cert=issuer_cert,
        public_key=public_key,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, new_subject_id())]),
        serial=random_serial(),
        not_before=now - datetime.timedelta(minutes=5),
        not_after=now + datetime.timedelta(days=30),
        extensions=exts,
    )


def sign_with_throwaway(builder: x509.CertificateBuilder) -> x509.Certificate:
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
