// Several host processes on one database, and runs that crash their process.
//
// The hosts here are forked children of the test (no engine is open in the
// test process while it forks). Step bodies append "begin"/"end" lines with
// their pid to a log opened with O_APPEND, so the log orders the bodies of
// all processes in real time; the checks read it after the children end.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace abide;
using namespace std::chrono_literals;
using test::Reopenable;

namespace {

/// One line per body event, written with a single O_APPEND write.
void log_line(const std::filesystem::path& log, const std::string& line) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) std::abort();
    const std::string text = line + "\n";
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::abort();
    ::close(fd);
}

struct BodyEvent {
    std::string what;  // "begin" or "end"
    std::string key;   // the step's idempotency key: "{run}:{position}"
    int pid = 0;
};

std::vector<BodyEvent> read_log(const std::filesystem::path& log) {
    std::vector<BodyEvent> events;
    std::ifstream in(log);
    BodyEvent e;
    while (in >> e.what >> e.key >> e.pid) events.push_back(e);
    return events;
}

std::string run_of(const std::string& key) { return key.substr(0, key.rfind(':')); }

/// A host: "chain" runs of `steps` steps whose bodies log and take a little
/// while; `poison` (if set) names a run whose step aborts the process.
struct ChainHost {
    explicit ChainHost(std::filesystem::path body_log) : log(std::move(body_log)) {}
    std::filesystem::path log;
    int steps = 4;
    std::chrono::microseconds body_time = 300us;
    std::string poison;

    void define(Engine& e) const {
        e.define("chain", [this](Context& ctx, int n) {
            int sum = 0;
            for (int i = 0; i < steps; ++i)
                sum += ctx.step("part", [&](StepContext& s) {
                    log_line(log, "begin " + s.idempotency_key() + " " + std::to_string(::getpid()));
                    if (s.run_id() == poison) std::abort();
                    std::this_thread::sleep_for(body_time);
                    log_line(log, "end " + s.idempotency_key() + " " + std::to_string(::getpid()));
                    return n + i;
                });
            return sum;
        });
    }
};

/// Forks a host process: it starts `runs` chain runs (idempotently: every
/// host starts the same ids) and polls until none is ready, then exits 0.
pid_t fork_host(const EngineOptions& options, const ChainHost& host, int runs) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid != 0) return pid;
    int code = 0;
    try {
        rlimit no_core{0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core);  // the poison run aborts: no core files
        ::signal(SIGABRT, SIG_DFL);          // die of it, as a host would, not in the test runner's handler
        Engine engine(options);
        host.define(engine);
        for (int i = 0; i < runs; ++i) engine.start("chain", i, StartOptions{"run-" + std::to_string(i)});
        for (;;) {
            const PollResult r = engine.poll();
            if (r.runs_advanced == 0 && engine.stats().ready + engine.stats().running == 0) break;
            if (r.runs_advanced == 0) std::this_thread::sleep_for(1ms);  // another process has them
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "host %d: %s\n", ::getpid(), e.what());
        code = 1;
    }
    std::_Exit(code);
}

/// Waits for a forked host; its exit code, or 128 + the signal that ended it.
int wait_host(pid_t pid) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// The checks every scenario shares: no two processes ran one run's bodies
/// at the same time (a body's begin..end, or begin..death, is the process's
/// hold on the run), and which keys ran how often.
std::map<std::string, int> check_exclusive(const std::vector<BodyEvent>& events, const std::set<int>& killed) {
    std::map<std::string, int> open_by;  // run -> pid with a body begun and not ended
    std::map<std::string, int> runs_of_key;
    for (const BodyEvent& e : events) {
        const std::string run = run_of(e.key);
        if (e.what == "begin") {
            ++runs_of_key[e.key];
            auto it = open_by.find(run);
            if (it != open_by.end()) {
                // Only a dead process may leave a body open; its successor takes over.
                INFO("run " << run << ": pid " << e.pid << " began " << e.key << " while pid " << it->second
                            << " was in a body of the same run");
                CHECK(killed.count(it->second) == 1);
            }
            open_by[run] = e.pid;
        } else {
            auto it = open_by.find(run);
            INFO("end of " << e.key << " by pid " << e.pid);
            REQUIRE(it != open_by.end());
            CHECK(it->second == e.pid);
            open_by.erase(it);
        }
    }
    return runs_of_key;
}

}  // namespace

