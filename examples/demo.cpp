// abide demo: refunds that wait for a person, survive a kill -9, and pay once.
//
// A narrated run of examples/refund_review with real processes: this driver
// starts the refund host, kills it, starts another, and acts as the reviewers
// through the `abide` command. Nothing passes between them but the database,
// the payments ledger and the step log (files in a temporary directory).
#include "common/host.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <iostream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace ex = examples;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

#ifndef ABIDE_CLI_PATH
#define ABIDE_CLI_PATH ""
#endif

namespace {

fs::path dir;  // the working directory of every child
std::string refund_review_bin = ABIDE_REFUND_REVIEW_PATH, abide_bin = ABIDE_CLI_PATH;
bool pace = false;     // pause between chapters when a person watches
pid_t live_host = -1;  // killed if the demo fails half-way
int failures = 0;

void say(const std::string& text) { std::cout << text << std::endl; }
void chapter(const std::string& title) {
    if (pace) std::this_thread::sleep_for(std::chrono::milliseconds(900));
    say("\n== " + title);
}
void check(bool ok, const std::string& what) {
    say(std::string(ok ? "   ✓ " : "   ✗ FAILED: ") + what);
    failures += ok ? 0 : 1;
}

std::string shell_quote(const std::string& arg) {
    if (arg.find_first_of(" {}\"'*?$") == std::string::npos) return arg;
    return "'" + arg + "'";
}

/// A child process whose stdout and stderr come back through a pipe.
struct Child {
    pid_t pid = -1;
    int out = -1;
    std::string pending;  // read but not yet a whole line
};

Child spawn(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    Child c;
    c.pid = ::fork();
    if (c.pid == 0) {
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        if (::chdir(dir.c_str()) != 0) std::_Exit(127);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        std::_Exit(127);
    }
    ::close(fds[1]);
    c.out = fds[0];
    return c;
}

/// Echoes the child's lines until one contains `until` (or, with "", until it
/// exits). Returns false on timeout or if the child ended first.
bool follow(Child& c, const std::string& until, const std::string& margin = "   host │ ") {
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    for (;;) {
        for (std::size_t nl; (nl = c.pending.find('\n')) != std::string::npos;) {
            std::string line = c.pending.substr(0, nl);
            c.pending.erase(0, nl + 1);
            // The abide command explains unchecked signals each time; once is enough here.
            static bool note_shown = false;
            if (line.rfind("note: ", 0) == 0 && std::exchange(note_shown, true)) continue;
            say(margin + line);
            if (!until.empty() && line.find(until) != std::string::npos) return true;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        pollfd p{c.out, POLLIN, 0};
        if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
            say("   (timed out waiting for \"" + until + "\")");
            return false;
        }
        char buf[4096];
        ssize_t n = ::read(c.out, buf, sizeof buf);
        if (n <= 0) return until.empty();
        c.pending.append(buf, static_cast<std::size_t>(n));
    }
}

int reap(Child& c) {
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    ::close(c.out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::string> host_command() {
    return {refund_review_bin, "host",      "--db",      "refunds.db", "--ledger",
            "payments.txt",    "--steplog", "steps.txt", "--start",    "3"};
}

Child start_host() {
    auto argv = host_command();
    std::string shown = "refund_review";
    for (std::size_t i = 1; i < argv.size(); ++i) shown += " " + argv[i];
    say("   $ " + shown);
    Child c = spawn(argv);
    live_host = c.pid;
    return c;
}

/// Runs the abide command to the end, showing it and what it printed.
int abide_cmd(std::vector<std::string> args) {
    std::string shown = "abide --db refunds.db";
    for (const auto& a : args) shown.append(" ").append(shell_quote(a));
    say("   $ " + shown);
    args.insert(args.begin(), {abide_bin, "--db", "refunds.db"});
    Child c = spawn(args);
    follow(c, "", "   │ ");
    int code = reap(c);
    if (code != 0) say("   (exit " + std::to_string(code) + (code == 1 ? ": refused)" : ")"));
    return code;
}

std::string decision(const std::string& status, const std::string& reason, int amount) {
    return abide::json{{"status", status}, {"reviewer_id", "u_123"}, {"reason", reason}, {"approved_amount", amount}}
        .dump();
}

void show_ledger(const ex::PaymentsLedger& ledger) {
    auto payments = ledger.payments();
    say("   payments ledger (the payment provider's own records): " + std::to_string(payments.size()) + " payment(s)");
    for (const auto& p : payments)
        say("     key " + p.key + "  $" + ex::format_usd(p.amount) + "  receipt " + p.receipt + "  for " + p.reference);
}

std::size_t step_runs(const std::string& run, const std::string& step) {
    std::size_t n = 0;
    for (const auto& r : ex::read_step_log(dir / "steps.txt")) n += r.run_id == run && r.step == step;
    return n;
}

}  // namespace

int main() try {
    const auto began = Clock::now();
    if (abide_bin.empty()) throw std::runtime_error("built without the abide command (ABIDE_BUILD_TOOLS=OFF)");
    pace = ::isatty(STDOUT_FILENO) != 0;
    dir = ex::make_temp_dir("abide-demo");
    const ex::PaymentsLedger ledger(dir / "payments.txt");
    say("abide demo: refunds that wait for a person, survive a crash, and pay exactly once.");
    say("Every command below is a separate process; they share only files in " + dir.string());

    chapter(
        "1. A host process starts three refund reviews. Each loads its ticket and customer, has the\n"
        "   planning agent draft a recommendation, then waits for a reviewer's refund_decision (7 days).");
    Child host = start_host();
    bool ok = follow(host, "refund-T-1001: waits") && follow(host, "refund-T-1002: waits") &&
              follow(host, "refund-T-1003: waits");
    check(ok, "all three runs wait for a person");

    chapter("2. The reviewers' inbox, read from the database by another process:");
    abide_cmd({"runs", "--waiting-for", "refund_decision"});

    chapter("3. Crash: kill -9 the host (pid " + std::to_string(host.pid) +
            "). The waits are in the journal, not in memory.");
    const long first_pid = host.pid;
    ::kill(host.pid, SIGKILL);
    follow(host, "");
    check(reap(host) == 128 + SIGKILL, "the host is gone (killed by SIGKILL)");
    say("   A new host opens the same database. It starts the same run ids, which creates nothing,");
    say("   and re-runs no step: every run is still parked at its wait.");
    host = start_host();
    follow(host, "polls");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // room for any (wrong) re-execution to show
    const auto log = ex::read_step_log(dir / "steps.txt");
    check(
        log.size() == 9 && std::all_of(log.begin(), log.end(), [&](const auto& r) { return r.pid == first_pid; }),
        "the new host ran no step again: the step log still has 9 executions, all by pid " + std::to_string(first_pid));

    chapter("4. A reviewer approves T-1001 with the abide command; the host picks it up at its next poll.");
    abide_cmd({"signal", "refund-T-1001", "refund_decision", "--id", "review-1", "--data",
               decision("approved", "inside the refund window", 4900)});
    follow(host, "refund-T-1001: completed");
    show_ledger(ledger);

    chapter("5. The reviewer's browser retries the same approval (same --id). Nothing more is paid.");
    check(abide_cmd({"signal", "refund-T-1001", "refund_decision", "--id", "review-1", "--data",
                     decision("approved", "inside the refund window", 4900)}) == 1,
          "the duplicate is refused");
    check(abide_cmd({"signal", "refund-T-1001", "refund_decision", "--id", "review-1b", "--data",
                     decision("approved", "clicked twice", 4900)}) == 1,
          "a second approval of a finished refund is refused too");
    check(ledger.count_for("T-1001") == 1, "T-1001 is paid exactly once");

    chapter("6. T-1002 is rejected: the run stops before the refund step.");
    abide_cmd({"signal", "refund-T-1002", "refund_decision", "--id", "review-2", "--data",
               decision("rejected", "the duplicate charge was already reversed", 0)});
    follow(host, "refund-T-1002: completed");
    check(ledger.count_for("T-1002") == 0 && step_runs("refund-T-1002", "issue_refund") == 0,
          "no refund step ran for T-1002, nothing was paid");

    chapter("7. On T-1003 the reviewer asks for changes. The agent re-drafts with the reason; the run waits again.");
    abide_cmd({"signal", "refund-T-1003", "refund_decision", "--id", "review-3", "--data",
               decision("request_changes", "refund half: 12.50, the parcel arrived", 0)});
    follow(host, "refund-T-1003: waits");
    abide_cmd({"signal", "refund-T-1003", "refund_decision", "--id", "review-4", "--data",
               decision("approved", "half refund agreed", 1250)});
    follow(host, "refund-T-1003: completed");
    show_ledger(ledger);

    chapter("8. The decision path of T-1003, from its journal:");
    abide_cmd({"trace", "refund-T-1003"});

    chapter("9. What the files outside the journal say:");
    for (const char* run : {"refund-T-1001", "refund-T-1002", "refund-T-1003"})
        check(step_runs(run, "load_ticket") == 1 && step_runs(run, "load_customer") == 1,
              std::string(run) + ": steps before the wait ran once, across both hosts");
    check(step_runs("refund-T-1003", "draft_recommendation") == 2, "T-1003 was drafted twice (one change request)");
    check(ledger.payments().size() == 2, "two payments in all, each idempotency key once");

    ::kill(host.pid, SIGTERM);
    reap(host);
    fs::remove_all(dir);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - began).count();
    if (failures != 0) {
        say("\ndemo FAILED (" + std::to_string(failures) + " check(s))");
        return 1;
    }
    say("\ndemo finished in " + std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + " s");
    return 0;
} catch (const std::exception& e) {
    if (live_host > 0) ::kill(live_host, SIGKILL);
    std::cerr << "demo FAILED: " << e.what() << "\n";
    return 1;
}
