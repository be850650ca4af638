// Real restarts: the example hosts (examples/) run as child processes and are
// killed with SIGKILL, while waiting and at random instants while steps run;
// approvals come from the `abide` command, another process. The oracles live
// outside the journal: the payments ledger (one line per payment, keyed by
// idempotency key) and the step log (one line per execution of a step body).
//
// After every kill the harness checks, from outside:
//   * no step body ran again after its result was committed (a body may run
//     twice only if the host died before its result was committed);
//   * the ledger holds at most one payment per ticket, only for tickets whose
//     approval was delivered, of the approved amount, and every committed
//     refund step names the ledger's receipt for its key;
//   * no run failed, every run's journal reads back.
// At the end every run has its expected outcome.
#include "support.hpp"

#include <catch2/catch.hpp>

#if defined(ABIDE_REFUND_REVIEW_PATH) && defined(ABIDE_CHARGE_APPROVAL_PATH) && defined(ABIDE_MULTI_APPROVAL_PATH) && \
    defined(ABIDE_CLI_PATH)

#include "common/host.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace ex = examples;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string tail(const fs::path& path, std::size_t bytes = 3000) {
    std::string text = read_text(path);
    return text.size() > bytes ? "..." + text.substr(text.size() - bytes) : text;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

/// A child process (fork/exec) whose stdout and stderr are appended to `log`.
/// The destructor kills and reaps it, so a failed REQUIRE leaks no process.
class Process {
public:
    Process(const std::vector<std::string>& argv, const fs::path& log) {
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        REQUIRE(fd >= 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {  // only async-signal-safe calls until exec
            ::dup2(fd, STDOUT_FILENO);
            ::dup2(fd, STDERR_FILENO);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        ::close(fd);
    }
    ~Process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }

    /// SIGKILL, then reap. True if the process was still running, i.e. it
    /// died of this SIGKILL and had not exited or crashed on its own before.
    bool kill_hard() {
        ::kill(pid_, SIGKILL);
        const int status = reap();
        return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    }
    /// Waits for the exit; returns the exit code, or 128 + signal.
    int wait() {
        const int status = reap();
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

private:
    int reap() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }
    pid_t pid_ = -1;
};

/// Files of one scenario in its own temporary directory.
struct Files {
    abide::test::TempDir dir;
    fs::path db = dir.path() / "app.db", ledger = dir.path() / "ledger.txt", steplog = dir.path() / "steps.txt",
             clock = dir.path() / "clock", outbox = dir.path() / "outbox.txt", log = dir.path() / "processes.log";
};

struct CliResult {
    int code = -1;
    std::string out;
};

/// Runs `abide --db DB args...` to the end.
CliResult abide_cli(const Files& f, std::vector<std::string> args) {
    static int n = 0;
    const fs::path out = f.dir.path() / ("cli-" + std::to_string(++n) + ".out");
    args.insert(args.begin(), {ABIDE_CLI_PATH, "--db", f.db.string()});
    Process p(args, out);
    CliResult r;
    r.code = p.wait();
    r.out = read_text(out);
    return r;
}

/// Polls `done` every 10 ms; fails with the processes' output after `timeout`.
void wait_until(const Files& f, const std::string& what, const std::function<bool()>& done,
                std::chrono::milliseconds timeout = 20s) {
    const auto deadline = SteadyClock::now() + timeout;
    while (!done()) {
        if (SteadyClock::now() > deadline) {
            INFO("processes' output:\n" << tail(f.log));
            FAIL("timed out waiting until " << what);
        }
        std::this_thread::sleep_for(10ms);
    }
}

// ---- refund_review -------------------------------------------------------------------

// clang-format off
std::vector<std::string> refund_host(const Files& f, int runs, int step_delay_ms = 0) {
    return {ABIDE_REFUND_REVIEW_PATH, "host", "--db", f.db.string(), "--ledger", f.ledger.string(),
            "--steplog", f.steplog.string(), "--start", std::to_string(runs), "--fake-clock-file", f.clock.string(),
            "--poll-ms", "5", "--step-delay-ms", std::to_string(step_delay_ms)};
}
// clang-format on

std::string ticket(int i) { return "T-" + std::to_string(1001 + i); }
std::string refund_run(int i) { return "refund-" + ticket(i); }
/// The order amount refund_review's ticket service gives ticket i, in cents.
std::int64_t ticket_amount(int i) {
    return std::array<std::int64_t, 3>{4900, 12999, 2500}[static_cast<std::size_t>(i % 3)];
}

std::string decision(const std::string& status, std::int64_t amount, const std::string& reason = "checked") {
    return abide::json{{"status", status}, {"reviewer_id", "u_1"}, {"reason", reason}, {"approved_amount", amount}}
        .dump();
}

/// Step executions per (run, step) in the step log.
std::map<std::pair<std::string, std::string>, int> executions(const Files& f) {
    std::map<std::pair<std::string, std::string>, int> n;
    for (const ex::StepRun& r : ex::read_step_log(f.steplog)) ++n[{r.run_id, r.step}];
    return n;
}

bool finished_as(const abide::Engine& db, const std::string& run, const std::string& outcome) {
    auto info = db.status(run);
    return info && info->status == abide::RunStatus::completed && info->output &&
           info->output->value("status", "") == outcome;
}

/// How many times run `run` has waited for refund_decision (its journal's wait entries).
int waits_of(const abide::Engine& db, const std::string& run) {
    int n = 0;
    for (const auto& e : db.trace(run).entries) n += e.kind == "wait";
    return n;
}

TEST_CASE("a refund host killed while runs wait resumes each run at its wait and pays each approval once",
          "[restarts]") {
    Files f;
    ex::set_clock_offset(f.clock, 0s);
    const abide::Engine db({.path = f.db, .cache_size = 0});  // the harness only reads
    constexpr int runs = 8;

    // Host A starts 8 reviews; each runs its three steps and waits.
    Process a(refund_host(f, runs), f.log);
    const long host_a = a.pid();
    wait_until(f, "8 runs wait for refund_decision",
               [&] { return db.list_runs({.waiting_for = "refund_decision"}).size() == runs; });
    const auto before = executions(f);
    for (int i = 0; i < runs; ++i)
        for (const char* step : {"load_ticket", "load_customer", "draft_recommendation"})
            REQUIRE(before.at({refund_run(i), step}) == 1);
    REQUIRE(a.kill_hard());

    // With no host running, T-1005 is approved: the signal is stored and waits for a host.
    auto r = abide_cli(f, {"signal", refund_run(4), "refund_decision", "--id", "d5", "--data",
                           decision("approved", ticket_amount(4))});
    REQUIRE(r.code == 0);
    REQUIRE(contains(r.out, "buffered"));

    // Host B, a new process on the same database.
    Process b(refund_host(f, runs), f.log);
    const std::string approve1 = decision("approved", ticket_amount(0));
    REQUIRE(abide_cli(f, {"signal", refund_run(0), "refund_decision", "--id", "d1", "--data", approve1}).code == 0);
    REQUIRE(abide_cli(f, {"signal", refund_run(1), "refund_decision", "--id", "d2", "--data",
                          decision("approved", ticket_amount(1))})
                .code == 0);
    r = abide_cli(f, {"signal", refund_run(1), "refund_decision", "--id", "d2", "--data",
                      decision("approved", ticket_amount(1))});
    CHECK(r.code == 1);  // the same approval again: refused as a duplicate
    CHECK(contains(r.out, "duplicate"));
    REQUIRE(abide_cli(f, {"signal", refund_run(2), "refund_decision", "--id", "d3", "--data",
                          decision("rejected", 0, "outside the refund window")})
                .code == 0);
    REQUIRE(abide_cli(f, {"signal", refund_run(3), "refund_decision", "--id", "d4", "--data",
                          decision("request_changes", 0, "refund 10.00 only")})
                .code == 0);
    // Not a decision record: the command stores it unchecked, the host refuses it.
    REQUIRE(abide_cli(
                f, {"signal", refund_run(7), "refund_decision", "--id", "d8-bad", "--data", R"({"status":"approved"})"})
                .code == 0);

    wait_until(f, "the approved, rejected and buffered runs finish and T-1004 waits again", [&] {
        return finished_as(db, refund_run(0), "refunded") && finished_as(db, refund_run(1), "refunded") &&
               finished_as(db, refund_run(2), "not_approved") && finished_as(db, refund_run(4), "refunded") &&
               waits_of(db, refund_run(3)) == 2 && db.status(refund_run(3))->status == abide::RunStatus::waiting &&
               abide::test::count_events(db, refund_run(7), abide::EventType::signal_rejected) == 1 &&
               db.status(refund_run(7))->status == abide::RunStatus::waiting;
    });
    CHECK(db.status(refund_run(3))->waiting->data.at("amount") == 1000);  // the re-drafted recommendation
    REQUIRE(
        abide_cli(f, {"signal", refund_run(3), "refund_decision", "--id", "d4b", "--data", decision("approved", 1000)})
            .code == 0);
    REQUIRE(abide_cli(f, {"signal", refund_run(7), "refund_decision", "--id", "d8", "--data",
                          decision("approved", ticket_amount(7))})
                .code == 0);
    wait_until(f, "T-1004 and T-1008 are refunded", [&] {
        return finished_as(db, refund_run(3), "refunded") && finished_as(db, refund_run(7), "refunded");
    });
    // A second approval (another id) of a paid refund is refused and pays nothing.
    r = abide_cli(f, {"signal", refund_run(0), "refund_decision", "--id", "d1-again", "--data", approve1});
    CHECK(r.code == 1);
    CHECK(contains(r.out, "run_finished"));

    // Host C after a jump of 8 days: the waits of T-1006 and T-1007 time out.
    REQUIRE(b.kill_hard());
    ex::set_clock_offset(f.clock, 8 * 24h);
    Process c(refund_host(f, runs), f.log);
    wait_until(f, "T-1006 and T-1007 time out", [&] {
        return finished_as(db, refund_run(5), "timed_out") && finished_as(db, refund_run(6), "timed_out");
    });
    r = abide_cli(f, {"signal", refund_run(6), "refund_decision", "--id", "d7-late", "--data",
                      decision("approved", ticket_amount(6))});
    CHECK(r.code == 1);
    REQUIRE(c.kill_hard());

    // From outside: steps before the wait ran once, all in host A; each approval paid once.
    const auto after = executions(f);
    for (const ex::StepRun& run : ex::read_step_log(f.steplog))
        if (run.step == "load_ticket" || run.step == "load_customer") CHECK(run.pid == host_a);
    for (int i = 0; i < runs; ++i) {
        INFO(refund_run(i));
        CHECK(after.at({refund_run(i), "load_ticket"}) == 1);
        CHECK(after.at({refund_run(i), "load_customer"}) == 1);
        CHECK(after.at({refund_run(i), "draft_recommendation"}) == (i == 3 ? 2 : 1));
    }
    const ex::PaymentsLedger ledger(f.ledger);
    const std::map<int, std::int64_t> paid = {
        {0, ticket_amount(0)}, {1, ticket_amount(1)}, {3, 1000}, {4, ticket_amount(4)}, {7, ticket_amount(7)}};
    for (int i = 0; i < runs; ++i) {
        INFO(ticket(i));
        const bool approved = paid.count(i) != 0;
        CHECK(ledger.count_for(ticket(i)) == (approved ? 1u : 0u));
        CHECK(after.count({refund_run(i), "issue_refund"}) == (approved ? 1u : 0u));
    }
    for (const ex::Payment& p : ledger.payments()) CHECK(p.amount == paid.at(std::stoi(p.reference.substr(2)) - 1001));
    CHECK(ledger.payments().size() == paid.size());
}

/// What the harness does for one run of the random-kill test, and expects.
struct RefundPlan {
    std::string run, ticket;
    std::vector<std::string> decisions;  ///< sent in order, the j-th when the run waits for the (j+1)-th time
    bool resend = false;                 ///< also send each decision again, and another approval under a new id
    std::string outcome;                 ///< refunded, not_approved or timed_out
    std::int64_t paid = 0;               ///< cents paid for the ticket
    int drafts = 1;
};

/// Run i approves (i % 5 == 0), rejects (1), asks for changes once and then
/// approves 10.00 (2), approves and sends duplicates (3), or never decides (4).
std::vector<RefundPlan> refund_plans(int runs) {
    std::vector<RefundPlan> plans;
    for (int i = 0; i < runs; ++i) {
        RefundPlan p{refund_run(i), ticket(i), {}, false, "refunded", ticket_amount(i), 1};
        switch (i % 5) {
            case 0:
                p.decisions = {decision("approved", ticket_amount(i))};
                break;
            case 1:
                p.decisions = {decision("rejected", 0)};
                p.outcome = "not_approved", p.paid = 0;
                break;
            case 2:
                p.decisions = {decision("request_changes", 0, "refund 10.00 only"), decision("approved", 1000)};
                p.paid = 1000, p.drafts = 2;
                break;
            case 3:
                p.decisions = {decision("approved", ticket_amount(i))}, p.resend = true;
                break;
            default:
                p.outcome = "timed_out", p.paid = 0;
        }
        plans.push_back(std::move(p));
    }
    return plans;
}

/// Step results committed in the journal, by idempotency key ("{run}:{position}").
std::map<std::string, abide::json> committed_steps(const abide::Engine& db, const std::vector<RefundPlan>& plans) {
    std::map<std::string, abide::json> steps;
    for (const RefundPlan& p : plans) {
        if (!db.status(p.run)) continue;  // not started yet
        for (const abide::TraceEntry& e : db.trace(p.run).entries)
            if (e.kind == "step") steps[p.run + ":" + std::to_string(e.seq)] = e.value;
    }
    return steps;
}

/// The abide command invocations that hand each waiting run its next decision.
std::vector<std::vector<std::string>> pending_decisions(const abide::Engine& db, const std::vector<RefundPlan>& plans) {
    std::vector<std::vector<std::string>> commands;
    for (const RefundPlan& p : plans) {
        auto info = db.status(p.run);
        if (!info || info->status != abide::RunStatus::waiting) continue;
        const auto j = static_cast<std::size_t>(waits_of(db, p.run) - 1);
        if (j >= p.decisions.size()) continue;
        const std::string id = p.run + "/d" + std::to_string(j);
        commands.push_back({"signal", p.run, "refund_decision", "--id", id, "--data", p.decisions[j]});
        if (p.resend) {
            commands.push_back(commands.back());  // the same approval again: a duplicate
            commands.push_back({"signal", p.run, "refund_decision", "--id", id + "-other", "--data", p.decisions[j]});
        }
    }
    return commands;
}

/// The invariants that must hold after every kill; returns what is broken.
/// `before` holds the steps committed when the killed host started,
/// `first_line` the step log line it started at.
std::vector<std::string> refund_invariant_violations(const abide::Engine& db, const Files& f,
                                                     const std::vector<RefundPlan>& plans,
                                                     const std::map<std::string, abide::json>& before,
                                                     std::size_t first_line) {
    std::vector<std::string> broken;
    // No step body ran again after its result was committed (nor twice in one host).
    const std::vector<ex::StepRun> log = ex::read_step_log(f.steplog);
    std::set<std::string> this_host;
    for (std::size_t i = first_line; i < log.size(); ++i) {
        const std::string what = log[i].run_id + " step " + log[i].step + " (" + log[i].key + ")";
        if (before.count(log[i].key)) broken.push_back(what + " ran again although its result was committed");
        if (!this_host.insert(log[i].key).second) broken.push_back(what + " ran twice in one host");
    }
    // The ledger pays only planned approvals, once per ticket, the approved
    // amount; each committed refund step holds the ledger's receipt for its key.
    const std::vector<ex::Payment> payments = ex::PaymentsLedger(f.ledger).payments();
    std::map<std::string, ex::Payment> by_key;
    std::map<std::string, int> per_ticket;
    for (const ex::Payment& p : payments) {
        by_key[p.key] = p;
        ++per_ticket[p.reference];
    }
    for (const RefundPlan& p : plans) {
        if (per_ticket[p.ticket] > (p.paid > 0 ? 1 : 0))
            broken.push_back(p.ticket + " was paid " + std::to_string(per_ticket[p.ticket]) + " times");
        auto info = db.status(p.run);
        if (!info) continue;
        if (info->status == abide::RunStatus::failed) broken.push_back(p.run + " failed: " + info->error->message);
        int refunds = 0, tickets = 0;
        for (const abide::TraceEntry& e : db.trace(p.run).entries) {
            if (e.kind != "step") continue;
            tickets += e.name == "load_ticket";
            if (e.name != "issue_refund") continue;
            ++refunds;
            const std::string key = p.run + ":" + std::to_string(e.seq);
            auto paid = by_key.find(key);
            if (paid == by_key.end())
                broken.push_back(p.run + ": the journal's refund " + e.value.dump() + " is not in the ledger");
            else if (e.value != paid->second.receipt || paid->second.amount != p.paid)
                broken.push_back(p.run + ": the journal says " + e.value.dump() + ", the ledger " +
                                 paid->second.receipt + " of " + std::to_string(paid->second.amount));
        }
        if (tickets > 1) broken.push_back(p.run + ": load_ticket committed " + std::to_string(tickets) + " times");
        if (refunds > 1) broken.push_back(p.run + ": issue_refund committed " + std::to_string(refunds) + " times");
    }
    for (const ex::Payment& p : payments) {
        const auto i = static_cast<std::size_t>(std::stoi(p.reference.substr(2)) - 1001);
        if (i >= plans.size() || plans[i].paid != p.amount || p.key.rfind(plans[i].run + ":", 0) != 0)
            broken.push_back("unexpected payment " + p.key + " of " + std::to_string(p.amount) + " for " + p.reference);
    }
    return broken;
}

/// Fails the test case, listing what broke, if anything did.
void require_invariants(const abide::Engine& db, const Files& f, const std::vector<RefundPlan>& plans,
                        const std::map<std::string, abide::json>& before, std::size_t first_line) {
    const auto broken = refund_invariant_violations(db, f, plans, before, first_line);
    std::string list;
    for (const auto& b : broken) list += "\n  " + b;
    INFO("broken invariants:" << list << "\nprocesses' output:\n" << tail(f.log));
    REQUIRE(broken.empty());
}

TEST_CASE("refund hosts killed at random instants while steps run keep every invariant", "[restarts][torture]") {
    const char* kills_env = std::getenv("ABIDE_TORTURE_KILLS");
    const char* seed_env = std::getenv("ABIDE_TORTURE_SEED");
    const int kills = kills_env ? std::atoi(kills_env) : 60;
    const auto seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : std::random_device{}();
    std::cout << "[torture] seed " << seed << ", " << kills << " kills (ABIDE_TORTURE_SEED, ABIDE_TORTURE_KILLS)"
              << std::endl;
    INFO("seed " << seed << " (rerun with ABIDE_TORTURE_SEED=" << seed << ")");
    std::mt19937_64 rng(seed);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

    Files f;
    ex::set_clock_offset(f.clock, 0s);
    const abide::Engine db({.path = f.db, .cache_size = 0});
    // New runs keep arriving until two thirds of the kills, so that later kills
    // still find steps running: host k starts the first started(k) runs.
    const int runs = std::max(15, (kills / 2 + 4) / 5 * 5);
    const auto plans = refund_plans(runs);
    auto started = [&](int k) { return std::min(runs, 5 + k * runs / std::max(1, kills * 2 / 3)); };
    const int step_delay_ms = 3;  // each body lasts 3 ms: a window for kills mid-step
    // These kills land in step bodies on purpose, often in the same run after
    // each restart: to the engine that is a run crashing its host, which it
    // would quarantine. They are not, so quarantine is off here.
    auto host = [&](int k) {
        auto argv = refund_host(f, started(k), step_delay_ms);
        argv.insert(argv.end(), {"--quarantine-after", "0"});
        return argv;
    };
    const auto began = SteadyClock::now();
    int in_flight = 0, while_waiting = 0;
    std::size_t reruns = 0;

    auto send = [&](const std::vector<std::string>& args) {
        const CliResult r = abide_cli(f, args);
        INFO(r.out);
        CHECK((r.code == 0 || r.code == 1));  // accepted, or refused (duplicate, finished); never an error
    };

    for (int k = 0; k < kills; ++k) {
        INFO("kill " << k + 1);
        const auto before = committed_steps(db, plans);
        const std::size_t first_line = ex::read_step_log(f.steplog).size();
        const auto decisions = pending_decisions(db, plans);
        const bool race = uniform(0, 1) == 1;  // deliver while the host runs, or before it starts
        if (!race)
            for (const auto& d : decisions) send(d);
        Process h(host(k), f.log);
        std::vector<std::unique_ptr<Process>> senders;  // racing the host
        if (race)
            for (const auto& d : decisions) {
                auto args = d;
                args.insert(args.begin(), {ABIDE_CLI_PATH, "--db", f.db.string()});
                senders.push_back(std::make_unique<Process>(args, f.log));
            }
        if (uniform(0, 2) == 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(uniform(0, 80)));  // any instant
        } else {
            // Right after a step body starts: before or after its effect, before its commit.
            const auto give_up = SteadyClock::now() + 300ms;
            while (ex::read_step_log(f.steplog).size() == first_line && SteadyClock::now() < give_up)
                std::this_thread::sleep_for(1ms);
            std::this_thread::sleep_for(std::chrono::microseconds(uniform(0, step_delay_ms * 1000 + 500)));
        }
        if (!h.kill_hard()) FAIL("the host was not running when killed:\n" << tail(f.log));
        for (auto& s : senders) CHECK(s->wait() <= 1);
        const auto after = committed_steps(db, plans);
        const auto log = ex::read_step_log(f.steplog);
        bool mid_step = false;
        for (std::size_t i = first_line; i < log.size(); ++i) mid_step = mid_step || after.count(log[i].key) == 0;
        (mid_step ? in_flight : while_waiting) += 1;
        require_invariants(db, f, plans, before, first_line);
    }