TEST_CASE("two host processes polling one database execute every run in one process at a time, each step once",
          "[processes]") {
    Reopenable db;
    const std::filesystem::path log = db.dir.path() / "bodies.log";
    const ChainHost host{log};
    constexpr int runs = 120;
    const EngineOptions options = db.options();
    const pid_t a = fork_host(options, host, runs);
    const pid_t b = fork_host(options, host, runs);
    CHECK(wait_host(a) == 0);
    CHECK(wait_host(b) == 0);

    const auto events = read_log(log);
    const auto counts = check_exclusive(events, {});
    CHECK(counts.size() == runs * 4u);
    for (const auto& [key, n] : counts) {
        INFO("step " << key);
        CHECK(n == 1);  // no process died: every body ran exactly once
    }
    std::set<int> pids;
    for (const BodyEvent& e : events) pids.insert(e.pid);
    INFO("bodies ran in " << pids.size() << " process(es)");
    Engine& engine = db.open();
    host.define(engine);
    for (int i = 0; i < runs; ++i) CHECK(engine.result<int>("run-" + std::to_string(i)) == 4 * i + 6);
}

TEST_CASE("a killed host's runs are taken over by another process and no committed step runs again",
          "[processes]") {
    Reopenable db;
    const std::filesystem::path log = db.dir.path() / "bodies.log";
    ChainHost slow{log};
    slow.body_time = 2ms;  // long enough that the kill lands inside bodies
    constexpr int runs = 40;
    const EngineOptions options = db.options();
    const pid_t a = fork_host(options, slow, runs);
    // Kill A in the middle of its second round: its first round (one body of
    // each run, 2 lines each) is committed, the second is not. Kill it just
    // after a body began, so that the kill lands inside that body however
    // slowly this machine runs (the body takes 2 ms).
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
        const auto lines = read_log(log);
        if (lines.size() >= 2 * runs + 20 && lines.back().what == "begin") break;
        if (std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(100us);
    }
    ::kill(a, SIGKILL);
    CHECK(wait_host(a) == 128 + SIGKILL);
    const std::size_t lines_before_b = read_log(log).size();
    // What A committed before it died: steps journaled then (keyed like
    // StepContext::idempotency_key, "{run}:{journal position}") must not run again.
    std::set<std::string> committed_by_a;
    {
        Engine& engine = db.open(options);
        slow.define(engine);
        for (int i = 0; i < runs; ++i) {
            const std::string run = "run-" + std::to_string(i);
            if (!engine.status(run)) continue;
            for (const TraceEntry& e : engine.trace(run).entries)
                if (e.kind == "step") committed_by_a.insert(run + ":" + std::to_string(e.seq));
        }
        db.close();  // no engine open in this process while it forks
    }
    const pid_t b = fork_host(options, slow, runs);
    CHECK(wait_host(b) == 0);

    const auto events = read_log(log);
    const auto counts = check_exclusive(events, {a});
    CHECK(counts.size() == runs * 4u);
    // Runs in which A was inside a body when it died.
    std::set<std::string> held_at_death;
    {
        std::map<std::string, int> open_by;
        for (std::size_t i = 0; i < lines_before_b; ++i) {
            const BodyEvent& e = events[i];
            if (e.what == "begin") open_by[run_of(e.key)] = e.pid;
            else open_by.erase(run_of(e.key));
        }
        for (const auto& [run, pid] : open_by) held_at_death.insert(run);
    }
    CHECK_FALSE(held_at_death.empty());  // the kill landed inside a body
    CHECK_FALSE(committed_by_a.empty());  // A got somewhere before it died
    for (const auto& [key, n] : counts) {
        INFO("step " << key << " ran " << n << " times");
        CHECK(n <= 2);
        if (committed_by_a.count(key)) CHECK(n == 1);  // journaled by A: B replays it, never runs it
        if (n == 2) {
            // A ran it first and died before its result was committed.
            int first_pid = 0;
            for (const BodyEvent& e : events)
                if (e.key == key && e.what == "begin") {
                    first_pid = e.pid;
                    break;
                }
            CHECK(first_pid == a);
        }
    }
    std::size_t b_bodies = 0;
    for (std::size_t i = lines_before_b; i < events.size(); ++i)
        if (events[i].what == "begin") ++b_bodies;
    CHECK(b_bodies > 0);  // B took over
    Engine& engine = db.open();
    slow.define(engine);
    for (int i = 0; i < runs; ++i) CHECK(engine.result<int>("run-" + std::to_string(i)) == 4 * i + 6);
}

