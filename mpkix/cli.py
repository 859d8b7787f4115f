"""The ``mpkix`` command line: one entry point, a subcommand group per part.

Each part owns its group in its own ``cli`` module exposing ``register(subparsers)``; handlers
import heavy dependencies lazily so ``mpkix --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules exposing ``register(subparsers)``; order is the order of ``mpkix --help``.
REGISTRARS: tuple[str, ...] = (
    "mpkix.aka.cli",
    "cms_node.cli",
    "ca_node.cli",
    "cma.cli",
    "ledger.cli",
    "ias_sdk.cli",
    "deploy.cli",
    "mpkix.demo.cli",
    "bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpkix",
        description="Mobile-assisted PKIX: operator-endorsed, privacy-preserving certificates.",
    )
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for name in REGISTRARS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        rc = handler(args)
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
