#!/usr/bin/env bash
# Configures and builds the `fuzz` preset (clang, libFuzzer, ASan+UBSan) in
# build/fuzz, then runs each fuzz target from its seed corpus.
#
#   bash tests/reliability/fuzz/run_fuzzers.sh            # CI: 1,000,000 runs per target
#   ABIDE_FUZZ_RUNS=20000000 bash .../run_fuzzers.sh      # longer
#   ABIDE_FUZZ_SECONDS=3600 bash .../run_fuzzers.sh       # an hour per target (runs unbounded)
#   ABIDE_FUZZ_TARGETS="records" bash .../run_fuzzers.sh  # some targets only
#
# A target passes when it finished its runs (or its time) without a crash.
# New corpus entries go to a scratch directory, not into the repository; a
# crash is kept under $ABIDE_FUZZ_OUT (default: a directory this script names
# at the end). Fix the bug, then copy the crash file into crashes/<target>/ so
# that the fuzz_replay_<target> ctest test replays it from then on.
# Prints per target: executions, seconds, crashes; last line "N passed, N failed".
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="$root/build/fuzz"
runs="${ABIDE_FUZZ_RUNS:-1000000}"
seconds="${ABIDE_FUZZ_SECONDS:-}"
targets="${ABIDE_FUZZ_TARGETS:-signal_payload records cli_args}"

# Per-target input size limits: payloads and command lines are short, and
# short inputs keep each target near its fastest (see each target's header).
declare -A max_len=([signal_payload]=1024 [records]=4096 [cli_args]=512)

cmake --preset fuzz -S "$root" >/dev/null || { echo "configure failed"; exit 2; }
build_targets=()
for t in $targets; do build_targets+=("abide_fuzz_$t"); done
cmake --build "$build" --target "${build_targets[@]}" -j2 || { echo "build failed"; exit 2; }

out="${ABIDE_FUZZ_OUT:-$(mktemp -d /tmp/abide-fuzz-XXXXXX)}"
scratch="$(mktemp -d /dev/shm/abide-fuzz-run-XXXXXX)"  # databases and scratch files of the targets
trap 'rm -rf "$scratch"' EXIT

passed=0
failed=0
for t in $targets; do
  corpus="$out/corpus-$t"  # libFuzzer adds new inputs to the first directory
  mkdir -p "$corpus"
  limits=(-runs="$runs")
  [[ -n "$seconds" ]] && limits=(-max_total_time="$seconds")
  log="$out/$t.log"
  # detect_leaks=0: the payload target keeps one engine across inputs, which
  # libFuzzer's per-input leak check takes for leaks (and spends most of its
  # time scanning). The replay tests run under LSan in the asan preset.
  start=$(date +%s.%N)
  ABIDE_FUZZ_DIR="$scratch" \
  ASAN_OPTIONS="detect_leaks=0:detect_stack_use_after_return=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$build/tests/reliability/fuzz/abide_fuzz_$t" "${limits[@]}" -max_len="${max_len[$t]}" \
      -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$out/$t-" \
      "$corpus" "$here/corpus/$t" >"$log" 2>&1
  status=$?
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find "$out" -maxdepth 1 -name "$t-*" -type f | wc -l)
  printf '%-15s executions %-9s time %6.1f s  crashes %s\n' "$t" "${executions:-?}" "$elapsed" "$crashes"
  if [[ $status -eq 0 && $crashes -eq 0 ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "  FAILED: exit $status; log $log"
    grep -m3 -E 'runtime error|property broken|ERROR: ' "$log" | sed 's/^/  /'
    find "$out" -maxdepth 1 -name "$t-*" -type f | sed 's/^/  crash file: /'
  fi
done
echo "logs, corpora and crash files: $out"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
