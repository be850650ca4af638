// The host side the examples share: command-line options, a clock a test can
// move across processes, the step bodies' outside world, the poll loop, the
// printed event lines, and the notifier that turns suspend events into
// approval messages.
#pragma once

#include "common/ledger.hpp"
#include "common/planner.hpp"

#include <abide/abide.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace examples {

/// Options of the `host` and `notify` modes (see usage in each example).
struct HostArgs {
    std::string mode{};                       ///< argv[1]: "host" or "notify"
    std::filesystem::path db{};               ///< --db: the abide database
    std::filesystem::path ledger{};           ///< --ledger: the payments ledger file
    std::filesystem::path steplog{};          ///< --steplog: one line per step execution (optional)
    std::filesystem::path clock_file{};       ///< --fake-clock-file: seconds added to real time (optional)
    std::filesystem::path outbox{};           ///< --outbox: the notifier's channel and cursor
    int start = 0;                            ///< --start N: start runs 1..N (idempotent ids)
    std::string runs_prefix{};                ///< --runs-prefix P: prefix of those run ids
    std::chrono::milliseconds poll{20};       ///< --poll-ms: longest sleep between polls
    std::chrono::milliseconds step_delay{0};  ///< --step-delay-ms: each step body lasts this long
    std::chrono::milliseconds post_delay{0};  ///< --post-delay-ms (notify): each post lasts this long
    bool exit_when_idle = false;              ///< --exit-when-idle: return once no run is unfinished
    /// --quarantine-after N: EngineOptions::quarantine_after (0: never). A
    /// harness that kills hosts on purpose while steps run sets 0: its kills
    /// are not crashes caused by the runs.
    std::optional<std::uint32_t> quarantine_after{};
    bool follow = false;                      ///< --follow (notify): keep reading new events
};

/// Parses argv (argv[1] is the mode); `runs_prefix` is the default of
/// --runs-prefix. On a bad or missing option prints `usage` to stderr and
/// exits with status 2.
HostArgs parse_args(int argc, char** argv, const char* usage, std::string runs_prefix);

/// Real time plus the whole seconds written in `file` (none if it is
/// missing). Every process reading the same file sees the same jump.
std::function<abide::TimePoint()> file_clock(std::filesystem::path file);
/// Sets the offset that file_clock reads, atomically.
void set_clock_offset(const std::filesystem::path& file, std::chrono::seconds offset);

/// Synced durability (the default), the database, the clock from
/// --fake-clock-file, and print_event as the event callback.
abide::EngineOptions engine_options(const HostArgs& args);

/// Writes one line to stdout with a single write(2), prefixed with the
/// process's role and pid ("[host 4242] "), so lines of several processes
/// sharing a terminal never interleave.
void say(const std::string& line);

/// Prints the events a person watching a host wants to see.
void print_event(const abide::Event& event);

/// What the step bodies of an example touch outside the journal.
class World {
public:
    explicit World(const HostArgs& args);
    World(const World&) = delete;  // the planner calls back into this object
    World& operator=(const World&) = delete;
    /// Every step body calls this first: it records the execution in the step
    /// log, prints it, and lasts --step-delay-ms (a window for a kill).
    void ran(const abide::StepContext& step) const;

    PaymentsLedger ledger;
    OfflinePlanner planner;  ///< logs its executions with ran()

private:
    std::filesystem::path steplog_{};
    std::chrono::milliseconds delay_;
};

/// The host loop: starts runs 0..args.start-1 with `start_run`, then polls,
/// sleeping until the next deadline or args.poll, until killed or (with
/// --exit-when-idle) until every run has finished. Returns the exit status.
int run_host(abide::Engine& engine, const HostArgs& args, const std::function<void(int)>& start_run);

/// One message the notifier posted.
struct Notification {
    std::uint64_t seq = 0;  ///< the suspended event's seq: the notifier's cursor
    std::string run_id, topic, message;
};

/// The approval message for a suspended event, given its approval link.
using ApprovalMessage = std::function<std::string(const abide::Event&, const std::string& url)>;

/// The `notify` mode, the guide's Slack notifier: reads `engine`'s durable
/// event log after its own cursor and, for each suspended event, posts the approval
/// message to the outbox (the stand-in for a chat channel) and prints it.
/// Posting and moving the cursor are one synced append keyed by the event's
/// seq, so a notifier killed at any instant neither misses nor repeats a
/// message when it starts again. Returns when caught up, unless --follow.
/// It only reads: a notifier process opens an Engine that defines nothing and
/// never polls; inside a host, pass the host's own Engine (a process must not
/// open one database twice).
int run_notifier(const abide::Engine& engine, const HostArgs& args, const ApprovalMessage& message);
std::vector<Notification> read_outbox(const std::filesystem::path& outbox);

/// What an example program is made of; example_main runs it.
struct ExampleProgram {
    const char* name;         ///< the program's name, for its error messages
    const char* usage;        ///< printed on a bad command line
    const char* runs_prefix;  ///< the default of --runs-prefix
    /// The self-contained scenario run with no arguments; returns the exit status.
    std::function<int()> scenario;
    /// Defines the example's workflows on a host's engine.
    std::function<void(abide::Engine&, World&)> define;
    /// Starts run i (an idempotent id under the prefix).
    std::function<void(abide::Engine&, const std::string& prefix, int i)> start;
    /// The `notify` mode's message; an example without one has no notify mode.
    ApprovalMessage notify{};
};

/// The examples' main(): no arguments runs the scenario; `host` runs the host
/// loop with the program's workflows; `notify` (where the program has a
/// message) runs the notifier. An exception is printed with the program's
/// name and gives exit status 1.
int example_main(int argc, char** argv, const ExampleProgram& program);

/// A fresh directory under /tmp for the self-contained scenarios.
std::filesystem::path make_temp_dir(const std::string& prefix);

/// The scenarios' checks: prints each with its verdict, remembers failures.
class Checks {
public:
    bool expect(bool ok, const std::string& what);
    int exit_code() const { return failed_ == 0 ? 0 : 1; }

private:
    int failed_ = 0;
};

}  // namespace examples
