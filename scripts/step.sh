#!/usr/bin/env bash
# One long set-up step as one line: "label ... done in 12.3 s". The step's own output is kept
# out of the way and shown only if it fails, so a quiet terminal still shows progress.
# Usage: scripts/step.sh LABEL COMMAND [ARG...]
set -uo pipefail

label=$1
shift
printf '%s ... ' "$label"
output=$(mktemp)
start=${EPOCHREALTIME//[.,]/}
"$@" >"$output" 2>&1
status=$?
elapsed_ms=$(((${EPOCHREALTIME//[.,]/} - start) / 1000))
if [ "$status" -eq 0 ]; then
  printf 'done in %d.%d s\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))
else
  printf 'failed (exit %d) after %d.%d s:\n' "$status" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))
  cat "$output" >&2
fi
rm -f "$output"
exit "$status"
