"""The certificate authority: lint every ppCert before signing it (ARCHITECTURE §2.1 step 4;
Boulder's "lint before sign"; decision record 0307).

``CertificateAuthority.issue`` builds the TBS with ``mpkix.profile.ppcert.build_tbs``, signs it once
with a throwaway *lint key* of the CA's key type (so the TBS, including its signature-algorithm
field, is exactly what the real key will sign), lints that precertificate with
``mpkix.profile.lint.lint_ppcert`` against the issuing CA certificate, and only then signs the very
same TBS bytes with the CA key. A certificate with findings is never signed by the CA key:
``LintError`` is raised instead.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca_node.keys import load_ca
from mpkix.profile.lint import Finding, LintError, lint_ppcert
from mpkix.profile.ppcert import (
    CaPrivateKey,
    PpCertParams,
    build_tbs,
    key_family,
    sign_precertificate,
)
from mpkix.profile.ppcsr import PpCsr

__all__ = ["CertificateAuthority", "Finding", "IssuanceRefused", "LintError"]


class IssuanceRefused(ValueError):
    """A request the CA refuses before building anything (e.g. an unverified ppCSR)."""


def _lint_key_for(ca_key: CaPrivateKey) -> CaPrivateKey:
    # Same algorithm as the CA key so the TBS signature field is identical. The RSA lint key may be
    # small: its signature is thrown away, only the AlgorithmIdentifier must match.
    if isinstance(ca_key, ec.EllipticCurvePrivateKey):
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


class CertificateAuthority:
    """An issuing CA: its key, its chain (issuing CA first) and the lint-then-sign pipeline."""

    def __init__(self, key: CaPrivateKey, chain: Sequence[x509.Certificate]) -> None:
        if not chain:
            raise ValueError("the CA chain must hold at least the issuing CA certificate")
        issuing = chain[0]
        if issuing.public_key() != key.public_key():
            raise ValueError("CA key does not match the issuing CA certificate")
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("CA key must be ECDSA P-256 or RSA")
        key_family(key)
        self._key = key
        self._chain = tuple(chain)
        self._lint_key = _lint_key_for(key)

    @classmethod
    def load(cls, directory: Path, passphrase: bytes | None = None) -> CertificateAuthority:
        """Load the issuing key and chain written by ``ca_node.keys.create_ca``."""
        material = load_ca(directory, passphrase)
        return cls(material.issuing_key, material.chain)

    @property
    def certificate(self) -> x509.Certificate:
        """The issuing CA certificate."""
        return self._chain[0]

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Issuing CA first, up to the root."""
        return self._chain

    def sign_linted(self, tbs: x509.CertificateBuilder) -> x509.Certificate:
        """Lint ``tbs`` (as a throwaway-key precertificate) and sign it with the CA key.

        Raises ``LintError`` carrying the findings; the CA key never signs such a TBS.
        """
        precert = tbs.sign(self._lint_key, hashes.SHA256())
        findings = lint_ppcert(precert, self.certificate)
        if findings:
            raise LintError(findings)
        return sign_precertificate(precert, self._key)

    def issue(
        self,
        csr: PpCsr,
        params: PpCertParams,
        *,
        serial: int | None = None,
        now: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """Issue a ppCert for a parsed, signature-checked ppCSR."""
        if not csr.signature_valid:
            raise IssuanceRefused("ppCSR self-signature was not verified")
        return self.sign_linted(build_tbs(self.certificate, csr, params, serial=serial, now=now))
