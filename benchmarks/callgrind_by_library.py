#!/usr/bin/env python3
"""Sums a callgrind profile's instructions by where they were spent.

    callgrind_annotate --threshold=100 callgrind.out.<pid> | \
        python3 benchmarks/callgrind_by_library.py --runs 10000

Reads callgrind_annotate's flat listing (self cost per function) and prints,
per group, the instructions per run and the share of the total: LMDB, the
C++ unwinder (libgcc_s and the personality routine), malloc, memcmp,
memcpy/memset, nlohmann::json, Boost.Context, abide's own functions, other
libstdc++ and libc code, and the rest (the benchmark's own code, fmt).
The groups are decided by the file or library name callgrind reports for
each function, so the figures in README.md's benchmark notes come from the
profile_refund commands plus this script.
"""
import argparse
import re
import sys

# First match wins: (group, test on the function's line).
GROUPS = [
    ("lmdb", lambda f: "liblmdb" in f),
    ("unwinder", lambda f: "libgcc_s" in f or "personality" in f or "__cxa_" in f),
    ("malloc", lambda f: "malloc" in f or "operator new" in f or "operator delete" in f),
    ("memcmp", lambda f: "memcmp" in f),
    ("memcpy/memset", lambda f: "memmove" in f or "memcpy" in f or "memset" in f),
    ("nlohmann::json", lambda f: "nlohmann" in f),
    ("boost.context", lambda f: "boost_context" in f),
    ("abide", lambda f: "abide::" in f),
    ("libstdc++ other", lambda f: "libstdc++" in f),
    ("libc other", lambda f: "libc.so" in f),
]
LINE = re.compile(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, required=True, help="runs the profiled phase took through")
    args = parser.parse_args()
    totals, program_total = {}, None
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        cost, function = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in function:
            program_total = cost
            continue
        group = next((g for g, test in GROUPS if test(function)), "other")
        totals[group] = totals.get(group, 0) + cost
    if program_total is None:
        sys.exit("no PROGRAM TOTALS line: pipe callgrind_annotate's output in")
    print(f"{'group':<18} {'instr/run':>10} {'share':>7}")
    for group, cost in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"{group:<18} {cost / args.runs:>10,.0f} {100 * cost / program_total:>6.1f}%")
    print(f"{'total':<18} {program_total / args.runs:>10,.0f}")


if __name__ == "__main__":
    main()
