#!/usr/bin/env bash
# Installs the machine-level tools that `make test` and `make bench` need:
# memcached, packer (Debian's 1.6.6), shellcheck, wrk and valgrind from Debian, and checkov in its own venv.
set -euo pipefail

want=()
command -v memcached >/dev/null || want+=(memcached)
command -v packer >/dev/null || want+=(packer)
command -v shellcheck >/dev/null || want+=(shellcheck)
command -v wrk >/dev/null || want+=(wrk)
command -v callgrind_control >/dev/null || want+=(valgrind)
command -v systemd-analyze >/dev/null || want+=(systemd)

if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing tools: ${want[*]}; install them (apt-get install ${want[*]}) or run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

# checkov pins its own dependency tree, which fights the app's; it lives in a venv of its own.
checkov_venv=${CHECKOV_VENV:-.venv-checkov}
if [ ! -x "$checkov_venv/bin/checkov" ]; then
  python3 -m venv "$checkov_venv"
  "$checkov_venv/bin/pip" install -q --disable-pip-version-check "checkov==3.3.30"
fi
