#!/usr/bin/env bash
# Installs the machine-level tools that `make test` and `make bench` need:
# memcached, packer (Debian's 1.6.6), shellcheck, wrk, valgrind and jq (the README's media example)
# from Debian, and checkov in its own venv. Each long step prints one line with its duration.
set -euo pipefail

step="$(dirname "$0")/step.sh"

want=()
command -v memcached >/dev/null || want+=(memcached)
command -v packer >/dev/null || want+=(packer)
command -v shellcheck >/dev/null || want+=(shellcheck)
command -v wrk >/dev/null || want+=(wrk)
command -v callgrind_control >/dev/null || want+=(valgrind)
command -v systemd-analyze >/dev/null || want+=(systemd)
command -v jq >/dev/null || want+=(jq)

if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing tools: ${want[*]}; install them (apt-get install ${want[*]}) or run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "$step" "apt-get update" apt-get update -qq
  "$step" "apt-get install ${want[*]}" apt-get install -y -qq --no-install-recommends "${want[@]}"
fi

# checkov pins its own dependency tree, which fights the app's; it lives in a venv of its own.
checkov_venv=${CHECKOV_VENV:-.venv-checkov}
if [ ! -x "$checkov_venv/bin/checkov" ]; then
  "$step" "creating $checkov_venv" python3 -m venv "$checkov_venv"
  "$step" "installing checkov into $checkov_venv" "$checkov_venv/bin/pip" install -q --disable-pip-version-check "checkov==3.3.30"
fi
