// The Polos human-in-the-loop guide in abide: suspend and resume, the suspend
// event and its topic, the high-value charge with its 2-hour timeout, and
// multi-stage approvals.
//
// Polos hands the workflow {"data": ...}; abide's ctx.suspend returns the
// resume data itself, so `resume_data.get("data", {})` becomes `resume_data`.
// A "restart" destroys the abide::Engine and opens a new one on the same file.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using namespace abide;
using namespace std::chrono_literals;

namespace {

// ---- approval_workflow ---------------------------------------------------------------

struct ActionPlan {
    std::string description;
    std::vector<std::string> steps;
    double estimated_cost = 0.0;
    std::string risk_level;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ActionPlan, description, steps, estimated_cost, risk_level)

struct ApprovalWorkflowInput {
    std::string request;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ApprovalWorkflowInput, request)

struct ApprovalWorkflowOutput {
    std::string status, result, rejection_reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ApprovalWorkflowOutput, status, result, rejection_reason)

// ---- charge_customer_workflow ---------------------------------------------------------

struct ChargeRequest {
    std::string customer_id;
    double amount = 0.0;
    std::string description;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ChargeRequest, customer_id, amount, description)

struct ChargeResponse {
    std::string status, reason, charge_id;
    double amount = 0.0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ChargeResponse, status, reason, charge_id, amount)

struct Validation {
    bool is_valid = false;
    std::string error;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Validation, is_valid, error)

struct ChargeResult {
    std::string charge_id;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ChargeResult, charge_id)

// ---- multi_approval_workflow ------------------------------------------------------------

struct MultiApprovalInput {
    std::string request;
    double amount = 0.0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MultiApprovalInput, request, amount)

struct MultiApprovalOutput {
    std::string status, result;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MultiApprovalOutput, status, result)

// ---- the outside world: the planning agent, Stripe, email -------------------------------

/// The planning agent of the guide: Polos's Agent(output_schema=ActionPlan).
/// A stand-in for the model that answers with a structured plan.
class PlanningAgent : public Agent {
public:
    explicit PlanningAgent(std::map<std::string, int>& step_runs) : step_runs_(step_runs) {}

    json invoke(const AgentRequest& request, const StepContext& step) override {
        ++step_runs_[step.step_name()];
        requests.push_back(request);
        if (request.prompt.find("archive") == std::string::npos)
            return json{{"description", "I am not sure what to do"}};  // not an ActionPlan
        return ActionPlan{"Delete 1000 customer records from archive",
                          {"Backup data", "Run deletion query", "Verify deletion"},
                          50.00,
                          "high"};
    }

    std::vector<AgentRequest> requests;

private:
    std::map<std::string, int>& step_runs_;
};

json action_plan_schema() {
    return {{"type", "object"},
            {"required", {"description", "steps", "estimated_cost", "risk_level"}},
            {"properties",
             {{"description", {{"type", "string"}}},
              {"steps", {{"type", "array"}, {"items", {{"type", "string"}}}}},
              {"estimated_cost", {{"type", "number"}}},
              {"risk_level", {{"type", "string"}, {"enum", {"low", "medium", "high"}}}}}}};
}

struct Services {
    std::map<std::string, int> step_runs;  ///< step bodies run, by step name
    PlanningAgent planning_agent{step_runs};
    std::map<std::string, int> entries;    ///< workflow functions entered (first run or replay)
    std::vector<std::string> charges, emails;

    int runs(const std::string& step) const {
        auto it = step_runs.find(step);
        return it == step_runs.end() ? 0 : it->second;
    }
    int total_step_runs() const {
        int n = 0;
        for (const auto& [name, count] : step_runs) n += count;
        return n;
    }

