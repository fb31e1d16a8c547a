#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]`
# (default 25 s each, every target). Used by .ci/run; see docs/testing.md.
# `fuzz/run.sh replay [TARGET...]` instead runs each committed corpus input once, one process
# per input under a 20 s bound, and names every input that fails, is slow or hangs.
#
# Pass condition (libFuzzer options below): no panic, no stack overflow, no input taking
# more than 5 s (-timeout=5; FUZZ_UNIT_TIMEOUT=N changes it), no more than 2 GiB resident
# (-rss_limit_mb=2048). Not 1 s: the `source` seed of examples/attention.ein compiles its
# 61 functions (with the parallel loops' task functions and the micro-kernels; count from
# `einc build --emit asm`) through coverage-instrumented Cranelift, which takes 0.9 s of
# wall and 1.6 s of CPU time on an idle Zen 4 core pair, so 1 s failed on a loaded 2-core CI
# host. Hangs are still caught, as before.
#
# Every target also runs under an outer wall-clock bound (2 x SECONDS + 60 s), and reaching
# it fails the run: libFuzzer's own timeout is not enough. Its alarm handler allocates, and
# without a sanitizer's allocator (glibc malloc) it deadlocks when the alarm lands inside
# malloc; on a hanging input that happened about once in fifteen runs, and the fuzzer then
# never reached its -max_total_time check (issue #13: tensor_ir ran 12 minutes past it).
#
# Builds with `--sanitizer none` on the stable toolchain: the targets are safe Rust (plus the
# JIT-compiled kernels, which no sanitizer instruments), so AddressSanitizer, which needs a
# nightly compiler, would add little; kernel memory safety is tested with guard pages
# (tests/abi_safety.rs). New inputs go to a scratch corpus, so the committed seeds
# (fuzz/corpus/) are only read; a crashing input is written to fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=fuzz
if [ "${1:-}" = replay ]; then
    mode=replay
    shift
fi
seconds=25
if [ $mode = fuzz ] && [ $# -gt 0 ]; then
    seconds="$1"
    shift
fi
unit_timeout="${FUZZ_UNIT_TIMEOUT:-5}"
bound=$((2 * seconds + 60))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(source einsum tensor_ir loop_ir npy programs)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build --sanitizer none
# The targets run as built here, not through `cargo fuzz run`, so nothing is rebuilt inside
# the time bounds below.
bin="${CARGO_TARGET_DIR:-fuzz/target}/$(rustc -vV | sed -n 's/^host: //p')/release"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

if [ $mode = replay ]; then
    failed=0
    for t in "${targets[@]}"; do
        n=0
        for input in fuzz/corpus/"$t"/*; do
            n=$((n + 1))
            set +e
            out=$(timeout -k 5 20 "$bin/$t" -runs=1 -timeout="$unit_timeout" \
                -rss_limit_mb=2048 -artifact_prefix="$scratch/" "$input" 2>&1)
            rc=$?
            set -e
            if [ $rc -ne 0 ]; then
                failed=$((failed + 1))
                printf '%s\n' "$out" | tail -20 >&2
                echo "fuzz: $t: FAILED on $input (exit $rc; 70 = slower than ${unit_timeout}s," \
                    "124/137 = hung)" >&2
            fi
        done
        echo "fuzz: $t: replayed $n committed inputs"
    done
    [ $failed -eq 0 ] || { echo "fuzz: $failed committed inputs failed" >&2; exit 1; }
    echo "fuzz: every committed input passes"
    exit 0
fi

for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    set +e
    # SIGKILL 10 s after the SIGTERM, should the fuzzer's SIGTERM handler deadlock as its
    # alarm handler can.
    mkdir -p "fuzz/artifacts/$t"
    timeout -k 10 "$bound" "$bin/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$seconds" -timeout="$unit_timeout" -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 "$scratch/$t" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        tail -30 "$log" >&2
        echo "fuzz: $t: FAILED: still running after ${bound}s, killed (exit $rc). An input hangs" \
            "and libFuzzer did not report it; the log above shows the last unit (replay the" \
            "corpus one input at a time with -runs=1 to find it, docs/testing.md)" >&2
        exit 1
    fi
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
