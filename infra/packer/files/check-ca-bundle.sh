#!/usr/bin/env bash
# Checks a PEM bundle of certificate authorities before it is baked: at least one certificate, every
# BEGIN CERTIFICATE block ends and parses, and, when DIGEST is given, the file's sha256 is DIGEST
# (only the digest catches a bundle cut exactly between two certificates). Prints
# the digest and the count either way, so an unpinned bake still records what it baked.
# Usage: check-ca-bundle.sh FILE [DIGEST]
set -euo pipefail

file=${1:?usage: check-ca-bundle.sh FILE [DIGEST]}
expected=${2:-}
blocks=$(grep -c 'BEGIN CERTIFICATE' "$file" || true)
ends=$(grep -c 'END CERTIFICATE' "$file" || true)
parsed=$(openssl crl2pkcs7 -nocrl -certfile "$file" 2>/dev/null | openssl pkcs7 -print_certs 2>/dev/null |
  grep -c '^subject=' || true)
digest=$(sha256sum "$file" | cut -d' ' -f1)
echo "$file: sha256 $digest, $parsed of $blocks certificates parsed"
if [ "$blocks" -eq 0 ] || [ "$ends" -ne "$blocks" ] || [ "$parsed" -ne "$blocks" ]; then
  echo "check-ca-bundle.sh: $file is not a bundle of certificates" >&2
  exit 1
fi
if [ -n "$expected" ] && [ "$digest" != "$expected" ]; then
  echo "check-ca-bundle.sh: $file has sha256 $digest, expected $expected" >&2
  exit 1
fi
