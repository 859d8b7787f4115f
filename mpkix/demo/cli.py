"""``mpkix demo``: the whole flow on the embedded defaults (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from typing import Any


def _demo(args: argparse.Namespace) -> int:
    from mpkix.demo.run import main

    return main(args.out, args.subscribers, args.seed)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``demo`` to ``mpkix``."""
    p = sub.add_parser("demo", help="run the end-to-end demo, artifacts in --out")
    p.add_argument("--out", default="demo-out")
    p.add_argument("--subscribers", type=int, default=120_531, help="HSS population")
    p.add_argument("--seed", type=int, default=2026)
    p.set_defaults(handler=_demo)