    // A last host that is not killed finishes every run that gets decisions.
    {
        const auto before = committed_steps(db, plans);
        const std::size_t first_line = ex::read_step_log(f.steplog).size();
        Process h(host(kills), f.log);
        wait_until(
            f, "every run with decisions finishes",
            [&] {
                for (const auto& d : pending_decisions(db, plans)) send(d);
                for (const RefundPlan& p : plans)
                    if (p.outcome != "timed_out" && !finished_as(db, p.run, p.outcome)) return false;
                return true;
            },
            30s);
        REQUIRE(h.kill_hard());
        require_invariants(db, f, plans, before, first_line);
    }
    // Eight days later a new host times out the runs nobody decided.
    {
        const auto before = committed_steps(db, plans);
        const std::size_t first_line = ex::read_step_log(f.steplog).size();
        ex::set_clock_offset(f.clock, 8 * 24h);
        Process h(host(kills), f.log);
        wait_until(f, "the undecided runs time out", [&] {
            for (const RefundPlan& p : plans)
                if (!finished_as(db, p.run, p.outcome)) return false;
            return true;
        });
        REQUIRE(h.kill_hard());
        require_invariants(db, f, plans, before, first_line);
    }

    // Every run ended as planned; each approval paid exactly once, nothing else paid.
    const ex::PaymentsLedger ledger(f.ledger);
    for (const RefundPlan& p : plans) {
        INFO(p.run);
        CHECK(finished_as(db, p.run, p.outcome));
        CHECK(ledger.count_for(p.ticket) == (p.paid > 0 ? 1u : 0u));
        int drafts = 0;
        for (const abide::TraceEntry& e : db.trace(p.run).entries) drafts += e.name == "draft_recommendation";
        CHECK(drafts == p.drafts);
    }
    std::set<std::string> keys;
    for (const ex::StepRun& r : ex::read_step_log(f.steplog)) reruns += keys.insert(r.key).second ? 0 : 1;
    const auto seconds = std::chrono::duration<double>(SteadyClock::now() - began).count();
    std::cout << "[torture] " << kills << " kills: " << in_flight << " with a step body in flight, " << while_waiting
              << " between steps or while waiting; " << reruns << " step bodies ran again after a kill; "
              << ledger.payments().size() << " payments; " << seconds << " s" << std::endl;
    if (kills >= 20) CHECK(in_flight > kills / 4);  // the harness really killed hosts mid-step
}

