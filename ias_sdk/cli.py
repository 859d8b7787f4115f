"""``mpkix ias …``: verify a ppCert against the ledger, inspect or keep a mirror current
(decision 0808).

* ``mpkix ias verify FILE`` — FILE is a serialized ``CertificateBundle`` (``.pb``) or a PEM
  certificate (optionally followed by its CA chain). With ``--ledger`` the mirror is synced
  first; with only ``--mirror-db`` an existing mirror is used offline, refused when older than
  ``--max-staleness``. Prints ``{"valid": …, "reason": …, "message": …, "subject": …,
  "mirror": …}``; exit 0 valid, 1 invalid, 2 usage or operational error (no verdict).
* ``mpkix ias mirror-status`` — the mirror's source, cursor, freshness and row counts.
* ``mpkix ias mirror-sync`` — sync a mirror database once, or keep following (``--follow``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ias_sdk.mirror import Freshness, LedgerMirror

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
DEFAULT_OFFLINE_STALENESS = 300.0


class UsageError(Exception):
    """Bad arguments or an environment problem: exit 2, no verdict."""


def _add_ledger_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ledger", metavar="HOST:PORT|FILE",
        help="ledger node, or a ledger file (JSON-RPC networks), to sync the mirror from",
    )
    p.add_argument("--tls-ca", type=Path, metavar="PEM", help="root of the ledger's TLS cert")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="client certificate (mTLS)")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="client key (mTLS)")
    p.add_argument("--server-name", help="expected TLS name of the ledger node")
    p.add_argument(
        "--plaintext", action="store_true", help="no TLS (a ledger node on loopback only)"
    )
    p.add_argument("--mirror-db", type=Path, metavar="PATH", help="mirror database (SQLite)")
    p.add_argument("--page-size", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=20.0, help="ledger call timeout, seconds")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``ias`` group to ``mpkix``."""
    group = sub.add_parser("ias", help="IAS SDK: verify ppCerts against the ledger mirror")
    cmds = group.add_subparsers(dest="ias_command", metavar="COMMAND", required=True)

    v = cmds.add_parser("verify", help="verify a certificate bundle or PEM certificate")
    v.add_argument("file", type=Path, metavar="FILE", help="bundle (.pb) or PEM certificate")
    _add_ledger_options(v)
    v.add_argument("--required-profile", metavar="URI", help="mss: signature profile required")
    v.add_argument("--profile-mode", choices=("exact", "minimum", "better"), default="minimum")
    v.add_argument(
        "--max-staleness",
        type=float,
        metavar="SECONDS",
        help=f"refuse a mirror older than this (offline default {DEFAULT_OFFLINE_STALENESS:g})",
    )
    v.set_defaults(handler=_verify)

    s = cmds.add_parser("mirror-status", help="show a mirror's source, cursor and freshness")
    _add_ledger_options(s)
    s.add_argument("--max-staleness", type=float, metavar="SECONDS")
    s.set_defaults(handler=_mirror_status)

    f = cmds.add_parser("mirror-sync", help="sync a mirror database (once or --follow)")
    _add_ledger_options(f)
    f.add_argument("--follow", action="store_true", help="keep following until SIGTERM/SIGINT")
    f.add_argument("--poll-interval", type=float, default=0.1, metavar="SECONDS")
    f.set_defaults(handler=_mirror_sync)


# -- helpers ------------------------------------------------------------------------------


def _hex(b: bytes | None) -> str | None:
    return None if b is None else "0x" + b.hex()


def freshness_dict(f: Freshness) -> dict[str, Any]:
    return {
        "chain_id": f.chain_id,
        "registry_address": _hex(f.registry_address),
        "cursor": f.cursor,
        "source_cursor": f.source_cursor,
        "lag_events": f.lag_events,
        "last_synced_at": f.last_synced_at,
        "age_seconds": None if f.age is None else round(f.age, 3),
        "max_staleness": f.max_staleness,
        "stale": f.stale,
        "last_error": f.last_error,
    }


def _source(args: argparse.Namespace) -> Any:
    if not args.ledger:
        return None
    from ledger.backends.config import LedgerConfig, LedgerConfigError, open_backend
    from ledger.backends.embedded import EmbeddedBackend
    from mpkix.rpc.tls import TlsConfig

    try:
        cfg = LedgerConfig.parse(args.ledger)
    except LedgerConfigError as e:
        raise UsageError(str(e)) from None
    if cfg.backend == "jsonrpc":
        if args.plaintext or args.tls_ca or args.tls_cert or args.tls_key:
            raise UsageError(
                "a JSON-RPC ledger file carries its own TLS settings; drop --tls-*/--plaintext"
            )
        return open_backend(cfg)
    if args.plaintext:
        if args.tls_ca or args.tls_cert or args.tls_key:
            raise UsageError("--plaintext excludes the --tls-* options")
        return EmbeddedBackend.connect(cfg.target, None, timeout=args.timeout)
    if args.tls_ca is None:
        raise UsageError("--ledger needs --tls-ca (and --tls-cert/--tls-key for mutual TLS)")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    try:
        tls = TlsConfig.from_files(args.tls_ca, args.tls_cert, args.tls_key)
    except OSError as e:
        raise UsageError(f"cannot read TLS material: {e}") from None
    return EmbeddedBackend.connect(
        cfg.target, tls, server_name=args.server_name, timeout=args.timeout
    )


