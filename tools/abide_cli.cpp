// abide: operators' view of an abide database from outside the host process.
//
// It opens the database with an Engine that defines no workflows and never
// polls: it reads stored state, and signal/resume/cancel record requests that
// the host carries out at its next poll(). LMDB lets it share the file with a
// running host. Arguments are parsed in cli_args.cpp, rendered in cli_output.cpp.
#include "cli_args.hpp"
#include "cli_output.hpp"

#include <abide/engine.hpp>
#include <abide/errors.hpp>
#include <abide/verify.hpp>
#include <abide/version.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

namespace abide::cli {
namespace {

/// The database cannot be used: missing, not a file, empty. Exit 3.
class DatabaseFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Prints one error line to stderr: "abide: <message>".
void error_line(std::string_view message) {
    std::string line(message);
    for (char& c : line)
        if (c == '\n' || c == '\r') c = ' ';
    std::fflush(stdout);
    fmt::print(stderr, "abide: {}\n", line);
}

void out(std::string_view text) { std::fwrite(text.data(), 1, text.size(), stdout); }

/// Opens an existing database. Never creates one: the Engine would create a
/// missing file, so its existence is checked first.
std::unique_ptr<Engine> open_database(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (!fs::exists(st))
        throw DatabaseFailure(fmt::format(
            "no database at '{}'; check --db or ABIDE_DB (this command never creates one: the host's Engine "
            "creates it when it first opens the path)",
            path));
    if (fs::is_directory(st))
        throw DatabaseFailure(fmt::format("'{}' is a directory; --db names the database file itself", path));
    if (!fs::is_regular_file(st))
        throw DatabaseFailure(fmt::format("'{}' is not a regular file, so not an abide database; check --db", path));
    const auto size = fs::file_size(path, ec);
    if (!ec && size == 0)
        throw DatabaseFailure(
            fmt::format("'{}' is empty, so it is not an abide database; check --db. The file was not modified", path));
    EngineOptions options;
    options.path = path;
    options.cache_size = 0;  // it never runs a workflow
    try {
        return std::make_unique<Engine>(std::move(options));
    } catch (const Error& e) {
        throw DatabaseFailure(fmt::format("cannot open '{}' (check --db): {}", path, e.what()));
    }
}

// ---- verbs ------------------------------------------------------------------

int cmd_runs(const Command& cmd, Engine& engine) {
    RunQuery query;
    query.status = cmd.status;
    query.workflow = cmd.workflow;
    query.waiting_for = cmd.waiting_for;
    query.limit = cmd.limit.value_or(100);
    query.after = cmd.after_id;
    const std::vector<RunInfo> runs = engine.list_runs(query);
    if (cmd.json) {
        for (const RunInfo& r : runs) out(compact(r.to_json()) + "\n");
        return exit_ok;
    }
    if (runs.empty()) {
        out("no runs match\n");
        return exit_ok;
    }
    out(runs_table(runs));
    RunQuery rest = query;
    rest.limit = 1;
    rest.after = runs.back().id;
    if (runs.size() == query.limit && !engine.list_runs(rest).empty()) {
        std::fflush(stdout);
        fmt::print(stderr, "abide: showing the first {} runs; for the next page add --after {}\n", runs.size(),
                   runs.back().id);
    }
    return exit_ok;
}

int unknown_run(const Command& cmd) {
    error_line(fmt::format("no run '{}' in '{}'; check the id (abide runs lists them)", cmd.run, cmd.db));
    return exit_unknown_run;
}

int cmd_show(const Command& cmd, Engine& engine) {
    const std::optional<RunInfo> run = engine.status(cmd.run);
    if (!run) return unknown_run(cmd);
    out(cmd.json ? compact(run->to_json()) + "\n" : run_text(*run));
    return exit_ok;
}

int cmd_trace(const Command& cmd, Engine& engine) {
    if (!engine.status(cmd.run)) return unknown_run(cmd);  // runs are never deleted
    const Trace trace = engine.trace(cmd.run);
    out(cmd.json ? compact(trace.to_json()) + "\n" : trace.render());
    return exit_ok;
}

/// "outcome: message", without repeating an outcome the message starts with.
std::string outcome_text(std::string_view outcome, const std::string& message) {
    const std::string prefix = std::string(outcome) + ":";
    if (message.compare(0, prefix.size(), prefix) == 0) return message;
    return prefix + " " + message;
}

int cmd_deliver(const Command& cmd, const std::string& db) {
    // Check the JSON before touching the database: bad JSON writes nothing.
    try {
        [[maybe_unused]] const json parsed = json::parse(cmd.data);
    } catch (const json::exception& e) {
        throw UsageFailure(
            fmt::format("{} is not valid JSON: {}. Nothing was written; quote a string as JSON "
                        "(--data '\"text\"')",
                        cmd.data_source, e.what()));
    }
    auto engine = open_database(db);
    const bool is_signal = cmd.verb == Verb::signal;
    const SignalResult result = is_signal ? engine->signal(cmd.run, cmd.name, cmd.data, cmd.signal_id)
                                          : engine->resume(cmd.run, cmd.name, cmd.data, cmd.signal_id);
    const std::string_view outcome = to_string(result.outcome);
    if (cmd.json) {
        json j{{"run", cmd.run},
               {is_signal ? "signal" : "step_key", cmd.name},
               {"outcome", outcome},
               {"accepted", result.accepted()},
               {"message", result.message}};
        if (!cmd.signal_id.empty()) j["id"] = cmd.signal_id;
        out(compact(j) + "\n");
    } else if (result.accepted()) {
        out(outcome_text(outcome, result.message) + "\n");
        out(
            fmt::format("note: this command has no workflow definitions, so the {} was stored without checking "
                        "its type; the host checks it at its next poll and records a signal_rejected event if "
                        "it does not fit\n",
                        is_signal ? "payload" : "resume data"));
    } else {
        error_line(
            fmt::format("{} refused: {}", is_signal ? "signal" : "resume", outcome_text(outcome, result.message)));
    }
    return result.accepted() ? exit_ok : exit_refused;
}

int cmd_cancel(const Command& cmd, Engine& engine) {
    const CancelResult result = engine.cancel(cmd.run, cmd.reason);
    const bool accepted = result.outcome == CancelOutcome::cancelled || result.outcome == CancelOutcome::requested;
    const std::string_view outcome = to_string(result.outcome);
    if (cmd.json) {
        out(compact(json{{"run", cmd.run}, {"outcome", outcome}, {"accepted", accepted}, {"message", result.message}}) +
            "\n");
    } else if (accepted) {
        out(outcome_text(outcome, result.message) + "\n");
        out("note: the host process carries out the cancellation at its next poll\n");
    } else {
        error_line("cancel refused: " + outcome_text(outcome, result.message));
    }
    return accepted ? exit_ok : exit_refused;
}

int cmd_release(const Command& cmd, Engine& engine) {
    const std::optional<RunInfo> run = engine.status(cmd.run);
    if (!run) return unknown_run(cmd);
    std::string refusal;
    if (run->status != RunStatus::quarantined) {
        refusal = fmt::format("run '{}' is {}; only quarantined runs can be released. Nothing was written", cmd.run,
                              to_string(run->status));
    } else {
        try {
            engine.release(cmd.run);
        } catch (const UsageError& e) {  // released or changed since the look above
            refusal = e.what();
        }
    }
    const bool released = refusal.empty();
    const std::string message =
        released ? fmt::format("released: run '{}' is ready; the host's next poll runs it", cmd.run) : refusal;
    if (cmd.json)
        out(compact(json{{"run", cmd.run}, {"released", released}, {"message", message}}) + "\n");
    else if (released)
        out(message + "\n");
    else
        error_line("release refused: " + message);
    return released ? exit_ok : exit_refused;
}

volatile std::sig_atomic_t stop_requested = 0;
extern "C" void request_stop(int) { stop_requested = 1; }

void install_stop_handlers() {
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: a signal cuts the sleep short
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
}

int cmd_events(const Command& cmd, Engine& engine) {
    constexpr std::size_t page = 1000;
    // How many to print: --limit, else a page (or, following, no bound).
    const std::size_t limit = cmd.limit ? *cmd.limit : (cmd.follow ? SIZE_MAX : page);
    if (cmd.follow) install_stop_handlers();
    std::uint64_t cursor = cmd.after_seq;
    std::size_t printed = 0;
    while (!stop_requested) {
        const std::size_t want = std::min(page, limit - printed);
        const std::vector<Event> events = engine.events(cursor, want);
        std::string text;
        for (const Event& e : events) {
            text += (cmd.json ? compact(e.to_json()) : event_line(e)) + "\n";
            cursor = e.seq;
        }
        printed += events.size();
        out(text);
        std::fflush(stdout);
        if (printed >= limit) {
            if (!cmd.follow && !engine.events(cursor, 1).empty())
                fmt::print(stderr, "abide: printed {} events; more follow: continue with --after {}\n", printed,
                           cursor);
            break;
        }
        if (events.size() == want) continue;  // a full page: read on at once
        if (!cmd.follow) break;
        timespec pause{0, 200'000'000};
        nanosleep(&pause, nullptr);  // cut short by SIGINT/SIGTERM
    }
    return exit_ok;
}

int cmd_stats(const Command& cmd, Engine& engine) {
    const Stats stats = engine.stats();
    out(cmd.json ? compact(stats.to_json()) + "\n" : stats_text(stats));
    return exit_ok;
}

int cmd_check(const Command& cmd) {
    const VerifyReport report = verify_database(cmd.db);
    if (cmd.json) {
        out(compact(report.to_json()) + "\n");
    } else {
        out(fmt::format("{} runs, {} journal entries, {} buffered signals, {} events, {} free-list entries\n",
                        report.runs, report.journal_entries, report.buffered_signals, report.events,
                        report.free_list_entries));
        for (const std::string& p : report.problems) error_line("problem: " + p);
        out(report.ok() ? "ok: the file is sound\n"
                        : fmt::format("{} problem(s); damaged runs: {}\n", report.problems.size(),
                                      report.damaged_runs.empty() ? std::string("none")
                                                                  : fmt::format("{}", fmt::join(report.damaged_runs, ", "))));
    }
    return report.ok() ? exit_ok : exit_database;
}

int run(const Command& cmd) {
    switch (*cmd.verb) {
        case Verb::signal:
        case Verb::resume:
            return cmd_deliver(cmd, cmd.db);
        case Verb::check:
            return cmd_check(cmd);
        default:
            break;
    }
    auto engine = open_database(cmd.db);
    switch (*cmd.verb) {
        case Verb::runs:
            return cmd_runs(cmd, *engine);
        case Verb::show:
            return cmd_show(cmd, *engine);
        case Verb::trace:
            return cmd_trace(cmd, *engine);
        case Verb::cancel:
            return cmd_cancel(cmd, *engine);
        case Verb::release:
            return cmd_release(cmd, *engine);
        case Verb::events:
            return cmd_events(cmd, *engine);
        case Verb::stats:
            return cmd_stats(cmd, *engine);
        case Verb::signal:
        case Verb::resume:
        case Verb::check:
            break;
    }
    return exit_usage;
}

}  // namespace
}  // namespace abide::cli