    std::string execute_action(const ActionPlan& plan) {
        ++step_runs["execute_plan"];
        return "executed " + std::to_string(plan.steps.size()) + " steps: " + plan.description;
    }
    Validation validate_charge_request(const ChargeRequest& input) {
        ++step_runs["validate_charge"];
        if (input.amount <= 0) return {false, "amount must be positive"};
        return {true, ""};
    }
    ChargeResult charge_stripe(const ChargeRequest& input) {
        ++step_runs["execute_charge"];
        charges.push_back(input.customer_id);
        return {"ch_" + std::to_string(charges.size())};
    }
    void send_email(const std::string& customer_id, const std::string& charge_id) {
        ++step_runs["send_confirmation"];
        emails.push_back(customer_id + ":" + charge_id);
    }
    std::string execute_multi(const MultiApprovalInput& input) {
        ++step_runs["execute"];
        return "done: " + input.request;
    }
};

// ---- the workflows, as in the guide ------------------------------------------------------

ApprovalWorkflowOutput approval_workflow(Context& ctx, const ApprovalWorkflowInput& input, Services& svc) {
    ++svc.entries["approval_workflow"];
    // Step 1: Agent creates action plan
    const AgentRequest plan_request{"planning-agent",
                                    "Analyze requests and create detailed action plans with cost estimates.",
                                    "Create an action plan for: " + input.request, action_plan_schema()};
    ActionPlan plan = agent_step<ActionPlan>(ctx, "create_plan", svc.planning_agent, plan_request);

    // Step 2: Suspend and wait for approval
    json resume_data = ctx.suspend("wait_for_approval",
                                   {{"description", plan.description},
                                    {"steps", plan.steps},
                                    {"estimated_cost", plan.estimated_cost},
                                    {"risk_level", plan.risk_level},
                                    {"requires_approval_from", "manager@company.com"}},
                                   1h);

    // Step 3: Resumes here when approval event is received. Execute if approved.
    const json& decision = resume_data;
    if (decision.value("approved", false)) {
        std::string result = ctx.step("execute_plan", [&] { return svc.execute_action(plan); });
        return {"completed", result, ""};
    }
    return {"rejected", "", decision.value("reason", "")};
}

ChargeResponse charge_customer_workflow(Context& ctx, const ChargeRequest& input, Services& svc) {
    ++svc.entries["charge_customer_workflow"];
    // Validate the charge
    Validation validation = ctx.step("validate_charge", [&] { return svc.validate_charge_request(input); });

    if (!validation.is_valid) return {"invalid", validation.error, "", 0.0};

    // For charges over $1000, require approval
    if (input.amount > 1000) {
        json resume_data;
        try {
            resume_data = ctx.suspend("high_value_approval",
                                      {{"customer_id", input.customer_id},
                                       {"amount", input.amount},
                                       {"description", input.description},
                                       {"threshold_exceeded", true}},
                                      2h);
        } catch (const TimeoutError&) {
            return {"timeout", "Approval not received in time", "", 0.0};
        }

        const json& decision = resume_data;
        if (!decision.value("approved", false))
            return {"rejected", decision.value("reason", "Not approved"), "", 0.0};
    }

    // Execute the charge
    ChargeResult charge_result = ctx.step("execute_charge", [&] { return svc.charge_stripe(input); });

    // Send confirmation
    ctx.step("send_confirmation", [&] { svc.send_email(input.customer_id, charge_result.charge_id); });

    return {"completed", "", charge_result.charge_id, input.amount};
}

MultiApprovalOutput multi_approval_workflow(Context& ctx, const MultiApprovalInput& input, Services& svc) {
    ++svc.entries["multi_approval_workflow"];
    // Stage 1: Manager approval
    json manager_data = ctx.suspend("manager_approval", {{"stage", "manager"}, {"amount", input.amount}});

    const json& manager_decision = manager_data;
    if (!manager_decision.value("approved", false)) return {"rejected_by_manager", ""};

    // Stage 2: Finance approval (for large amounts)
    if (input.amount > 10000) {
        json finance_data = ctx.suspend("finance_approval", {{"stage", "finance"}, {"amount", input.amount}});

        const json& finance_decision = finance_data;
        if (!finance_decision.value("approved", false)) return {"rejected_by_finance", ""};
    }

    // Execute action
    std::string result = ctx.step("execute", [&] { return svc.execute_multi(input); });
    return {"completed", result};
}

// ---- the worker ---------------------------------------------------------------------------

/// An engine with the three workflows defined, restartable on the same file.
class PolosWorker {
public:
    explicit PolosWorker(std::size_t cache_size = 1024) : cache_size_(cache_size) { boot(); }

