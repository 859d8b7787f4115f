"""Tests for bench/cfssl_baseline.py: a tiny real run against Debian's ``cfssl serve``, the
server lifecycle, and every failure path of the load generator and the response check.

Tests that need the binary are skipped (with the reason shown by ``-ra``) if cfssl is absent.
"""

from __future__ import annotations

import datetime
import http.client
import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bench import cfssl_baseline
from bench.cfssl_baseline import (
    EXPIRY,
    BenchCA,
    CfsslError,
    CfsslServer,
    PreparedCsr,
    SignResponseError,
    check_sign_response,
    generate_csrs,
    make_ca,
    run_cfssl_baseline,
    sign_all,
    sign_request_body,
    write_cfssl_config,
)

CFSSL = cfssl_baseline.find_cfssl()
needs_cfssl = pytest.mark.skipif(
    CFSSL is None, reason="cfssl not installed: run tools/setup-bench.sh (Debian golang-cfssl)"
)


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def bench_ca(tmp_path: Path) -> BenchCA:
    return make_ca(tmp_path)


@pytest.fixture
def server(tmp_path: Path, bench_ca: BenchCA) -> Iterator[CfsslServer]:
    assert CFSSL is not None
    config = write_cfssl_config(tmp_path / "cfssl-config.json")
    with CfsslServer(CFSSL, bench_ca, config, tmp_path) as running:
        yield running


def _sign_one(server: CfsslServer, body: bytes) -> bytes:
    run = sign_all(server.host, server.port, [body], 1, warmup_per_worker=0)
    assert run.transport_errors == []
    answer = run.responses[0]
    assert answer is not None
    return answer


# --------------------------------------------------------------------------- end to end


@needs_cfssl
def test_small_baseline_run_signs_every_csr(tmp_path: Path) -> None:
    result = run_cfssl_baseline(24, concurrency=3, workdir=tmp_path)
    assert (result.ok, result.errors, result.error_samples) == (24, 0, ())
    assert result.cfssl_per_s > 0 and result.csr_gen_per_s > 0
    assert result.cfssl_per_min == pytest.approx(result.cfssl_per_s * 60, rel=0.01)
    assert result.cfssl_per_s == pytest.approx(24 / result.elapsed_s, rel=0.01)
    assert result.p50_ms is not None and result.p99_ms is not None and result.max_ms is not None
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    assert result.sign_plus_csr_gen_serial_per_s < min(result.cfssl_per_s, result.csr_gen_per_s)
    assert result.warmup_requests == 6
    assert result.cfssl_version.startswith("1.")
    assert result.machine["finished_at"] is not None
    json.dumps(result.as_dict())
    assert "signed certificate with serial number" in (tmp_path / "cfssl-serve.log").read_text()