int main(int argc, char** argv) {
    using namespace abide::cli;
    Command cmd;
    try {
        cmd = parse(argc, argv, std::getenv("ABIDE_DB"));
    } catch (const UsageFailure& e) {
        error_line(e.what());
        return exit_usage;
    } catch (const std::exception& e) {  // reading --data @FILE, say
        error_line(e.what());
        return exit_usage;
    }
    if (cmd.kind == Command::Kind::help) {
        out(cmd.verb ? verb_help(*cmd.verb) : overall_help());
        return exit_ok;
    }
    if (cmd.kind == Command::Kind::version) {
        out(fmt::format("abide {}.{}.{} (journal format {})\n", ABIDE_VERSION_MAJOR, ABIDE_VERSION_MINOR,
                        ABIDE_VERSION_PATCH, abide::journal_format_version));
        return exit_ok;
    }
    try {
        return run(cmd);
    } catch (const UsageFailure& e) {
        error_line(e.what());
        return exit_usage;
    } catch (const DatabaseFailure& e) {
        error_line(e.what());
        return exit_database;
    } catch (const abide::UsageError& e) {
        error_line(e.what());
        return exit_usage;
    } catch (const std::exception& e) {  // StorageError and anything the database raised
        error_line(fmt::format("database problem with '{}': {}", cmd.db, e.what()));
        return exit_database;
    }
}
