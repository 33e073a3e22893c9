#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), from seed
# corpora that testdata generates, and prints a line per target: executions
# run and crashes found. Exit 1 if any target crashed (inputs in
# fuzz/artifacts/<target>/, libFuzzer's log in fuzz/artifacts/<target>.log).
#
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# -Z flags. The address sanitizer is used when its runtime is there;
# MINEHOUND_FUZZ_SANITIZER=none turns it off (faster, panics still caught).
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
sanitizer="${MINEHOUND_FUZZ_SANITIZER:-address}"
fuzz=(cargo fuzz)

# Seeds: small valid inputs of every kind, from the testdata builders.
(cd .. && cargo run --release --quiet -p minehound-testdata -- fuzz-seeds fuzz/corpus)
"${fuzz[@]}" build --release --sanitizer "$sanitizer"

status=0
printf '%-16s %12s %8s\n' target executions crashes
for target in $("${fuzz[@]}" list); do
    mkdir -p "artifacts/$target"
    log="artifacts/$target.log"
    if "${fuzz[@]}" run --release --sanitizer "$sanitizer" "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 \
        -rss_limit_mb=2048 -timeout=10 -max_len=1048576 >"$log" 2>&1; then
        crashes=0
    else
        crashes=$(find "artifacts/$target" -type f | wc -l)
        status=1
    fi
    executions=$(grep -o 'number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    printf '%-16s %12s %8s\n' "$target" "${executions:-?}" "$crashes"
done
exit "$status"
