#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each
# (default 10) and prints each one's executions. Every target starts from
# its kept corpus, fuzz/corpus/TARGET (small, in the repository); the
# protobuf target also from kubectl's recorded bodies. New inputs go to a
# scratch directory unless FUZZ_KEEP=1, which adds them to the kept corpus
# (minimize it afterwards with `cargo fuzz cmin TARGET`). FUZZ_SEED=N fixes
# libFuzzer's seed, so a run (CI's) is repeatable. A crash, panic or failed
# property stops the run with the input in fuzz/artifacts/TARGET.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]    (no TARGET: all of them)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO/fuzz"
secs="${1:-10}"
shift || true

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz missing, running cargo install --locked cargo-fuzz"
    cargo install --locked cargo-fuzz --version 0.13.2
fi
# cargo-fuzz passes nightly-only -Z flags (sanitizer coverage) to rustc;
# the stable toolchain takes them with RUSTC_BOOTSTRAP, set here for this
# build only (every crate it compiles), never for the project's own. The
# code under test forbids unsafe code, so no address sanitizer: debug
# assertions catch overflows instead.
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none --debug-assertions)
cargo fuzz build "${flags[@]}"

if [ "$#" -eq 0 ]; then
    listed="$(cargo fuzz list)"
    [ -n "$listed" ] || { echo "fuzz: cargo fuzz list named no target"; exit 1; }
    mapfile -t targets <<<"$listed"
else
    targets=("$@")
fi
seed=()
if [ -n "${FUZZ_SEED:-}" ]; then
    seed=(-seed="$FUZZ_SEED")
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    kept="corpus/$t"
    mkdir -p "$kept"
    dirs=("$kept")
    if [ "${FUZZ_KEEP:-0}" != 1 ]; then
        mkdir -p "$scratch/$t"
        dirs=("$scratch/$t" "$kept")
    fi
    case "$t" in
        protobuf) dirs+=("$REPO/core/tests/fixtures/protobuf") ;;
    esac
    log="$scratch/$t.log"
    if ! cargo fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${seed[@]}" >"$log" 2>&1; then
        # The failed property's message, then the input libFuzzer saved.
        grep -A 6 'panicked at' "$log" || true
        tail -n 25 "$log"
        echo "fuzz: $t FAILED (input in fuzz/artifacts/$t)"
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo '?')
    echo "fuzz: $t: $runs executions in ${secs}s, coverage $cov, no failure"
done
