// The host of the kill -9 torture: polls a database of the four torture
// workflows (workload.hpp) and keeps `--in-flight` runs unfinished by starting
// the next runs of the seeded plan as others finish, until `--max-runs` have
// started. It runs until it is killed; the driver kills it with SIGKILL at
// random instants and starts it again.
//
// Run ids are the plan indexes in order and each top-up is one start_batch
// (one commit), so the number of runs in the database is the next index, and
// a restarted host starts nothing twice.
//
// Exit status: 2 for bad arguments; 3 if a poll reports a run it could not
// advance (a damaged record: the driver treats any exit as a failure).
#include "harness.hpp"
#include "workload.hpp"

#include <iostream>
#include <string>
#include <thread>

namespace {

using namespace abide;
using namespace std::chrono_literals;

struct HostOptions {
    std::filesystem::path db, ledger, steplog;
    std::uint64_t seed = 0;
    std::uint64_t in_flight = 100;
    std::uint64_t max_runs = 1'000'000;
    std::size_t cache_size = 1024;
    std::chrono::milliseconds poll{5};
};

HostOptions parse(int argc, char** argv) {
    const harness::Flags f(argc, argv, {"--db", "--ledger", "--steplog", "--seed"},
                           {"--in-flight", "--max-runs", "--cache-size", "--poll-ms"},
                           "usage: abide_torture_host --db DB --ledger FILE --steplog FILE --seed S [--in-flight N]\n"
                           "                          [--max-runs N] [--cache-size N] [--poll-ms M]\n");
    HostOptions o;
    o.db = f.text("--db");
    o.ledger = f.text("--ledger");
    o.steplog = f.text("--steplog");
    o.seed = f.number("--seed", 0);
    o.in_flight = f.number("--in-flight", o.in_flight);
    o.max_runs = f.number("--max-runs", o.max_runs);
    o.cache_size = f.number("--cache-size", o.cache_size);
    o.poll = std::chrono::milliseconds(f.number("--poll-ms", static_cast<std::uint64_t>(o.poll.count())));
    return o;
}

/// Starts the next runs of the plan until `in_flight` are unfinished.
void top_up(Engine& engine, const HostOptions& o) {
    const Stats s = engine.stats();
    const std::uint64_t unfinished = s.ready + s.running + s.waiting;
    if (unfinished >= o.in_flight || s.runs >= o.max_runs) return;
    const std::uint64_t n = std::min(o.in_flight - unfinished, o.max_runs - s.runs);
    std::vector<StartRequest> requests;
    for (std::uint64_t i = s.runs; i < s.runs + n; ++i) {
        const torture::Plan plan = torture::make_plan(o.seed, static_cast<int>(i));
        requests.push_back({plan.workflow, plan, {.run_id = plan.run_id}});
    }
    engine.start_batch(requests);
}

}  // namespace

int main(int argc, char** argv) try {
    abide::harness::die_with_parent();
    const HostOptions o = parse(argc, argv);
    const torture::Outside outside{examples::PaymentsLedger(o.ledger), o.steplog};
    // Synced commits: the default.
    Engine engine({.path = o.db, .cache_size = o.cache_size, .quarantine_after = torture::quarantine_after});
    torture::define_workflows(engine, outside, torture::breakage_from_env());
    const auto& clock = engine.options().clock;
    for (bool finished_some = true;;) {
        if (finished_some) top_up(engine, o);
        const PollResult r = engine.poll();
        if (!r.problems.empty()) {
            for (const std::string& p : r.problems) std::cerr << "abide_torture_host: poll problem: " << p << "\n";
            return 3;
        }
        finished_some = r.completed + r.failed + r.cancelled > 0;
        if (r.runs_advanced > 0 || r.timers_fired > 0) continue;
        // Signals come from other processes: poll at least every o.poll.
        auto sleep = o.poll;
        if (r.next_deadline)
            sleep = std::min(sleep, std::chrono::ceil<std::chrono::milliseconds>(*r.next_deadline - clock()));
        if (sleep.count() > 0) std::this_thread::sleep_for(sleep);
    }
} catch (const std::exception& e) {
    std::cerr << "abide_torture_host: " << e.what() << "\n";
    return 1;
}
