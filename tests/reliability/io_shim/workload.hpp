// The reference workload of the I/O harnesses (power loss, I/O faults): a
// seeded mix of three workflows driven through starts, signals, resumes,
// polls and clock jumps, and the checks both harnesses make on what a
// database holds afterwards.
//
// Every plan is a pure function of (seed, runs), so a child process rebuilds
// it from two numbers, and every run's final output is known in advance:
// outputs depend only on the run's input and the decision it receives, never
// on timing, the clock or which process ran which step.
#pragma once

#include <abide/abide.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace abide::io_test {

namespace fs = std::filesystem;

/// One host action of a plan.
struct Op {
    enum class Kind { start, signal, resume, poll, advance_clock } kind{};
    std::string run;       ///< run id (start, signal, resume)
    std::string name;      ///< workflow (start), signal name (signal) or step key (resume)
    json payload;          ///< start input, signal payload or resume data
    std::string id;        ///< signal / resume id
    std::string describe() const;
};

struct Plan {
    std::vector<Op> ops;
    std::map<std::string, json> expected_outputs;  ///< run id -> output when finished
};

/// `runs` runs of the three workflows ("order": a step, an approval signal,
/// a charge, a sleep, a step; "batch": four steps; "review": a step, a
/// suspend, a step), their operations interleaved at random, polls and clock
/// jumps between them.
Plan make_plan(std::uint64_t seed, int runs);

/// A clock that moves only when the plan says so; starts at a fixed instant.
class PlanClock {
public:
    TimePoint now() const;
    void advance(Duration d) { micros_->fetch_add(d.count()); }
    std::function<TimePoint()> function() const;

private:
    std::shared_ptr<std::atomic<std::int64_t>> micros_ = std::make_shared<std::atomic<std::int64_t>>(1'800'000'000'000'000);
};

/// Where the step bodies leave their marks outside the journal.
struct World {
    fs::path steplog;  ///< one line per step body execution (examples::append_step_run)
    fs::path ledger;   ///< the payments ledger the "charge" step pays through
};

/// Defines the three workflows on `engine`.
void define_workflows(Engine& engine, const World& world);

EngineOptions engine_options(const fs::path& db, Durability durability, const PlanClock& clock);

/// Runs one op. Returns the signal outcome for signal/resume (nothing
/// otherwise). Throws what the engine throws.
std::optional<SignalOutcome> apply(Engine& engine, PlanClock& clock, const Op& op);

/// Whether another process may commit while a snapshot is taken.
enum class Writers { none, others };

/// The stored state the checks compare: {"runs": {id: trace JSON}, "last_event_seq"}.
/// Reads every run (list_runs), every trace, every event and the stats, so
/// it also proves the whole database reads back. With Writers::none it also
/// checks that the separate reads agree (run counts, the event log's end);
/// with others committing meanwhile they need not.
json snapshot(const Engine& engine, Writers writers = Writers::none);

/// "" if `now` holds everything `acked` held: every acknowledged run, its
/// journal as a prefix, and, for a finished run, the same status and output.
/// Otherwise what is missing.
std::string missing_from(const json& acked, const json& now);

/// Replays the whole plan on `engine` (idempotent: starts of existing runs and
/// repeated signal ids change nothing), then polls and moves the clock until
/// every run of the plan has finished (bounded). Returns "" if every run ended
/// with its expected output, else what differs.
std::string finish_plan(Engine& engine, PlanClock& clock, const Plan& plan);

/// The environment entries that run a child under abide_io_shim for `db`:
/// LD_PRELOAD, ABIDE_IO_FILE (made absolute, as the shim compares it with
/// /proc/self/fd links) and `mode` ("ABIDE_IO_RECORD=<log>" or
/// "ABIDE_IO_FAIL=<spec>"). Under ASan the shim is loaded before the sanitizer
/// runtime, which ASan accepts once told not to check the order.
std::vector<std::string> shim_environment(const char* shim_path, const fs::path& db, const std::string& mode);

/// A number from a command-line argument (children get theirs that way).
std::uint64_t parse_number(const std::string& text);

}  // namespace abide::io_test
