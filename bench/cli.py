"""``mpkix bench …``: benchmarks (``make bench`` runs them all)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

LEDGER_COUNT = 2000  # enrollments of the ledger benchmark (a few minutes on 2 cores)


def _issuance(args: argparse.Namespace) -> int:
    from bench.issuance import main

    return main(args.count, args.concurrency, cfssl=not args.no_cfssl)


def _ledger(args: argparse.Namespace) -> int:
    from bench.ledger import main

    return main(args)


def _all(args: argparse.Namespace) -> int:
    rc = _issuance(args)
    return max(rc, _ledger(argparse.Namespace(**{**vars(args), "count": args.ledger_count})))


def add_ledger_arguments(p: argparse.ArgumentParser, *, paths: bool = True) -> None:
    """Options of the ledger benchmark (``paths``: also ``--results`` and ``--workdir``)."""
    p.add_argument("--revocations", type=int, default=40,
                   help="revocations timed for visibility (default %(default)s)")
    p.add_argument("--anchor-window-ms", type=int, default=200,
                   help="the CA's batching window (default %(default)s, the CA's own default)")
    p.add_argument("--verify-rounds", type=int, default=5,
                   help="repeat-verification rounds over all certificates (default %(default)s)")
    p.add_argument("--time-limit", type=float, default=600.0,
                   help="seconds after which the load takes no new enrollment")
    if paths:
        p.add_argument("--results", type=Path,
                       help="results file (default bench/results/latest.json)")
        p.add_argument("--workdir", type=Path,
                       help="keep the cluster state here (default: a temporary directory)")


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
        p.add_argument("--count", type=int, default=LEDGER_COUNT if name == "ledger" else 5000)
        p.add_argument("--concurrency", type=int, default=64)
        p.add_argument("--no-cfssl", action="store_true", help="skip the baseline")
        if name == "ledger":
            add_ledger_arguments(p)
        elif name == "all":
            p.add_argument("--ledger-count", type=int, default=LEDGER_COUNT,
                           help="enrollments of the ledger benchmark (default %(default)s)")
            add_ledger_arguments(p, paths=False)
        p.set_defaults(handler=fn)