// ---- charge_approval and multi_approval (the Polos guide) ---------------------------------

// clang-format off
std::vector<std::string> polos_host(const char* binary, const Files& f, int runs) {
    return {binary, "host", "--db", f.db.string(), "--ledger", f.ledger.string(), "--steplog", f.steplog.string(),
            "--start", std::to_string(runs), "--fake-clock-file", f.clock.string(), "--poll-ms", "5"};
}

/// The notifier; each of its posts takes 4 ms, so that kills land mid-way.
std::vector<std::string> notifier(const char* binary, const Files& f, bool follow) {
    std::vector<std::string> argv{binary, "notify", "--db", f.db.string(), "--outbox", f.outbox.string(),
                                  "--poll-ms", "5", "--post-delay-ms", "4"};
    if (follow) argv.push_back("--follow");
    return argv;
}
// clang-format on

/// The seqs of the suspended events in the database's event log.
std::set<std::uint64_t> suspended_seqs(const abide::Engine& db) {
    std::set<std::uint64_t> seqs;
    for (const abide::Event& e : db.events(0, 100000))
        if (e.type == abide::EventType::suspended) seqs.insert(e.seq);
    return seqs;
}

/// Checks that the outbox announces every suspension once, and that no
/// notifier process printed a message twice.
void check_notifications(const abide::Engine& db, const Files& f, const fs::path& notifier_log, std::size_t expected) {
    const auto posted = ex::read_outbox(f.outbox);
    std::set<std::uint64_t> seqs;
    for (const ex::Notification& n : posted) {
        INFO(n.seq << " " << n.topic);
        CHECK(seqs.insert(n.seq).second);
        CHECK(contains(n.message, "https://admin.example.com/approve/" + n.run_id + "?step="));
        CHECK(n.topic.substr(n.topic.find('/') + 1) == n.run_id);
    }
    CHECK(seqs == suspended_seqs(db));
    CHECK(seqs.size() == expected);
    const std::string printed = read_text(notifier_log);
    for (std::uint64_t seq : seqs) {
        const std::string line = "posts #" + std::to_string(seq) + " ";
        const auto first = printed.find(line);
        CHECK((first == std::string::npos || printed.find(line, first + 1) == std::string::npos));
    }
}

