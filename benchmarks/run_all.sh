#!/usr/bin/env bash
# Builds abide in Release (build/release) and runs every benchmark at full
# size, one after the other. Each program prints its table; the JSON lines go
# to build/release/bench-<UTC time>.jsonl (one line per program run).
#
#   bash benchmarks/run_all.sh            # full sizes (several minutes; bench_waiting
#                                         # creates 1,000,000 runs, about 1.5 GB on disk)
#   bash benchmarks/run_all.sh --quick    # any options are passed to every program
#
# Timings on a shared machine are noisy: every program takes each measurement
# twice (--reps=2) and reports the better one.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
abide_install_deps

build="${ABIDE_BENCH_BUILD_DIR:-build/release}"
programs=(bench_refund bench_step bench_replay bench_waiting bench_timers bench_concurrency)

echo "==> Configuring Release in $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
echo "==> Building the benchmarks (-j2)"
cmake --build "$build" -j2 --target "${programs[@]}"

results="$build/bench-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$results"
# Each entry: program and its options (the durability mode is part of the question).
runs=(
  "bench_refund"
  "bench_refund --unsynced"
  "bench_step"
  "bench_step --unsynced"
  "bench_replay"
  "bench_waiting"
  "bench_timers"
  "bench_concurrency"
)
status=0
for entry in "${runs[@]}"; do
  read -r -a cmd <<< "$entry"
  echo "==> ${cmd[*]} $*"
  if ! "$build/benchmarks/${cmd[0]}" "${cmd[@]:1}" "$@" --json-out="$results"; then
    echo "==> FAILED: ${cmd[*]}" >&2
    status=1
  fi
done
echo "==> JSON lines: $results"
exit "$status"
