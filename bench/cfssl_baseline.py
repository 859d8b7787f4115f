"""Issuance baseline: Debian's ``cfssl serve`` signing P-256 CSRs over loopback HTTP.

ARCHITECTURE.md §5 and ANCHORS.md ("cfssl"): the baseline is measured in the same run as MPKIX,
never quoted. A throwaway P-256 CA (made with ``cryptography``, like ours) backs a ``cfssl serve``
child process; ``count`` CSRs are made before the clock starts (their generation is timed on its
own, ``csr_gen_per_s``, because the MPKIX figure includes the client's key generation) and posted
to ``/api/v1/cfssl/sign`` from ``concurrency`` threads, each holding one keep-alive connection.
Every returned certificate is checked (issuer signature, key, profile) after the timed section.

Ad hoc: ``python -m bench.cfssl_baseline --count 3000 --concurrency 8 16``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from bench._common import (
    LATEST_RESULTS,
    MachineContext,
    Stopwatch,
    SystemCpuSample,
    merge_results,
    percentile,
    print_table,
    process_cpu_seconds,
    rate,
    self_cpu_seconds,
)

RESULTS_SECTION = "cfssl_baseline"
PROFILE = "mpkix-client"
EXPIRY = datetime.timedelta(hours=8760)
SIGN_PATH = "/api/v1/cfssl/sign"
INFO_PATH = "/api/v1/cfssl/info"
_JSON_HEADERS = {"Content-Type": "application/json"}
_MAX_ERROR_SAMPLES = 5
_EXPIRY_SLACK = datetime.timedelta(minutes=10)
_ExtensionT = TypeVar("_ExtensionT", bound=x509.ExtensionType)


class CfsslError(RuntimeError):
    """cfssl is missing, would not start, or stopped answering."""


class SignResponseError(ValueError):
    """A ``/sign`` answer that is not a valid certificate for the request under our profile."""


# --------------------------------------------------------------------------- CA and config


@dataclass(frozen=True)
class BenchCA:
    """The throwaway CA: certificate and key objects plus the PEM files handed to cfssl."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path


