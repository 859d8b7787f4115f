"""pkilint (RFC 5280 linter) on ppCerts and CA certificates, at NOTICE level.

No finding at NOTICE or above is ignored: the private non-critical ppCertInfo extension and the
private SIA access method come out clean (decision record 0309).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import CertificatePoliciesOID, ExtensionOID
from pkilint import loader, validation
from pkilint.bin import lint_pkix_signer_signee_cert_chain as chain_cli
from pkilint.pkix import certificate, extension, name

from ca_node.authority import CertificateAuthority
from ca_node.keys import CaMaterial, build_ca
from mpkix.profile.oids import ID_MPKIX_CP
from mpkix.profile.ppcert import PpCertParams
from mpkix.profile.signature_profiles import PROFILES, get_profile
from tests.mpkix.profile.helpers import make_ppcsr, on_profile_parts, sign_with_throwaway

THRESHOLD = validation.ValidationFindingSeverity.NOTICE
#: Findings accepted at NOTICE or above, by code, with the reason (decision record 0309): none.
IGNORED: dict[str, str] = {}

PARAMS = PpCertParams(operator_id="310-260", cms_address="cms.op-a.example:8443")


def _single_validator() -> validation.ValidatorContainer:
    # The same validator set as pkilint's lint_pkix_cert command.
    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


def _findings(results: list[validation.ValidationResult]) -> list[str]:
    out = []
    for result in results:
        for description in result.finding_descriptions:
            finding = description.finding
            if finding.severity <= THRESHOLD and finding.code not in IGNORED:
                out.append(f"{finding.severity} {finding.code} @ {result.node.path}: {description}")
    return out


def pkilint_cert(cert: x509.Certificate) -> list[str]:
    doc = loader.RFC5280CertificateDocumentLoader().load_der_document(
        cert.public_bytes(serialization.Encoding.DER), "cert"
    )
    return _findings(_single_validator().validate(doc.root))


def pkilint_chain(issuer: x509.Certificate, subject: x509.Certificate) -> list[str]:
    """pkilint's issuer/subject chain checks: name chaining, AKI/SKI, policies, signature."""
    docs: dict[str, object] = {}
    load = loader.RFC5280CertificateDocumentLoader().load_der_document
    for label, cert in (("issuer", issuer), ("subject", subject)):
        docs[label] = load(cert.public_bytes(serialization.Encoding.DER), label, label, docs)
    decoding = chain_cli.create_decoder_validation_container()
    results = decoding.validate(docs["issuer"].root)  # type: ignore[attr-defined]
    results += decoding.validate(docs["subject"].root)  # type: ignore[attr-defined]
    results += chain_cli.create_issuer_validation_container().validate(docs["issuer"].root)  # type: ignore[attr-defined]
    results += chain_cli.create_subject_validation_container().validate(docs["subject"].root)  # type: ignore[attr-defined]
    return _findings(results)


@pytest.fixture(scope="module")
def p256_ca() -> CaMaterial:
    return build_ca()


@pytest.fixture(scope="module")
def rsa_ca() -> CaMaterial:
    return build_ca(key_type="rsa2048")


def _issue(
    material: CaMaterial, key: rsa.RSAPrivateKey | None = None, params: PpCertParams = PARAMS
) -> x509.Certificate:
    return CertificateAuthority(material.issuing_key, material.chain).issue(make_ppcsr(key), params)


def test_ppcert_p256_is_clean(p256_ca: CaMaterial) -> None:
    cert = _issue(p256_ca)
    assert pkilint_cert(cert) == []
    assert pkilint_chain(p256_ca.issuing_cert, cert) == []


def test_ppcert_with_rsa2048_subject_key_is_clean(p256_ca: CaMaterial) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _issue(p256_ca, key)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert pkilint_cert(cert) == []
    assert pkilint_chain(p256_ca.issuing_cert, cert) == []


def test_ppcert_under_rsa_ca_is_clean(rsa_ca: CaMaterial) -> None:
    cert = _issue(rsa_ca)
    assert pkilint_cert(cert) == []
    assert pkilint_chain(rsa_ca.issuing_cert, cert) == []


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_signature_profile_is_clean(p256_ca: CaMaterial, profile: str) -> None:
    params = PpCertParams(
        operator_id="op-b.example", cms_address="[2001:db8::7]:443", signature_profile=profile
    )
    assert pkilint_cert(_issue(p256_ca, params=params)) == []


@pytest.mark.parametrize("key_type", ["p256", "rsa"])
def test_ca_certificates_are_clean(p256_ca: CaMaterial, rsa_ca: CaMaterial, key_type: str) -> None:
    material = p256_ca if key_type == "p256" else rsa_ca
    assert pkilint_cert(material.root_cert) == []
    assert pkilint_cert(material.issuing_cert) == []
    assert pkilint_chain(material.root_cert, material.root_cert) == []
    assert pkilint_chain(material.root_cert, material.issuing_cert) == []


def test_the_harness_reports_findings(p256_ca: CaMaterial) -> None:
    """Controls: certificates ARCHITECTURE says pkilint flags are flagged through this harness."""
    parts = on_profile_parts(p256_ca.issuing_cert)
    profile_oid = get_profile("mss:mpkix:authn:loa3:app").policy_oid
    parts.extensions[ExtensionOID.CERTIFICATE_POLICIES] = (
        x509.CertificatePolicies(
            [
                x509.PolicyInformation(ID_MPKIX_CP, None),
                x509.PolicyInformation(profile_oid, ["mss:mpkix:authn:loa3:app"]),
            ]
        ),
        False,
    )
    found = pkilint_cert(sign_with_throwaway(parts.builder()))
    assert any("certificate_policies_policy_has_qualifier" in f for f in found)
    assert any(f.startswith("ERROR") for f in found)  # the mss: CPS URI
    # A chain whose signature does not verify (throwaway-signed) is reported by the chain lint.
    bad_sig = sign_with_throwaway(on_profile_parts(p256_ca.issuing_cert).builder())
    assert any(
        "signature_verification_failed" in f for f in pkilint_chain(p256_ca.issuing_cert, bad_sig)
    )


def test_anypolicy_in_issuing_ca(p256_ca: CaMaterial) -> None:
    cp = p256_ca.issuing_cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in cp] == [CertificatePoliciesOID.ANY_POLICY]


def test_cli_agrees(p256_ca: CaMaterial, tmp_path: Path) -> None:
    """The lint_pkix_cert command itself, as an operator would run it."""
    path = tmp_path / "ppcert.pem"
    path.write_bytes(_issue(p256_ca).public_bytes(serialization.Encoding.PEM))
    cli = Path(sys.executable).with_name("lint_pkix_cert")
    if not cli.exists():
        pytest.skip("lint_pkix_cert is not installed next to the interpreter")
    run = subprocess.run(
        [str(cli), "lint", "-s", "NOTICE", str(path)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == ""