    Engine& engine() { return *engine_; }

    void restart() {
        engine_.reset();
        boot();
    }

    /// Starts approval_workflow on the archive request and polls until it waits for approval.
    std::string park_archive_plan();
    /// Starts charge_customer_workflow for 5000 and polls until it waits for high_value_approval.
    std::string park_high_value_charge();
    /// Starts multi_approval_workflow and polls until it waits for the manager.
    std::string park_multi(const MultiApprovalInput& input);

    test::TempDir dir;
    test::ManualClock clock;
    Services svc;
    /// Every event the engines handed to on_event, in order.
    std::vector<Event> streamed;

private:
    void boot() {
        EngineOptions options = test::test_options(dir, clock, cache_size_);
        options.on_event = [this](const Event& e) { streamed.push_back(e); };
        engine_ = std::make_unique<Engine>(std::move(options));
        engine_->define("approval_workflow", [this](Context& ctx, const ApprovalWorkflowInput& in) {
            return approval_workflow(ctx, in, svc);
        });
        engine_->define("charge_customer_workflow", [this](Context& ctx, const ChargeRequest& in) {
            return charge_customer_workflow(ctx, in, svc);
        });
        engine_->define("multi_approval_workflow", [this](Context& ctx, const MultiApprovalInput& in) {
            return multi_approval_workflow(ctx, in, svc);
        });
    }

    std::size_t cache_size_;
    std::unique_ptr<Engine> engine_;
};

const ApprovalWorkflowInput archive_request{"delete old customer records from archive"};

const json plan_data = {{"description", "Delete 1000 customer records from archive"},
                        {"steps", {"Backup data", "Run deletion query", "Verify deletion"}},
                        {"estimated_cost", 50.00},
                        {"risk_level", "high"},
                        {"requires_approval_from", "manager@company.com"}};

constexpr std::string_view alice_approves =
    R"({"approved":true,"approved_by":"alice@company.com","approved_at":"2026-05-13T10:00:00Z","notes":"Approved after review"})";

/// Polls once and checks the run parked on `step_key`.
void expect_suspended(PolosWorker& w, const std::string& run, std::string_view step_key) {
    PollResult p = w.engine().poll();
    CHECK(p.waiting == 1);
    (void)test::waiting_on(w.engine(), run, WaitKind::suspend, step_key);
}

std::string PolosWorker::park_archive_plan() {
    const std::string run = engine().start("approval_workflow", archive_request).id;
    expect_suspended(*this, run, "wait_for_approval");
    return run;
}

std::string PolosWorker::park_high_value_charge() {
    const std::string run =
        engine()
            .start("charge_customer_workflow", ChargeRequest{"cust_123", 5000.0, "Enterprise annual subscription"})
            .id;
    expect_suspended(*this, run, "high_value_approval");
    return run;
}

std::string PolosWorker::park_multi(const MultiApprovalInput& input) {
    const std::string run = engine().start("multi_approval_workflow", input).id;
    expect_suspended(*this, run, "manager_approval");
    return run;
}

/// A worker for each engine cache size.
struct PolosFixture : test::EachCacheSize {
    PolosWorker w{cache_size};
};

std::vector<Event> events_of(const std::vector<Event>& events, EventType type, std::string_view name = {}) {
    std::vector<Event> out;
    for (const Event& e : events)
        if (e.type == type && (name.empty() || e.name == name)) out.push_back(e);
    return out;
}

}  // namespace

// ---- (a) approval_workflow -------------------------------------------------------------------

