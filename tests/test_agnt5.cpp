// The AGNT5 cookbook "Build a durable human-approval AI workflow" in abide:
// the refund_review workflow written out as in the cookbook, then its five
// production checks, the trace and the 7-day timeout.
//
// A "restart" destroys the abide::Engine (the worker) and opens a new one on
// the same database file, defining the workflow again. The outside world
// (tickets, customers, the drafting agent, the payments provider) lives in the
// test and survives restarts, so it can count what really ran.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace abide;
using namespace std::chrono_literals;
/// The approval payload of the cookbook, an explicit decision record (status,
/// reviewer_id, reason, approved_amount), is the one the other tests send.
using test::Decision;

namespace {

// ---- the cookbook's data ------------------------------------------------------------

struct Ticket {
    std::string id, customer_id, subject;
    std::int64_t order_amount = 0;  // cents
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Ticket, id, customer_id, subject, order_amount)

struct Customer {
    std::string id, name;
    bool inside_refund_window = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Customer, id, name, inside_refund_window)

struct Recommendation {
    std::string action, draft_reply;
    std::int64_t amount = 0;  // cents
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Recommendation, action, draft_reply, amount)

struct RefundReceipt {
    std::string id, idempotency_key;
    std::int64_t amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RefundReceipt, id, idempotency_key, amount)

struct RefundOutcome {
    std::string status, reason, receipt_id;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RefundOutcome, status, reason, receipt_id)

// ---- the outside world --------------------------------------------------------------

/// The payments provider: refunds keyed by idempotency key. A second request
/// with a key it has seen creates nothing and answers with the first receipt,
/// as Stripe does.
class PaymentsLedger {
public:
    RefundReceipt create_refund(const std::string& ticket_id, std::int64_t amount, const std::string& idempotency_key) {
        ++calls;
        if (auto it = refunds.find(idempotency_key); it != refunds.end()) {
            ++duplicates_refused;
            return it->second;
        }
        RefundReceipt receipt{"re_" + std::to_string(refunds.size() + 1) + "_" + ticket_id, idempotency_key, amount};
        refunds.emplace(idempotency_key, receipt);
        return receipt;
    }

    std::map<std::string, RefundReceipt> refunds;
    int calls = 0;
    int duplicates_refused = 0;
};

/// Tickets, customers, the drafting agent and the payments provider, with a
/// count of how often each step body ran.
struct SupportDesk {
    std::map<std::string, Ticket> tickets{{"T-1001", {"T-1001", "C-77", "Charged twice for the annual plan", 4900}}};
    std::map<std::string, Customer> customers{{"C-77", {"C-77", "Ada Lovelace", true}}};
    PaymentsLedger payments;
    std::map<std::string, int> step_runs;
    /// Makes the next refund request lose its response after the refund was made.
    bool lose_next_refund_response = false;

    int runs(const std::string& step) const {
        auto it = step_runs.find(step);
        return it == step_runs.end() ? 0 : it->second;
    }

