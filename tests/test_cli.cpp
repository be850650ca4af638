// The `abide` command, run as a separate process against a database an
// in-test Engine (the "host") keeps open: reads, signals, refusals, exit codes.
#include "lmdb_support.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#ifdef ABIDE_CLI_PATH


#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace abide;
using namespace std::chrono_literals;
using test::Decision;

namespace {

std::string read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

struct CliResult {
    int code = -1;
    std::string out, err;
};

/// A running `abide` process whose stdout and stderr go to files.
class CliProcess {
public:
    /// `env` replaces ABIDE_DB (removed from the inherited environment) and
    /// adds variables; stdin is /dev/null unless `input` is given.
    CliProcess(const std::filesystem::path& scratch, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {}, std::optional<std::string> input = {})
        : out_(scratch / ("cli-" + std::to_string(counter()) + ".out")),
          err_(scratch / ("cli-" + std::to_string(counter()) + ".err")) {
        std::filesystem::path in_path = "/dev/null";
        if (input) {
            in_path = scratch / ("cli-" + std::to_string(counter()) + ".in");
            std::ofstream(in_path, std::ios::binary) << *input;
        }
        std::vector<std::string> env_strings;
        for (char** e = environ; *e; ++e)
            if (std::strncmp(*e, "ABIDE_DB=", 9) != 0) env_strings.emplace_back(*e);
        for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
        std::vector<std::string> argv_strings{ABIDE_CLI_PATH};
        argv_strings.insert(argv_strings.end(), args.begin(), args.end());
        std::vector<char*> argv_ptrs, env_ptrs;
        for (auto& s : argv_strings) argv_ptrs.push_back(s.data());
        argv_ptrs.push_back(nullptr);
        for (auto& s : env_strings) env_ptrs.push_back(s.data());
        env_ptrs.push_back(nullptr);

        pid_ = fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            const int in = open(in_path.c_str(), O_RDONLY);
            const int out = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            const int err = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (in < 0 || out < 0 || err < 0) _exit(126);
            dup2(in, 0);
            dup2(out, 1);
            dup2(err, 2);
            execve(argv_ptrs[0], argv_ptrs.data(), env_ptrs.data());
            _exit(127);
        }
    }
    ~CliProcess() {
        if (pid_ > 0 && !finished_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    CliProcess(const CliProcess&) = delete;
    CliProcess& operator=(const CliProcess&) = delete;

    std::string out() const { return read_bytes(out_); }
    std::string err() const { return read_bytes(err_); }

    /// Waits until stdout contains `part`; false after `timeout`.
    bool wait_for_output(std::string_view part, std::chrono::milliseconds timeout = 10s) const {
        const auto until = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < until) {
            if (contains(out(), part)) return true;
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }

    void send(int sig) const { kill(pid_, sig); }

    /// Waits for the exit (killing it after `timeout`) and returns the result;
    /// a process ended by a signal reports 128 + the signal.
    CliResult finish(std::chrono::milliseconds timeout = 30s) {
        const auto until = std::chrono::steady_clock::now() + timeout;
        int status = 0;
        for (;;) {
            const pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_) break;
            if (std::chrono::steady_clock::now() >= until) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &status, 0);
                finished_ = true;
                FAIL("the abide command did not finish within the timeout");
            }
            std::this_thread::sleep_for(5ms);
        }
        finished_ = true;
        CliResult result;
        result.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        result.out = out();
        result.err = err();
        return result;
    }

private:
    static int counter() {
        static int n = 0;
        return ++n;
    }
    std::filesystem::path out_, err_;
    pid_t pid_ = -1;
    bool finished_ = false;
};

/// Runs `abide` against the test's database (`--db` first) or, through
/// `raw`, with exactly the arguments given.
class Cli {
public:
    explicit Cli(const test::TempDir& dir) : dir_(dir) { std::filesystem::create_directories(scratch()); }
    std::filesystem::path scratch() const { return dir_.path() / "cli"; }

