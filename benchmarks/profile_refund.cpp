// profile_refund: the refund workload's batched phases alone, for a profiler.
//
// bench_refund measures many phases beside a raw-LMDB baseline; under a
// profiler that mixes everything. This program runs one phase, 256 runs in
// flight (start_batch or signal_batch, then poll), with no baseline and no
// report, inside a function of its own, so a profiler can count it alone:
//
//   cd build/release/benchmarks
//   valgrind --tool=callgrind --toggle-collect='*start_phase*' ./profile_refund --phase=start --runs=10000 --unsynced
//   valgrind --tool=callgrind --toggle-collect='*decide_phase*' ./profile_refund --phase=decide --runs=10000 --unsynced
//   valgrind --tool=callgrind --toggle-collect='*timeout_phase*' ./profile_refund --phase=timeout --runs=10000 --unsynced
//   callgrind_annotate --inclusive=yes callgrind.out.<pid>
//
// The timeout phase lets every waiting run's 7-day timeout pass (an injected
// clock moves 8 days) and polls until they have all timed out and completed:
// the timer path of bench_timers, on the refund workflow.
//
// The totals divided by --runs are instructions per run, and
//   callgrind_annotate --threshold=100 callgrind.out.<pid> |
//       python3 ../../../benchmarks/callgrind_by_library.py --runs 10000
// splits them by library (LMDB, the unwinder, malloc, JSON, abide...).
// --cache-size=N sets EngineOptions::cache_size (default 1,024, as in
// bench_refund). The start phase parks every run and evicts each one the
// cache has no room for, --runs minus --cache-size of them: the inclusive
// cost of abide::detail::RunInstance::unwind() divided by that number is the
// cost of evicting one parked run. (Not by its call count, which callgrind
// also counts outside the phase: the engine's destructor unwinds the runs
// still cached.) With N at least --runs nothing is evicted, and the
// difference in the totals is what eviction costs. With perf:
// `perf record -g` on the same command.
//
// The program prints the phase's wall time and its minor page faults, which
// an instruction count does not see: on a virtual machine each costs
// microseconds. Keeping every run's fiber (--cache-size at least --runs)
// saves the evictions' instructions but maps a new stack for each run, and
// its first touches fault.
#include "common.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>

using namespace abide_bench;

namespace {

constexpr std::size_t window = 256;

/// Starts runs w-0 .. w-(n-1), `window` at a time, and polls each batch to its wait.
[[gnu::noinline]] void start_phase(abide::Engine& engine, std::size_t n) { start_waiting_runs(engine, "w-", 0, n, window); }

/// Decides every run started by start_phase, `window` at a time, and polls each batch to completion.
[[gnu::noinline]] void decide_phase(abide::Engine& engine, const std::vector<std::vector<abide::SignalRequest>>& batches) {
    for (const auto& batch : batches) {
        (void)engine.signal_batch(batch);
        const auto polled = engine.poll();
        if (polled.completed != batch.size())
            throw std::runtime_error(fmt::format("{} of {} runs completed", polled.completed, batch.size()));
    }
}

/// Polls until the `n` runs whose timeouts are due have all completed.
[[gnu::noinline]] void timeout_phase(abide::Engine& engine, std::size_t n) {
    std::size_t completed = 0, fired = 0;
    for (;;) {
        const auto polled = engine.poll();
        completed += polled.completed;
        fired += polled.timers_fired;
        if (polled.runs_advanced == 0 && polled.timers_fired == 0) break;
    }
    if (completed != n || fired != n)
        throw std::runtime_error(fmt::format("{} timeouts fired and {} runs completed, of {}", fired, completed, n));
}

int body(int argc, char** argv) {
    Args args = Args::parse(argc, argv, "the refund workload's batched phases alone, for a profiler",
                            {"phase", "runs", "cache-size"});
    const auto runs = static_cast<std::size_t>(args.number("runs", 10000, 500));
    const auto phase = args.extra.count("phase") ? args.extra.at("phase") : std::string("start");
    if (phase != "start" && phase != "decide" && phase != "timeout")
        throw std::runtime_error("--phase is start, decide or timeout, not '" + phase + "'");
    Recorder::instance().uninstall();  // no baseline here: nothing to record, and the tap costs a call per write
    Scratch scratch(args);
    abide::EngineOptions options = engine_options(scratch.file("profile.db"), args.durability);
    options.cache_size = cache_size_option(args);
    // The engine's clock, moved by the timeout phase.
    SteppedClock clock;
    options.clock = clock.clock();
    abide::Engine engine(options);
    define_refund(engine);
    Stopwatch sw;
    long faults = minor_page_faults();
    if (phase == "start") {
        start_phase(engine, runs);
    } else if (phase == "timeout") {
        start_waiting_runs(engine, "w-", 0, runs, window);  // setup, outside timeout_phase
        clock.advance(std::chrono::hours(8 * 24));
        sw.start();
        faults = minor_page_faults();
        timeout_phase(engine, runs);
    } else {
        start_waiting_runs(engine, "w-", 0, runs, window);  // setup, outside decide_phase
        std::vector<std::vector<abide::SignalRequest>> batches;
        for (std::size_t begin = 0; begin < runs; begin += window) {
            batches.emplace_back();
            for (std::size_t i = begin; i < std::min(runs, begin + window); ++i)
                batches.back().push_back(abide::SignalRequest{refund_run_id("w-", i), refund_signal, decision_json(i),
                                                              fmt::format("d-{}", i)});
        }
        sw.start();
        faults = minor_page_faults();
        decide_phase(engine, batches);
    }
    const double seconds = sw.wall();
    faults = minor_page_faults() - faults;
    std::printf("%s: %zu runs in %.3f s (%s), %ld minor page faults\n", phase.c_str(), runs, seconds,
                std::string(durability_name(args.durability)).c_str(), faults);
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_main(body, argc, argv); }
