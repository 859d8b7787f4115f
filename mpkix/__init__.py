"""MPKIX: Mobile-assisted PKIX (Chen et al.).

Shared core: crypto primitives (Milenage, EAP-AKA' keys, attribute sealing), the ppCSR and
ppCert profile, anonymization, gRPC/TLS helpers and the generated protocol modules in
``mpkix.v1``.
"""

__version__ = "0.1.0"
