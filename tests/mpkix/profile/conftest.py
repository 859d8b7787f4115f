"""Session-wide CA material for the profile tests (key generation is the slow part)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ca_node.keys import CaMaterial, build_ca


@pytest.fixture(scope="session")
def ca() -> CaMaterial:
    return build_ca()


@pytest.fixture(scope="session")
def rsa_ca() -> CaMaterial:
    return build_ca(key_type="rsa2048")


@pytest.fixture(scope="session")
def rsa_subject_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
