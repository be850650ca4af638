#!/usr/bin/env python3
"""Time the synced commits of bench_refund: abide's against the baseline's.

bench_refund's ratios assume abide and its raw-LMDB baseline pay the same for
each synced commit, since the baseline replays abide's own transactions. This
checks that assumption from the system calls. Run bench_refund under strace:

  strace -f -T -e trace=openat,fdatasync,fsync,pwrite64,pwritev -o /tmp/refund.strace \\
      build/release/benchmarks/bench_refund --single=1 --threads=1 --hosts=1 --reps=1
  python3 benchmarks/sync_times.py /tmp/refund.strace

Each phase runs on three files in turn: refund.db (the engine whose writes are
recorded), refund-timed.db (the engine that is timed) and refund-baseline.db
(raw LMDB replaying the recorded writes). A stretch of consecutive calls on one
file is one phase's work on it; the table shows, for each stretch with more
than a few syncs, the data syncs (fdatasync) and the meta-page writes (LMDB's
O_DSYNC pwrite), their count and mean time. strace slows every call it
traces, so compare the rows with each other, not with bench_refund's figures.
"""
import re
import sys

CALL = re.compile(r'^\d+ +(\w+)\((.*)\) += (-?\d+).*<([\d.]+)>$')
DB_FILES = ("refund.db", "refund-timed.db", "refund-baseline.db")


def stretches(lines):
    """Yields one dict per run of consecutive calls on the same database file."""
    fds = {}  # fd -> (file name, opened with O_DSYNC)
    current = None
    for line in lines:
        m = CALL.match(line.strip())
        if not m:
            continue
        call, args, ret, seconds = m.group(1), m.group(2), int(m.group(3)), float(m.group(4))
        if call == "openat":
            path = re.search(r'"([^"]*)"', args)
            if path and ret >= 0:
                fds[ret] = (path.group(1).rsplit("/", 1)[-1], "O_DSYNC" in args)
            continue
        fd = int(args.split(",", 1)[0])
        name, dsync = fds.get(fd, ("?", False))
        if name not in DB_FILES:
            continue
        if current is None or current["file"] != name:
            current = {"file": name, "syncs": [], "meta": [], "writes": 0}
            yield current
        if call == "fdatasync":  # (an fsync is the baseline copying the file, before it replays)
            current["syncs"].append(seconds)
        elif dsync:
            current["meta"].append(seconds)
        else:
            current["writes"] += 1


def mean_us(values):
    return sum(values) / len(values) * 1e6 if values else 0.0


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: sync_times.py STRACE_OUTPUT (see the comment at the top for the strace command)")
    with open(sys.argv[1]) as f:
        rows = [s for s in list(stretches(f)) if len(s["syncs"]) > 5]  # filled as the file is read
    print(f"{'file':<20} {'syncs':>7} {'sync mean µs':>13} {'sync total ms':>14} {'meta mean µs':>13} {'page writes':>12}")
    for s in rows:
        print(f"{s['file']:<20} {len(s['syncs']):>7} {mean_us(s['syncs']):>13.0f} {sum(s['syncs']) * 1e3:>14.1f} "
              f"{mean_us(s['meta']):>13.0f} {s['writes']:>12}")


if __name__ == "__main__":
    main()
