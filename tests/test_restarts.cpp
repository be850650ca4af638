// Real restarts: the example hosts (examples/) run as child processes and are
// killed with SIGKILL while runs wait; approvals come from the `abide` command,
// another process. The oracles live outside the journal: the payments ledger
// (one line per payment, keyed by idempotency key) and the step log (one line
// per execution of a step body). Each test case checks that no step ran again
// across the restarts, that each approval paid once, and that every run ends
// as its scenario says.
//
// Kills at random instants, many times, with a seeded mix of workflows and a
// separate signalling process: the kill -9 torture (tests/reliability/torture).
#include "support.hpp"

#include <catch2/catch.hpp>

#if defined(ABIDE_REFUND_REVIEW_PATH) && defined(ABIDE_CHARGE_APPROVAL_PATH) && defined(ABIDE_MULTI_APPROVAL_PATH) && \
    defined(ABIDE_CLI_PATH)

#include "common/host.hpp"
#include "harness.hpp"

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace ex = examples;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

using abide::harness::Process;
using abide::harness::read_text;
using abide::harness::tail;

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

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