    Ticket load_ticket(const std::string& ticket_id) {
        ++step_runs["load_ticket"];
        return tickets.at(ticket_id);
    }
    Customer load_customer(const std::string& customer_id) {
        ++step_runs["load_customer"];
        return customers.at(customer_id);
    }
    Recommendation draft_refund_recommendation(const Ticket& ticket, const Customer& customer) {
        ++step_runs["draft_refund_recommendation"];
        return {"refund", "Hi " + customer.name + ", we are refunding the duplicate charge.", ticket.order_amount};
    }
    RefundReceipt issue_refund_once(const std::string& ticket_id, std::int64_t amount) {
        ++step_runs["issue_refund_once"];
        const std::string idempotency_key = "refund:" + ticket_id + ":" + std::to_string(amount);
        RefundReceipt receipt = payments.create_refund(ticket_id, amount, idempotency_key);
        if (lose_next_refund_response) {
            lose_next_refund_response = false;
            throw std::runtime_error("connection reset before the refund response arrived");
        }
        return receipt;
    }
};

/// The side-effect step retries a lost response; the idempotency key makes
/// the retry safe.
StepOptions refund_step_options() {
    StepOptions options;
    options.retry.max_attempts = 3;
    options.retry.initial_backoff = 1s;
    return options;
}

// ---- the workflow, as in the cookbook -------------------------------------------------

RefundOutcome refund_review(Context& ctx, const std::string& ticket_id, SupportDesk& desk) {
    Ticket ticket = ctx.step("load_ticket", [&] { return desk.load_ticket(ticket_id); });
    Customer customer = ctx.step("load_customer", [&] { return desk.load_customer(ticket.customer_id); });
    Recommendation recommendation = ctx.step("draft_refund_recommendation", [&] {
        return desk.draft_refund_recommendation(ticket, customer);
    });

    std::optional<Decision> decision = ctx.wait_for_signal<Decision>(
        "refund_decision", std::chrono::days(7), {{"ticket_id", ticket.id}, {"amount", recommendation.amount}});
    if (!decision) return RefundOutcome{"timed_out", "no refund decision within 7 days", ""};

    if (decision->status != "approved") return RefundOutcome{"not_approved", decision->reason, ""};

    RefundReceipt receipt = ctx.step("issue_refund_once", refund_step_options(), [&] {
        return desk.issue_refund_once(ticket.id, recommendation.amount);
    });
    return RefundOutcome{"refunded", "", receipt.id};
}

// ---- the worker ------------------------------------------------------------------------

/// A worker process: an engine on a database file that outlives it.
class RefundWorker {
public:
    explicit RefundWorker(std::size_t cache_size) : cache_size_(cache_size) { open(); }

    Engine& engine() { return *engine_; }

    /// Kills the worker and starts a new one on the same database file.
    void restart() {
        engine_.reset();
        open();
    }

    RunHandle start_review(const std::string& ticket_id) {
        StartOptions options;
        options.run_id = "refund-" + ticket_id;
        return engine_->start("refund_review", ticket_id, options);
    }

    test::TempDir dir;
    test::ManualClock clock;
    SupportDesk desk;

private:
    void open() {
        engine_ = std::make_unique<Engine>(test::test_options(dir, clock, cache_size_));
        engine_->define("refund_review", [this](Context& ctx, const std::string& ticket_id) {
                   return refund_review(ctx, ticket_id, desk);
               })
            .signal<Decision>("refund_decision");
    }

    std::size_t cache_size_;
    std::unique_ptr<Engine> engine_;
};

constexpr std::string_view approval_json =
    R"({"status":"approved","reviewer_id":"user_123","reason":"Customer is inside the refund window.","approved_amount":4900})";

const std::string refund_key = "refund:T-1001:4900";

/// Starts the review of T-1001 and polls until it waits for the decision.
std::string park_review(RefundWorker& worker) {
    RunHandle run = worker.start_review("T-1001");
    REQUIRE(run.created);
    PollResult p = worker.engine().poll();
    REQUIRE(p.waiting == 1);
    REQUIRE(worker.engine().status(run.id)->status == RunStatus::waiting);
    return run.id;
}

/// A worker for each engine cache size.
struct RefundFixture : test::EachCacheSize {
    RefundWorker worker{cache_size};
};

std::vector<const TraceEntry*> entries_named(const Trace& trace, std::string_view kind, std::string_view name) {
    std::vector<const TraceEntry*> out;
    for (const TraceEntry& e : trace.entries)
        if (e.kind == kind && e.name == name) out.push_back(&e);
    return out;
}

/// The payments provider made one refund, asked once, by one run of the refund step.
void check_refunded_once(const RefundWorker& worker) {
    CHECK(worker.desk.payments.refunds.size() == 1);
    CHECK(worker.desk.payments.calls == 1);
    CHECK(worker.desk.runs("issue_refund_once") == 1);
}

/// No refund was asked for: the refund step never ran, and the journal has no refund step.
void check_no_refund(RefundWorker& worker, const std::string& run) {
    CHECK(worker.desk.payments.calls == 0);
    CHECK(worker.desk.runs("issue_refund_once") == 0);
    CHECK(entries_named(worker.engine().trace(run), "step", "issue_refund_once").empty());
}

std::size_t count_events(const std::vector<Event>& events, EventType type, std::string_view name = {}) {
    return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const Event& e) {
        return e.type == type && (name.empty() || e.name == name);
    }));
}

}  // namespace