    CliResult operator()(std::vector<std::string> args, std::optional<std::string> input = {}) const {
        args.insert(args.begin(), {"--db", dir_.db().string()});
        return raw(args, {}, std::move(input));
    }
    CliResult raw(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
                  std::optional<std::string> input = {}) const {
        CliProcess p(scratch(), args, env, std::move(input));
        CliResult r = p.finish();
        UNSCOPED_INFO("abide exit " << r.code << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
        return r;
    }
    std::unique_ptr<CliProcess> spawn(std::vector<std::string> args) const {
        args.insert(args.begin(), {"--db", dir_.db().string()});
        return std::make_unique<CliProcess>(scratch(), args);
    }

private:
    const test::TempDir& dir_;
};

/// The host's workflows: an approval waiting for "decision" with no timeout,
/// one waiting with a 1h timeout, a review suspended on "approve", and one
/// that completes at once.
void define_workflows(Engine& engine) {
    engine
        .define("approval",
                [](Context& ctx, const std::string& ticket) {
                    auto d = ctx.wait_for_signal<Decision>("decision", {{"ticket", ticket}, {"amount", 4900}});
                    ctx.step("act", [] { return 1; });
                    return d.status + " by " + d.reviewer_id;
                })
        .signal<Decision>("decision");
    engine
        .define("hurried",
                [](Context& ctx) {
                    auto d = ctx.wait_for_signal<Decision>("decision", 1h);
                    return d ? d->status : std::string("timed_out");
                })
        .signal<Decision>("decision");
    engine
        .define("review",
                [](Context& ctx) {
                    auto data = ctx.suspend("approve", {{"doc", "D-1"}});
                    return data.at("status").get<std::string>();
                })
        .resume<Decision>("approve");
    engine.define("quick", [](Context& ctx, int n) { return ctx.step("double", [n] { return 2 * n; }); });
}

const std::string approval_json =
    R"({"status":"approved","reviewer_id":"u_123","reason":"receipt checked","approved_amount":4900})";

/// A host with one waiting approval ("r-wait") and one completed run ("r-done").
struct Host {
    test::TempDir dir;
    test::ManualClock clock;
    Engine engine{test::test_options(dir, clock)};
    Cli cli{dir};
    Host() {
        define_workflows(engine);
        (void)engine.start("approval", std::string("T-1"), {.run_id = "r-wait"});
        (void)engine.start("quick", 21, {.run_id = "r-done"});
        engine.poll();
        REQUIRE(engine.status("r-wait")->status == RunStatus::waiting);
        REQUIRE(engine.status("r-done")->status == RunStatus::completed);
    }
    std::size_t event_count() const { return engine.events(0, std::size_t{1} << 20).size(); }
};

}  // namespace

// ---- reading ---------------------------------------------------------------------

TEST_CASE("abide runs lists runs as a table and as JSON lines, with filters and pages", "[cli]") {
    Host host;
    auto r = host.cli({"runs"});
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 3);
    CHECK(contains(lines[0], "ID"));
    CHECK(contains(lines[0], "WAITING FOR"));
    CHECK(contains(lines[0], "DEADLINE"));
    CHECK(contains(r.out, "r-wait"));
    CHECK(contains(r.out, "signal decision"));
    CHECK(contains(r.out, "r-done"));
    CHECK(contains(r.out, "completed"));

    r = host.cli({"runs", "--status", "waiting", "--json"});
    CHECK(r.code == 0);
    lines = lines_of(r.out);
    REQUIRE(lines.size() == 1);
    json run = json::parse(lines[0]);
    CHECK(run["id"] == "r-wait");
    CHECK(run["workflow"] == "approval");
    CHECK(run["status"] == "waiting");
    CHECK(run["input"] == "T-1");
    CHECK(run["waiting"]["kind"] == "signal");
    CHECK(run["waiting"]["name"] == "decision");
    CHECK(run["waiting"]["data"]["ticket"] == "T-1");

    r = host.cli({"runs", "--waiting-for", "decision"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "r-wait"));
    CHECK_FALSE(contains(r.out, "r-done"));

    r = host.cli({"runs", "--workflow", "quick", "--json"});
    REQUIRE(lines_of(r.out).size() == 1);
    CHECK(json::parse(lines_of(r.out)[0])["output"] == 42);

    r = host.cli({"runs", "--workflow", "nobody"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "no runs match"));

    // Pages: the first run, then the one after it.
    const std::string first = host.engine.list_runs()[0].id, second = host.engine.list_runs()[1].id;
    r = host.cli({"runs", "--limit", "1", "--json"});
    REQUIRE(lines_of(r.out).size() == 1);
    CHECK(json::parse(lines_of(r.out)[0])["id"] == first);
    r = host.cli({"runs", "--limit", "1"});
    CHECK(contains(r.err, "--after " + first));
    r = host.cli({"runs", "--limit", "2"});  // the page holds every run: no next page
    CHECK(lines_of(r.out).size() == 3);
    CHECK(r.err.empty());
    r = host.cli({"runs", "--limit", "1", "--after", first, "--json"});
    REQUIRE(lines_of(r.out).size() == 1);
    CHECK(json::parse(lines_of(r.out)[0])["id"] == second);
}

