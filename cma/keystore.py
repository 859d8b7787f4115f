"""CMA keystore: the user's key pairs, encrypted at rest behind a passphrase/PIN, and the
ppCerts and bundles issued for them (ARCHITECTURE §1, CMA row).

Layout of a CMA directory::

    usim.json                    emulated USIM (K, OPc, SQN memory)
    profile.json                 the user's own attribute values (what the phone seals)
    keys/<subject>.key.pem       PKCS#8, encrypted with the passphrase (PBES2)
    certs/<subject>.pem          installed ppCert (+ CA chain)
    bundles/<subject>.bundle     CertificateBundle (protobuf) for offline verification

Files are written atomically; a certificate is installed only after verification and only
together with the key it certifies.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cma.usim import _atomic_write
from mpkix.v1 import common_pb2

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
MIN_PASSPHRASE = 4


class KeystoreError(Exception):
    pass


def generate_key(algorithm: str = "p256") -> PrivateKey:
    """Key generation on the device: P-256 by default (X.1122 §10.1), RSA-2048 option."""
    if algorithm == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise KeystoreError(f"unknown key algorithm {algorithm!r} (use p256 or rsa2048)")


class Keystore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        for sub in ("keys", "certs", "bundles"):
            (directory / sub).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _check_passphrase(passphrase: bytes) -> None:
        if len(passphrase) < MIN_PASSPHRASE:
            raise KeystoreError(
                f"the passphrase/PIN must have at least {MIN_PASSPHRASE} characters"
            )

    def save_key(self, subject_id: str, key: PrivateKey, passphrase: bytes) -> Path:
        self._check_passphrase(passphrase)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
        path = self.dir / "keys" / f"{subject_id}.key.pem"
        _atomic_write(path, pem)
        return path

    def load_key(self, subject_id: str, passphrase: bytes) -> PrivateKey:
        path = self.dir / "keys" / f"{subject_id}.key.pem"
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
        except FileNotFoundError:
            raise KeystoreError(f"no key for subject {subject_id}") from None
        except (ValueError, TypeError):
            raise KeystoreError("wrong passphrase/PIN or damaged key file") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeystoreError("unsupported key type in keystore")
        return key

    def install(
        self,
        subject_id: str,
        key: PrivateKey,
        passphrase: bytes,
        bundle: common_pb2.CertificateBundle,
    ) -> Path:
        """Install a verified ppCert with its key; returns the certificate PEM path."""
        self.save_key(subject_id, key, passphrase)
        pem = x509.load_der_x509_certificate(bundle.certificate_der).public_bytes(
            serialization.Encoding.PEM
        )
        chain = b"".join(
            x509.load_der_x509_certificate(c).public_bytes(serialization.Encoding.PEM)
            for c in bundle.ca_chain_der
        )
        _atomic_write(self.dir / "bundles" / f"{subject_id}.bundle", bundle.SerializeToString())
        cert_path = self.dir / "certs" / f"{subject_id}.pem"
        _atomic_write(cert_path, pem + chain, mode=0o644)
        return cert_path

    def subjects(self) -> list[str]:
        return sorted(p.name[: -len(".pem")] for p in (self.dir / "certs").glob("*.pem"))

    def load_bundle(self, subject_id: str) -> common_pb2.CertificateBundle:
        b = common_pb2.CertificateBundle()
        b.ParseFromString((self.dir / "bundles" / f"{subject_id}.bundle").read_bytes())
        return b

    def save_profile(self, attributes: dict[str, str]) -> None:
        _atomic_write(self.dir / "profile.json", json.dumps(attributes, indent=1).encode())

    def load_profile(self) -> dict[str, str]:
        path = self.dir / "profile.json"
        if not path.exists():
            raise KeystoreError(f"{path} is missing: provision the CMA first")
        data = json.loads(path.read_text())
        return {str(k): str(v) for k, v in data.items()}
