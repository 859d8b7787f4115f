# MPKIX — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mpkix-installed
DEMO_OUT ?= demo-out

.PHONY: setup proto lint test demo bench bench-issuance bench-ledger setup-anvil setup-bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

proto: setup
	$(PY) -m mpkix._internal.protogen

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# anvil (a real Ethereum node) from npm for the jsonrpc ledger backend tests; optional.
setup-anvil:
	@bash tools/setup-anvil.sh || echo "anvil not installed: the jsonrpc ledger tests will be skipped"

test: setup setup-anvil
	$(PY) -m pytest -q

demo: setup
	$(PY) -m mpkix demo --out $(DEMO_OUT)

# cfssl (Debian golang-cfssl) is the issuance baseline measured in the same run.
setup-bench:
	@bash tools/setup-bench.sh

bench: setup setup-bench
	$(PY) -m mpkix bench all

bench-issuance: setup setup-bench
	$(PY) -m mpkix bench issuance

bench-ledger: setup
	$(PY) -m mpkix bench ledger

clean:
	rm -rf $(DEMO_OUT) .bench-tmp .pytest_cache .mypy_cache .ruff_cache
