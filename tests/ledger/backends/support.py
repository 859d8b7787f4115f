"""Test helpers for the jsonrpc backend: a real anvil process and a fault-injecting RPC proxy.

anvil comes from the npm package ``@foundry-rs/anvil`` (``tools/setup-anvil.sh`` installs it under
``.venv/node``); ``$ANVIL_BIN`` overrides the search. The proxy sits between the backend and
anvil to lose replies or requests (as a network would) and to rewrite results (e.g. the long
``extraData`` of QBFT blocks), so failure paths run against the real node.
"""

from __future__ import annotations

import glob
import json
import os
import queue
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
NODE_DIR = REPO / ".venv" / "node" / "node_modules"


def find_anvil() -> str | None:
    """The anvil binary: ``$ANVIL_BIN``, the npm platform package, the npm shim, ``PATH``."""
    candidates = [os.environ.get("ANVIL_BIN")]
    for base in (NODE_DIR, REPO / "node_modules"):
        candidates += sorted(glob.glob(str(base / "@foundry-rs" / "anvil-*" / "bin" / "anvil")))
        candidates.append(str(base / ".bin" / "anvil"))
    candidates.append(shutil.which("anvil"))
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def install_anvil() -> str:
    """Run ``tools/setup-anvil.sh`` (npm); returns its output for a skip message."""
    try:
        done = subprocess.run(
            ["bash", str(REPO / "tools" / "setup-anvil.sh")],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"tools/setup-anvil.sh failed: {e}"
    return (done.stdout + done.stderr).strip()[-500:]


@dataclass
class Anvil:
    """A running anvil: its URL, the pre-funded dev accounts' private keys, the process."""

    url: str
    keys: list[str] = field(repr=False)
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list, repr=False)

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        req = urllib.request.Request(self.url, body.encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


_KEY = re.compile(r"^\(\d+\)\s+(0x[0-9a-fA-F]{64})\s*$")
_LISTENING = re.compile(r"Listening on (\S+:\d+)")


def start_anvil(binary: str, *args: str, timeout: float = 20.0) -> Anvil:
    """Start anvil on a port it picks (``--port 0``); ready once it prints ``Listening on``."""
    proc = subprocess.Popen(
        [binary, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:  # drain stdout for the process lifetime (anvil logs every request)
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="anvil-stdout", daemon=True).start()
    keys: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            proc.kill()
            proc.wait()
            raise RuntimeError("anvil did not start:\n" + "".join(seen[-20:]))
        seen.append(line)
        if m := _KEY.match(line.strip()):
            keys.append(m.group(1))
        if m := _LISTENING.search(line):
            anvil = Anvil(url=f"http://{m.group(1)}", keys=keys, proc=proc, lines=seen)
            threading.Thread(target=_discard, args=(lines,), daemon=True).start()
            return anvil


def _discard(lines: queue.Queue[str | None]) -> None:
    while lines.get() is not None:
        pass


Request = dict[str, Any]


class RpcProxy:
    """A JSON-RPC HTTP proxy in front of ``upstream``.

    ``lose_request(req)`` → the request is not forwarded and the connection is closed;
    ``lose_reply(req)`` → it is forwarded but the reply is replaced by a closed connection;
    ``rewrite(req, answer)`` → may change the answer. ``methods`` records what passed.
    With ``tls`` it serves HTTPS (the TLS terminator an operator puts in front of a node).
    """

    def __init__(self, upstream: str, *, tls: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream
        self.lose_request: Callable[[Request], bool] = lambda req: False
        self.lose_reply: Callable[[Request], bool] = lambda req: False
        self.rewrite: Callable[[Request, dict[str, Any]], dict[str, Any]] = lambda req, a: a
        self.methods: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = json.loads(body)
                proxy.methods.append(str(req.get("method")))
                proxy.headers_seen.append(dict(self.headers.items()))
                if proxy.lose_request(req):
                    self.close_connection = True
                    return
                upstream_req = urllib.request.Request(
                    proxy.upstream, body, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(upstream_req, timeout=30) as resp:
                    answer = json.loads(resp.read())
                if proxy.lose_reply(req):
                    self.close_connection = True
                    return
                out = json.dumps(proxy.rewrite(req, answer)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