// ---- the workflow itself ---------------------------------------------------------------

TEST_CASE_METHOD(RefundFixture, "an approved refund review drafts, waits, refunds once and returns the receipt",
                 "[agnt5]") {
    const std::string run = park_review(worker);

    SignalResult r = worker.engine().signal(run, "refund_decision", approval_json);
    CHECK(r.outcome == SignalOutcome::delivered);
    PollResult p = worker.engine().poll();
    CHECK(p.completed == 1);

    const auto outcome = test::completed_output<RefundOutcome>(worker.engine(), run);
    CHECK(outcome.status == "refunded");
    REQUIRE(worker.desk.payments.refunds.count(refund_key) == 1);
    CHECK(outcome.receipt_id == worker.desk.payments.refunds.at(refund_key).id);
    CHECK(worker.desk.payments.refunds.at(refund_key).amount == 4900);
    CHECK(worker.desk.payments.calls == 1);
    for (const char* step : {"load_ticket", "load_customer", "draft_refund_recommendation", "issue_refund_once"})
        CHECK(worker.desk.runs(step) == 1);
}

// ---- production check 1: restart the worker while the workflow is waiting ---------------

TEST_CASE_METHOD(RefundFixture, "a refund review waiting for its decision is still waiting after a worker restart",
                 "[agnt5][restart]") {
    const TimePoint parked_at = worker.clock();
    const std::string run = park_review(worker);

    worker.restart();

    const WaitInfo wait = test::waiting_on(worker.engine(), run, WaitKind::signal, "refund_decision");
    CHECK(wait.data == json{{"ticket_id", "T-1001"}, {"amount", 4900}});
    REQUIRE(wait.deadline);
    CHECK(*wait.deadline == parked_at + std::chrono::days(7));
    CHECK(worker.engine().next_deadline() == parked_at + std::chrono::days(7));

    // The approval inbox: runs waiting for a refund decision, with the metadata.
    RunQuery inbox;
    inbox.waiting_for = "refund_decision";
    std::vector<RunInfo> waiting = worker.engine().list_runs(inbox);
    REQUIRE(waiting.size() == 1);
    CHECK(waiting[0].id == run);
    REQUIRE(waiting[0].waiting);
    CHECK(waiting[0].waiting->data["ticket_id"] == "T-1001");
    CHECK(waiting[0].waiting->data["amount"] == 4900);
    CHECK(waiting[0].waiting->deadline == parked_at + std::chrono::days(7));

    RunQuery by_status;
    by_status.status = RunStatus::waiting;
    CHECK(worker.engine().list_runs(by_status).size() == 1);

    // The event log told the inbox about the wait, with the same metadata.
    std::vector<Event> waits;
    for (const Event& e : worker.engine().events())
        if (e.type == EventType::waiting && e.run_id == run) waits.push_back(e);
    REQUIRE(waits.size() == 1);
    CHECK(waits[0].name == "refund_decision");
    CHECK(waits[0].data == json{{"ticket_id", "T-1001"}, {"amount", 4900}});
    CHECK(waits[0].deadline == parked_at + std::chrono::days(7));

    // The new worker has nothing to run until the decision comes.
    PollResult p = worker.engine().poll();
    CHECK(p.runs_advanced == 0);
    CHECK(worker.engine().status(run)->status == RunStatus::waiting);
}

// ---- production check 2: send the approval after the restart ---------------------------

