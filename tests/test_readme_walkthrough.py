"""The README's command-line walk-through, command by command: each node is its own
``mpkix … serve`` process on 127.0.0.1 with TLS, and the user and operator steps are the
``mpkix`` subcommands a person types."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import subscribers

REPO = Path(__file__).resolve().parents[1]


def mpkix(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpkix", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )


class Servers:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, name: str, *args: str) -> int:
        log = (self.cwd / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mpkix", *args, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=self.cwd,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"serving on port (\d+)", line)
        assert m, f"{name} did not start: {line!r}; {(self.cwd / f'{name}.log').read_text()}"
        return int(m.group(1))

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path)
    yield s
    s.stop()


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_readme_walkthrough(tmp_path: Path, servers: Servers) -> None:
    w = tmp_path
    ok(mpkix(w, "hss", "generate", "--count", "300", "--seed", "1", "--db", "hss.sqlite"))
    ok(mpkix(w, "pki", "init", "--dir", "tls", "--node", "ca-1", "--node", "cms-1",
             "--node", "ledger-1", "--node", "ca-admin", "--node", "ias-1"))
    ok(mpkix(w, "ca", "init", "--state-dir", "ca"))
    ok(mpkix(w, "cms", "init", "--state-dir", "cms"))
    ok(mpkix(w, "ca", "add-operator", "--state-dir", "ca", "--operator-id", "310-260",
             "--key", "cms/endorsement.pub.pem"))
    ok(mpkix(w, "ledger", "genesis", "--out", "genesis.json", "--ca", "ca",
             "--operator", "310-260=cms"))
    ledger = servers.start("ledger", "ledger", "serve", "--state-dir", "ledger", "--genesis",
                           "genesis.json", "--tls-cert", "tls/ledger-1.pem", "--tls-key",
                           "tls/ledger-1.key", "--tls-ca", "tls/ca.pem")
    led = f"127.0.0.1:{ledger}"
    status = json.loads(ok(mpkix(w, "ledger", "status", "--ledger", led, "--tls-dir", "tls",
                                 "--node-name", "ias-1")))
    assert status["chain_id"] == 6063
    ca = servers.start("ca", "ca", "serve", "--state-dir", "ca", "--tls-dir", "tls",
                       "--ledger", led)
    cms = servers.start("cms", "cms", "serve", "--state-dir", "cms", "--hss", "hss.sqlite",
                        "--tls-dir", "tls", "--node-name", "cms-1", "--ca", f"127.0.0.1:{ca}",
                        "--operator-id", "310-260", "--ledger", led)
    imsi = subscribers(w / "hss.sqlite", 1, offset=3)[0].imsi
    assert json.loads(ok(mpkix(w, "hss", "show", "--db", "hss.sqlite", "--imsi", imsi)))
    ok(mpkix(w, "cma", "provision", "--dir", "phone", "--hss", "hss.sqlite", "--imsi", imsi))
    cms_args = ["--cms", f"127.0.0.1:{cms}", "--tls-ca", "tls/ca.pem"]
    enrolled = json.loads(ok(mpkix(
        w, "cma", "enroll", "--dir", "phone", *cms_args, "--pin-env", "MPKIX_PIN",
        "--out", "certs", "--label", "alice", env={"MPKIX_PIN": "1234-abcd"},
    )))
    verify = ["ias", "verify", "certs/bundle-alice.pb", "--ledger", led, "--tls-ca", "tls/ca.pem",
              "--tls-cert", "tls/ias-1.pem", "--tls-key", "tls/ias-1.key",
              "--mirror-db", "ias.sqlite"]
    assert json.loads(ok(mpkix(w, *verify)))["valid"] is True

    [suspended] = json.loads(ok(mpkix(w, "cma", "revoke", "--dir", "phone", *cms_args,
                                      "--suspend")))
    assert suspended["state"] == "suspended"
    done = mpkix(w, *verify)
    assert done.returncode == 1 and json.loads(done.stdout)["reason"] == "SUSPENDED"

    revoked = json.loads(ok(mpkix(w, "ca", "revoke", "--ca", f"127.0.0.1:{ca}", "--tls-dir",
                                  "tls", "--serial", enrolled["serial"], "--reason", "4")))
    assert (revoked["state"], revoked["reason"]) == ("revoked", 4)
    done = mpkix(w, *verify)
    assert done.returncode == 1 and json.loads(done.stdout)["reason"] == "REVOKED"