@needs_cfssl
def test_main_prints_table_and_saves_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "latest.json"
    results.write_text(json.dumps({"issuance": {"per_s": 1}}))
    monkeypatch.setattr(cfssl_baseline, "LATEST_RESULTS", results)
    code = cfssl_baseline.main(
        ["--count", "6", "--concurrency", "1", "2", "--workdir", str(tmp_path), "--save"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("cfssl serve") == 2 and "per_min" in out
    saved = json.loads(results.read_text())
    assert saved["issuance"] == {"per_s": 1}
    assert [run["concurrency"] for run in saved["cfssl_baseline"]["runs"]] == [1, 2]


def test_main_reports_missing_cfssl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cfssl_baseline.main(["--count", "2", "--cfssl", str(tmp_path / "no-cfssl")])
    assert code == 2
    assert "cfssl baseline unavailable" in capsys.readouterr().out


@pytest.mark.parametrize(("count", "concurrency"), [(0, 8), (5, 0)])
def test_run_rejects_non_positive_sizes(count: int, concurrency: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run_cfssl_baseline(count, concurrency)


def test_run_with_missing_binary_raises(tmp_path: Path) -> None:
    with pytest.raises(CfsslError, match="cannot run"):
        run_cfssl_baseline(1, 1, workdir=tmp_path, cfssl_binary=str(tmp_path / "absent"))


# --------------------------------------------------------------------------- server lifecycle


@needs_cfssl
def test_server_is_stopped_on_exit(server: CfsslServer) -> None:
    pid = server.pid
    assert server.alive()
    server.stop()
    assert _process_gone(pid) and not server.alive()
    server.stop()  # idempotent


@needs_cfssl
def test_server_is_stopped_on_keyboard_interrupt(tmp_path: Path, bench_ca: BenchCA) -> None:
    assert CFSSL is not None
    config = write_cfssl_config(tmp_path / "cfssl-config.json")
    pid = None
    with pytest.raises(KeyboardInterrupt), CfsslServer(CFSSL, bench_ca, config, tmp_path) as srv:
        pid = srv.pid
        raise KeyboardInterrupt
    assert pid is not None and _process_gone(pid)


@needs_cfssl
def test_server_with_unreadable_ca_key_fails_fast(tmp_path: Path, bench_ca: BenchCA) -> None:
    assert CFSSL is not None
    bench_ca.key_path.write_text("not a key\n")
    config = write_cfssl_config(tmp_path / "cfssl-config.json")
    srv = CfsslServer(CFSSL, bench_ca, config, tmp_path, start_timeout=10)
    with pytest.raises(CfsslError, match="Failed to decode private key"):
        srv.__enter__()
    assert not srv.alive()


@needs_cfssl
def test_server_with_broken_config_reports_log(tmp_path: Path, bench_ca: BenchCA) -> None:
    assert CFSSL is not None
    config = tmp_path / "cfssl-config.json"
    config.write_text('{"signing":')
    with (
        pytest.raises(CfsslError, match="Failed to load config file"),
        CfsslServer(CFSSL, bench_ca, config, tmp_path),
    ):
        pass


def test_server_with_missing_binary(tmp_path: Path, bench_ca: BenchCA) -> None:
    config = write_cfssl_config(tmp_path / "cfssl-config.json")
    with (
        pytest.raises(CfsslError, match="cannot start"),
        CfsslServer(str(tmp_path / "absent"), bench_ca, config, tmp_path),
    ):
        pass


# --------------------------------------------------------------------------- response check


@needs_cfssl
def test_real_answer_passes_the_check(server: CfsslServer, bench_ca: BenchCA) -> None:
    [csr], _ = generate_csrs(1)
    certificate = check_sign_response(
        _sign_one(server, csr.body), bench_ca.certificate, csr.public_key_der
    )
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == EXPIRY


@needs_cfssl
def test_unknown_profile_falls_back_to_default_and_is_caught(
    server: CfsslServer, bench_ca: BenchCA
) -> None:
    [csr], _ = generate_csrs(1, profile="no-such-profile")
    answer = _sign_one(server, csr.body)
    assert json.loads(answer)["success"] is True  # cfssl does not complain ...
    with pytest.raises(SignResponseError, match="clientAuth"):  # ... our check does
        check_sign_response(answer, bench_ca.certificate, csr.public_key_der)


@needs_cfssl
def test_cfssl_error_answer_is_counted_and_rejected(server: CfsslServer, bench_ca: BenchCA) -> None:
    body = sign_request_body(b"-----BEGIN CERTIFICATE REQUEST-----\nAA==")
    run = sign_all(server.host, server.port, [body], 1, warmup_per_worker=0)
    assert run.responses == [None]
    [error] = run.transport_errors
    assert "HTTP 400" in error and "CSR Decode failed" in error
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("POST", cfssl_baseline.SIGN_PATH, body=body)
        answer = conn.getresponse().read()
    finally:
        conn.close()
    with pytest.raises(SignResponseError, match="CSR Decode failed"):
        check_sign_response(answer, bench_ca.certificate, b"")


@needs_cfssl
def test_answer_for_another_key_is_rejected(server: CfsslServer, bench_ca: BenchCA) -> None:
    first, second = generate_csrs(2)[0]
    with pytest.raises(SignResponseError, match="key differs"):
        check_sign_response(
            _sign_one(server, first.body), bench_ca.certificate, second.public_key_der
        )


@needs_cfssl
def test_answer_checked_against_another_ca_is_rejected(server: CfsslServer, tmp_path: Path) -> None:
    [csr], _ = generate_csrs(1)
    other_ca = make_ca(tmp_path / "other")
    with pytest.raises(SignResponseError, match="not issued by the bench CA"):
        check_sign_response(_sign_one(server, csr.body), other_ca.certificate, csr.public_key_der)


def _answer(pem: str | None, success: bool = True) -> bytes:
    result = {"certificate": pem} if pem is not None else {}
    return json.dumps({"success": success, "result": result, "errors": []}).encode()


def _ee_certificate(
    ca: BenchCA,
    key: ec.EllipticCurvePrivateKey,
    *,
    algorithm: hashes.SHA256 | hashes.SHA384 | None = None,
    is_ca: bool = False,
    client_auth: bool = True,
    lifetime: datetime.timedelta = EXPIRY,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
) -> str:
    start = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH if client_auth else ExtendedKeyUsageOID.SERVER_AUTH]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ee")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .sign(issuer_key or ca.key, algorithm or hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_well_formed_certificate_passes(bench_ca: BenchCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    check_sign_response(_answer(_ee_certificate(bench_ca, key)), bench_ca.certificate, _spki(key))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"algorithm": hashes.SHA384()}, "expected ecdsa-with-SHA256"),
        ({"is_ca": True}, "not an end-entity"),
        ({"client_auth": False}, "clientAuth"),
        ({"lifetime": datetime.timedelta(hours=1)}, "validity"),
        ({"issuer_key": ec.generate_private_key(ec.SECP256R1())}, "not issued by the bench CA"),
    ],
)
def test_certificate_outside_profile_is_rejected(
    bench_ca: BenchCA, options: dict[str, object], message: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _ee_certificate(bench_ca, key, **options)  # type: ignore[arg-type]
    with pytest.raises(SignResponseError, match=message):
        check_sign_response(_answer(pem), bench_ca.certificate, _spki(key))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>502</html>", "not JSON"),
        (b"[1]", "failure"),
        (_answer(None), "without a certificate"),
        (_answer("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "parse"),
        (_answer(None, success=False), "failure"),
    ],
)
def test_malformed_answer_is_rejected(bench_ca: BenchCA, body: bytes, message: str) -> None:
    with pytest.raises(SignResponseError, match=message):
        check_sign_response(body, bench_ca.certificate, b"")


# --------------------------------------------------------------------------- load generator


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_sign_all_against_closed_port_counts_every_request_as_error() -> None:
    bodies = [b"{}"] * 7
    run = sign_all("127.0.0.1", _closed_port(), bodies, 3, timeout=2)
    assert run.responses == [None] * 7
    assert len(run.transport_errors) == 7
    assert all("ConnectionRefusedError" in error for error in run.transport_errors)
    assert run.latencies_s == []


def test_sign_all_stops_early_once_server_is_dead() -> None:
    run = sign_all("127.0.0.1", _closed_port(), [b"{}"] * 50, 1, server_alive=lambda: False)
    assert len(run.transport_errors) == 1 and run.responses == [None] * 50


class _Status500(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        payload = b'{"success":false}'
        self.send_response(500)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_sign_all_records_http_errors_with_status() -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status500)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        run = sign_all("127.0.0.1", httpd.server_address[1], [b"{}"] * 5, 2)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert run.responses == [None] * 5
    assert len(run.transport_errors) == 5 and all("HTTP 500" in e for e in run.transport_errors)
    assert len(run.latencies_s) == 5 and run.warmup_requests == 4


def test_sign_all_rejects_zero_concurrency() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        sign_all("127.0.0.1", 1, [b"{}"], 0)


def test_generate_csrs_makes_distinct_valid_requests() -> None:
    prepared, seconds = generate_csrs(3, profile="p")
    assert seconds > 0
    assert len({item.public_key_der for item in prepared}) == 3
    for item in prepared:
        assert isinstance(item, PreparedCsr)
        request = json.loads(item.body)
        assert request["profile"] == "p"
        csr = x509.load_pem_x509_csr(request["certificate_request"].encode())
        assert csr.is_signature_valid
        assert (
            csr.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == item.public_key_der
        )
