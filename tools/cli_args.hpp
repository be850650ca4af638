// The abide command's arguments: every verb, option and help text, and the
// one parser that turns argv into a Command. Nothing else reads argv.
#pragma once

#include <abide/types.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace abide::cli {

/// Exit codes scripts can rely on (documented in `abide --help` and README.md).
enum ExitCode : int {
    exit_ok = 0,           ///< success
    exit_refused = 1,      ///< a signal, resume, cancel or release was not accepted
    exit_usage = 2,        ///< bad arguments or bad JSON; nothing was written
    exit_database = 3,     ///< missing, foreign, damaged or unreadable database
    exit_unknown_run = 4,  ///< show or trace of a run that does not exist
};

enum class Verb { runs, show, trace, signal, resume, cancel, release, events, stats, check };

/// Bad arguments: main prints what() on one line and exits with exit_usage.
class UsageFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A parsed command line. Only the fields of the chosen verb are set.
struct Command {
    enum class Kind { run, help, version } kind = Kind::run;
    std::optional<Verb> verb;  ///< for help: the verb asked about, if any
    std::string db;            ///< --db, else $ABIDE_DB

    // Positionals.
    std::string run;   ///< show, trace, signal, resume, cancel, release
    std::string name;  ///< signal name (signal) or step key (resume)

    // runs
    std::optional<RunStatus> status;
    std::optional<std::string> workflow;
    std::optional<std::string> waiting_for;
    std::string after_id;
    // events
    std::uint64_t after_seq = 0;
    bool follow = false;
    // runs and events: nullopt means the verb's default
    std::optional<std::size_t> limit;
    // signal and resume
    std::string data;                    ///< the JSON text as given (after reading @FILE / @-)
    std::string data_source = "--data";  ///< where data came from, for messages
    std::string signal_id;
    // cancel
    std::string reason;

    bool json = false;
};

/// Parses argv. `env_db` is $ABIDE_DB (null when unset). Throws UsageFailure.
Command parse(int argc, const char* const* argv, const char* env_db);

std::string_view verb_name(Verb);
/// `abide --help`.
std::string overall_help();
/// `abide VERB --help`.
std::string verb_help(Verb);

}  // namespace abide::cli
