"""Where a node finds its ledger: one ``--ledger`` value for every MPKIX process.

* ``HOST:PORT`` — the embedded ledger node (``mpkix ledger serve``), over the node's own
  mutual-TLS identity;
* ``PATH.json`` — a ledger file, for the embedded node or any Ethereum JSON-RPC network
  (Besu/GoQuorum QBFT in production, anvil in tests; docs/operators/ledger-networks.md §5)::

      {"backend": "jsonrpc",
       "url": "https://rpc.ca-operator.example:8545",
       "registry_address": "0x…", "from_block": 1234,       # from `mpkix ledger deploy`
       "poa": true, "gas_price": null, "confirmations": 0,
       "tls": {"ca_bundle": "rpc-ca.pem", "client_cert": "node.pem", "client_key": "node.key"},
       "headers": {"Authorization": "env:MPKIX_LEDGER_AUTH"}}

      {"backend": "embedded", "target": "ledger-1.example:7443", "server_name": "ledger-1"}

  Relative paths are relative to the file; a header value ``env:NAME`` is read from the
  environment, so no secret needs to sit in the file. Unknown keys are refused (typos must not
  silently fall back to defaults). Decision record 1004.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.backends.base import LedgerBackend
from mpkix.rpc.tls import TlsConfig

BACKENDS = ("embedded", "jsonrpc")
_COMMON = {"backend"}
_EMBEDDED = _COMMON | {"target", "server_name", "timeout"}
_JSONRPC = _COMMON | {
    "url", "registry_address", "from_block", "poa", "gas_price", "confirmations",
    "tls", "headers", "request_timeout", "receipt_timeout", "poll_interval", "log_chunk_blocks",
}
_TLS = {"ca_bundle", "client_cert", "client_key"}


class LedgerConfigError(ValueError):
    """The ``--ledger`` value or ledger file is unusable; the message says what to fix."""


@dataclass(frozen=True)
class LedgerConfig:
    backend: str
    target: str  # host:port (embedded) or URL (jsonrpc)
    registry_address: str | None = None
    server_name: str | None = None
    from_block: int = 0
    poa: bool = False
    gas_price: int | None = None
    confirmations: int = 0
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> LedgerConfig:
        """``HOST:PORT`` of an embedded node, or the path of a ledger file."""
        if value.endswith(".json") or os.sep in value:
            return cls.from_file(Path(value))
        if value.startswith(("http://", "https://")):
            raise LedgerConfigError(
                f"{value}: a JSON-RPC ledger needs a ledger file (url, registry_address, "
                "from_block, TLS); see docs/operators/ledger-networks.md §5"
            )
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise LedgerConfigError(f"--ledger {value!r}: expected HOST:PORT or a ledger file")
        return cls("embedded", value)

    @classmethod
    def from_file(cls, path: Path) -> LedgerConfig:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise LedgerConfigError(f"cannot read the ledger file {path}: {e}") from None
        except json.JSONDecodeError as e:
            raise LedgerConfigError(f"{path} is not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise LedgerConfigError(f"{path}: expected a JSON object")
        return cls.from_mapping(doc, base=path.parent, where=str(path))

    @classmethod
    def from_mapping(
        cls, doc: Mapping[str, Any], *, base: Path = Path("."), where: str = "ledger file"
    ) -> LedgerConfig:
        backend = doc.get("backend")
        if backend not in BACKENDS:
            raise LedgerConfigError(f"{where}: \"backend\" must be one of {', '.join(BACKENDS)}")
        allowed = _EMBEDDED if backend == "embedded" else _JSONRPC
        unknown = sorted(set(doc) - allowed)
        if unknown:
            raise LedgerConfigError(f"{where}: unknown keys for {backend}: {', '.join(unknown)}")

        def path_of(v: Any, key: str) -> str | None:
            if v is None:
                return None
            if not isinstance(v, str) or not v:
                raise LedgerConfigError(f"{where}: {key} must be a path")
            return str((base / v).resolve())

        def integer(key: str, default: int, minimum: int = 0) -> int:
            v = doc.get(key, default)
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                raise LedgerConfigError(f"{where}: {key} must be an integer ≥ {minimum}")
            return v

        if backend == "embedded":
            target = doc.get("target")
            if not isinstance(target, str) or ":" not in target:
                raise LedgerConfigError(f"{where}: embedded needs \"target\": \"HOST:PORT\"")
            emb = {"timeout": float(doc["timeout"])} if "timeout" in doc else {}
            return cls("embedded", target, server_name=doc.get("server_name"), options=emb)

        url = doc.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise LedgerConfigError(f"{where}: jsonrpc needs \"url\": \"https://…\"")
        address = doc.get("registry_address")
        if not isinstance(address, str) or len(address.removeprefix("0x")) != 40:
            raise LedgerConfigError(
                f"{where}: jsonrpc needs \"registry_address\" (0x + 40 hex digits, from "
                "`mpkix ledger deploy`)"
            )
        tls = doc.get("tls") or {}
        if not isinstance(tls, dict) or set(tls) - _TLS:
            raise LedgerConfigError(f"{where}: tls takes {', '.join(sorted(_TLS))}")
        cert, key = path_of(tls.get("client_cert"), "client_cert"), path_of(
            tls.get("client_key"), "client_key"
        )
        if (cert is None) != (key is None):
            raise LedgerConfigError(f"{where}: tls.client_cert and tls.client_key go together")
        headers = doc.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise LedgerConfigError(f"{where}: headers must map names to strings")
        gas_price = doc.get("gas_price")
        if gas_price is not None and (not isinstance(gas_price, int) or gas_price < 0):
            raise LedgerConfigError(f"{where}: gas_price must be null or an integer ≥ 0")
        opts: dict[str, Any] = {}
        for k in ("request_timeout", "receipt_timeout", "poll_interval"):
            if k in doc:
                opts[k] = float(doc[k])
        if "log_chunk_blocks" in doc:
            opts["log_chunk_blocks"] = integer("log_chunk_blocks", 1, 1)
        return cls(
            "jsonrpc",
            url,
            registry_address=address,
            from_block=integer("from_block", 0),
            poa=bool(doc.get("poa", False)),
            gas_price=gas_price,
            confirmations=integer("confirmations", 0),
            ca_bundle=path_of(tls.get("ca_bundle"), "ca_bundle"),
            client_cert=cert,
            client_key=key,
            headers=dict(headers),
            options=opts,
        )

    def resolved_headers(self) -> dict[str, str]:
        out = {}
        for name, value in self.headers.items():
            if value.startswith("env:"):
                var = value[4:]
                if var not in os.environ:
                    raise LedgerConfigError(f"header {name}: environment variable {var} is unset")
                value = os.environ[var]
            out[name] = value
        return out

    def describe(self) -> str:
        """One line for logs (no secrets)."""
        if self.backend == "embedded":
            return f"embedded ledger node {self.target}"
        return f"JSON-RPC {self.target}, registry {self.registry_address}"


def open_backend(
    cfg: LedgerConfig | str,
    node_tls: TlsConfig | None = None,
    *,
    private_key: bytes | str | None = None,
) -> LedgerBackend:
    """Connect: the embedded node over ``node_tls`` (the process's cluster identity), a JSON-RPC
    network over the TLS settings of the ledger file. ``private_key`` signs (None: read-only)."""
    if isinstance(cfg, str):
        cfg = LedgerConfig.parse(cfg)
    if cfg.backend == "embedded":
        from ledger.backends.embedded import EmbeddedBackend

        return EmbeddedBackend.connect(
            cfg.target,
            node_tls,
            server_name=cfg.server_name,
            private_key=private_key,
            **cfg.options,
        )
    from ledger.backends.jsonrpc import JsonRpcBackend

    assert cfg.registry_address is not None
    cert: tuple[str, str] | None = None
    if cfg.client_cert is not None and cfg.client_key is not None:
        cert = (cfg.client_cert, cfg.client_key)
    return JsonRpcBackend(
        cfg.target,
        cfg.registry_address,
        private_key,
        poa=cfg.poa,
        gas_price=cfg.gas_price,
        confirmations=cfg.confirmations,
        from_block=cfg.from_block,
        headers=cfg.resolved_headers() or None,
        verify=cfg.ca_bundle if cfg.ca_bundle is not None else True,
        cert=cert,
        **cfg.options,
    )
