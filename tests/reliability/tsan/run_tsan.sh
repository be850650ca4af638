#!/usr/bin/env bash
# ThreadSanitizer build of the host-thread API: configures the `tsan` preset
# (clang 14, -fsanitize=thread) in build/tsan, builds abide_tests, and runs the
# threaded test cases (tag [threads]: signals from several threads while
# another polls; two pollers at once, so cached fibers move between threads).
#
#   bash tests/reliability/tsan/run_tsan.sh                  # CI: each case once
#   ABIDE_TSAN_REPEAT=20 bash tests/reliability/tsan/run_tsan.sh   # each case 20 times
#   ABIDE_TSAN_TAGS="" bash ...                               # the whole suite
#
# A run passes when abide_tests passes and TSan reports nothing (any report
# fails it: halt_on_error). No suppressions. Last line: "N passed, N failed".
#
# Why clang: on this machine g++ 12's TSan build of abide_tests crashed
# (corrupted return values) even in single-threaded fiber tests, with the old
# and the new fiber annotations alike; clang 14's works with Boost.Context's
# fcontext and the fiber annotations of src/fiber.cpp.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="$root/build/tsan"
repeat="${ABIDE_TSAN_REPEAT:-1}"
tags="${ABIDE_TSAN_TAGS-[threads]}"

cmake --preset tsan -S "$root" >/dev/null || { echo "configure failed"; exit 2; }
cmake --build "$build" --target abide_tests -j2 || { echo "build failed"; exit 2; }

export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
cases=$("$build/tests/abide_tests" $tags --list-test-names-only | grep -c .)
passed=0
failed=0
start=$(date +%s.%N)
for ((i = 1; i <= repeat; i++)); do
  log="$(mktemp /tmp/abide-tsan-XXXXXX.log)"
  if "$build/tests/abide_tests" $tags >"$log" 2>&1 && ! grep -q "WARNING: ThreadSanitizer" "$log"; then
    passed=$((passed + 1))
    rm -f "$log"
  else
    failed=$((failed + 1))
    echo "FAILED: round $i of $repeat; output kept in $log"
    grep -m5 -E "WARNING: ThreadSanitizer|SUMMARY|FAILED|failed" "$log" | sed 's/^/  /'
  fi
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
printf 'tsan: %s round(s) of %s test case(s) %s in %.1f s\n' "$repeat" "$cases" "${tags:-(all)}" "$elapsed"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
