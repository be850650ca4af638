#!/usr/bin/env python3
"""The README's benchmark table, from the JSON lines of one suite run.

Usage:
    bash benchmarks/run_all.sh
    python3 benchmarks/readme_table.py build/release/bench-<time>.jsonl

Prints a Markdown table: one row per figure the README quotes, abide's value,
raw LMDB's, and the ratio (bold below 0.70, the issue's target). Rows read
the figures by the ids the programs write, so a renamed figure fails loudly
here (KeyError) instead of leaving a stale row.
"""
import json
import sys


def load(path):
    data = {}
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            for x in d["figures"]:
                data[(d["bench"], d["durability"], x["id"])] = x
    return data


def num(v):
    if v is None or v == "":
        return ""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


if len(sys.argv) != 2:
    sys.exit(__doc__)
data = load(sys.argv[1])


def row(label, bench, dur, fid, unit, commits=None, extra="", shown=None):
    """One figure; `commits` adds that figure's commits to the label, `shown`
    overrides the durability column (a setup that ran unsynced)."""
    x = data[(bench, dur, fid)]
    if commits:
        c = data[(bench, dur, commits)]["abide"]
        label += f" ({c:.3g} {extra or 'commits/run'})"
    r = x.get("ratio")
    rs = "" if r is None else (f"**{r:.2f}**" if r < 0.70 else f"{r:.2f}")
    print(f"| {label} | {shown or dur} | {unit} | {num(x['abide'])} | {num(x.get('baseline'))} | {rs} |")


print("| question | durability | unit | abide | raw LMDB | abide / LMDB |")
print("| --- | --- | --- | --: | --: | --: |")
R = "refund"
PHASES = (("start → waiting", "start_to_waiting", "start_batch"),
          ("decision → completed", "decision_to_completed", "signal_batch"))


def synced_and_unsynced(label, fid, synced_detail=""):
    """A refund rate both ways; the synced row also names its commits per run."""
    row(label + synced_detail, R, "synced", fid, "runs/s", fid + "_commits")
    row(label, R, "unsynced", fid, "runs/s")


for phase, fid, call in PHASES:
    synced_and_unsynced(f"refund: {phase}, 256 in flight ({call} + poll)", f"{fid}_w256")
for phase, fid, _ in PHASES:
    synced_and_unsynced(f"refund: {phase}, 256 in flight, 2 host threads", f"{fid}_w256_hosts2",
                        " (batches of 128, each thread polls)")
for phase, fid, _ in PHASES:
    synced_and_unsynced(f"refund: {phase}, 1 in flight", f"{fid}_w1")
for phase, fid, _ in PHASES:
    for p in ("p50", "p99"):
        row(f"refund: {phase} latency {p}, single run", R, "synced", f"{fid}_{p}", "ms")
row("refund: decision → completed, 8 threads call signal(), one thread polls", R, 'synced', 'decision_to_completed_threads8', 'runs/s', 'decision_to_completed_threads8_commits')
row("refund: decision → completed, 8 threads call signal(), one thread polls", R, 'unsynced', 'decision_to_completed_threads8', 'runs/s', 'decision_to_completed_threads8_commits')
row("step: first execution (one commit per step)", 'step', 'synced', 'first_ns_per_step', 'ns/step')
row("step: first execution (one commit per step)", 'step', 'unsynced', 'first_ns_per_step', 'ns/step')
row("step: first execution, the run's input a 100 KiB document", 'step', 'synced', 'document_ns_per_step', 'ns/step', 'document_bytes_per_step', 'bytes written per step')
row("step: first execution, the run's input a 100 KiB document", 'step', 'unsynced', 'document_ns_per_step', 'ns/step', 'document_bytes_per_step', 'bytes written per step')
row("step: replay after reopen with cache_size 0 (baseline: reading the journal + the completion commit)", 'step', 'unsynced', 'replay_ns_per_step', 'ns/step')
row("replay: resume a run of 10 steps after reopen (baseline: reading its journal + the completion commit)", 'replay', 'synced', 'replay_10', 'entries/s')
row("replay: resume a run of 100 steps", 'replay', 'synced', 'replay_100', 'entries/s')
row("replay: resume a run of 1,000 steps", 'replay', 'synced', 'replay_1000', 'entries/s')
row("replay: resume a run of 10,000 steps", 'replay', 'synced', 'replay_10000', 'entries/s')
W='waiting'
row("waiting: open a database of 1,000,000 waiting runs", W, 'synced', 'open_ms', 'ms')
row("waiting: open a database of 1,000 waiting runs", W, 'synced', 'open_small_ms', 'ms')
row("waiting: bytes on disk per waiting run (1,000,000 runs)", W, 'synced', 'bytes_per_run', 'bytes')
row("waiting: process RSS after opening it", W, 'synced', 'rss_open_mib', 'MiB')
row("waiting: process RSS after the queries and one decision", W, 'synced', 'rss_queries_mib', 'MiB')
row("waiting: fibers the cache keeps after parking 1,000,000 runs through one engine (cache_size 1,024)", W, 'synced', 'setup_cached_runs', 'runs', shown='unsynced')
row("waiting: that process's anonymous memory (heap, stacks; not LMDB's map) then", W, 'synced', 'setup_anon_rss_mib', 'MiB', shown='unsynced')
row("waiting: the same after parking 1,000 runs", W, 'synced', 'setup_anon_rss_small_mib', 'MiB', shown='unsynced')
row("waiting: anonymous memory with 1,000 parked runs whose input is a 100 KiB document, all cached", W, 'synced', 'documents_anon_rss_mib', 'MiB', shown='unsynced')
row("waiting: list the 100 oldest waiting approvals", W, 'synced', 'list_100_ms', 'ms')
row("waiting: status() of one run", W, 'synced', 'status_us', 'us')
row("waiting: deliver one decision and poll it to completion", W, 'synced', 'decide_one_ms', 'ms', 'decide_one_commits', 'commits')
fs = data[('timers','synced','fire_seconds')]['abide']
row(f"timers: one poll() firing 100,000 due timeouts (runs to completion; {fs:.3g} s)", 'timers', 'synced', 'fire_per_s', 'timeouts/s')
row("timers: poll() with nothing to do, 100,000 runs waiting", 'timers', 'synced', 'idle_poll_ns', 'ns/poll')
row("timers: next_deadline()", 'timers', 'synced', 'next_deadline_ns', 'ns/call')
for s, p in [(1,1),(2,1),(4,1),(8,1),(2,2),(8,2)]:
    th = lambda n, w: f"{n} {w}{'s' if n > 1 else ''}"
    row(f"concurrency: {th(s,'signalling thread')}, {th(p,'polling thread')}", 'concurrency', 'synced', f's{s}_p{p}', 'decisions/s', f's{s}_p{p}_commits', 'commits/decision')
