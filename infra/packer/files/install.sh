#!/usr/bin/env bash
# Installs the gateway wheel and its pinned dependencies into a fresh venv: PREFIX/venv.
# Usage: install.sh WHEEL CONSTRAINTS
#   GATEWAY_PREFIX  where the venv goes (default /opt/gateway)
#   GATEWAY_PYTHON  the interpreter that makes it (default python3.11, Amazon Linux 2023's package)
# CONSTRAINTS (infra/packer/lock.py) pins every dependency with the sha256 of its wheel; pip installs
# exactly those files (--require-hashes) and the given wheel by its own digest, nothing resolved.
# pip reads its usual PIP_* variables, so a local wheel cache can stand in for the index.
set -euo pipefail

usage="usage: install.sh WHEEL CONSTRAINTS"
wheel=${1:?$usage}
constraints=${2:?$usage}
prefix=${GATEWAY_PREFIX:-/opt/gateway}
python=${GATEWAY_PYTHON:-python3.11}
venv=$prefix/venv

rm -rf "$venv"
mkdir -p "$prefix"
"$python" -m venv "$venv"
own=$(mktemp)
trap 'rm -f "$own"' EXIT
echo "$(realpath "$wheel") --hash=sha256:$(sha256sum "$wheel" | cut -d' ' -f1)" >"$own"
"$venv/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
  --only-binary=:all: --require-hashes --no-deps --requirement "$constraints" --requirement "$own"
"$venv/bin/python" -m pip check

# Reproducible means nothing unpinned slipped in: every installed distribution is in CONSTRAINTS.
unpinned=$("$venv/bin/python" -m pip freeze --exclude-editable |
  grep -vixFf <(sed -n 's/^\([^# ][^ ]*==[^ ]*\).*/\1/p' "$constraints") | grep -vi '^mobile-gateway[ =@]' || true)
if [ -n "$unpinned" ]; then
  echo "install.sh: not pinned by $constraints:" >&2
  echo "$unpinned" >&2
  exit 1
fi
echo "installed $(basename "$wheel") into $venv"