TEST_CASE_METHOD(RefundFixture, "an approval sent after a worker restart completes the refund", "[agnt5][restart]") {
    const std::string run = park_review(worker);

    worker.restart();

    SignalResult r = worker.engine().signal(run, "refund_decision", approval_json, "approval-1");
    CHECK(r.outcome == SignalOutcome::delivered);
    PollResult p = worker.engine().poll();
    CHECK(p.runs_advanced == 1);
    CHECK(p.completed == 1);

    const auto outcome = test::completed_output<RefundOutcome>(worker.engine(), run);
    CHECK(outcome.status == "refunded");
    REQUIRE(worker.desk.payments.refunds.size() == 1);
    CHECK(outcome.receipt_id == worker.desk.payments.refunds.at(refund_key).id);
    RunQuery inbox;
    inbox.waiting_for = "refund_decision";
    CHECK(worker.engine().list_runs(inbox).empty());
}

TEST_CASE("starting the review of the same ticket again after a restart returns the waiting run",
          "[agnt5][restart]") {
    RefundWorker worker(1024);
    const std::string run = park_review(worker);
    worker.restart();

    RunHandle again = worker.start_review("T-1001");
    CHECK_FALSE(again.created);
    CHECK(again.id == run);
    CHECK(worker.engine().poll().runs_advanced == 0);
    CHECK(worker.engine().list_runs().size() == 1);
    CHECK(worker.desk.runs("load_ticket") == 1);
}

TEST_CASE_METHOD(RefundFixture, "an approval sent before the review reaches its wait is consumed by the wait",
                 "[agnt5][signals]") {
    const std::string run = worker.start_review("T-1001").id;

    SignalResult early = worker.engine().signal(run, "refund_decision", approval_json);
    CHECK(early.outcome == SignalOutcome::buffered);
    CHECK(early.accepted());

    PollResult p = worker.engine().poll();
    CHECK(p.completed == 1);
    const auto outcome = test::completed_output<RefundOutcome>(worker.engine(), run);
    CHECK(outcome.status == "refunded");
    CHECK(worker.desk.payments.calls == 1);
    CHECK(count_events(worker.engine().events(), EventType::signal_delivered, "refund_decision") == 1);
}

// ---- production check 3: resume from the waiting point ----------------------------------

TEST_CASE_METHOD(RefundFixture, "a refund review resumes from its waiting point without re-running earlier steps",
                 "[agnt5][restart]") {
    const std::string run = park_review(worker);
    const std::map<std::string, int> before_restart = worker.desk.step_runs;
    CHECK(before_restart.at("load_ticket") == 1);
    CHECK(before_restart.at("load_customer") == 1);
    CHECK(before_restart.at("draft_refund_recommendation") == 1);
    CHECK(worker.desk.runs("issue_refund_once") == 0);

    worker.restart();
    CHECK(worker.engine().signal(run, "refund_decision", approval_json).outcome == SignalOutcome::delivered);
    (void)worker.engine().poll();
    REQUIRE(worker.engine().status(run)->status == RunStatus::completed);

    // No step body before the wait ran again; only the side effect is new.
    CHECK(worker.desk.runs("load_ticket") == 1);
    CHECK(worker.desk.runs("load_customer") == 1);
    CHECK(worker.desk.runs("draft_refund_recommendation") == 1);
    CHECK(worker.desk.runs("issue_refund_once") == 1);

    // And the journal shows one of each, with a single wait.
    Trace trace = worker.engine().trace(run);
    for (const char* step : {"load_ticket", "load_customer", "draft_refund_recommendation", "issue_refund_once"})
        CHECK(entries_named(trace, "step", step).size() == 1);
    CHECK(entries_named(trace, "wait", "refund_decision").size() == 1);
}

// ---- production check 4: duplicate approvals create no duplicate refunds ----------------

