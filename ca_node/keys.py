"""CA key material: create a two-level MPKIX CA and save/load it (RFC 5280 §4.2.1; decision record
0308).

``create_ca`` makes a self-signed root and one issuing intermediate (pathLenConstraint 0) and
writes under a directory::

    root-ca.key.pem     PKCS#8, encrypted when a passphrase is given (mode 0600)
    root-ca.cert.pem
    issuing-ca.key.pem  PKCS#8, encrypted when a passphrase is given (mode 0600)
    issuing-ca.cert.pem
    chain.pem           issuing CA first, then the root

Only the issuing key is used on the issuance hot path; the root key can be moved offline.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import CertificatePoliciesOID, NameOID

from mpkix.profile.ppcert import CaPrivateKey, random_serial

KeyType = Literal["p256", "rsa2048"]

ROOT_KEY_FILE: Final = "root-ca.key.pem"
ROOT_CERT_FILE: Final = "root-ca.cert.pem"
ISSUING_KEY_FILE: Final = "issuing-ca.key.pem"
ISSUING_CERT_FILE: Final = "issuing-ca.cert.pem"
CHAIN_FILE: Final = "chain.pem"

DEFAULT_ROOT_DAYS: Final = 20 * 365
DEFAULT_ISSUING_DAYS: Final = 5 * 365
#: CA certificates start this long before their creation so freshly issued ppCerts, which are
#: backdated a few minutes, still fall inside the CA's validity.
CA_BACKDATE: Final = datetime.timedelta(hours=1)


_ANY_POLICY: Final = x509.CertificatePolicies(
    [x509.PolicyInformation(CertificatePoliciesOID.ANY_POLICY, None)]
)


class CaKeyError(ValueError):
    """CA material that cannot be created, read or decrypted."""


def generate_key(key_type: KeyType = "p256") -> CaPrivateKey:
    """A new CA key: ECDSA P-256 (default, X.1122 §10.1) or RSA-2048."""
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise CaKeyError(f"unsupported CA key type {key_type!r}")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_private_key(path: Path, key: CaPrivateKey, passphrase: bytes | None = None) -> None:
    """Write ``key`` as PKCS#8 PEM (encrypted with ``passphrase`` if given), mode 0600."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    _write_atomic(Path(path), pem, 0o600)


def load_private_key(path: Path, passphrase: bytes | None = None) -> CaPrivateKey:
    """Read a PEM private key (P-256 or RSA); wrong or missing passphrases raise ``CaKeyError``."""
    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_private_key(data, passphrase or None)
    except (ValueError, TypeError) as exc:
        raise CaKeyError(f"cannot load CA key {path}: {exc}") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return key
    raise CaKeyError(f"{path}: CA keys must be P-256 or RSA >= 2048")


