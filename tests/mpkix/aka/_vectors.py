"""Load the published test vectors kept in tests/vectors (each file names its source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS_DIR / name).read_text(encoding="utf-8"))
    return data


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def milenage_sets() -> list[dict[str, Any]]:
    """TS 35.207 sets 1-6 and TS 35.208 sets 1-20, each tagged with where it comes from."""
    out: list[dict[str, Any]] = []
    for name, spec in (("milenage-ts35207.json", "35.207"), ("milenage-ts35208.json", "35.208")):
        for s in load(name)["test_sets"]:
            out.append({**s, "id": f"{spec}-set{s['test_set']}"})
    return out


def rfc5448_cases() -> list[dict[str, Any]]:
    """RFC 5448 Appendix C cases 1-4 in one list."""
    case1 = {**load("eap-aka-prime-rfc5448-case1.json")["case"], "case": 1}
    return [case1, *load("eap-aka-prime-rfc5448-cases2-4.json")["cases"]]
