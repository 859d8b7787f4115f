"""Command-line group (placeholder until the part lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add this part's subcommands to ``mpkix``."""