TEST_CASE("abide show prints a waiting run's waiting point and a finished run's output", "[cli]") {
    Host host;
    auto r = host.cli({"show", "r-wait"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "status    waiting"));
    CHECK(contains(r.out, "workflow  approval"));
    CHECK(contains(r.out, "input     \"T-1\""));
    CHECK(contains(r.out, "waiting   signal decision"));
    CHECK(contains(r.out, R"(metadata  {"amount":4900,"ticket":"T-1"})"));
    CHECK(contains(r.out, "deadline  none"));
    CHECK(contains(r.out, "since"));

    r = host.cli({"show", "r-wait", "--json"});
    CHECK(r.code == 0);
    json j = json::parse(r.out);
    CHECK(j["status"] == "waiting");
    CHECK(j["waiting"]["data"]["amount"] == 4900);
    CHECK(j["waiting"]["deadline"].is_null());

    r = host.cli({"show", "r-done"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "status    completed"));
    CHECK(contains(r.out, "output    42"));
}

TEST_CASE("abide trace prints the engine's rendered trace and its JSON", "[cli]") {
    Host host;
    auto r = host.cli({"trace", "r-done"});
    CHECK(r.code == 0);
    CHECK(r.out == host.engine.trace("r-done").render());
    CHECK(contains(r.out, "double"));
    r = host.cli({"trace", "r-wait", "--json"});
    CHECK(r.code == 0);
    CHECK(json::parse(r.out) == host.engine.trace("r-wait").to_json());
}

TEST_CASE("abide stats prints the engine's counts", "[cli]") {
    Host host;
    auto r = host.cli({"stats", "--json"});
    CHECK(r.code == 0);
    json j = json::parse(r.out);
    const Stats s = host.engine.stats();
    CHECK(j["runs"] == 2);
    CHECK(j["by_status"] == s.to_json()["by_status"]);
    CHECK(j["by_status"]["waiting"] == 1);
    CHECK(j["last_event_seq"] == s.last_event_seq);
    CHECK(j["file_bytes"] == s.file_bytes);

    r = host.cli({"stats"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "runs              2"));
    CHECK(contains(r.out, "  waiting         1"));
    CHECK(contains(r.out, "  completed       1"));
    CHECK(contains(r.out, "last event seq    " + std::to_string(s.last_event_seq)));
}

TEST_CASE("abide check verifies the whole file: exit 0 when sound and 3 when a problem is found", "[cli][verify]") {
    Host host;
    auto r = host.cli({"check"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "ok: the file is sound"));
    r = host.cli({"check", "--json"});
    CHECK(r.code == 0);
    const json report = json::parse(r.out);
    CHECK(report["ok"] == true);
    CHECK(report["runs"] == 2);
    CHECK(report["unreadable"] == false);

    r = host.cli.raw({"--db", (host.dir.path() / "missing.db").string(), "check"});
    CHECK(r.code == 3);
    CHECK(contains(r.err, "does not exist"));
    CHECK_FALSE(std::filesystem::exists(host.dir.path() / "missing.db"));
}

