"""Moved: the IAS SDK benchmark (verifications per second on one core, revocation visibility) is
part of the ledger benchmark, ``bench/ledger_sdk.py`` run by ``mpkix bench ledger`` on the
certificates a real cluster issued and anchored (decision 0603). This wrapper runs it:

    .venv/bin/python -m tests.ias_sdk.bench_verify [options of mpkix bench ledger]
"""

from __future__ import annotations

import sys

from bench.ledger import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
