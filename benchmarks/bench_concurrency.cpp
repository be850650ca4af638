// bench_concurrency: do concurrent callers share commits?
//
// N refund runs wait for their decision (setup, untimed). Then S threads call
// signal() for them one decision at a time while P threads call poll() until
// every run has completed: (S, P) = (1, 1), (2, 1), (4, 1), (8, 1), (2, 2),
// (8, 2). Reported: decisions per second (to completion), commits per
// decision, polls, against raw LMDB replaying the same write transactions
// (one thread, the same transaction boundaries). Each configuration runs on
// twin engines (run_twin): the recorded one's writes are the baseline's, the
// timed one has no write tap.
#include "common.hpp"

#include <fmt/format.h>

using namespace abide_bench;

namespace {

struct Config {
    std::size_t signalers;
    std::size_t pollers;
};

void measure(const Args& args, const Scratch& scratch, std::size_t n, const std::vector<Config>& configs,
             Report& report) {
    for (const Config& c : configs) {
        // Twin engines (see run_twin): `recorded` feeds the baseline, `timed` is timed.
        const fs::path db = scratch.file("concurrency.db");
        const fs::path timed_db = scratch.file("concurrency-timed.db");
        Mirror mirror(scratch.file("concurrency-baseline.db"), args);
        abide::Engine recorded(engine_options(db, args.durability));
        abide::Engine timed(engine_options(timed_db, args.durability));
        for (abide::Engine* engine : {&recorded, &timed}) {
            define_refund(*engine);
            start_waiting_runs(*engine, "c-", 0, n, 1024);  // setup, untimed
        }
        mirror.seed(db);
        Concurrent run;
        TwinResult twin = run_twin(recorded, timed, [&](abide::Engine& engine, bool is_timed) {
            Concurrent r = decide_concurrently(engine, "c-", n, c.signalers, c.pollers);
            if (is_timed) run = r;
            return r.seconds;
        });
        const Replay base = mirror.replay(twin.recording);
        const double dn = static_cast<double>(n);
        const std::string id = fmt::format("s{}_p{}", c.signalers, c.pollers);
        const std::string label = fmt::format("{} signalling thread{}, {} polling thread{}", c.signalers,
                                              c.signalers == 1 ? "" : "s", c.pollers, c.pollers == 1 ? "" : "s");
        report.add(id, label, "decisions/s", Better::higher, dn / run.seconds, dn / base.wall);
        report.add(id + "_commits", label + ": commits per decision", "commits", Better::lower,
                   static_cast<double>(twin.recording.commits()) / dn);
        report.add(id + "_polls", label + ": poll() calls per decision", "polls", Better::lower,
                   static_cast<double>(run.polls) / dn);
    }
}

int body(int argc, char** argv) {
    Args args = Args::parse(argc, argv, "signals from several threads while one or two threads poll", {"runs"});
    const auto n = static_cast<std::size_t>(args.number("runs", 5000, 100));
    const std::vector<Config> configs = {{1, 1}, {2, 1}, {4, 1}, {8, 1}, {2, 2}, {8, 2}};
    Report report("concurrency", "concurrent signals and polls sharing commits", args);
    report.param("runs", n);
    Scratch scratch(args);
    for (int rep = 0; rep < args.reps; ++rep) measure(args, scratch, n, configs, report);
    report.note("a decision is signal() of one payload (JSON text) and the poll that runs the refund step and "
                "completes the run; an idle poller sleeps 50 us between polls");
    report.note("the baseline replays abide's transactions from one thread: it has the same number of commits "
                "(the batching abide achieved), without abide's reads, encoding and fibers");
    report.print();
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_main(body, argc, argv); }
