// The abide command's argument parser and help texts.
#include "cli_args.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <vector>

namespace abide::cli {

namespace {

struct OptionSpec {
    std::string_view name;  ///< without the leading "--"
    bool takes_value = false;
};

struct VerbSpec {
    Verb verb;
    std::string_view name;
    std::vector<std::string_view> positionals;  ///< placeholder names, all required
    std::vector<OptionSpec> options;
    std::vector<std::string_view> required;  ///< options that must be given
    std::string_view usage;                  ///< after "abide --db PATH "
    std::string_view summary;
    std::string_view help;  ///< description, options, exit codes, examples
};

const std::vector<VerbSpec>& verbs() {
    static const std::vector<VerbSpec> specs = {
        {Verb::runs,
         "runs",
         {},
         {{"status", true},
          {"workflow", true},
          {"waiting-for", true},
          {"limit", true},
          {"after", true},
          {"json", false}},
         {},
         "runs [--status S] [--workflow W] [--waiting-for NAME] [--limit N] [--after ID] [--json]",
         "list runs, filtered by status, workflow or what they wait for",
         R"(Lists runs in creation order (with --waiting-for: longest waiting first) as
a table: id, workflow, status, waiting for, deadline, updated. Times are UTC.

options:
  --status S          only runs with status S: ready, running, waiting,
                      completed, failed, cancelled or quarantined
  --workflow W        only runs of workflow W
  --waiting-for NAME  only runs waiting for signal NAME or suspend step key NAME
  --limit N           at most N runs (default 100); when more follow, the
                      command says so on stderr with the --after to pass
  --after ID          the next page: the runs after run ID (the last id shown)
  --json              one JSON object per run and line: id, workflow, status,
                      created, updated, input, journal_entries, and waiting,
                      output or error when present

exit codes: 0 listed (possibly none), 2 bad arguments, 3 database problem

examples:
  abide --db refunds.db runs --status waiting
  abide --db refunds.db runs --waiting-for refund_decision --json
  abide --db refunds.db runs --workflow refund_review --limit 50 --after refund-T-1050
)"},
        {Verb::show,
         "show",
         {"RUN"},
         {{"json", false}},
         {},
         "show RUN [--json]",
         "one run: status, input, waiting point, output or error",
         R"(Shows one run as stored, without running anything: status, workflow, input,
the waiting point (kind, name, metadata or suspend data, since, deadline),
and the output (completed) or error (failed, cancelled).

options:
  --json  the same as one JSON object (the format of `runs --json`)

exit codes: 0 shown, 2 bad arguments, 3 database problem, 4 no such run

examples:
  abide --db refunds.db show refund-T-1001
  abide --db refunds.db show refund-T-1001 --json | jq .waiting.data
)"},
        {Verb::trace,
         "trace",
         {"RUN"},
         {{"json", false}},
         {},
         "trace RUN [--json]",
         "one run's decision path, read from its journal",
         R"(Prints the run's decision path: every step with its result and timing, every
wait with its metadata, every signal with its payload, timeouts, and the
outcome, one line per journal entry.

options:
  --json  the trace as one JSON object (Trace::to_json)

exit codes: 0 printed, 2 bad arguments, 3 database problem, 4 no such run

examples:
  abide --db refunds.db trace refund-T-1001
  abide --db refunds.db trace refund-T-1001 --json > refund-T-1001.trace.json
)"},
        {Verb::signal,
         "signal",
         {"RUN", "NAME"},
         {{"data", true}, {"id", true}, {"json", false}},
         {"data"},
         "signal RUN NAME --data JSON [--id ID] [--json]",
         "send signal NAME to a run (ctx.wait_for_signal)",
         R"(Hands signal NAME with payload JSON to run RUN, as Engine::signal does.
The JSON syntax is checked first: bad JSON writes nothing and exits 2.

This command has no workflow definitions, so the payload is stored without
checking it against the type the workflow declares. The host process checks
it at its next poll, when the run takes the signal; a payload that does not
fit (or a signal the workflow does not declare) is dropped there and recorded
as a signal_rejected event (see `abide events`). The host only sees the signal
when it next calls poll().

options:
  --data JSON  the payload (JSON text; a string is quoted: --data '"ok"');
               @FILE reads it from FILE, @- from standard input
  --id ID      a signal id: sending the same id again is reported as duplicate
               and stored once, so a retried command cannot deliver twice
  --json       print the outcome as one JSON object on stdout
               ({"outcome","accepted","message"}) instead of text

outcomes and exit codes:
  buffered         0  stored; the run takes it at the host's next poll
  delivered        0  stored and the run is ready (only from a host that has
                      the definitions; this command reports buffered)
  duplicate        1  this --id was accepted before; not stored again
  run_finished     1  the run has completed, failed or been cancelled
  unknown_run      1  no run has this id
  invalid_payload  1  the payload is too large
  undeclared       1  the name is empty or contains NUL
  too_late         1  the wait passed its deadline; the run times out instead
  exit 2 for bad arguments or bad JSON, 3 for a database problem

examples:
  abide --db refunds.db signal refund-T-1001 refund_decision --id approval-42 \
      --data '{"status":"approved","reviewer_id":"u_123","reason":"ok","approved_amount":4900}'
  abide --db refunds.db signal refund-T-1001 refund_decision --data @decision.json
)"},
        {Verb::resume,
         "resume",
         {"RUN", "STEP_KEY"},
         {{"data", true}, {"id", true}, {"json", false}},
         {"data"},
         "resume RUN STEP_KEY --data JSON [--id ID] [--json]",
         "resume a run suspended at STEP_KEY (ctx.suspend)",
         R"(Resumes run RUN, suspended in ctx.suspend(STEP_KEY), with data JSON, as
Engine::resume does. The JSON syntax is checked first: bad JSON writes
nothing and exits 2.

This command has no workflow definitions, so the data is stored without
checking it against a type the workflow may declare for STEP_KEY. The host
process checks it at its next poll; data that does not fit is dropped there
and recorded as a signal_rejected event (see `abide events`).

options:
  --data JSON  the resume data (JSON text); @FILE reads it from FILE, @- from
               standard input
  --id ID      an id: resuming with the same id again is reported as
               duplicate and stored once
  --json       print the outcome as one JSON object on stdout

outcomes and exit codes: as for `abide signal --help` (buffered 0; duplicate,
run_finished, unknown_run, invalid_payload, undeclared, too_late 1), 2 for bad
arguments or bad JSON, 3 for a database problem

examples:
  abide --db docs.db resume review-D-1 approve --id legal-7 --data '{"status":"approved"}'
  echo '{"status":"rejected"}' | abide --db docs.db resume review-D-1 approve --data @-
)"},
        {Verb::cancel,
         "cancel",
         {"RUN"},
         {{"reason", true}, {"json", false}},
         {"reason"},
         "cancel RUN --reason TEXT [--json]",
         "ask a run to stop",
         R"(Asks run RUN to stop, as Engine::cancel does. The workflow sees
abide::Cancelled at its current wait (or its next one) when the host process
next polls, and may catch it to compensate.

options:
  --reason TEXT  why; recorded in the cancel_requested event and the run's error
  --json         print the outcome as one JSON object on stdout

outcomes and exit codes:
  cancelled          0  the run was waiting; the host's next poll cancels it
  requested          0  the run is running or ready; it stops at its next wait
  already_requested  1  the run was asked to cancel before; nothing written
  run_finished       1  the run has already finished; nothing written
  unknown_run        1  no run has this id; nothing written
  exit 2 for bad arguments, 3 for a database problem

examples:
  abide --db refunds.db cancel refund-T-1001 --reason "customer withdrew the request"
)"},
        {Verb::release,
         "release",
         {"RUN"},
         {{"json", false}},
         {},
         "release RUN [--json]",
         "let a quarantined run run again",
         R"(Makes quarantined run RUN ready again, as Engine::release does: its attempt
count starts over and the host's next poll runs it. A run is quarantined when
its process died EngineOptions::quarantine_after times in a row while running
it; `abide show RUN` says where. Release it after the fix is deployed.

options:
  --json  print the outcome as one JSON object on stdout

exit codes:
  0  released
  1  refused: the run is not quarantined; nothing written
  4  no run has this id
  exit 2 for bad arguments, 3 for a database problem

examples:
  abide --db refunds.db runs --status quarantined
  abide --db refunds.db release refund-T-1001
)"},
        {Verb::events,
         "events",
         {},
         {{"after", true}, {"limit", true}, {"follow", false}, {"json", false}},
         {},
         "events [--after N] [--limit N] [--follow] [--json]",
         "print the durable event log, optionally following it",
         R"(Prints the events with sequence number greater than --after, oldest first:
seq, time (UTC), type, run (workflow), name, data.

options:
  --after N   the cursor: print events after sequence number N (default 0)
  --limit N   print at most N events, then stop (default 1000 without
              --follow, no limit with it); when a page is full the command
              prints the next cursor on stderr
  --follow    keep reading the database every 200 ms and print new events
              as the host commits them, until interrupted (Ctrl-C or SIGTERM
              exit 0) or --limit events were printed
  --json      one JSON object per event and line (Event::to_json)

exit codes: 0 printed (possibly none) or follow interrupted, 2 bad arguments,
3 database problem

examples:
  abide --db refunds.db events --after 120
  abide --db refunds.db events --follow --json | jq -c 'select(.event_type=="signal_rejected")'
)"},
        {Verb::stats,
         "stats",
         {},
         {{"json", false}},
         {},
         "stats [--json]",
         "counts by status, pending timers, buffered signals, sizes",
         R"(Prints Engine::stats(): runs by status, pending timers, buffered signals,
the last event's sequence number, the file size and the map size.

options:
  --json  one JSON object (Stats::to_json)

exit codes: 0 printed, 2 bad arguments, 3 database problem

examples:
  abide --db refunds.db stats
  ABIDE_DB=refunds.db abide stats --json | jq .by_status.waiting
)"},
        {Verb::check,
         "check",
         {},
         {{"json", false}},
         {},
         "check [--json]",
         "verify the whole file: every record, index and page",
         R"(Runs abide::verify_database: reads the whole file read-only in a child
process (so a damaged page cannot crash anything else), decodes every record
and checks its checksum, and checks that the indexes agree with the runs.
Safe while a host has the file open; the file is never modified. Run it
after a disk problem or before opening a restored backup.

options:
  --json  one JSON object (VerifyReport::to_json)

exit codes: 0 sound, 3 problems found (each printed, naming the run or
table), 2 bad arguments

examples:
  abide --db refunds.db check
  abide --db refunds.db check --json | jq .damaged_runs
)"},
    };
    return specs;
}

const VerbSpec& spec_of(Verb v) {
    for (const VerbSpec& s : verbs())
        if (s.verb == v) return s;
    throw std::logic_error("abide: verb without a spec");
}

const VerbSpec* find_verb(std::string_view name) {
    for (const VerbSpec& s : verbs())
        if (s.name == name) return &s;
    return nullptr;
}

std::string verb_list() {
    std::string out;
    for (const VerbSpec& s : verbs()) out += (out.empty() ? "" : ", ") + std::string(s.name);
    return out;
}

template <class T>
T parse_number(std::string_view option, std::string_view text, T min) {
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min)
        throw UsageFailure(fmt::format("--{} needs a whole number {} or more, not '{}'", option, min, text));
    return value;
}

std::string read_data(std::string_view value, std::string& source) {
    if (value.empty() || value[0] != '@') return std::string(value);
    const std::string file(value.substr(1));
    if (file == "-") {
        source = "the --data read from standard input";
        return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw UsageFailure(fmt::format("cannot read --data file '{}'; check the path (--data @FILE reads FILE)", file));
    source = fmt::format("the --data read from '{}'", file);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

std::string_view verb_name(Verb v) { return spec_of(v).name; }

Command parse(int argc, const char* const* argv, const char* env_db) {
    std::optional<std::string> error;  // the first problem; help wins over it
    auto fail = [&](std::string message) {
        if (!error) error = std::move(message);
    };
    bool help = false, version = false, end_of_options = false;
    const VerbSpec* spec = nullptr;
    std::optional<std::string> db;
    std::vector<std::string> positionals;
    std::map<std::string, std::string, std::less<>> values;
    std::set<std::string, std::less<>> flags;

    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (!end_of_options && arg == "--") {
            end_of_options = true;
            continue;
        }
        if (!end_of_options && arg.size() > 1 && arg[0] == '-') {
            if (arg == "-h" || arg == "--help") {
                help = true;
                continue;
            }
            if (arg == "--version") {
                version = true;
                continue;
            }
            if (arg.substr(0, 2) != "--") {
                fail(fmt::format("unknown option '{}'; options are spelt --name (see abide --help)", arg));
                continue;
            }
            const std::size_t eq = arg.find('=');
            const std::string_view name = arg.substr(2, eq == std::string_view::npos ? std::string_view::npos : eq - 2);
            std::optional<std::string_view> inline_value;
            if (eq != std::string_view::npos) inline_value = arg.substr(eq + 1);
            auto take_value = [&]() -> std::optional<std::string> {
                if (inline_value) return std::string(*inline_value);
                if (i + 1 < argc) return std::string(argv[++i]);
                fail(fmt::format("--{} needs a value", name));
                return std::nullopt;
            };
            if (name == "db") {
                if (auto v = take_value()) {
                    if (db) fail("--db given twice; give it once");
                    db = std::move(*v);
                }
                continue;
            }
            if (!spec) {
                fail(fmt::format("unknown option '--{}' before the verb; only --db goes before it (see abide --help)",
                                 name));
                continue;
            }
            auto opt = std::find_if(spec->options.begin(), spec->options.end(),
                                    [&](const OptionSpec& o) { return o.name == name; });
            if (opt == spec->options.end()) {
                fail(
                    fmt::format("'abide {}' has no option '--{}' (see abide {} --help)", spec->name, name, spec->name));
                continue;
            }
            if (values.count(name) || flags.count(name)) {
                fail(fmt::format("--{} given twice; give it once", name));
                continue;
            }
            if (opt->takes_value) {
                if (auto v = take_value()) values.emplace(std::string(name), std::move(*v));
            } else if (inline_value) {
                fail(fmt::format("--{} takes no value", name));
            } else {
                flags.emplace(name);
            }
            continue;
        }
        if (!spec) {
            if (arg == "help" && !help) {  // `abide help [VERB]`
                help = true;
                continue;
            }
            spec = find_verb(arg);
            if (!spec) {
                throw UsageFailure(
                    fmt::format("unknown verb '{}'; the verbs are {} (see abide --help)", arg, verb_list()));
            }
            continue;
        }
        positionals.emplace_back(arg);
    }

    Command cmd;
    if (spec) cmd.verb = spec->verb;
    if (help) {
        cmd.kind = Command::Kind::help;
        return cmd;
    }
    if (version) {
        cmd.kind = Command::Kind::version;
        return cmd;
    }
    if (error) throw UsageFailure(*error);
    if (!spec) throw UsageFailure(fmt::format("no verb given; the verbs are {} (see abide --help)", verb_list()));

    if (positionals.size() < spec->positionals.size())
        throw UsageFailure(fmt::format("'abide {}' needs {}", spec->name, spec->positionals[positionals.size()]));
    if (positionals.size() > spec->positionals.size())
        throw UsageFailure(fmt::format("unexpected argument '{}' for 'abide {}' (see abide {} --help)",
                                       positionals[spec->positionals.size()], spec->name, spec->name));
    for (std::size_t p = 0; p < positionals.size(); ++p)
        if (positionals[p].empty()) throw UsageFailure(fmt::format("{} is empty", spec->positionals[p]));
    for (std::string_view r : spec->required)
        if (!values.count(r))
            throw UsageFailure(fmt::format("'abide {}' needs --{} (see abide {} --help)", spec->name, r, spec->name));

    if (db) {
        cmd.db = *db;
    } else if (env_db) {
        cmd.db = env_db;
    }
    if (cmd.db.empty())
        throw UsageFailure(db ? "--db is empty; name the database file"
                              : "no database given; pass --db PATH or set ABIDE_DB");

    auto value = [&](std::string_view name) -> const std::string* {
        auto it = values.find(name);
        return it == values.end() ? nullptr : &it->second;
    };
    auto non_empty = [&](std::string_view name) -> std::optional<std::string> {
        const std::string* v = value(name);
        if (!v) return std::nullopt;
        if (v->empty()) throw UsageFailure(fmt::format("--{} is empty", name));
        return *v;
    };

    if (!positionals.empty()) cmd.run = positionals[0];
    if (positionals.size() > 1) cmd.name = positionals[1];
    cmd.json = flags.count("json") > 0;
    cmd.follow = flags.count("follow") > 0;
    if (const std::string* s = value("status")) {
        cmd.status = parse_run_status(*s);
        if (!cmd.status)
            throw UsageFailure(
                fmt::format("unknown status '{}'; use ready, running, waiting, completed, failed, cancelled or quarantined", *s));
    }
    cmd.workflow = non_empty("workflow");
    cmd.waiting_for = non_empty("waiting-for");
    if (const std::string* l = value("limit")) cmd.limit = parse_number<std::size_t>("limit", *l, 1);
    if (const std::string* a = value("after")) {
        if (spec->verb == Verb::events)
            cmd.after_seq = parse_number<std::uint64_t>("after", *a, 0);
        else
            cmd.after_id = *a;
    }
    if (const std::string* d = value("data")) cmd.data = read_data(*d, cmd.data_source);
    if (auto id = non_empty("id")) cmd.signal_id = *id;
    if (auto reason = non_empty("reason")) cmd.reason = *reason;
    return cmd;
}

std::string overall_help() {
    std::string verb_lines;
    for (const VerbSpec& s : verbs()) verb_lines += fmt::format("  {:<8}{}\n", s.name, s.summary);
    return fmt::format(R"(abide: look at and operate an abide database from outside its host process

usage: abide --db PATH VERB [ARGS]
       abide VERB --help

PATH names the database file; without --db it comes from the ABIDE_DB
environment variable. The command never creates a database and never runs a
workflow (it never polls): it reads the stored state, and signal, resume and
cancel and release record a request that the host process carries out at its next
poll(). It is safe to use while a host has the same database open.

verbs:
{}
exit codes:
  0  success
  1  refused: signal, resume or cancel was not accepted (duplicate id, unknown
     or finished run, too late, ...); the outcome is printed
  2  usage error: bad arguments or bad JSON; nothing was written
  3  database problem: no file at PATH (none is created), not an abide
     database, damaged, or unreadable
  4  unknown run (show, trace)
Errors go to stderr, one line each.

examples:
  abide --db refunds.db runs --status waiting
  ABIDE_DB=refunds.db abide show refund-T-1001
  abide --db refunds.db signal refund-T-1001 refund_decision --id approval-42 \
      --data '{{"status":"approved","reviewer_id":"u_123","reason":"ok","approved_amount":4900}}'
  abide --db refunds.db events --follow --json

Run 'abide VERB --help' for a verb's options, outcomes and examples.
)",
                       verb_lines);
}

std::string verb_help(Verb v) {
    const VerbSpec& s = spec_of(v);
    return fmt::format("usage: abide --db PATH {}\n\n{}", s.usage, s.help);
}

}  // namespace abide::cli
