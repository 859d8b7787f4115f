#!/usr/bin/env bash
# Installs the benchmark baseline: Debian's cfssl (package golang-cfssl).
set -euo pipefail
if command -v cfssl >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq golang-cfssl >/dev/null
command -v cfssl