def _open_mirror(args: argparse.Namespace, max_staleness: float | None) -> LedgerMirror:
    from ias_sdk.mirror import LedgerMirror, MirrorError

    source = _source(args)
    if source is None:
        if args.mirror_db is None:
            raise UsageError("give --ledger (to sync) and/or --mirror-db (an existing mirror)")
        if not args.mirror_db.exists():
            raise UsageError(f"no mirror database at {args.mirror_db} (sync one with --ledger)")
    if args.page_size < 1:
        raise UsageError("--page-size must be at least 1")
    try:
        return LedgerMirror(
            args.mirror_db, source, max_staleness=max_staleness, page_size=args.page_size
        )
    except MirrorError as e:
        if source is not None:
            source.close()
        raise UsageError(str(e)) from None


def _sync(mirror: LedgerMirror, ledger: str) -> None:
    import grpc

    from ias_sdk.mirror import MirrorError

    try:
        mirror.sync()
    except MirrorError as e:
        raise UsageError(f"cannot sync the mirror: {e}") from None
    except grpc.RpcError as e:
        raise UsageError(f"cannot reach the ledger at {ledger}: {e.code().name}") from None


def _close(mirror: LedgerMirror) -> None:
    source = mirror.source
    mirror.close()
    if source is not None:
        source.close()


def _print(doc: dict[str, Any]) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        return int(fn(args))
    except UsageError as e:
        print(f"mpkix ias: {e}", file=sys.stderr)
        return EXIT_USAGE


# -- commands -----------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    return _run(_verify_impl, args)


def _verify_impl(args: argparse.Namespace) -> int:
    from ias_sdk.verify import VerificationError, Verifier, check_requirement

    try:
        check_requirement(args.required_profile, args.profile_mode)
    except ValueError as e:
        raise UsageError(f"--required-profile: {e}") from None
    try:
        data = args.file.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {args.file}: {e}") from None
    staleness = args.max_staleness
    if staleness is None and not args.ledger:
        staleness = DEFAULT_OFFLINE_STALENESS
    if staleness is not None and staleness <= 0:
        raise UsageError("--max-staleness must be positive")
    mirror = _open_mirror(args, staleness)
    try:
        if args.ledger:
            _sync(mirror, args.ledger)
        verifier = Verifier(mirror, remember_inclusions=False)
        try:
            subject = verifier.verify(
                data, required_profile=args.required_profile, profile_mode=args.profile_mode
            )
        except VerificationError as e:
            _print(
                {
                    "valid": False,
                    "reason": e.reason.value,
                    "message": e.message,
                    "subject": None,
                    "mirror": freshness_dict(mirror.freshness()),
                }
            )
            return EXIT_INVALID
        _print(
            {
                "valid": True,
                "reason": None,
                "message": "",
                "subject": subject.to_dict(),
                "mirror": freshness_dict(mirror.freshness()),
            }
        )
        return EXIT_VALID
    finally:
        _close(mirror)


def _mirror_status(args: argparse.Namespace) -> int:
    return _run(_mirror_status_impl, args)


def _mirror_status_impl(args: argparse.Namespace) -> int:
    mirror = _open_mirror(args, args.max_staleness)
    try:
        if args.ledger:
            _sync(mirror, args.ledger)
        f = mirror.freshness()
        doc = freshness_dict(f)
        doc["counts"] = mirror.counts()
        doc["database"] = None if args.mirror_db is None else str(args.mirror_db)
        _print(doc)
        return EXIT_INVALID if f.stale else EXIT_VALID
    finally:
        _close(mirror)


def _mirror_sync(args: argparse.Namespace) -> int:
    return _run(_mirror_sync_impl, args)


def _mirror_sync_impl(args: argparse.Namespace) -> int:
    if not args.ledger or args.mirror_db is None:
        raise UsageError("mirror-sync needs --ledger and --mirror-db")
    if args.poll_interval <= 0:
        raise UsageError("--poll-interval must be positive")
    mirror = _open_mirror(args, None)
    try:
        if not args.follow:
            _sync(mirror, args.ledger)
        else:
            mirror.poll_interval = args.poll_interval
            done = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: done.set())
            mirror.start()
            done.wait()
            mirror.stop()
        _print(freshness_dict(mirror.freshness()))
        return EXIT_VALID
    finally:
        _close(mirror)