TEST_CASE_METHOD(RefundFixture, "duplicate approvals with the same signal id create no duplicate refunds",
                 "[agnt5][signals]") {
    const std::string run = park_review(worker);
    Engine& engine = worker.engine();

    CHECK(engine.signal(run, "refund_decision", approval_json, "approval-1").outcome == SignalOutcome::delivered);
    SignalResult again = engine.signal(run, "refund_decision", approval_json, "approval-1");
    CHECK(again.outcome == SignalOutcome::duplicate);
    CHECK_FALSE(again.accepted());

    (void)engine.poll();
    const auto outcome = test::completed_output<RefundOutcome>(engine, run);
    CHECK(outcome.status == "refunded");

    // A webhook retried after the refund went out is not accepted either.
    SignalResult late = engine.signal(run, "refund_decision", approval_json, "approval-1");
    CHECK_FALSE(late.accepted());
    CHECK((late.outcome == SignalOutcome::duplicate || late.outcome == SignalOutcome::run_finished));
    (void)engine.poll();

    check_refunded_once(worker);
    // The duplicate was stored once: one payload reached the workflow.
    CHECK(entries_named(engine.trace(run), "wake", "refund_decision").size() == 1);
}

TEST_CASE_METHOD(RefundFixture,
                 "duplicate approvals with the same signal id across a worker restart create no duplicate refunds",
                 "[agnt5][signals][restart]") {
    const std::string run = park_review(worker);

    CHECK(worker.engine().signal(run, "refund_decision", approval_json, "approval-1").outcome ==
          SignalOutcome::delivered);
    worker.restart();
    // The signal id is remembered in the database, not in the worker.
    CHECK(worker.engine().signal(run, "refund_decision", approval_json, "approval-1").outcome ==
          SignalOutcome::duplicate);

    (void)worker.engine().poll();
    REQUIRE(worker.engine().status(run)->status == RunStatus::completed);
    worker.restart();
    CHECK_FALSE(worker.engine().signal(run, "refund_decision", approval_json, "approval-1").accepted());
    (void)worker.engine().poll();

    CHECK(worker.engine().result<RefundOutcome>(run).status == "refunded");
    check_refunded_once(worker);
}

TEST_CASE_METHOD(RefundFixture, "duplicate approvals without a signal id create no duplicate refunds",
                 "[agnt5][signals]") {
    const bool restart_between = GENERATE(false, true);
    CAPTURE(restart_between);
    const std::string run = park_review(worker);

    CHECK(worker.engine().signal(run, "refund_decision", approval_json).outcome == SignalOutcome::delivered);
    if (restart_between) worker.restart();
    // Without an id abide cannot tell a copy from a new signal: the second one
    // is kept for a later wait that never comes, and dropped when the run ends.
    SignalResult second = worker.engine().signal(run, "refund_decision", approval_json);
    CHECK((second.outcome == SignalOutcome::buffered || !second.accepted()));

    (void)worker.engine().poll();
    const auto outcome = test::completed_output<RefundOutcome>(worker.engine(), run);
    CHECK(outcome.status == "refunded");

    // A third copy after the refund went out is refused.
    SignalResult third = worker.engine().signal(run, "refund_decision", approval_json);
    CHECK(third.outcome == SignalOutcome::run_finished);
    (void)worker.engine().poll();

    check_refunded_once(worker);
    CHECK(entries_named(worker.engine().trace(run), "step", "issue_refund_once").size() == 1);
    if (second.outcome == SignalOutcome::buffered)
        CHECK(count_events(worker.engine().events(), EventType::signal_dropped, "refund_decision") == 1);
}

TEST_CASE_METHOD(RefundFixture, "a refund retried after a lost response is refused by the ledger's idempotency key",
                 "[agnt5][signals][side-effect]") {
    const std::string run = park_review(worker);
    worker.desk.lose_next_refund_response = true;

    CHECK(worker.engine().signal(run, "refund_decision", approval_json).outcome == SignalOutcome::delivered);
    (void)worker.engine().poll();
    // The refund went out but the step failed: it waits for its retry backoff.
    REQUIRE(worker.engine().status(run)->status == RunStatus::waiting);
    CHECK(worker.engine().status(run)->waiting->kind == WaitKind::retry);
    CHECK(worker.desk.payments.refunds.size() == 1);

    worker.restart();
    worker.clock.advance(1s);
    PollResult p = worker.engine().poll();
    CHECK(p.timers_fired == 1);
    REQUIRE(worker.engine().status(run)->status == RunStatus::completed);

    CHECK(worker.desk.runs("issue_refund_once") == 2);
    CHECK(worker.desk.payments.calls == 2);
    CHECK(worker.desk.payments.duplicates_refused == 1);
    REQUIRE(worker.desk.payments.refunds.size() == 1);
    CHECK(worker.engine().result<RefundOutcome>(run).receipt_id == worker.desk.payments.refunds.at(refund_key).id);
}

