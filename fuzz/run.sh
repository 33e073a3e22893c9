#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), from seed
# corpora that testdata generates, and prints a line per target: executions
# run and crashes found. Exit 1 if any target crashed (inputs in
# fuzz/artifacts/<target>/, libFuzzer's log in fuzz/artifacts/<target>.log).
#
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# -Z flags. The address sanitizer is used when its runtime is there;
# MINEHOUND_FUZZ_SANITIZER=none turns it off (faster, panics still caught).
#
# The detector target links yara-x, whose wasmtime and cranelift would cost
# more to build instrumented than everything else here: it is built on its
# own (feature `detector` only, in target/detector), through rustc-wrapper.sh,
# which builds the code no input reaches cheaply, and without a sanitizer
# unless MINEHOUND_FUZZ_DETECTOR_SANITIZER names one (see README.md).
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
sanitizer="${MINEHOUND_FUZZ_SANITIZER:-address}"
detector_sanitizer="${MINEHOUND_FUZZ_DETECTOR_SANITIZER:-none}"
build=(--release --sanitizer "$sanitizer")
detector_build=(--release --sanitizer "$detector_sanitizer"
    --no-default-features --features detector --target-dir "$PWD/target/detector")
fuzz=(cargo fuzz)
detector_fuzz=(env RUSTC_WRAPPER="$PWD/rustc-wrapper.sh" cargo fuzz)

# Seeds: small valid inputs of every kind, from the testdata builders. The
# detector sees any file: it starts from the seeds of the other file targets.
(cd .. && cargo run --release --quiet -p minehound-testdata -- fuzz-seeds fuzz/corpus)
mkdir -p corpus/detector
for from in elf config_file allowlist nested_archive; do
    for seed in corpus/"$from"/seed-*; do
        cp "$seed" "corpus/detector/$from-${seed##*/}"
    done
done
"${fuzz[@]}" build "${build[@]}"
"${detector_fuzz[@]}" build "${detector_build[@]}" detector

status=0
printf '%-16s %12s %8s\n' target executions crashes
for target in $("${fuzz[@]}" list); do
    mkdir -p "artifacts/$target"
    log="artifacts/$target.log"
    if [[ $target == detector ]]; then
        run=("${detector_fuzz[@]}" run "${detector_build[@]}")
    else
        run=("${fuzz[@]}" run "${build[@]}")
    fi
    if "${run[@]}" "$target" -- \
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