TEST_CASE("abide events prints the log from a cursor, as text or as Event::to_json lines", "[cli]") {
    Host host;
    const std::vector<Event> events = host.engine.events(0);
    REQUIRE(events.size() >= 4);

    auto r = host.cli({"events", "--json"});
    CHECK(r.code == 0);
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == events.size());
    for (std::size_t i = 0; i < events.size(); ++i) CHECK(json::parse(lines[i]) == events[i].to_json());

    r = host.cli({"events", "--after", "1", "--limit", "2", "--json"});
    CHECK(r.code == 0);
    lines = lines_of(r.out);
    REQUIRE(lines.size() == 2);
    CHECK(json::parse(lines[0])["seq"] == 2);
    CHECK(json::parse(lines[1])["seq"] == 3);
    CHECK(contains(r.err, "--after 3"));  // more follow

    r = host.cli({"events"});
    CHECK(r.code == 0);
    lines = lines_of(r.out);
    REQUIRE(lines.size() == events.size());
    CHECK(contains(lines[0], "started"));
    CHECK(contains(r.out, "waiting"));
    CHECK(contains(r.out, "r-wait (approval)"));
    CHECK(r.err.empty());

    r = host.cli({"events", "--after", std::to_string(events.back().seq)});
    CHECK(r.code == 0);
    CHECK(r.out.empty());
}

TEST_CASE("abide events --follow prints events as the host commits them and stops on SIGTERM or SIGINT", "[cli]") {
    Host host;
    const int sig = GENERATE(SIGTERM, SIGINT);
    CAPTURE(sig);
    const std::uint64_t last = host.engine.events(0).back().seq;
    auto follower = host.cli.spawn({"events", "--follow", "--json", "--after", std::to_string(last)});
    std::this_thread::sleep_for(300ms);  // it has read the log and is polling
    CHECK(follower->out().empty());

    (void)host.engine.start("quick", 5, {.run_id = "r-new"});
    REQUIRE(follower->wait_for_output("r-new"));
    host.engine.poll();
    REQUIRE(follower->wait_for_output("\"completed\""));
    follower->send(sig);
    CliResult r = follower->finish();
    CHECK(r.code == 0);
    auto lines = lines_of(r.out);
    const auto expected = host.engine.events(last);
    REQUIRE(lines.size() == expected.size());
    for (std::size_t i = 0; i < lines.size(); ++i) CHECK(json::parse(lines[i]) == expected[i].to_json());
}

TEST_CASE("abide events --follow --limit stops by itself after that many events", "[cli]") {
    Host host;
    const std::uint64_t last = host.engine.events(0).back().seq;
    auto follower = host.cli.spawn({"events", "--follow", "--limit", "1", "--after", std::to_string(last)});
    (void)host.engine.start("quick", 5, {.run_id = "r-new"});
    CliResult r = follower->finish();
    CHECK(r.code == 0);
    REQUIRE(lines_of(r.out).size() == 1);
    CHECK(contains(r.out, "started"));
    CHECK(contains(r.out, "r-new"));
}

// ---- signal, resume, cancel ------------------------------------------------------

TEST_CASE("abide signal with an id is taken by the host's next poll and the same id again is a duplicate", "[cli]") {
    Host host;
    auto r = host.cli({"signal", "r-wait", "decision", "--data", approval_json, "--id", "approval-42"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "buffered:"));
    CHECK(contains(r.out, "signal_rejected"));  // the note: the host's validation still applies
    CHECK(r.err.empty());
    CHECK(host.engine.status("r-wait")->status == RunStatus::ready);

    r = host.cli({"signal", "r-wait", "decision", "--data", approval_json, "--id", "approval-42"});
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(contains(r.err, "duplicate"));

    host.engine.poll();
    REQUIRE(host.engine.status("r-wait")->status == RunStatus::completed);
    CHECK(host.engine.result<std::string>("r-wait") == "approved by u_123");
    CHECK(test::count_events(host.engine, "r-wait", EventType::signal_delivered) == 1);

    // Once finished, another id is refused as run_finished; --json says so on stdout.
    r = host.cli({"signal", "r-wait", "decision", "--data", approval_json, "--id", "approval-43", "--json"});
    CHECK(r.code == 1);
    json j = json::parse(r.out);
    CHECK(j["outcome"] == "run_finished");
    CHECK(j["accepted"] == false);
    CHECK_FALSE(j["message"].get<std::string>().empty());
}