// ---- production check 5: a rejected decision stops before the side effect ---------------

TEST_CASE_METHOD(RefundFixture, "a rejected decision stops before the refund step", "[agnt5][side-effect]") {
    const bool restart_first = GENERATE(false, true);
    CAPTURE(restart_first);
    const std::string run = park_review(worker);
    if (restart_first) worker.restart();

    const Decision rejection{"rejected", "user_456", "Outside the 30-day refund window.", 0};
    CHECK(worker.engine().signal(run, "refund_decision", rejection).outcome == SignalOutcome::delivered);
    PollResult p = worker.engine().poll();
    CHECK(p.completed == 1);

    const auto outcome = test::completed_output<RefundOutcome>(worker.engine(), run);
    CHECK(outcome.status == "not_approved");
    CHECK(outcome.reason == "Outside the 30-day refund window.");
    CHECK(outcome.receipt_id.empty());

    CHECK(worker.desk.payments.refunds.empty());
    check_no_refund(worker, run);
    CHECK(count_events(worker.engine().events(), EventType::step_completed, "issue_refund_once") == 0);
}

TEST_CASE("a request-changes decision is not an approval and moves no money", "[agnt5][side-effect]") {
    RefundWorker worker(0);
    const std::string run = park_review(worker);
    const Decision changes{"request_changes", "user_123", "Refund only the duplicate charge.", 2450};
    CHECK(worker.engine().signal(run, "refund_decision", changes).outcome == SignalOutcome::delivered);
    (void)worker.engine().poll();
    const auto outcome = test::completed_output<RefundOutcome>(worker.engine(), run);
    CHECK(outcome.status == "not_approved");
    CHECK(outcome.reason == "Refund only the duplicate charge.");
    check_no_refund(worker, run);
}

// ---- the trace ---------------------------------------------------------------------------

TEST_CASE_METHOD(RefundFixture, "the trace preserves the recommendation, the reviewer, the decision and the receipt",
                 "[agnt5][trace][restart]") {
    const std::string run = park_review(worker);
    worker.restart();
    CHECK(worker.engine().signal(run, "refund_decision", approval_json, "approval-1").outcome ==
          SignalOutcome::delivered);
    (void)worker.engine().poll();
    REQUIRE(worker.engine().status(run)->status == RunStatus::completed);
    worker.restart();

    Trace trace = worker.engine().trace(run);
    CHECK(trace.run.status == RunStatus::completed);

    auto drafts = entries_named(trace, "step", "draft_refund_recommendation");
    REQUIRE(drafts.size() == 1);
    CHECK(drafts[0]->value["action"] == "refund");
    CHECK(drafts[0]->value["amount"] == 4900);

    auto waits = entries_named(trace, "wait", "refund_decision");
    REQUIRE(waits.size() == 1);
    CHECK(waits[0]->value == json{{"ticket_id", "T-1001"}, {"amount", 4900}});

    auto decisions = entries_named(trace, "wake", "refund_decision");
    REQUIRE(decisions.size() == 1);
    CHECK(decisions[0]->value == json::parse(approval_json));
    CHECK(decisions[0]->detail.find("approval-1") != std::string::npos);

    auto refunds = entries_named(trace, "step", "issue_refund_once");
    REQUIRE(refunds.size() == 1);
    const RefundReceipt& receipt = worker.desk.payments.refunds.at(refund_key);
    CHECK(refunds[0]->value["id"] == receipt.id);
    CHECK(refunds[0]->value["idempotency_key"] == refund_key);

    // The decision path is in order: recommendation, wait, decision, refund.
    CHECK(drafts[0]->seq < waits[0]->seq);
    CHECK(waits[0]->seq < decisions[0]->seq);
    CHECK(decisions[0]->seq < refunds[0]->seq);
    // Every entry ends when or after it starts; a wait is the instant the run parked.
    for (const TraceEntry& e : trace.entries) CHECK(e.finished >= e.started);
    CHECK(waits[0]->finished == waits[0]->started);

    // The same, as JSON for an audit log.
    json j = trace.to_json();
    CHECK(j["run_id"] == run);
    CHECK(j["status"] == "completed");
    CHECK(j["output"]["receipt_id"] == receipt.id);
    bool saw_recommendation = false, saw_reviewer = false, saw_receipt = false;
    for (const json& e : j["entries"]) {
        if (e.value("name", "") == "draft_refund_recommendation")
            saw_recommendation = e["value"]["amount"] == 4900;
        if (e["kind"] == "wake" && e.contains("value"))
            saw_reviewer = e["value"]["reviewer_id"] == "user_123" && e["value"]["status"] == "approved" &&
                           e["value"]["reason"] == "Customer is inside the refund window.";
        if (e.value("name", "") == "issue_refund_once") saw_receipt = e["value"]["id"] == receipt.id;
    }
    CHECK(saw_recommendation);
    CHECK(saw_reviewer);
    CHECK(saw_receipt);
    CHECK(trace.render().find("user_123") != std::string::npos);
}

