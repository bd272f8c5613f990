#!/usr/bin/env bash
# Bakes the gateway AMI from the current commit: builds the wheel into dist/, then runs
# `packer init` and `packer build` (Packer >= 1.7) with the version and commit as tags. The
# builder's SSH is open to this host's public address only (BAKE_SSH_CIDR overrides it, e.g. when
# Packer reaches the builder through a VPN or a private subnet).
# Usage: infra/packer/bake.sh [packer build options, e.g. -var subnet_id=subnet-0abc]
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
if ! git diff --quiet HEAD --; then
  echo "bake.sh: uncommitted changes; an AMI must match a commit" >&2
  exit 1
fi

python=${PYTHON:-.venv/bin/python}
rm -rf dist
"$python" -m pip wheel --quiet --no-deps --wheel-dir dist .
wheel=$(basename dist/mobile_gateway-*-py3-none-any.whl)
version=${wheel#mobile_gateway-}
version=${version%%-*}

ssh_cidr=${BAKE_SSH_CIDR:-$(curl -fsS --max-time 10 https://checkip.amazonaws.com)/32}

packer init infra/packer
packer build -var "app_version=$version" -var "git_commit=$(git rev-parse HEAD)" \
  -var "ssh_source_cidrs=[\"$ssh_cidr\"]" "$@" infra/packer