TEST_CASE("charge approvals survive host kills, time out after a restart, and the killed notifier posts each once",
          "[restarts]") {
    const auto seed = std::random_device{}();
    std::cout << "[restarts] charge_approval notifier kills, seed " << seed << std::endl;
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    Files f;
    const fs::path notes = f.dir.path() / "notifier.log";
    ex::set_clock_offset(f.clock, 0s);
    const abide::Engine db({.path = f.db, .cache_size = 0});
    // Runs 1 and 5 ($250) need no approval; 2, 3, 4, 6, 7, 8 suspend.
    const int runs = 8;
    auto run = [](int n) { return "charge-" + std::to_string(n); };
    auto approval = [](bool yes) {
        return yes ? R"({"approved":true,"approved_by":"alice"})" : R"({"approved":false,"reason":"no"})";
    };
    auto ended_as = [&](int n, const char* outcome) { return finished_as(db, run(n), outcome); };

    Process a(polos_host(ABIDE_CHARGE_APPROVAL_PATH, f, runs), f.log);
    wait_until(f, "6 charges suspend and the 2 small ones complete", [&] {
        return db.list_runs({.waiting_for = "high_value_approval"}).size() == 6 && ended_as(1, "completed") &&
               ended_as(5, "completed");
    });
    // The notifier is killed at random instants, mostly while it posts: just
    // after a post, within the next one's 4 ms.
    int notifier_kills = 0, mid_post = 0;
    for (int i = 0; i < 12; ++i) {
        const std::size_t posted = ex::read_outbox(f.outbox).size();
        Process n(notifier(ABIDE_CHARGE_APPROVAL_PATH, f, true), notes);
        const auto give_up = SteadyClock::now() + 2s;
        while (posted < 6 && ex::read_outbox(f.outbox).size() == posted && SteadyClock::now() < give_up)
            std::this_thread::sleep_for(200us);
        std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 5000)(rng)));
        notifier_kills += n.kill_hard() ? 1 : 0;
        const std::size_t now = ex::read_outbox(f.outbox).size();
        mid_post += now > posted && now < 6 ? 1 : 0;
    }
    CHECK(notifier_kills == 12);
    std::cout << "[restarts] " << notifier_kills << " notifier kills, " << mid_post
              << " of them after a post and before the last" << std::endl;
    auto follower = std::make_unique<Process>(notifier(ABIDE_CHARGE_APPROVAL_PATH, f, true), notes);
    REQUIRE(a.kill_hard());

    // Decisions while no host runs: stored, carried out by the next host.
    REQUIRE(abide_cli(f, {"resume", run(2), "high_value_approval", "--id", "a2", "--data", approval(true)}).code == 0);
    CHECK(abide_cli(f, {"resume", run(2), "high_value_approval", "--id", "a2", "--data", approval(true)}).code == 1);
    REQUIRE(abide_cli(f, {"resume", run(3), "high_value_approval", "--id", "a3", "--data", approval(false)}).code == 0);
    REQUIRE(abide_cli(f, {"resume", run(6), "high_value_approval", "--id", "a6", "--data", approval(true)}).code == 0);
    REQUIRE(abide_cli(f, {"resume", run(7), "high_value_approval", "--id", "a7", "--data", approval(false)}).code == 0);
    Process b(polos_host(ABIDE_CHARGE_APPROVAL_PATH, f, runs), f.log);
    wait_until(f, "approved charges complete and rejected ones stop", [&] {
        return ended_as(2, "completed") && ended_as(6, "completed") && ended_as(3, "rejected") &&
               ended_as(7, "rejected");
    });
    REQUIRE(b.kill_hard());

    // Three hours later a new host times out the two charges nobody decided.
    ex::set_clock_offset(f.clock, 3h);
    Process c(polos_host(ABIDE_CHARGE_APPROVAL_PATH, f, runs), f.log);
    wait_until(f, "the undecided charges time out", [&] { return ended_as(4, "timeout") && ended_as(8, "timeout"); });
    REQUIRE(c.kill_hard());
    REQUIRE(follower->kill_hard());
    Process last(notifier(ABIDE_CHARGE_APPROVAL_PATH, f, false), notes);  // catches up and exits
    REQUIRE(last.wait() == 0);

    check_notifications(db, f, notes, 6);
    const ex::PaymentsLedger ledger(f.ledger);
    const auto steps = executions(f);
    for (int n = 1; n <= runs; ++n) {
        INFO(run(n));
        const bool charged = n == 1 || n == 5 || n == 2 || n == 6;
        CHECK(ledger.count_for("cust_" + std::to_string(n)) == (charged ? 1u : 0u));
        CHECK(steps.at({run(n), "validate_charge"}) == 1);
        CHECK(steps.count({run(n), "execute_charge"}) == (charged ? 1u : 0u));
    }
}