TEST_CASE("a run that crashes its process on every attempt is quarantined, the others finish, and release lets it "
          "run again",
          "[processes][quarantine]") {
    Reopenable db;
    const std::filesystem::path log = db.dir.path() / "bodies.log";
    ChainHost host{log};
    host.poison = "run-2";
    constexpr int runs = 6;
    EngineOptions options = db.options();
    options.quarantine_after = 3;

    // A service restarting its crashed host, as systemd would.
    int crashes = 0;
    int exit_code = -1;
    for (int restart = 0; restart < 10 && exit_code != 0; ++restart) {
        exit_code = wait_host(fork_host(options, host, runs));
        if (exit_code == 128 + SIGABRT) ++crashes;
    }
    REQUIRE(exit_code == 0);  // the loop ended: the poison run no longer crashes the host
    CHECK(crashes == 3);      // counted durably across the crashes, including the first

    std::map<std::string, int> poison_bodies;
    for (const BodyEvent& e : read_log(log))
        if (e.what == "begin" && run_of(e.key) == "run-2") ++poison_bodies[e.key];
    CHECK(poison_bodies == std::map<std::string, int>{{"run-2:0", 3}});

    {
        Engine& engine = db.open(options);
        host.define(engine);
        for (int i = 0; i < runs; ++i) {
            if (i == 2) continue;
            CHECK(engine.result<int>("run-" + std::to_string(i)) == 4 * i + 6);
        }
        auto info = engine.status("run-2");
        REQUIRE(info);
        CHECK(info->status == RunStatus::quarantined);
        REQUIRE(info->error);
        CHECK(info->error->id == "abide.run.quarantined");
        CHECK_THAT(info->error->message, Catch::Contains("died 3 times") && Catch::Contains("release"));
        CHECK(test::count_events(engine, "run-2", EventType::quarantined) == 1);
        CHECK(engine.stats().quarantined == 1);
        // Quarantined runs are not executed; signals and polls leave them be.
        CHECK(engine.poll().runs_advanced == 0);
        CHECK_THROWS_AS(engine.release("run-1"), UsageError);  // completed, not quarantined
        CHECK_THROWS_AS(engine.release("no-such-run"), UsageError);
#ifdef ABIDE_CLI_PATH
        // The operator's way: abide runs --status quarantined, then abide release.
        const auto cli = [&](const std::string& args) {
            const std::string line = std::string(ABIDE_CLI_PATH) + " --db " + options.path.string() + " " + args;
            std::string out;
            FILE* p = ::popen((line + " 2>&1").c_str(), "r");
            REQUIRE(p);
            char buf[512];
            while (std::fgets(buf, sizeof buf, p)) out += buf;
            const int status = ::pclose(p);
            return std::make_pair(WEXITSTATUS(status), out);
        };
        CHECK_THAT(cli("runs --status quarantined").second, Catch::Contains("run-2") && !Catch::Contains("run-1"));
        CHECK(cli("release run-1").first == 1);    // refused: completed
        CHECK(cli("release nobody").first == 4);   // unknown run
        const auto [code, out] = cli("release run-2");
        INFO(out);
        CHECK(code == 0);
        CHECK(cli("release run-2").first == 1);    // already released
#else
        engine.release("run-2");
#endif
        CHECK(test::status_of(engine, "run-2") == RunStatus::ready);
        CHECK(test::count_events(engine, "run-2", EventType::released) == 1);
        db.close();
    }
    // The fix is deployed: the step no longer aborts, and the run completes.
    host.poison.clear();
    REQUIRE(wait_host(fork_host(options, host, runs)) == 0);
    Engine& engine = db.open(options);
    host.define(engine);
    CHECK(engine.result<int>("run-2") == 4 * 2 + 6);
}

TEST_CASE("an attempt is counted before any of the run's code runs, so a kill in the first step counts",
          "[processes][quarantine]") {
    Reopenable db;
    std::atomic<int> runs_of_body{0};
    db.define = [&](Engine& e) {
        e.define("one", [&](Context& ctx) {
            return ctx.step("s", [&] {
                ++runs_of_body;
                return 1;
            });
        });
    };
    EngineOptions options = db.options();
    options.quarantine_after = 1;
    // A first process claims the run and dies before any progress: one attempt.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        EngineOptions o = options;
        Engine e(o);
        e.define("one", [](Context& ctx) {
            return ctx.step("s", []() -> int {
                ::raise(SIGKILL);
                return 0;
            });
        });
        e.start_json("one", json(), StartOptions{"r"});
        e.poll();
        std::_Exit(0);
    }
    CHECK(wait_host(child) == 128 + SIGKILL);
    Engine& engine = db.open(options);
    // Attempts are at the limit of 1: the next claim quarantines it.
    const PollResult r = engine.poll();
    CHECK(r.quarantined == 1);
    CHECK(runs_of_body == 0);
    CHECK(test::status_of(engine, "r") == RunStatus::quarantined);
    engine.release("r");
    CHECK(engine.poll().completed == 1);
    CHECK(runs_of_body == 1);
}
