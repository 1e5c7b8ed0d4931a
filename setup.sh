#!/usr/bin/env bash
# Set up everything circuitep needs on Debian as root: ngspice's shared library, a virtual
# environment in .venv, and the package with its test extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
if ! ldconfig -p 2>/dev/null | grep -q 'libngspice.so '; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq ngspice libngspice0-dev >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'
