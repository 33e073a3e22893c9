#!/usr/bin/env bash
# RUSTC_WRAPPER for the detector target's build (run.sh sets it). cargo-fuzz
# passes its flags (coverage instrumentation, one codegen unit) in RUSTFLAGS
# to every crate, and Cargo profiles cannot undo them; built that way, yara-x
# and the WebAssembly engine under it take about 20 minutes on two cores.
#
# - The rule compiler and the engine (cranelift, wasmtime, wasm tools, the
#   YARA parser) run once, at start-up, on the bundled rules, or not at all:
#   no input reaches them, so their coverage is noise. They are built without
#   instrumentation or debug info, in 16 codegen units, at opt-level 0 (the
#   rules still compile in a fraction of a second), and the runtime part of
#   wasmtime at opt-level 1.
# - yara-x itself (scanner, conditions, pattern search) keeps its coverage
#   but gets 16 codegen units.
# - Everything else (minehound, goblin, memchr...) is built as cargo-fuzz asks.
set -euo pipefail
rustc="$1"
shift
crate=
prev=
for arg in "$@"; do
    if [[ $prev == --crate-name ]]; then
        crate=$arg
        break
    fi
    prev=$arg
done
# Drops cargo-fuzz's coverage flags; rustc takes the last of repeated -C
# options.
uninstrumented() {
    local opt_level=$1
    shift
    local args=()
    for arg in "$@"; do
        case "$arg" in
        -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage-* | \
            -Cllvm-args=-simplifycfg-branch-fold-threshold=0) ;;
        *) args+=("$arg") ;;
        esac
    done
    exec "$rustc" "${args[@]}" -Copt-level="$opt_level" -Cdebuginfo=0 -Ccodegen-units=16
}
case "$crate" in
# The engine's runtime: every scan calls into it.
wasmtime | wasmtime_internal_core | wasmtime_internal_fiber | wasmtime_internal_unwinder)
    uninstrumented 1 "$@"
    ;;
# What compiles the rules, once.
cranelift_* | wasmtime_* | pulley_* | regalloc2 | wasmparser | wasm_encoder | \
    wasmprinter | walrus | gimli | object | yara_x_parser | rowan | logos | protobuf)
    uninstrumented 0 "$@"
    ;;
yara_x) exec "$rustc" "$@" -Ccodegen-units=16 ;;
*) exec "$rustc" "$@" ;;
esac