TEST_CASE_METHOD(PolosFixture, "an approved action plan is executed with the plan the agent made",
                 "[polos][approval]") {
    const TimePoint t0 = w.clock();
    const std::string run = w.park_archive_plan();

    RunInfo info = *w.engine().status(run);
    CHECK(info.waiting->data == plan_data);
    CHECK(info.waiting->deadline == t0 + 1h);

    SignalResult r = w.engine().resume(run, "wait_for_approval", alice_approves);
    CHECK(r.outcome == SignalOutcome::delivered);
    PollResult p = w.engine().poll();
    CHECK(p.completed == 1);

    const auto out = test::completed_output<ApprovalWorkflowOutput>(w.engine(), run);
    CHECK(out.status == "completed");
    CHECK(out.result == "executed 3 steps: Delete 1000 customer records from archive");
    CHECK(out.rejection_reason.empty());
    CHECK(w.svc.runs("create_plan") == 1);
    CHECK(w.svc.runs("execute_plan") == 1);
}

TEST_CASE_METHOD(PolosFixture, "a rejected action plan is not executed and reports the reason", "[polos][approval]") {
    const std::string run = w.park_archive_plan();

    const json rejection = {{"approved", false}, {"approved_by", "bob@company.com"}, {"reason", "No backup verified yet"}};
    CHECK(w.engine().resume(run, "wait_for_approval", rejection).outcome == SignalOutcome::delivered);
    (void)w.engine().poll();

    const auto out = test::completed_output<ApprovalWorkflowOutput>(w.engine(), run);
    CHECK(out.status == "rejected");
    CHECK(out.rejection_reason == "No backup verified yet");
    CHECK(out.result.empty());
    CHECK(w.svc.runs("execute_plan") == 0);
}

TEST_CASE_METHOD(PolosFixture, "an action plan nobody approves within an hour fails the run with a suspend timeout",
                 "[polos][approval][timeout]") {
    const std::string run = w.park_archive_plan();

    w.clock.advance(1h + 1s);
    PollResult p = w.engine().poll();
    CHECK(p.timers_fired == 1);
    CHECK(p.failed == 1);
    const RunInfo info = test::failed_run(w.engine(), run);
    CHECK(info.error->id == "abide.wait.timeout");
    CHECK(w.svc.runs("execute_plan") == 0);
}

TEST_CASE_METHOD(PolosFixture, "the planning agent is asked once and its prompt and plan are kept in the trace",
                 "[polos][approval][restart]") {
    const std::string run = w.park_archive_plan();
    REQUIRE(w.svc.planning_agent.requests.size() == 1);
    const AgentRequest& asked = w.svc.planning_agent.requests[0];
    CHECK(asked.agent == "planning-agent");
    CHECK(asked.prompt == "Create an action plan for: delete old customer records from archive");
    CHECK(asked.output_schema["required"].size() == 4);

    w.restart();
    CHECK(w.engine().resume(run, "wait_for_approval", alice_approves).outcome == SignalOutcome::delivered);
    (void)w.engine().poll();
    REQUIRE(w.engine().status(run)->status == RunStatus::completed);
    CHECK(w.svc.planning_agent.requests.size() == 1);  // replay did not call the model again

    const Trace trace = w.engine().trace(run);
    const TraceEntry* plan_entry = nullptr;
    for (const TraceEntry& e : trace.entries)
        if (e.kind == "step" && e.name == "create_plan") plan_entry = &e;
    REQUIRE(plan_entry);
    CHECK(plan_entry->value["agent"] == "planning-agent");
    CHECK(plan_entry->value["prompt"] == asked.prompt);
    CHECK(plan_entry->value["result"]["steps"] == plan_data["steps"]);
    CHECK(plan_entry->value["result"]["estimated_cost"] == 50.0);
    CHECK(plan_entry->value["result"]["risk_level"] == "high");
}

TEST_CASE("a plan that does not fit ActionPlan fails the run before anyone is asked to approve",
          "[polos][approval]") {
    PolosWorker w;
    const std::string run = w.engine().start("approval_workflow", ApprovalWorkflowInput{"rename the office plants"}).id;
    PollResult p = w.engine().poll();
    CHECK(p.failed == 1);
    const RunInfo info = test::failed_run(w.engine(), run);
    CHECK(info.error->id == "abide.step.failed");
    CHECK(info.error->message.find("ActionPlan") != std::string::npos);
    CHECK(events_of(w.engine().events(), EventType::suspended).empty());
    CHECK(w.svc.runs("execute_plan") == 0);
}

