// bench_timers: how fast do due timeouts fire, and what does an idle poll cost?
//
// Setup (untimed): N runs (default 100,000) wait for a signal with a 1-hour
// timeout, under an injected EngineOptions::clock that stands still. Measured:
//   * an idle poll (nothing ready, nothing due) with the N runs waiting:
//     ns per poll() over many iterations; next_deadline() likewise. Reference:
//     raw LMDB's minimum for the same question (one read transaction reading
//     the first key of timers and of ready; of timers alone);
//   * then the clock is advanced 2 hours and ONE poll() is timed: it fires all
//     N timeouts and runs every timed-out run to completion. Against raw LMDB
//     replaying the same write transactions (recorded on a twin engine, so
//     the timed poll runs with no write tap: see run_twin).
#include "common.hpp"

#include <fmt/format.h>

#include <stdexcept>

using namespace abide_bench;

namespace {

constexpr const char* workflow = "timed_approval";
constexpr const char* signal = "approval";

std::string timed_approval(abide::Context& ctx, const std::int64_t& i) {
    auto d = ctx.wait_for_signal<Decision>(signal, std::chrono::hours(1), {{"request", i}});
    return d ? d->status : "timed_out";
}

void expect(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

double ns_per(double seconds, std::size_t n) { return seconds * 1e9 / static_cast<double>(n); }

void measure(const Args& args, const Scratch& scratch, std::size_t n, std::size_t iterations, Report& report) {
    // Twin engines (see run_twin): `recorded` feeds the baseline, `timed` is timed.
    const fs::path db = scratch.file("timers.db");
    SteppedClock clock;
    auto options = engine_options(db, args.durability);
    options.clock = clock.clock();
    abide::Engine recorded(options);
    options.path = scratch.file("timers-timed.db");
    abide::Engine engine(options);  // the timed one

    // Setup: N waiting runs with due-in-an-hour timeouts, in each engine.
    for (abide::Engine* e : {&recorded, &engine}) {
        e->define(workflow, timed_approval).signal<Decision>(signal);
        std::vector<abide::StartRequest> batch;
        const std::size_t window = 8192;
        for (std::size_t begin = 0; begin < n; begin += window) {
            const std::size_t end = std::min(n, begin + window);
            batch.clear();
            for (std::size_t i = begin; i < end; ++i)
                batch.push_back({workflow, static_cast<std::int64_t>(i), {.run_id = fmt::format("t-{:07}", i)}});
            (void)e->start_batch(batch);
            expect(e->poll().waiting == end - begin, "setup: not every run reached its wait");
        }
    }

    // ---- idle poll and next_deadline, N runs waiting ----
    Mirror mirror(scratch.file("timers-baseline.db"), args);
    mirror.seed(db);
    {
        Stopwatch sw;
        for (std::size_t i = 0; i < iterations; ++i) {
            auto r = engine.poll();
            if (r.runs_advanced != 0 || r.timers_fired != 0) throw std::runtime_error("the idle poll did something");
        }
        const Elapsed idle = sw.elapsed();
        sw.start();
        for (std::size_t i = 0; i < iterations; ++i) (void)mirror.first_keys({Db::timers, Db::ready});
        const double raw_idle = sw.wall();
        report.add("idle_poll_ns", "poll() with nothing to do (" + std::to_string(n) + " runs waiting)", "ns/poll",
                   Better::lower, ns_per(idle.wall, iterations), ns_per(raw_idle, iterations));
        report.add("idle_poll_cpu_ns", "poll() with nothing to do: CPU time", "ns/poll", Better::lower,
                   ns_per(idle.cpu, iterations));

        sw.start();
        std::optional<abide::TimePoint> d;
        for (std::size_t i = 0; i < iterations; ++i) d = engine.next_deadline();
        const double next = sw.wall();
        expect(d.has_value(), "next_deadline: none");
        sw.start();
        for (std::size_t i = 0; i < iterations; ++i) (void)mirror.first_keys({Db::timers});
        const double raw_next = sw.wall();
        report.add("next_deadline_ns", "next_deadline()", "ns/call", Better::lower, ns_per(next, iterations),
                   ns_per(raw_next, iterations));
    }

    // ---- advance the clock past every deadline; one poll fires them all ----
    clock.advance(std::chrono::hours(2));
    Elapsed fire;
    TwinResult twin = run_twin(recorded, engine, [&](abide::Engine& e, bool) {
        Stopwatch sw;
        auto r = e.poll();
        fire = sw.elapsed();
        expect(r.timers_fired == n, fmt::format("fired {} of {} timers", r.timers_fired, n));
        expect(r.completed == n, fmt::format("{} of {} timed-out runs completed", r.completed, n));
        return fire.wall;
    });
    const Recording& rec = twin.recording;
    const Replay base = mirror.replay(rec);
    const double dn = static_cast<double>(n);
    report.add("fire_per_s", "due timeouts fired and run to completion by one poll()", "timeouts/s", Better::higher,
               dn / fire.wall, dn / base.wall);
    report.add("fire_seconds", "that poll()", "s", Better::lower, fire.wall, base.wall);
    report.add("fire_cpu_us", "that poll(): CPU time per timeout", "us", Better::lower, fire.cpu * 1e6 / dn,
               base.cpu * 1e6 / dn);
    report.add("fire_commits", "that poll(): commits", "commits", Better::lower, static_cast<double>(rec.commits()));
}

int body(int argc, char** argv) {
    Args args = Args::parse(argc, argv, "due timeouts fired by one poll; the cost of an idle poll and next_deadline",
                            {"runs", "iterations"});
    const auto n = static_cast<std::size_t>(args.number("runs", 100000, 10000));
    const auto iterations = static_cast<std::size_t>(args.number("iterations", 100000, 10000));
    Report report("timers", "firing due timeouts; idle polls", args);
    report.param("runs", n);
    report.param("idle_iterations", iterations);
    Scratch scratch(args);
    for (int rep = 0; rep < args.reps; ++rep) measure(args, scratch, n, iterations, report);
    report.note("the fired runs wait in wait_for_signal with a 1-hour timeout; the timed poll fires every timeout "
                "and runs each run on to completion (most fibers are not cached: cache_size is 1024)");
    report.note("the idle-poll and next_deadline baselines are raw LMDB's minimum reads for the same answer "
                "(one read transaction), not a replay of abide's reads");
    report.print();
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_main(body, argc, argv); }
