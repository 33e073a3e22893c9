#!/usr/bin/env bash
# One CI step: scan MINEHOUND_TARGET, write SARIF for code scanning and the
# JSON report beside it, print the verdict to the log, and exit with the gate's
# code (0 clean, 1 findings at or above MINEHOUND_FAIL_ON, 2 no verdict).
#
# Used by action.yml (GitHub) and ci/gitlab/minehound.gitlab-ci.yml. Every
# other scan setting comes from MINEHOUND_* variables or minehound.toml.
#
#   MINEHOUND_TARGET       what to scan (oci:DIR, docker-archive:FILE, a reference…)
#   MINEHOUND_SARIF_FILE   where the SARIF goes (default minehound.sarif)
#   MINEHOUND_JSON_FILE    where the JSON report goes (default minehound.json)
#   MINEHOUND_BIN          the minehound binary (default: minehound on PATH)
#   MINEHOUND_DEFER_EXIT   1: exit 0 and leave the gate's code in $GITHUB_OUTPUT
#                          as exit-code, so a later step can upload SARIF first
set -uo pipefail

target="${MINEHOUND_TARGET:?set MINEHOUND_TARGET to the image to scan}"
sarif="${MINEHOUND_SARIF_FILE:-minehound.sarif}"
json="${MINEHOUND_JSON_FILE:-minehound.json}"
bin="${MINEHOUND_BIN:-minehound}"

# One scan: a table for the log, SARIF and JSON files for upload and artifacts.
"$bin" scan --no-progress --format table --report "sarif=$sarif" --report "json=$json" "$target"
code=$?

if [ -n "${GITHUB_OUTPUT:-}" ]; then
    {
        echo "exit-code=$code"
        echo "sarif-file=$sarif"
        echo "json-file=$json"
    } >>"$GITHUB_OUTPUT"
fi
if [ "${MINEHOUND_DEFER_EXIT:-0}" = 1 ]; then
    exit 0
fi
exit "$code"