// ---- (b) charge_customer_workflow --------------------------------------------------------------

TEST_CASE("a charge of 500 completes without asking for approval", "[polos][charge]") {
    PolosWorker w;
    const std::string run = w.engine().start("charge_customer_workflow", ChargeRequest{"cust_123", 500.0, "Monthly plan"}).id;
    PollResult p = w.engine().poll();
    CHECK(p.waiting == 0);
    CHECK(p.completed == 1);

    const auto out = test::completed_output<ChargeResponse>(w.engine(), run);
    CHECK(out.status == "completed");
    CHECK(out.charge_id == "ch_1");
    CHECK(out.amount == Approx(500.0));
    CHECK(events_of(w.engine().events(), EventType::suspended).empty());
    CHECK(w.svc.runs("validate_charge") == 1);
    CHECK(w.svc.runs("execute_charge") == 1);
    CHECK(w.svc.emails == std::vector<std::string>{"cust_123:ch_1"});
}

TEST_CASE("an invalid charge is refused before any approval is asked", "[polos][charge]") {
    PolosWorker w;
    const std::string run = w.engine().start("charge_customer_workflow", ChargeRequest{"cust_123", -5.0, "Refund?"}).id;
    (void)w.engine().poll();
    const auto out = test::completed_output<ChargeResponse>(w.engine(), run);
    CHECK(out.status == "invalid");
    CHECK(out.reason == "amount must be positive");
    CHECK(w.svc.charges.empty());
}

TEST_CASE_METHOD(PolosFixture, "a charge of 5000 suspends for approval and completes once approved",
                 "[polos][charge]") {
    const bool restart_while_suspended = GENERATE(false, true);
    CAPTURE(restart_while_suspended);
    const TimePoint t0 = w.clock();
    const std::string run = w.park_high_value_charge();
    RunInfo info = *w.engine().status(run);
    CHECK(info.waiting->data == json{{"customer_id", "cust_123"},
                                     {"amount", 5000.0},
                                     {"description", "Enterprise annual subscription"},
                                     {"threshold_exceeded", true}});
    CHECK(info.waiting->deadline == t0 + 2h);
    CHECK(w.svc.charges.empty());
    if (restart_while_suspended) w.restart();

    const json approval = {{"approved", true}, {"approved_by", "cfo@company.com"}, {"reason", "Contract signed"}};
    CHECK(w.engine().resume(run, "high_value_approval", approval).outcome == SignalOutcome::delivered);
    (void)w.engine().poll();

    const auto out = test::completed_output<ChargeResponse>(w.engine(), run);
    CHECK(out.status == "completed");
    CHECK(out.charge_id == "ch_1");
    CHECK(out.amount == Approx(5000.0));
    CHECK(w.svc.runs("validate_charge") == 1);
    CHECK(w.svc.runs("execute_charge") == 1);
    CHECK(w.svc.runs("send_confirmation") == 1);
}

TEST_CASE_METHOD(PolosFixture, "a charge of 5000 rejected without a reason reports Not approved and charges nothing",
                 "[polos][charge]") {
    const std::string run = w.park_high_value_charge();

    CHECK(w.engine().resume(run, "high_value_approval", R"({"approved":false})").outcome == SignalOutcome::delivered);
    (void)w.engine().poll();

    const auto out = test::completed_output<ChargeResponse>(w.engine(), run);
    CHECK(out.status == "rejected");
    CHECK(out.reason == "Not approved");
    CHECK(w.svc.charges.empty());
    CHECK(w.svc.emails.empty());
}

