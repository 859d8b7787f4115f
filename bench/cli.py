"""``mpkix bench …``: benchmarks (``make bench`` runs them all)."""

from __future__ import annotations

import argparse
from typing import Any


def _issuance(args: argparse.Namespace) -> int:
    from bench.issuance import main

    return main(args.count, args.concurrency, cfssl=not args.no_cfssl)


def _ledger(args: argparse.Namespace) -> int:
    try:
        from bench.ledger import main  # type: ignore[import-not-found]
    except ModuleNotFoundError:
        print("mpkix bench ledger: the ledger benchmark is not built yet (issue #3)")
        return 0
    return int(main(args))


def _all(args: argparse.Namespace) -> int:
    rc = _issuance(args)
    return max(rc, _ledger(args))


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``bench`` group to ``mpkix``."""
    b = sub.add_parser("bench", help="benchmarks; results in bench/results/latest.json")
    g = b.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, fn, text in (
        ("issuance", _issuance, "full ceIssuance load vs cfssl serve in the same run"),
        ("all", _all, "every benchmark"),
        ("ledger", _ledger, "ledger anchoring, SDK verification, revocation visibility"),
    ):
        p = g.add_parser(name, help=text)
        p.add_argument("--count", type=int, default=5000)
        p.add_argument("--concurrency", type=int, default=64)
        p.add_argument("--no-cfssl", action="store_true", help="skip the baseline")
        p.set_defaults(handler=fn)