TEST_CASE("multi-stage approvals continue across host kills and the planning agent is asked once", "[restarts]") {
    Files f;
    const abide::Engine db({.path = f.db, .cache_size = 0});
    auto run = [](int n) { return "multi-" + std::to_string(n); };
    auto waits_at = [&](int n, const std::string& key) {
        auto info = db.status(run(n));
        return info && info->waiting && info->waiting->name == key;
    };
    const std::string yes = R"({"approved":true,"approved_by":"manager@company.com"})";

    Process a(polos_host(ABIDE_MULTI_APPROVAL_PATH, f, 3), f.log);  // $5000, $25000, $40000
    wait_until(f, "3 runs wait for their manager", [&] {
        return waits_at(1, "manager_approval") && waits_at(2, "manager_approval") && waits_at(3, "manager_approval");
    });
    REQUIRE(a.kill_hard());
    for (int n = 1; n <= 3; ++n)
        REQUIRE(
            abide_cli(f, {"resume", run(n), "manager_approval", "--id", "m" + std::to_string(n), "--data", yes}).code ==
            0);
    Process b(polos_host(ABIDE_MULTI_APPROVAL_PATH, f, 3), f.log);
    wait_until(f, "multi-1 completes and the large ones wait for finance", [&] {
        return finished_as(db, run(1), "completed") && waits_at(2, "finance_approval") &&
               waits_at(3, "finance_approval");
    });
    REQUIRE(b.kill_hard());
    REQUIRE(abide_cli(f, {"resume", run(2), "finance_approval", "--id", "f2", "--data", yes}).code == 0);
    REQUIRE(
        abide_cli(f, {"resume", run(3), "finance_approval", "--id", "f3", "--data", R"({"approved":false})"}).code ==
        0);
    Process c(polos_host(ABIDE_MULTI_APPROVAL_PATH, f, 3), f.log);
    wait_until(f, "both large runs finish",
               [&] { return finished_as(db, run(2), "completed") && finished_as(db, run(3), "rejected_by_finance"); });
    REQUIRE(c.kill_hard());
    Process notify(notifier(ABIDE_MULTI_APPROVAL_PATH, f, false), f.log);
    REQUIRE(notify.wait() == 0);
    check_notifications(db, f, f.dir.path() / "none.log", 5);  // 3 manager and 2 finance requests

    const ex::PaymentsLedger ledger(f.ledger);
    const auto steps = executions(f);
    CHECK(ledger.count_for(run(1)) == 1);
    CHECK(ledger.count_for(run(2)) == 1);
    CHECK(ledger.count_for(run(3)) == 0);
    for (int n = 1; n <= 3; ++n) CHECK(steps.at({run(n), "create_plan"}) == 1);  // three hosts, one model call
    // The agent step's journal entry holds the prompt and the structured answer.
    const abide::TraceEntry plan = db.trace(run(2)).entries.at(0);
    CHECK(plan.name == "create_plan");
    CHECK(contains(plan.value.at("prompt").get<std::string>(), "migrate the customer archive"));
    CHECK(plan.value.at("result").at("risk_level") == "high");
    CHECK(plan.value.at("result").at("estimated_cost") == 25000.0);
}

}  // namespace

#endif