TEST_CASE_METHOD(PolosFixture, "a charge of 5000 nobody approves within 2 hours returns timeout",
                 "[polos][charge][timeout]") {
    const bool restart_while_suspended = GENERATE(false, true);
    CAPTURE(restart_while_suspended);
    const std::string run = w.park_high_value_charge();
    if (restart_while_suspended) w.restart();

    w.clock.advance(2h - 1s);
    CHECK(w.engine().poll().timers_fired == 0);
    CHECK(w.engine().status(run)->status == RunStatus::waiting);

    w.clock.advance(2s);
    PollResult p = w.engine().poll();
    CHECK(p.timers_fired == 1);
    CHECK(p.completed == 1);

    // TimeoutError raised by suspend was caught by the workflow.
    const auto out = test::completed_output<ChargeResponse>(w.engine(), run);
    CHECK(out.status == "timeout");
    CHECK(out.reason == "Approval not received in time");
    CHECK(w.svc.charges.empty());
    CHECK(w.svc.runs("send_confirmation") == 0);
    CHECK(events_of(w.engine().events(), EventType::timed_out, "high_value_approval").size() == 1);

    // An approval after the deadline is refused.
    CHECK(w.engine().resume(run, "high_value_approval", R"({"approved":true})").outcome ==
          SignalOutcome::run_finished);
    (void)w.engine().poll();
    CHECK(w.svc.charges.empty());
}

TEST_CASE_METHOD(PolosFixture,
                 "a high-value approval that arrives after the 2-hour deadline is too late and the charge times out",
                 "[polos][charge][timeout]") {
    const std::string run = w.park_high_value_charge();

    // Nobody polled when the deadline passed; the approval comes in late.
    w.clock.advance(2h + 1min);
    SignalResult late = w.engine().resume(run, "high_value_approval", R"({"approved":true})");
    CHECK(late.outcome == SignalOutcome::too_late);
    (void)w.engine().poll();

    const auto out = test::completed_output<ChargeResponse>(w.engine(), run);
    CHECK(out.status == "timeout");
    CHECK(w.svc.charges.empty());
}

// ---- (c) multi_approval_workflow ---------------------------------------------------------------

TEST_CASE_METHOD(PolosFixture, "a multi-approval of 5000 needs only the manager", "[polos][multi]") {
    const std::string run = w.park_multi(MultiApprovalInput{"renew licences", 5000.0});
    CHECK(w.engine().status(run)->waiting->data == json{{"stage", "manager"}, {"amount", 5000.0}});

    CHECK(w.engine().resume(run, "manager_approval", R"({"approved":true})").outcome == SignalOutcome::delivered);
    PollResult p = w.engine().poll();
    CHECK(p.completed == 1);

    const auto out = test::completed_output<MultiApprovalOutput>(w.engine(), run);
    CHECK(out.status == "completed");
    CHECK(out.result == "done: renew licences");
    CHECK(events_of(w.engine().events(), EventType::suspended, "finance_approval").empty());
    CHECK(w.svc.runs("execute") == 1);
}

TEST_CASE_METHOD(PolosFixture, "a multi-approval of 20000 approved by manager and finance across a restart completes",
                 "[polos][multi][restart]") {
    const std::string run = w.park_multi(MultiApprovalInput{"buy servers", 20000.0});

    CHECK(w.engine().resume(run, "manager_approval", R"({"approved":true,"approved_by":"manager"})").outcome ==
          SignalOutcome::delivered);
    expect_suspended(w, run, "finance_approval");
    CHECK(w.engine().status(run)->waiting->data == json{{"stage", "finance"}, {"amount", 20000.0}});

    w.restart();
    std::optional<RunInfo> info = w.engine().status(run);
    REQUIRE(info->status == RunStatus::waiting);
    CHECK(info->waiting->name == "finance_approval");

    CHECK(w.engine().resume(run, "finance_approval", R"({"approved":true,"approved_by":"finance"})").outcome ==
          SignalOutcome::delivered);
    (void)w.engine().poll();

    const auto out = test::completed_output<MultiApprovalOutput>(w.engine(), run);
    CHECK(out.status == "completed");
    CHECK(w.svc.runs("execute") == 1);
}