TEST_CASE("abide signal reads --data from a file or standard input", "[cli]") {
    Host host;
    const bool from_stdin = GENERATE(false, true);
    CAPTURE(from_stdin);
    CliResult r;
    if (from_stdin) {
        r = host.cli({"signal", "r-wait", "decision", "--data", "@-"}, approval_json);
    } else {
        const auto file = host.cli.scratch() / "decision.json";
        std::ofstream(file) << approval_json;
        r = host.cli({"signal", "r-wait", "decision", "--data", "@" + file.string()});
    }
    CHECK(r.code == 0);
    host.engine.poll();
    CHECK(host.engine.status("r-wait")->status == RunStatus::completed);

    r = host.cli({"signal", "r-wait", "decision", "--data", "@/nonexistent/decision.json"});
    CHECK(r.code == 2);
    CHECK(contains(r.err, "cannot read --data file"));
}

TEST_CASE("abide signal refuses bad JSON with exit 2 and writes nothing", "[cli]") {
    Host host;
    const std::string bad = GENERATE(std::string("approved"), std::string(R"({"status":)"), std::string(""));
    CAPTURE(bad);
    const std::size_t events = host.event_count();
    const std::string before = read_bytes(host.dir.db());

    auto r = host.cli({"signal", "r-wait", "decision", "--data", bad, "--id", "x-1"});
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(contains(r.err, "not valid JSON"));
    CHECK(lines_of(r.err).size() == 1);
    r = host.cli({"resume", "r-wait", "approve", "--data", bad});
    CHECK(r.code == 2);

    CHECK(host.event_count() == events);
    CHECK(read_bytes(host.dir.db()) == before);
    CHECK(host.engine.status("r-wait")->status == RunStatus::waiting);
    CHECK(host.engine.stats().buffered_signals == 0);
    // The id was not used up: the same id with good JSON is accepted.
    r = host.cli({"signal", "r-wait", "decision", "--data", approval_json, "--id", "x-1"});
    CHECK(r.code == 0);
}

TEST_CASE("a payload of the wrong type is stored unvalidated and rejected by the host's poll", "[cli]") {
    Host host;
    auto r = host.cli({"signal", "r-wait", "decision", "--data", R"({"status":1})"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "buffered:"));
    host.engine.poll();
    CHECK(host.engine.status("r-wait")->status == RunStatus::waiting);
    CHECK(test::count_events(host.engine, "r-wait", EventType::signal_rejected) == 1);

    r = host.cli({"events", "--json"});
    CHECK(contains(r.out, "\"signal_rejected\""));
    // A good one after it still completes the run.
    r = host.cli({"signal", "r-wait", "decision", "--data", approval_json});
    CHECK(r.code == 0);
    host.engine.poll();
    CHECK(host.engine.status("r-wait")->status == RunStatus::completed);
}

TEST_CASE("abide resume continues a suspended run and the same id again is a duplicate", "[cli]") {
    Host host;
    (void)host.engine.start("review", json(), {.run_id = "r-review"});
    host.engine.poll();
    REQUIRE(host.engine.status("r-review")->status == RunStatus::waiting);

    auto r = host.cli({"show", "r-review"});
    CHECK(contains(r.out, "waiting   suspend approve"));
    CHECK(contains(r.out, R"(data      {"doc":"D-1"})"));

    r = host.cli({"resume", "r-review", "approve", "--data", approval_json, "--id", "legal-7"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "buffered:"));
    r = host.cli({"resume", "r-review", "approve", "--data", approval_json, "--id", "legal-7", "--json"});
    CHECK(r.code == 1);
    CHECK(json::parse(r.out)["outcome"] == "duplicate");
    host.engine.poll();
    REQUIRE(host.engine.status("r-review")->status == RunStatus::completed);
    CHECK(host.engine.result<std::string>("r-review") == "approved");
}

