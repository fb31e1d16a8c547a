#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]`
# (default 25 s each, every target). Used by .ci/run; see docs/testing.md.
#
# Pass condition (libFuzzer options below): no panic, no stack overflow, no input taking
# more than 1 s (-timeout=1), no more than 2 GiB resident (-rss_limit_mb=2048).
#
# Builds with `--sanitizer none` on the stable toolchain: the targets are safe Rust (plus the
# JIT-compiled kernels, which no sanitizer instruments), so AddressSanitizer, which needs a
# nightly compiler, would add little; kernel memory safety is tested with guard pages
# (tests/abi_safety.rs). New inputs go to a scratch corpus, so the committed seeds
# (fuzz/corpus/) are only read; a crashing input is written to fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-25}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(source einsum tensor_ir loop_ir npy programs)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build --sanitizer none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    set +e
    cargo fuzz run --sanitizer none "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
    rss=$(grep -o "stat::peak_rss_mb: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
    echo "fuzz: $t: ${runs} inputs in ${seconds}s, peak RSS ${rss} MB"
    if [ $rc -ne 0 ]; then
        tail -60 "$log" >&2
        echo "fuzz: $t failed (exit $rc); the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz: every target ran ${seconds}s without a failure"