def make_ca(directory: Path) -> BenchCA:
    """Create a self-signed P-256 CA (ECDSA-SHA256, pathLen 0) and write ``ca.pem``/``ca-key.pem``.

    The key is written as SEC 1 ``EC PRIVATE KEY`` PEM, the form the 2016 cfssl reads.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MPKIX benchmark"),
            x509.NameAttribute(NameOID.COMMON_NAME, "cfssl baseline CA"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "ca.pem"
    key_path = directory / "ca-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return BenchCA(certificate=certificate, key=key, cert_path=cert_path, key_path=key_path)


def cfssl_config(profile: str = PROFILE) -> dict[str, Any]:
    """cfssl signing config: ``profile`` issues 1-year client-auth end-entity certificates.

    cfssl silently falls back to the default profile for an unknown profile name, so the default
    is deliberately different (1 h, no clientAuth): a misnamed profile fails the response check.
    """
    return {
        "signing": {
            "default": {"expiry": "1h", "usages": ["digital signature"]},
            "profiles": {
                profile: {
                    "expiry": f"{int(EXPIRY.total_seconds() // 3600)}h",
                    "usages": ["digital signature", "client auth"],
                }
            },
        }
    }


def write_cfssl_config(path: Path, profile: str = PROFILE) -> Path:
    path.write_text(json.dumps(cfssl_config(profile), indent=2))
    return path


# --------------------------------------------------------------------------- cfssl server


def find_cfssl() -> str | None:
    """Path of the ``cfssl`` binary on PATH (installed by ``tools/setup-bench.sh``), or None."""
    return shutil.which("cfssl")


def cfssl_version(binary: str) -> str:
    """First line of ``cfssl version`` plus its Go runtime, e.g. ``1.2.0 (go1.19.8)``."""
    try:
        out = subprocess.run(
            [binary, "version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise CfsslError(f"cannot run {binary!r} version: {exc}") from exc
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    version = fields.get("Version", "?").strip()
    runtime = fields.get("Runtime", "").strip()
    return f"{version} ({runtime})" if runtime else version


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _post_json(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers=_JSON_HEADERS)
    response = conn.getresponse()
    return response.status, response.read()


class CfsslServer:
    """``cfssl serve`` as a child process on a free loopback port; a context manager that always
    stops it (SIGTERM, then SIGKILL), also on exceptions and KeyboardInterrupt.

    The child runs in its own session so a terminal Ctrl-C reaches only us; our ``__exit__``
    then stops it. Its log goes to ``<workdir>/cfssl-serve.log``.
    """

    def __init__(
        self,
        binary: str,
        ca: BenchCA,
        config_path: Path,
        workdir: Path,
        *,
        loglevel: int = 1,
        start_timeout: float = 15.0,
        start_attempts: int = 3,
    ) -> None:
        self.binary = binary
        self.ca = ca
        self.config_path = config_path
        self.log_path = workdir / "cfssl-serve.log"
        self.loglevel = loglevel
        self.start_timeout = start_timeout
        self.start_attempts = start_attempts
        self.host = "127.0.0.1"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise CfsslError("cfssl serve is not running")
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> CfsslServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the child and wait until ``/info`` answers with our CA certificate."""
        if self._process is not None:
            raise CfsslError("cfssl serve already started")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        last_error = "not started"
        for _ in range(self.start_attempts):
            self.port = _free_port()
            command = [
                self.binary,
                "serve",
                "-address", self.host,
                "-port", str(self.port),
                "-ca", str(self.ca.cert_path),
                "-ca-key", str(self.ca.key_path),
                "-config", str(self.config_path),
                "-loglevel", str(self.loglevel),
            ]  # fmt: skip
            try:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=self._log,
                    start_new_session=True,
                )
            except OSError as exc:
                raise CfsslError(f"cannot start {self.binary!r}: {exc}") from exc
            last_error = self._wait_ready()
            if not last_error:
                return
            self._terminate()
            if "address already in use" not in last_error:
                break  # only a lost race for the port is worth another attempt
        raise CfsslError(f"cfssl serve did not become ready: {last_error}")

    def _wait_ready(self) -> str:
        """Poll ``/info`` until the server answers; '' if it serves our CA, else the reason."""
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        reason = "timed out"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return f"exited with {self._process.returncode}: {self.log_tail()}"
            conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
            try:
                status, body = _post_json(conn, INFO_PATH, b"{}")
            except OSError as exc:
                reason = f"no answer on {self.host}:{self.port} ({exc})"
            else:
                # Go's server listens only once every handler is set up: its first answer is
                # final (a 404 here means the signer could not load the CA key).
                problem = self._check_info(status, body)
                return f"{problem}; log: {self.log_tail()}" if problem else ""
            finally:
                conn.close()
            time.sleep(0.05)
        return f"{reason}; log: {self.log_tail()}"

    def _check_info(self, status: int, body: bytes) -> str:
        try:
            answer = json.loads(body)
            served = x509.load_pem_x509_certificate(answer["result"]["certificate"].encode())
        except (ValueError, KeyError, TypeError) as exc:
            return f"/info answered {status} without a certificate ({exc}): {body[:200]!r}"
        if served != self.ca.certificate:
            return f"the server on port {self.port} serves a different CA: {served.subject}"
        return ""

    def log_tail(self, limit: int = 8) -> str:
        """The last ``limit`` lines of the child's log that say what went wrong: errors,
        warnings other than the routine "endpoint ... is disabled", and untimestamped fatal
        messages (cfssl prints e.g. "Failed to load config file" without the log prefix)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        telling = [
            line
            for line in lines
            if any(tag in line for tag in ("[ERROR]", "[CRITICAL]", "[FATAL]"))
            or ("[WARNING]" in line and "endpoint '" not in line and "ocsp signer" not in line)
            or (line.strip() and not line[:4].isdigit())
        ]
        return " | ".join(telling[-limit:]) or "(nothing logged)"

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def stop(self) -> None:
        """Stop the child (idempotent) and close its log."""
        try:
            self._terminate()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


# --------------------------------------------------------------------------- CSRs


@dataclass(frozen=True)
class PreparedCsr:
    """One pre-generated request: the JSON body to post and the key it must come back with."""

    body: bytes
    public_key_der: bytes


def generate_csrs(count: int, profile: str = PROFILE) -> tuple[list[PreparedCsr], float]:
    """``count`` fresh P-256 keys and ECDSA-SHA256 CSRs (PKCS#10, RFC 2986).

    Returns the prepared requests and the seconds spent on key generation + CSR signing + PEM
    encoding (the JSON wrapping is not timed).
    """
    pems: list[tuple[bytes, bytes]] = []
    with Stopwatch() as watch:
        for index in range(count):
            key = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(
                    x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mpkix-bench-{index}")])
                )
                .sign(key, hashes.SHA256())
            )
            spki = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            pems.append((csr.public_bytes(serialization.Encoding.PEM), spki))
    prepared = [
        PreparedCsr(body=sign_request_body(pem, profile), public_key_der=spki) for pem, spki in pems
    ]
    return prepared, watch.elapsed


def sign_request_body(csr_pem: bytes, profile: str = PROFILE) -> bytes:
    """JSON body of a cfssl ``/sign`` request."""
    return json.dumps({"certificate_request": csr_pem.decode("ascii"), "profile": profile}).encode()


# --------------------------------------------------------------------------- response check


def check_sign_response(
    body: bytes, ca_certificate: x509.Certificate, public_key_der: bytes
) -> x509.Certificate:
    """Parse a ``/sign`` answer and check the certificate is what our profile must issue.

    Checks: ``success`` is true; the certificate is signed by the CA (RFC 5280 §6.1.3 (a)(1):
    signature and issuer name) with ECDSA-SHA256; it carries the requested public key; it is an
    end-entity (basicConstraints cA false) client-auth certificate (EKU id-kp-clientAuth,
    keyUsage digitalSignature) valid for the profile's 8760 h.
    """
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise SignResponseError(f"not JSON: {body[:120]!r}") from exc
    if not isinstance(answer, dict) or answer.get("success") is not True:
        errors = answer.get("errors") if isinstance(answer, dict) else answer
        raise SignResponseError(f"cfssl reported failure: {errors!r}"[:300])
    result = answer.get("result")
    pem = result.get("certificate") if isinstance(result, dict) else None
    if not isinstance(pem, str):
        raise SignResponseError("success without a certificate")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise SignResponseError(f"certificate does not parse: {exc}") from exc

    if certificate.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise SignResponseError(
            f"signature algorithm {certificate.signature_algorithm_oid.dotted_string}, "
            "expected ecdsa-with-SHA256"
        )
    try:
        certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SignResponseError(f"not issued by the bench CA: {exc!r}") from exc
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if spki != public_key_der:
        raise SignResponseError("certificate key differs from the CSR key")
    _check_profile(certificate)
    return certificate


def _check_profile(certificate: x509.Certificate) -> None:
    extensions = certificate.extensions

    def value(kind: type[_ExtensionT]) -> _ExtensionT | None:
        try:
            return extensions.get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            return None

    basic = value(x509.BasicConstraints)
    if basic is None or basic.ca:
        raise SignResponseError("not an end-entity certificate (basicConstraints cA must be false)")
    usage = value(x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        raise SignResponseError("keyUsage lacks digitalSignature")
    eku = value(x509.ExtendedKeyUsage)
    if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise SignResponseError("extendedKeyUsage lacks id-kp-clientAuth (wrong profile?)")
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    if abs(lifetime - EXPIRY) > _EXPIRY_SLACK:
        raise SignResponseError(f"validity {lifetime}, expected {EXPIRY}")


# --------------------------------------------------------------------------- load generator


@dataclass
class SignRun:
    """Raw outcome of :func:`sign_all`: one slot per request, wall time and client CPU."""

    responses: list[bytes | None]
    latencies_s: list[float]
    transport_errors: list[str]
    elapsed_s: float
    client_cpu_s: float
    server_cpu_s: float | None
    system_busy_cores: float | None
    warmup_requests: int


class _Dispenser:
    """Hands out request indices to workers (lock-protected counter)."""

    def __init__(self, total: int) -> None:
        self._next = 0
        self._total = total
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self._total:
                return None
            index = self._next
            self._next += 1
            return index


def sign_all(
    host: str,
    port: int,
    bodies: Sequence[bytes],
    concurrency: int,
    *,
    server_alive: Callable[[], bool] = lambda: True,
    server_pid: int | None = None,
    warmup_per_worker: int = 2,
    timeout: float = 30.0,
) -> SignRun:
    """POST every body to ``/sign`` from ``concurrency`` threads, one keep-alive connection each.

    Each worker first sends ``warmup_per_worker`` untimed requests (opening its connection), then
    all start together at a barrier. The timed section ends when the last worker finishes. A
    failed request is recorded and the worker reconnects; workers stop early if the server dies.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    responses: list[bytes | None] = [None] * len(bodies)
    per_worker_latencies: list[list[float]] = [[] for _ in range(concurrency)]
    transport_errors: list[str] = []
    errors_lock = threading.Lock()
    dispenser = _Dispenser(len(bodies))
    start_line = threading.Barrier(concurrency + 1)
    stop = threading.Event()

    def record_error(message: str) -> None:
        with errors_lock:
            transport_errors.append(message)

    def worker(slot: int) -> None:
        latencies = per_worker_latencies[slot]
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            for warm in range(min(warmup_per_worker, len(bodies))):
                try:
                    _post_json(conn, SIGN_PATH, bodies[warm])
                except (OSError, http.client.HTTPException):
                    conn.close()  # http.client reconnects on the next request
            start_line.wait()
            while not stop.is_set():
                index = dispenser.take()
                if index is None:
                    return
                began = time.perf_counter()
                try:
                    status, body = _post_json(conn, SIGN_PATH, bodies[index])
                except (OSError, http.client.HTTPException) as exc:
                    record_error(f"request {index}: {type(exc).__name__}: {exc}")
                    conn.close()
                    if not server_alive():
                        stop.set()
                    continue
                latencies.append(time.perf_counter() - began)
                if status != 200:
                    record_error(f"request {index}: HTTP {status}: {body[:200]!r}")
                    continue
                responses[index] = body
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:
            record_error(f"worker {slot} crashed: {exc!r}")
            start_line.abort()
            stop.set()
        finally:
            conn.close()

    threads = [
        threading.Thread(target=worker, args=(slot,), name=f"cfssl-client-{slot}", daemon=True)
        for slot in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    try:
        try:
            start_line.wait(timeout=max(timeout * (warmup_per_worker + 1), 10.0))
        except threading.BrokenBarrierError as exc:
            raise CfsslError(f"load generator failed during warm-up: {transport_errors}") from exc
        cpu_before = self_cpu_seconds()
        server_before = process_cpu_seconds(server_pid) if server_pid is not None else None
        system_before = SystemCpuSample.take()
        with Stopwatch() as watch:
            for thread in threads:
                thread.join()
        client_cpu = self_cpu_seconds() - cpu_before
        server_after = process_cpu_seconds(server_pid) if server_pid is not None else None
        system_after = SystemCpuSample.take()
    finally:
        stop.set()
        start_line.abort()
    server_cpu = (
        server_after - server_before
        if server_before is not None and server_after is not None
        else None
    )
    busy = (
        system_after.busy_cores_since(system_before, os.cpu_count() or 1)
        if system_before is not None and system_after is not None
        else None
    )
    return SignRun(
        responses=responses,
        latencies_s=[value for chunk in per_worker_latencies for value in chunk],
        transport_errors=transport_errors,
        elapsed_s=watch.elapsed,
        client_cpu_s=client_cpu,
        server_cpu_s=server_cpu,
        system_busy_cores=busy,
        warmup_requests=min(warmup_per_worker, len(bodies)) * concurrency,
    )


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class BaselineResult:
    """One cfssl baseline measurement; rates count verified certificates over the timed section.

    ``cfssl_per_s``/``cfssl_per_min``: signing only (CSRs made beforehand). ``p50_ms``/``p99_ms``:
    per-request latency of answered requests. ``csr_gen_per_s``: client key + CSR generation
    alone; ``sign_plus_csr_gen_serial_per_s``: both costs added serially, the figure to set
    beside MPKIX's (which includes the client's key generation). ``*_cpu_cores``: average busy
    cores during the timed section of this client process, of cfssl, and of everything else
    (``other_busy_cores``); ``cfssl_per_cpu_s``: certificates per CPU-second of cfssl.
    """

    count: int
    concurrency: int
    ok: int
    errors: int
    elapsed_s: float
    cfssl_per_s: float
    cfssl_per_min: float
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    csr_gen_s: float
    csr_gen_per_s: float
    sign_plus_csr_gen_serial_per_s: float
    client_cpu_cores: float
    server_cpu_cores: float | None
    cfssl_per_cpu_s: float | None
    system_busy_cores: float | None
    other_busy_cores: float | None
    warmup_requests: int
    cfssl_version: str
    cfssl_loglevel: int
    error_samples: tuple[str, ...] = ()
    machine: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error_samples"] = list(self.error_samples)
        return data

    def table_row(self) -> dict[str, object]:
        return {
            "system": "cfssl serve",
            "count": self.count,
            "conc": self.concurrency,
            "ok": self.ok,
            "errors": self.errors,
            "per_s": self.cfssl_per_s,
            "per_min": self.cfssl_per_min,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "csr_gen_per_s": self.csr_gen_per_s,
            "client_cpu": self.client_cpu_cores,
            "cfssl_cpu": self.server_cpu_cores,
            "per_cfssl_cpu_s": self.cfssl_per_cpu_s,
            "other_cpu": self.other_busy_cores,
        }


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def run_cfssl_baseline(
    count: int,
    concurrency: int = 8,
    *,
    workdir: Path | None = None,
    cfssl_binary: str | None = None,
    loglevel: int = 1,
    warmup_per_worker: int = 2,
) -> BaselineResult:
    """Measure ``cfssl serve`` signing ``count`` P-256 CSRs at ``concurrency``.

    ``workdir`` receives the CA, config and server log (a temporary directory if None).
    Raises :class:`CfsslError` if cfssl is missing or will not start; request and check
    failures are counted in ``errors`` (first few in ``error_samples``), not raised.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    binary = cfssl_binary or find_cfssl()
    if binary is None:
        raise CfsslError("cfssl not found on PATH: run tools/setup-bench.sh")
    with _workdir(workdir) as directory:
        machine = MachineContext.start()
        version = cfssl_version(binary)
        ca = make_ca(directory)
        config_path = write_cfssl_config(directory / "cfssl-config.json")
        prepared, csr_gen_s = generate_csrs(count)
        with CfsslServer(binary, ca, config_path, directory, loglevel=loglevel) as server:
            run = sign_all(
                server.host,
                server.port,
                [item.body for item in prepared],
                concurrency,
                server_alive=server.alive,
                server_pid=server.pid,
                warmup_per_worker=warmup_per_worker,
            )
        machine.finish()

    problems = list(run.transport_errors)
    ok = 0
    for index, (item, body) in enumerate(zip(prepared, run.responses, strict=True)):
        if body is None:
            continue  # already counted as a transport/HTTP error (or never sent)
        try:
            check_sign_response(body, ca.certificate, item.public_key_der)
        except SignResponseError as exc:
            problems.append(f"request {index}: {exc}")
        else:
            ok += 1

    latencies_ms = [value * 1000.0 for value in run.latencies_s]
    per_s = rate(ok, run.elapsed_s)
    csr_per_s = rate(count, csr_gen_s)
    # If the client had to make each key and CSR before each request on the same machine,
    # the two costs add up serially: a lower-bound estimate comparable to MPKIX's figure.
    serial = 1.0 / (1.0 / per_s + 1.0 / csr_per_s) if per_s > 0 and csr_per_s > 0 else 0.0
    elapsed = run.elapsed_s
    client_cores = run.client_cpu_s / elapsed if elapsed > 0 else 0.0
    server_cores = (
        run.server_cpu_s / elapsed if run.server_cpu_s is not None and elapsed > 0 else None
    )
    other = (
        max(0.0, run.system_busy_cores - client_cores - server_cores)
        if run.system_busy_cores is not None and server_cores is not None
        else None
    )
    return BaselineResult(
        count=count,
        concurrency=concurrency,
        ok=ok,
        errors=count - ok,
        elapsed_s=round(elapsed, 4),
        cfssl_per_s=round(per_s, 1),
        cfssl_per_min=round(per_s * 60.0, 0),
        p50_ms=_rounded(percentile(latencies_ms, 50) if latencies_ms else None),
        p99_ms=_rounded(percentile(latencies_ms, 99) if latencies_ms else None),
        mean_ms=_rounded(sum(latencies_ms) / len(latencies_ms) if latencies_ms else None),
        max_ms=_rounded(max(latencies_ms) if latencies_ms else None),
        csr_gen_s=round(csr_gen_s, 4),
        csr_gen_per_s=round(csr_per_s, 1),
        sign_plus_csr_gen_serial_per_s=round(serial, 1),
        client_cpu_cores=round(client_cores, 3),
        server_cpu_cores=_rounded(server_cores),
        cfssl_per_cpu_s=(round(ok / run.server_cpu_s, 1) if run.server_cpu_s else None),
        system_busy_cores=_rounded(run.system_busy_cores),
        other_busy_cores=_rounded(other),
        warmup_requests=run.warmup_requests,
        cfssl_version=version,
        cfssl_loglevel=loglevel,
        error_samples=tuple(problems[:_MAX_ERROR_SAMPLES]),
        machine=machine.as_dict(),
    )


@contextlib.contextmanager
def _workdir(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="mpkix-cfssl-") as tmp:
        yield Path(tmp)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.cfssl_baseline``: run at each concurrency, print a table; exit 1 on
    any error, 2 if cfssl is unavailable."""
    parser = argparse.ArgumentParser(prog="python -m bench.cfssl_baseline", description=__doc__)
    parser.add_argument("--count", type=int, default=3000, help="CSRs to sign per run")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[8], help="client threads (one run each)"
    )
    parser.add_argument("--workdir", type=Path, help="keep CA, config and cfssl log here")
    parser.add_argument("--cfssl", help="cfssl binary (default: from PATH)")
    parser.add_argument("--loglevel", type=int, default=1, help="cfssl -loglevel (1 = INFO)")
    parser.add_argument(
        "--save",
        action="store_true",
        help=f"merge the results into {LATEST_RESULTS} (section {RESULTS_SECTION!r})",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or any(c < 1 for c in args.concurrency):
        parser.error("--count and --concurrency must be at least 1")

    results: list[BaselineResult] = []
    for concurrency in args.concurrency:
        workdir = args.workdir / f"c{concurrency}" if args.workdir else None
        try:
            result = run_cfssl_baseline(
                args.count,
                concurrency,
                workdir=workdir,
                cfssl_binary=args.cfssl,
                loglevel=args.loglevel,
            )
        except CfsslError as exc:
            print(f"cfssl baseline unavailable: {exc}")
            return 2
        except KeyboardInterrupt:
            print("interrupted (cfssl serve stopped)")
            return 130
        results.append(result)
        for sample in result.error_samples:
            print(f"error: {sample}")
    print_table([result.table_row() for result in results])
    if results:
        machine = results[-1].machine
        print(
            f"\n{results[-1].cfssl_version}; {machine['usable_cpus']} CPUs; "
            f"load {machine['loadavg_start']} -> {machine['loadavg_end']}; "
            "CPU columns are average busy cores during the timed section"
        )
    if args.save:
        merge_results(
            LATEST_RESULTS,
            RESULTS_SECTION,
            {"runs": [result.as_dict() for result in results]},
        )
        print(f"saved to {LATEST_RESULTS} [{RESULTS_SECTION}]")
    return 1 if any(result.errors for result in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