TEST_CASE("abide signal after the wait's deadline is refused as too_late with exit 1", "[cli]") {
    Host host;  // the host's clock is in 2023, so the 1h deadline has passed for the command
    (void)host.engine.start("hurried", json(), {.run_id = "r-hurried"});
    host.engine.poll();
    REQUIRE(host.engine.status("r-hurried")->status == RunStatus::waiting);
    auto r = host.cli({"signal", "r-hurried", "decision", "--data", approval_json});
    CHECK(r.code == 1);
    CHECK(contains(r.err, "too_late"));
    host.engine.poll();
    CHECK(host.engine.result<std::string>("r-hurried") == "timed_out");
}

TEST_CASE("a run executing in one process sees a cancel that another process committed between its commits",
          "[cli][cancel]") {
    test::TempDir dir;
    test::ManualClock clock;
    Cli cli{dir};
    std::vector<int> exits;
    const RunInfo run = test::act_between_commits(dir, clock, [&](Engine&, const std::string& id) {
        exits.push_back(cli({"cancel", id, "--reason", "from another process"}).code);
    });
    CHECK(exits == std::vector<int>{0});
    CHECK(run.status == RunStatus::cancelled);
}

TEST_CASE("abide cancel asks a waiting run to stop, and repeats and finished runs are refused", "[cli]") {
    Host host;
    auto r = host.cli({"cancel", "r-wait", "--reason", "customer withdrew"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "cancelled:"));
    r = host.cli({"cancel", "r-wait", "--reason", "again"});
    CHECK(r.code == 1);
    CHECK(contains(r.err, "already_requested"));
    host.engine.poll();
    auto info = host.engine.status("r-wait");
    REQUIRE(info->status == RunStatus::cancelled);
    REQUIRE(info->error);
    CHECK(contains(info->error->message, "customer withdrew"));

    r = host.cli({"cancel", "r-done", "--reason", "late", "--json"});
    CHECK(r.code == 1);
    CHECK(json::parse(r.out)["outcome"] == "run_finished");
    r = host.cli({"cancel", "nope", "--reason", "x"});
    CHECK(r.code == 1);
    CHECK(contains(r.err, "unknown_run"));
    r = host.cli({"cancel", "r-done"});
    CHECK(r.code == 2);
    CHECK(contains(r.err, "--reason"));
}

// ---- errors and exit codes -----------------------------------------------------

TEST_CASE("an unknown run is exit 4 for show and trace, and a refused signal (exit 1)", "[cli]") {
    Host host;
    const std::size_t events = host.event_count();
    for (const char* verb : {"show", "trace"}) {
        auto r = host.cli({verb, "no-such-run"});
        CHECK(r.code == 4);
        CHECK(r.out.empty());
        CHECK(contains(r.err, "no run 'no-such-run'"));
        CHECK(lines_of(r.err).size() == 1);
    }
    auto r = host.cli({"signal", "no-such-run", "decision", "--data", approval_json});
    CHECK(r.code == 1);
    CHECK(contains(r.err, "unknown_run"));
    r = host.cli({"resume", "no-such-run", "approve", "--data", "{}", "--json"});
    CHECK(r.code == 1);
    CHECK(json::parse(r.out)["outcome"] == "unknown_run");
    CHECK(host.event_count() == events);
}

TEST_CASE("a missing database is exit 3 and no file is created", "[cli]") {
    test::TempDir dir;
    Cli cli(dir);
    const auto missing = dir.path() / "missing.db";
    for (const char* verb : {"runs", "stats", "events"}) {
        auto r = cli.raw({"--db", missing.string(), verb});
        CHECK(r.code == 3);
        CHECK(contains(r.err, "no database at"));
    }
    auto r = cli.raw({"signal", "r-1", "decision", "--data", "{}"}, {{"ABIDE_DB", missing.string()}});
    CHECK(r.code == 3);
    CHECK(lines_of(r.err).size() == 1);
    CHECK_FALSE(std::filesystem::exists(missing));
    CHECK_FALSE(std::filesystem::exists(missing.string() + "-lock"));

    r = cli.raw({"--db", dir.path().string(), "runs"});
    CHECK(r.code == 3);
    CHECK(contains(r.err, "is a directory"));
}