def save_certificates(path: Path, certs: list[x509.Certificate]) -> None:
    """Write one or more certificates as concatenated PEM."""
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    _write_atomic(Path(path), pem, 0o644)


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Read concatenated PEM certificates."""
    try:
        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except ValueError as exc:
        raise CaKeyError(f"cannot load certificates from {path}: {exc}") from None
    return certs


def _single_certificate(path: Path) -> x509.Certificate:
    certs = load_certificates(path)
    if len(certs) != 1:
        raise CaKeyError(f"{path} must hold exactly one certificate")
    return certs[0]


def _ca_extensions(
    builder: x509.CertificateBuilder,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer_ski: x509.SubjectKeyIdentifier,
    path_length: int | None,
    any_policy: bool,
) -> x509.CertificateBuilder:
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
    )
    if any_policy:
        builder = builder.add_extension(_ANY_POLICY, critical=False)
    return builder


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class CaMaterial:
    """A created or loaded CA: the issuing key and chain (issuing CA first), root key if present."""

    issuing_key: CaPrivateKey
    issuing_cert: x509.Certificate
    root_cert: x509.Certificate
    root_key: CaPrivateKey | None = None

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.issuing_cert, self.root_cert]


def build_ca(
    *,
    key_type: KeyType = "p256",
    organization: str = "MPKIX",
    name: str = "MPKIX",
    root_days: int = DEFAULT_ROOT_DAYS,
    issuing_days: int = DEFAULT_ISSUING_DAYS,
    now: datetime.datetime | None = None,
) -> CaMaterial:
    """Create root + issuing CA in memory (nothing written)."""
    if not 1 <= issuing_days <= root_days:
        raise CaKeyError("need 1 <= issuing_days <= root_days")
    start = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0) - CA_BACKDATE
    root_key, issuing_key = generate_key(key_type), generate_key(key_type)
    root_name = _name(organization, f"{name} Root CA")
    root_pub, issuing_pub = root_key.public_key(), issuing_key.public_key()
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_pub)
    root_builder = x509.CertificateBuilder(
        issuer_name=root_name,
        subject_name=root_name,
        public_key=root_pub,
        serial_number=random_serial(),
        not_valid_before=start,
        not_valid_after=start + datetime.timedelta(days=root_days),
    )
    root_cert = _ca_extensions(root_builder, root_pub, root_ski, None, False).sign(
        root_key, hashes.SHA256()
    )
    issuing_builder = x509.CertificateBuilder(
        issuer_name=root_name,
        subject_name=_name(organization, f"{name} Issuing CA 1"),
        public_key=issuing_pub,
        serial_number=random_serial(),
        not_valid_before=start,
        not_valid_after=start + datetime.timedelta(days=issuing_days),
    )
    issuing_cert = _ca_extensions(issuing_builder, issuing_pub, root_ski, 0, True).sign(
        root_key, hashes.SHA256()
    )
    return CaMaterial(issuing_key, issuing_cert, root_cert, root_key)


def save_ca(
    directory: Path,
    material: CaMaterial,
    *,
    passphrase: bytes | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``material`` under ``directory`` (created with mode 0700)."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not overwrite and (directory / ISSUING_KEY_FILE).exists():
        raise FileExistsError(f"a CA already exists in {directory}")
    if material.root_key is not None:
        save_private_key(directory / ROOT_KEY_FILE, material.root_key, passphrase)
    save_private_key(directory / ISSUING_KEY_FILE, material.issuing_key, passphrase)
    save_certificates(directory / ROOT_CERT_FILE, [material.root_cert])
    save_certificates(directory / ISSUING_CERT_FILE, [material.issuing_cert])
    save_certificates(directory / CHAIN_FILE, material.chain)


def create_ca(
    directory: Path,
    *,
    key_type: KeyType = "p256",
    organization: str = "MPKIX",
    name: str = "MPKIX",
    passphrase: bytes | None = None,
    root_days: int = DEFAULT_ROOT_DAYS,
    issuing_days: int = DEFAULT_ISSUING_DAYS,
    overwrite: bool = False,
) -> CaMaterial:
    """Create a root and an issuing CA and save them under ``directory``."""
    material = build_ca(
        key_type=key_type,
        organization=organization,
        name=name,
        root_days=root_days,
        issuing_days=issuing_days,
    )
    save_ca(directory, material, passphrase=passphrase, overwrite=overwrite)
    return material


def load_ca(
    directory: Path, passphrase: bytes | None = None, *, load_root_key: bool = False
) -> CaMaterial:
    """Load the issuing key and the chain (and the root key only when asked)."""
    directory = Path(directory)
    issuing_key = load_private_key(directory / ISSUING_KEY_FILE, passphrase)
    issuing_cert = _single_certificate(directory / ISSUING_CERT_FILE)
    root_cert = _single_certificate(directory / ROOT_CERT_FILE)
    if issuing_cert.public_key() != issuing_key.public_key():
        raise CaKeyError("issuing CA key does not match its certificate")
    try:
        issuing_cert.verify_directly_issued_by(root_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CaKeyError("issuing CA certificate was not issued by the root") from None
    root_key = load_private_key(directory / ROOT_KEY_FILE, passphrase) if load_root_key else None
    return CaMaterial(issuing_key, issuing_cert, root_cert, root_key)