// ---- the 7-day timeout -------------------------------------------------------------------

TEST_CASE_METHOD(RefundFixture, "a refund review nobody decides within 7 days times out without a refund",
                 "[agnt5][timeout]") {
    const bool restart_while_waiting = GENERATE(false, true);
    CAPTURE(restart_while_waiting);
    const std::string run = park_review(worker);
    if (restart_while_waiting) worker.restart();

    worker.clock.advance(std::chrono::days(7) - 1s);
    PollResult early = worker.engine().poll();
    CHECK(early.timers_fired == 0);
    CHECK(worker.engine().status(run)->status == RunStatus::waiting);

    worker.clock.advance(2s);
    PollResult due = worker.engine().poll();
    CHECK(due.timers_fired == 1);
    CHECK(due.completed == 1);
    const auto outcome = test::completed_output<RefundOutcome>(worker.engine(), run);
    CHECK(outcome.status == "timed_out");
    CHECK(outcome.receipt_id.empty());
    CHECK(count_events(worker.engine().events(), EventType::timed_out, "refund_decision") == 1);

    // An approval that arrives too late moves no money.
    CHECK(worker.engine().signal(run, "refund_decision", approval_json).outcome == SignalOutcome::run_finished);
    (void)worker.engine().poll();
    check_no_refund(worker, run);
    CHECK(worker.desk.runs("load_ticket") == 1);
}

TEST_CASE_METHOD(RefundFixture,
                 "an approval that arrives after the 7-day deadline but before the next poll moves no money",
                 "[agnt5][timeout]") {
    const std::string run = park_review(worker);

    // The deadline passes while no worker polls (a worker outage, say); then
    // the approval comes in, then the worker polls.
    worker.clock.advance(std::chrono::days(7) + 1h);
    SignalResult late = worker.engine().signal(run, "refund_decision", approval_json, "approval-late");
    INFO("the signal outcome was " << to_string(late.outcome) << ": " << late.message);
    CHECK(late.outcome == SignalOutcome::too_late);
    CHECK_FALSE(late.accepted());
    // The sender never saw the answer and resends: the same answer, nothing stored.
    const SignalResult resent = worker.engine().signal(run, "refund_decision", approval_json, "approval-late");
    INFO("the resend's outcome was " << to_string(resent.outcome) << ": " << resent.message);
    CHECK(resent.outcome == SignalOutcome::too_late);
    CHECK(worker.engine().stats().buffered_signals == 0);
    (void)worker.engine().poll();

    const auto outcome = test::completed_output<RefundOutcome>(worker.engine(), run);
    CHECK(outcome.status == "timed_out");
    check_no_refund(worker, run);
}
