#!/usr/bin/env bash
# Installs anvil (npm package @foundry-rs/anvil) under .venv/node for the jsonrpc ledger tests.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.venv/node
if [ -x "$DEST/node_modules/.bin/anvil" ]; then exit 0; fi
command -v npm >/dev/null 2>&1 || { echo "npm missing"; exit 1; }
mkdir -p "$DEST"
( cd "$DEST" && npm install --silent --no-audit --no-fund @foundry-rs/anvil@1.7.1 >/dev/null )
"$DEST/node_modules/.bin/anvil" --version