TEST_CASE_METHOD(PolosFixture, "a multi-approval rejected by the manager never reaches finance",
                 "[polos][multi][restart]") {
    const std::string run = w.park_multi(MultiApprovalInput{"buy servers", 20000.0});
    w.restart();

    CHECK(w.engine().resume(run, "manager_approval", R"({"approved":false})").outcome == SignalOutcome::delivered);
    (void)w.engine().poll();

    const auto out = test::completed_output<MultiApprovalOutput>(w.engine(), run);
    CHECK(out.status == "rejected_by_manager");
    CHECK(events_of(w.engine().events(), EventType::suspended, "finance_approval").empty());
    CHECK(w.svc.runs("execute") == 0);
}

TEST_CASE_METHOD(PolosFixture,
                 "a multi-approval approved by the manager and rejected by finance after a restart executes nothing",
                 "[polos][multi][restart]") {
    const std::string run = w.park_multi(MultiApprovalInput{"buy servers", 20000.0});
    CHECK(w.engine().resume(run, "manager_approval", R"({"approved":true})").outcome == SignalOutcome::delivered);
    expect_suspended(w, run, "finance_approval");

    w.restart();
    CHECK(w.engine().resume(run, "finance_approval", R"({"approved":false,"reason":"over budget"})").outcome ==
          SignalOutcome::delivered);
    (void)w.engine().poll();

    const auto out = test::completed_output<MultiApprovalOutput>(w.engine(), run);
    CHECK(out.status == "rejected_by_finance");
    CHECK(w.svc.runs("execute") == 0);
}

// ---- (d) the suspend event ---------------------------------------------------------------------

TEST_CASE_METHOD(PolosFixture,
                 "the suspend event carries the topic and the data, and a cursor does not repeat it after a restart",
                 "[polos][events][restart]") {
    const TimePoint t0 = w.clock();

    std::uint64_t cursor = 0;
    for (const Event& e : w.engine().events(cursor)) cursor = e.seq;
    const std::string run = w.park_archive_plan();

    // Stream from the cursor, as events.stream_workflow does.
    std::vector<Event> batch = w.engine().events(cursor);
    REQUIRE_FALSE(batch.empty());
    for (std::size_t i = 0; i < batch.size(); ++i) CHECK(batch[i].seq == cursor + 1 + i);
    std::vector<Event> suspended = events_of(batch, EventType::suspended);
    REQUIRE(suspended.size() == 1);
    const Event& e = suspended[0];
    CHECK(e.run_id == run);
    CHECK(e.workflow == "approval_workflow");
    CHECK(e.name == "wait_for_approval");
    CHECK(e.topic == "wait_for_approval/" + run);
    CHECK(e.data == plan_data);
    CHECK(e.deadline == t0 + 1h);

    json j = e.to_json();
    CHECK(j["event_type"] == "suspended");
    CHECK(j["topic"] == "wait_for_approval/" + run);
    CHECK(j["data"]["requires_approval_from"] == "manager@company.com");
    CHECK(j["data"]["steps"] == json{"Backup data", "Run deletion query", "Verify deletion"});
    CHECK(j["seq"] == e.seq);

    cursor = batch.back().seq;
    CHECK(w.engine().events(cursor).empty());

    // on_event pushed the same suspend event as it committed.
    std::vector<Event> pushed = events_of(w.streamed, EventType::suspended);
    REQUIRE(pushed.size() == 1);
    CHECK(pushed[0].seq == e.seq);
    CHECK(pushed[0].topic == e.topic);
    CHECK(pushed[0].data == plan_data);
    const std::size_t streamed_before_restart = w.streamed.size();

    w.restart();
    CHECK(w.engine().events(cursor).empty());
    CHECK(w.engine().events(0).size() == cursor);  // the log itself survived
    (void)w.engine().poll();
    CHECK(w.engine().events(cursor).empty());  // polling a parked run emits nothing
    CHECK(w.streamed.size() == streamed_before_restart);  // and nothing is pushed again

    CHECK(w.engine().resume(run, "wait_for_approval", alice_approves).outcome == SignalOutcome::delivered);
    (void)w.engine().poll();
    std::vector<Event> after = w.engine().events(cursor);
    CHECK(events_of(after, EventType::suspended).empty());
    std::vector<Event> resumed = events_of(after, EventType::resumed);
    REQUIRE(resumed.size() == 1);
    CHECK(resumed[0].topic == "wait_for_approval/" + run);
    CHECK(resumed[0].data == json::parse(alice_approves));
    CHECK(events_of(after, EventType::completed).size() == 1);
    for (const Event& x : after) CHECK(x.seq > cursor);
    CHECK(events_of(w.streamed, EventType::suspended).size() == 1);
}