TEST_CASE("a file that is not an abide database is exit 3 and left unchanged", "[cli]") {
    test::TempDir dir;
    Cli cli(dir);
    const std::string kind = GENERATE(std::string("text"), std::string("empty"), std::string("lmdb"));
    CAPTURE(kind);
    const std::string path = dir.db().string();
    if (kind == "text") {
        std::ofstream(path, std::ios::binary) << "quarterly figures\nline 2\n";
    } else if (kind == "empty") {
        std::ofstream(path, std::ios::binary).flush();
    } else {
        test::write_foreign_lmdb(path);
    }
    const std::string before = read_bytes(path);
    for (const char* verb : {"runs", "stats"}) {
        auto r = cli({verb});
        CHECK(r.code == 3);
        CHECK(r.out.empty());
        CHECK(lines_of(r.err).size() == 1);
        CHECK(contains(r.err, kind == "empty" ? "is empty" : "abide.storage.foreign_file"));
    }
    auto r = cli({"signal", "r-1", "decision", "--data", "{}"});
    CHECK(r.code == 3);
    CHECK(read_bytes(path) == before);
    CHECK_FALSE(std::filesystem::exists(path + "-lock"));
}

TEST_CASE("usage errors are exit 2 with one line on stderr", "[cli]") {
    Host host;
    const std::string db = host.dir.db().string();
    const std::vector<std::vector<std::string>> cases = {
        {"--db", db},                                            // no verb
        {"--db", db, "frobnicate"},                              // unknown verb
        {"runs"},                                                // no database
        {"--db", db, "runs", "--status", "sleeping"},            // unknown status
        {"--db", db, "runs", "--limit", "0"},                    // limit below 1
        {"--db", db, "runs", "--limit", "ten"},                  // not a number
        {"--db", db, "runs", "--verbose"},                       // unknown option
        {"--db", db, "show"},                                    // missing RUN
        {"--db", db, "show", "r-wait", "extra"},                 // extra argument
        {"--db", db, "signal", "r-wait", "decision"},            // missing --data
        {"--db", db, "signal", "r-wait", "decision", "--data"},  // --data without a value
        {"--db", db, "events", "--after", "-1"},                 // negative cursor
        {"--db", db, "stats", "--json=yes"},                     // a flag with a value
        {"--db", db, "--db", db, "stats"},                       // --db twice
    };
    const std::size_t events = host.event_count();
    for (const auto& args : cases) {
        CAPTURE(args);
        auto r = host.cli.raw(args);
        CHECK(r.code == 2);
        CHECK(r.out.empty());
        CHECK(lines_of(r.err).size() == 1);
        CHECK(contains(r.err, "abide: "));
    }
    CHECK(host.event_count() == events);
    // ABIDE_DB stands in for --db.
    auto r = host.cli.raw({"stats", "--json"}, {{"ABIDE_DB", db}});
    CHECK(r.code == 0);
    CHECK(json::parse(r.out)["runs"] == 2);
}

TEST_CASE("abide --help and VERB --help exit 0 with usage, exit codes and examples", "[cli]") {
    test::TempDir dir;
    Cli cli(dir);
    for (const auto& args : {std::vector<std::string>{"--help"}, {"-h"}, {"help"}}) {
        auto r = cli.raw(args);
        CHECK(r.code == 0);
        CHECK(contains(r.out, "usage: abide --db PATH VERB [ARGS]"));
        CHECK(contains(r.out, "exit codes:"));
        CHECK(contains(r.out, "  4  unknown run"));
        CHECK(contains(r.out, "examples:"));
        CHECK(contains(r.out, "ABIDE_DB"));
    }
    for (const char* verb : {"runs", "show", "trace", "signal", "resume", "cancel", "events", "stats"}) {
        CAPTURE(verb);
        for (const auto& args : {std::vector<std::string>{verb, "--help"}, {"help", verb}, {"--db", "x", verb, "-h"}}) {
            auto r = cli.raw(args);
            CHECK(r.code == 0);
            CHECK(contains(r.out, std::string("usage: abide --db PATH ") + verb));
            CHECK(contains(r.out, "exit codes"));
            CHECK(contains(r.out, "examples:"));
            CHECK(r.err.empty());
        }
    }
    auto r = cli.raw({"frobnicate", "--help"});
    CHECK(r.code == 2);
}

#endif  // ABIDE_CLI_PATH
