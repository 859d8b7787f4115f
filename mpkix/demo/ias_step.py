"""Demo pieces on the IAS side: the example age-gated IAS as its own process, a phone calling it
with its ppCert in mutual TLS, and the ``mpkix`` commands a person would type (ARCHITECTURE §2.5).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf.wrappers_pb2 import StringValue

from cma.keystore import PrivateKey
from ias_sdk.examples import age_gated_service
from ias_sdk.interceptor import bundle_metadata
from mpkix.v1 import common_pb2

REPO = Path(__file__).resolve().parents[2]


def mpkix_command(*args: str) -> list[str]:
    """``python -m mpkix ARGS`` with this interpreter (what ``mpkix ARGS`` runs)."""
    return [sys.executable, "-m", "mpkix", *args]


def run_mpkix(*args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    """Run one ``mpkix`` subcommand; returns its exit code and its JSON output (or its text)."""
    done = subprocess.run(
        mpkix_command(*args),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    try:
        out: Any = json.loads(done.stdout)
    except json.JSONDecodeError:
        out = (done.stdout + done.stderr).strip()
    return done.returncode, out


@dataclass
class ExampleIas:
    """``python -m ias_sdk.examples.age_gated_service`` running on 127.0.0.1."""

    proc: subprocess.Popen[str]
    port: int
    log: IO[str]

    @classmethod
    def start(
        cls, workdir: Path, tls_dir: Path, node: str, ca_root: Path, ledger: str
    ) -> ExampleIas:
        log = (workdir / "ias.log").open("w")
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "ias_sdk.examples.age_gated_service",
                "--listen", "127.0.0.1:0",
                "--tls-cert", str(tls_dir / f"{node}.pem"),
                "--tls-key", str(tls_dir / f"{node}.key"),
                "--client-ca", str(ca_root),
                "--ledger", ledger,
                "--ledger-tls-ca", str(tls_dir / "ca.pem"),
                "--ledger-tls-cert", str(tls_dir / f"{node}.pem"),
                "--ledger-tls-key", str(tls_dir / f"{node}.key"),
                "--mirror-db", str(workdir / "ias-mirror.sqlite"),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "age-gated service on port N"
        if not line.startswith("age-gated service on port"):
            proc.kill()
            proc.wait(10)
            log.close()
            raise RuntimeError(f"the example IAS did not start; see {workdir / 'ias.log'}")
        return cls(proc, int(line.rsplit(" ", 1)[1]), log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def hello(
    port: int,
    tls_root: bytes,
    key: PrivateKey,
    bundle: common_pb2.CertificateBundle,
) -> tuple[bool, str]:
    """The phone calls the IAS with its ppCert in mutual TLS and its bundle in metadata.

    Returns (admitted, the greeting or the refusal's status and message).
    """
    leaf = x509.load_der_x509_certificate(bundle.certificate_der)
    issuing = x509.load_der_x509_certificate(bundle.ca_chain_der[0])
    creds = grpc.ssl_channel_credentials(
        root_certificates=tls_root,
        private_key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        certificate_chain=_pem(leaf) + _pem(issuing),
    )
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as ch:
        stub = ch.unary_unary(
            age_gated_service.HELLO,
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )
        try:
            reply: StringValue = stub(
                StringValue(value="may I come in?"), metadata=bundle_metadata(bundle), timeout=10
            )
        except grpc.RpcError as e:
            return False, f"{e.code().name}: {e.details()}"  # type: ignore[attr-defined]
    return True, reply.value


def wait_for(
    probe: Any, want: bool, timeout: float = 20.0, interval: float = 0.05
) -> tuple[bool, str, float]:
    """Call ``probe()`` → (admitted, text) until admitted == ``want``; returns the last answer and
    the seconds it took."""
    t0 = time.monotonic()
    admitted, text = probe()
    while admitted != want and time.monotonic() - t0 < timeout:
        time.sleep(interval)
        admitted, text = probe()
    return admitted, text, time.monotonic() - t0
