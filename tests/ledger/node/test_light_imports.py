"""Clients of the ledger (IAS SDK mirrors, the CMA, every ``mpkix`` command's parser) must not
pay for py-evm: only the ledger node process imports it (decision 1006)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("eth", "eth_tester", "web3", "vyper")


def _loaded_after(code: str) -> list[str]:
    check = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    probe = f"import sys, json\n{code}\n{check}"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_sdk_and_embedded_backend_do_not_import_the_evm() -> None:
    assert _loaded_after(
        "import ias_sdk, ledger.backends.embedded, ledger.backends.config, ledger.node.client"
    ) == []


def test_cli_parser_does_not_import_the_evm() -> None:
    assert _loaded_after("from mpkix.cli import build_parser; build_parser()") == []


def test_package_exports_still_resolve() -> None:
    import ledger.node as node

    assert node.LedgerClient.__name__ == "LedgerClient"
    assert node.NodeConfig.__name__ == "NodeConfig"
    try:
        node.NoSuchThing  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("unknown attribute did not raise")