// ---- (e) a resume sent before the suspend ------------------------------------------------------

TEST_CASE_METHOD(PolosFixture, "a resume sent before the workflow suspends is kept and consumed by the suspend",
                 "[polos][buffered]") {
    const std::string run = w.engine().start("approval_workflow", archive_request).id;

    SignalResult early = w.engine().resume(run, "wait_for_approval", alice_approves);
    CHECK(early.outcome == SignalOutcome::buffered);
    CHECK(early.accepted());

    PollResult p = w.engine().poll();
    CHECK(p.completed == 1);
    const auto out = test::completed_output<ApprovalWorkflowOutput>(w.engine(), run);
    CHECK(out.status == "completed");
    CHECK(w.svc.runs("create_plan") == 1);
    CHECK(w.svc.runs("execute_plan") == 1);
    std::vector<Event> resumed = events_of(w.engine().events(), EventType::resumed, "wait_for_approval");
    REQUIRE(resumed.size() == 1);
    CHECK(resumed[0].data == json::parse(alice_approves));
    CHECK(events_of(w.engine().events(), EventType::signal_dropped).empty());
}

TEST_CASE_METHOD(PolosFixture,
                 "a finance approval sent while the manager stage waits survives a restart and is consumed later",
                 "[polos][buffered][restart]") {
    const std::string run = w.park_multi(MultiApprovalInput{"buy servers", 20000.0});

    CHECK(w.engine().resume(run, "finance_approval", R"({"approved":true})").outcome == SignalOutcome::buffered);
    // Still parked on the manager: the early finance answer woke nothing.
    CHECK(w.engine().poll().runs_advanced == 0);
    CHECK(w.engine().status(run)->waiting->name == "manager_approval");

    w.restart();
    CHECK(w.engine().resume(run, "manager_approval", R"({"approved":true})").outcome == SignalOutcome::delivered);
    PollResult p = w.engine().poll();
    CHECK(p.completed == 1);
    const auto out = test::completed_output<MultiApprovalOutput>(w.engine(), run);
    CHECK(out.status == "completed");
    CHECK(w.svc.runs("execute") == 1);
}

// ---- (f) no compute while suspended ------------------------------------------------------------

TEST_CASE_METHOD(PolosFixture, "a suspended workflow runs no code while it waits", "[polos][suspend][restart]") {
    const std::string run = w.park_archive_plan();

    const int steps_parked = w.svc.total_step_runs();
    const int entries_parked = w.svc.entries["approval_workflow"];
    const std::uint32_t journal_parked = w.engine().status(run)->journal_entries;
    CHECK(steps_parked == 1);
    CHECK(entries_parked == 1);

    for (int i = 0; i < 5; ++i) {
        w.clock.advance(10min);
        PollResult p = w.engine().poll();
        CHECK(p.runs_advanced == 0);
        CHECK(p.timers_fired == 0);
    }
    w.restart();
    for (int i = 0; i < 3; ++i) {
        PollResult p = w.engine().poll();
        CHECK(p.runs_advanced == 0);
    }
    CHECK(w.svc.total_step_runs() == steps_parked);
    CHECK(w.svc.entries["approval_workflow"] == entries_parked);
    CHECK(w.engine().status(run)->journal_entries == journal_parked);
    CHECK(w.engine().status(run)->status == RunStatus::waiting);

    // The resume is the first thing that runs it again, and the plan is not redone.
    CHECK(w.engine().resume(run, "wait_for_approval", alice_approves).outcome == SignalOutcome::delivered);
    PollResult p = w.engine().poll();
    CHECK(p.runs_advanced == 1);
    CHECK(w.svc.runs("create_plan") == 1);
    CHECK(w.svc.runs("execute_plan") == 1);
}
