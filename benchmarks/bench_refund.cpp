// bench_refund: how fast does the refund workload move through abide?
//
// The workload (benchmarks/common.cpp): start, three steps, wait_for_signal
// for a decision (7-day timeout, metadata); then the decision, the
// issue_refund step, completion. Measured:
//   * runs/s from start to waiting: start_batch of the in-flight window, then
//     poll; with 256 in flight and with 1 in flight;
//   * runs/s from decision to completed: signal_batch of the window, then
//     poll; and with the decisions sent by 8 threads calling signal() while
//     one thread polls (concurrent callers share commits);
//   * both phases again with the window shared by --hosts=2 host threads, as
//     a service's workers would drive it (drive_window): each starts or
//     decides a batch of window/hosts runs when there is room, then polls.
//     While one thread's commit waits for its sync, the other runs its
//     workflows, which a single thread cannot do; the commits are smaller;
//     the baseline replays them as they were;
//   * latency p50/p99 of single runs (1 in flight), start->waiting and
//     decision->completed;
//   * commits per run (write_tap commits / runs).
// --cache-size=N sets EngineOptions::cache_size of both engines (default
// 1,024): how a bigger cache of parked fibers changes the figures.
// Each phase runs on twin engines from the same state (run_twin): the writes
// of the recorded one are replayed on raw LMDB as the baseline; the other is
// timed with no write tap installed, so abide's figure excludes the
// benchmark's recording.
#include "common.hpp"

#include <fmt/format.h>

#include <stdexcept>

using namespace abide_bench;

namespace {

struct Sizes {
    std::size_t runs;     // N, runs in the windowed and threaded phases
    std::size_t window;   // in flight
    std::size_t single;   // runs in the 1-in-flight phases
    std::size_t threads;  // signalling threads
    std::size_t hosts;    // host threads sharing the window
    std::size_t cache_size;  // EngineOptions::cache_size of both engines
};

void expect(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

std::vector<double> ms(const std::vector<double>& seconds) {
    std::vector<double> out;
    out.reserve(seconds.size());
    for (double s : seconds) out.push_back(s * 1e3);
    return out;
}

/// p50 and p99 of single-run latencies, beside the baseline's per-run replays.
void add_latency(Report& report, const std::string& id, const std::string& label, const std::vector<double>& latency,
                 const Replay& base) {
    for (int p : {50, 99})
        report.add(fmt::format("{}_p{}", id, p), fmt::format("{} latency p{}, single run", label, p), "ms",
                   Better::lower, percentile(ms(latency), p), percentile(ms(base.segment_seconds), p));
}

void add_rate(Report& report, const std::string& id, const std::string& label, std::size_t runs, double abide_s,
              const Replay& base, const Recording& rec) {
    const double n = static_cast<double>(runs);
    report.add(id, label, "runs/s", Better::higher, n / abide_s, n / base.wall);
    report.add(id + "_commits", label + ": commits per run", "commits", Better::lower,
               static_cast<double>(rec.commits()) / n);
}

void measure(const Args& args, const Scratch& scratch, const Sizes& z, Report& report) {
    // Twin engines (see run_twin): `recorded` feeds the baseline, `timed` is timed.
    const fs::path db = scratch.file("refund.db");
    Mirror mirror(scratch.file("refund-baseline.db"), args);
    auto options = [&](const fs::path& file) {
        abide::EngineOptions o = engine_options(file, args.durability);
        o.cache_size = z.cache_size;
        return o;
    };
    abide::Engine recorded(options(db));
    abide::Engine timed(options(scratch.file("refund-timed.db")));
    define_refund(recorded);
    define_refund(timed);
    const std::string w = std::to_string(z.window);

    // ---- start -> waiting, `window` in flight ----
    {
        std::vector<std::vector<abide::StartRequest>> batches;  // built before the clock starts
        for (std::size_t begin = 0; begin < z.runs; begin += z.window) {
            batches.emplace_back();
            for (std::size_t i = begin; i < std::min(z.runs, begin + z.window); ++i)
                batches.back().push_back(refund_start(i, refund_run_id("w-", i)));
        }
        mirror.seed(db);
        TwinResult r = run_twin(recorded, timed, [&](abide::Engine& engine, bool) {
            Stopwatch sw;
            for (const auto& batch : batches) {
                (void)engine.start_batch(batch);
                auto polled = engine.poll();
                expect(polled.waiting == batch.size(),
                       fmt::format("start: {} of {} runs waited", polled.waiting, batch.size()));
            }
            return sw.wall();
        });
        add_rate(report, "start_to_waiting_w" + w, "start->waiting, " + w + " in flight", z.runs, r.seconds,
                 mirror.replay(r.recording), r.recording);
    }
    // ---- decision -> completed, `window` in flight ----
    {
        std::vector<std::vector<abide::SignalRequest>> batches;  // built before the clock starts
        for (std::size_t begin = 0; begin < z.runs; begin += z.window) {
            batches.emplace_back();
            for (std::size_t i = begin; i < std::min(z.runs, begin + z.window); ++i)
                batches.back().push_back(abide::SignalRequest{refund_run_id("w-", i), refund_signal, decision_json(i),
                                                              fmt::format("d-{}", i)});
        }
        mirror.seed(db);
        TwinResult r = run_twin(recorded, timed, [&](abide::Engine& engine, bool) {
            Stopwatch sw;
            for (const auto& batch : batches) {
                auto results = engine.signal_batch(batch);
                for (const auto& s : results)
                    expect(s.outcome == abide::SignalOutcome::delivered, "signal_batch: " + s.message);
                auto polled = engine.poll();
                expect(polled.completed == batch.size(),
                       fmt::format("decide: {} of {} runs completed", polled.completed, batch.size()));
            }
            return sw.wall();
        });
        add_rate(report, "decision_to_completed_w" + w, "decision->completed, signal_batch, " + w + " in flight",
                 z.runs, r.seconds, mirror.replay(r.recording), r.recording);
    }
    // ---- the same two phases, `hosts` threads sharing the window of `window` in flight ----
    if (z.hosts > 1) {
        const std::size_t chunk = std::max<std::size_t>(1, z.window / z.hosts);
        std::vector<std::size_t> sizes;
        std::vector<std::vector<abide::StartRequest>> starts;  // built before the clock starts
        std::vector<std::vector<abide::SignalRequest>> decisions;
        for (std::size_t begin = 0; begin < z.runs; begin += chunk) {
            const std::size_t end = std::min(z.runs, begin + chunk);
            sizes.push_back(end - begin);
            starts.emplace_back();
            decisions.emplace_back();
            for (std::size_t i = begin; i < end; ++i) {
                starts.back().push_back(refund_start(i, refund_run_id("h-", i)));
                decisions.back().push_back(abide::SignalRequest{refund_run_id("h-", i), refund_signal,
                                                                decision_json(i), fmt::format("d-{}", i)});
            }
        }
        const std::string h = std::to_string(z.hosts);
        const std::string label = w + " in flight, " + h + " host threads with batches of " + std::to_string(chunk);
        mirror.seed(db);
        TwinResult started = run_twin(recorded, timed, [&](abide::Engine& engine, bool) {
            return drive_window(
                engine, z.runs, z.window, z.hosts, sizes,
                [&](std::size_t c) { (void)engine.start_batch(starts[c]); },
                [](const abide::PollResult& r) { return r.waiting; });
        });
        add_rate(report, "start_to_waiting_w" + w + "_hosts" + h, "start->waiting, " + label, z.runs, started.seconds,
                 mirror.replay(started.recording), started.recording);
        mirror.seed(db);
        TwinResult decided = run_twin(recorded, timed, [&](abide::Engine& engine, bool) {
            return drive_window(
                engine, z.runs, z.window, z.hosts, sizes,
                [&](std::size_t c) {
                    for (const auto& s : engine.signal_batch(decisions[c]))
                        expect(s.outcome == abide::SignalOutcome::delivered, "signal_batch: " + s.message);
                },
                [](const abide::PollResult& r) { return r.completed; });
        });
        add_rate(report, "decision_to_completed_w" + w + "_hosts" + h, "decision->completed, " + label, z.runs,
                 decided.seconds, mirror.replay(decided.recording), decided.recording);
    }
    // ---- 1 in flight, with per-run latency: start -> waiting, then decision -> completed ----
    {
        std::vector<std::string> tickets, ids, payloads, signal_ids;  // built before the clock starts
        for (std::size_t i = 0; i < z.single; ++i) {
            tickets.push_back(ticket_id(i));
            ids.push_back(refund_run_id("one-", i));
            payloads.push_back(decision_text(i));
            signal_ids.push_back(fmt::format("d-{}", i));
        }
        // One run at a time: `step(engine, i)` takes run i through the phase.
        auto single = [&](const std::string& id, const std::string& label, const auto& step) {
            mirror.seed(db);
            std::vector<double> latency;
            TwinResult r = run_twin(recorded, timed, [&](abide::Engine& engine, bool is_timed) {
                Stopwatch total;
                for (std::size_t i = 0; i < z.single; ++i) {
                    if (!is_timed) Recorder::instance().segment();
                    Stopwatch sw;
                    step(engine, i);
                    if (is_timed) latency.push_back(sw.wall());
                }
                return total.wall();
            });
            Replay base = mirror.replay(r.recording);
            add_rate(report, id + "_w1", label + ", 1 in flight", z.single, r.seconds, base, r.recording);
            add_latency(report, id, label, latency, base);
        };
        single("start_to_waiting", "start->waiting", [&](abide::Engine& engine, std::size_t i) {
            (void)engine.start(refund_workflow, tickets[i], {.run_id = ids[i]});
            expect(engine.poll().waiting == 1, "start: the run did not wait");
        });
        single("decision_to_completed", "decision->completed", [&](abide::Engine& engine, std::size_t i) {
            auto s = engine.signal(ids[i], refund_signal, payloads[i], signal_ids[i]);
            expect(s.outcome == abide::SignalOutcome::delivered, "signal: " + s.message);
            expect(engine.poll().completed == 1, "decide: the run did not complete");
        });
    }
    // ---- decision -> completed: `threads` threads call signal(), one thread polls ----
    {
        start_waiting_runs(recorded, "mt-", 0, z.runs, 1024);  // setup, untimed
        start_waiting_runs(timed, "mt-", 0, z.runs, 1024);
        mirror.seed(db);
        TwinResult r = run_twin(recorded, timed, [&](abide::Engine& engine, bool) {
            return decide_concurrently(engine, "mt-", z.runs, z.threads, 1).seconds;
        });
        const std::string th = std::to_string(z.threads);
        add_rate(report, "decision_to_completed_threads" + th,
                 "decision->completed, " + th + " threads call signal(), 1 thread polls", z.runs, r.seconds,
                 mirror.replay(r.recording), r.recording);
    }
}

int body(int argc, char** argv) {
    Args args = Args::parse(argc, argv, "the refund workload: runs per second, latency, commits per run",
                            {"runs", "window", "single", "threads", "hosts", "cache-size"});
    Sizes z;
    z.runs = static_cast<std::size_t>(args.number("runs", 10000, 1000));
    z.window = static_cast<std::size_t>(args.number("window", 256, 256));
    z.single = static_cast<std::size_t>(args.number("single", 300, 20));
    z.threads = static_cast<std::size_t>(args.number("threads", 8, 8));
    z.hosts = static_cast<std::size_t>(args.number("hosts", 2, 2));
    z.cache_size = cache_size_option(args);
    Report report("refund", "the refund workload (start, 3 steps, wait for a decision; decision, refund step, done)",
                  args);
    report.param("runs", z.runs);
    report.param("window", z.window);
    report.param("single_runs", z.single);
    report.param("signal_threads", z.threads);
    report.param("host_threads", z.hosts);
    report.param("cache_size", z.cache_size);
    Scratch scratch(args);
    for (int rep = 0; rep < args.reps; ++rep) measure(args, scratch, z, report);
    report.note("runs/s rows count whole runs through the phase; latency rows time one run at a time "
                "(the baseline's latency is the replay of that run's transactions)");
    report.note("commits per run counts write_tap commits; under synced durability each is a synced commit");
    report.print();
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_main(body, argc, argv); }
