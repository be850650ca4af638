// multi_approval: the Polos guide's multi-stage approval, with its planning agent.
//
// The planning agent turns the request into an ActionPlan (a journaled agent
// step: replay never asks the model again); a manager approves it; over
// $10000 finance approves too; then the plan is executed and paid once. The
// notifier posts each stage's approval request as it suspends.
#include "common/host.hpp"

#include <iostream>

namespace ex = examples;

const char* const usage =
    "usage: multi_approval                      run a short scenario and check it\n"
    "       multi_approval host --db DB --ledger FILE [--steplog FILE] [--start N] [--runs-prefix P]\n"
    "                           [--poll-ms M] [--step-delay-ms M] [--fake-clock-file F] [--quarantine-after N] [--exit-when-idle]\n"
    "       multi_approval notify --db DB --outbox FILE [--follow] [--poll-ms M] [--post-delay-ms M]\n";

// ---- payload types ---------------------------------------------------------------
struct MultiApprovalInput {
    std::string request;
    double amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MultiApprovalInput, request, amount)
struct MultiApprovalOutput {
    std::string status, result;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MultiApprovalOutput, status, result)
struct Approval {
    bool approved = false;
    std::string approved_by, reason;
};  // missing field: "no"
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Approval, approved, approved_by, reason)

// ---- the workflow ------------------------------------------------------------------
MultiApprovalOutput multi_approval(abide::Context& ctx, ex::World& world, const MultiApprovalInput& in) {
    auto plan =
        abide::agent_step<ex::ActionPlan>(ctx, "create_plan", world.planner, ex::plan_request(in.request, in.amount));
    // Each stage is its own suspend step key, so each has its own topic and approver.
    auto approve = [&](const char* stage) {
        return ctx.suspend(std::string(stage) + "_approval", {{"stage", stage}, {"amount", in.amount}, {"plan", plan}})
            .get<Approval>();
    };
    if (!approve("manager").approved) return {"rejected_by_manager", ""};
    if (in.amount > 10000 && !approve("finance").approved) return {"rejected_by_finance", ""};
    auto receipt = ctx.step("execute", [&](abide::StepContext& s) {
        world.ran(s);
        return world.ledger.pay(s.idempotency_key(), ex::to_cents(plan.estimated_cost), s.run_id());
    });
    return {"completed", plan.description + ", paid " + receipt};
}

void define(abide::Engine& engine, ex::World& world) {
    engine
        .define("multi_approval",
                [&world](abide::Context& ctx, const MultiApprovalInput& in) { return multi_approval(ctx, world, in); })
        .resume<Approval>("manager_approval")
        .resume<Approval>("finance_approval");
}

void start(abide::Engine& engine, const std::string& prefix, int i) {
    static const MultiApprovalInput requests[] = {
        {"renew the analytics licence", 5000}, {"migrate the customer archive", 25000}, {"buy a second rack", 40000}};
    engine.start("multi_approval", requests[i % 3], {.run_id = prefix + std::to_string(i + 1)});
}

std::string slack_message(const abide::Event& e, const std::string& url) {
    const auto plan = e.data.at("plan").get<ex::ActionPlan>();
    return "#approvals: *" + e.data.at("stage").get<std::string>() + " approval required*\nPlan: " + plan.description +
           "\nCost: $" + ex::format_usd(ex::to_cents(plan.estimated_cost)) + " (risk " + plan.risk_level + ")\n<" +
           url + "|Approve or Reject>";
}

// ---- a short scenario, run with no arguments (and as a test) ------------------------------
int scenario() {
    const auto dir = ex::make_temp_dir("multi-approval");
    ex::HostArgs args{.db = dir / "multi.db", .ledger = dir / "ledger.txt", .outbox = dir / "outbox.txt"};
    ex::World world(args);
    ex::Checks check;
    abide::Engine engine(ex::engine_options(args));
    define(engine, world);
    for (int i = 0; i < 3; ++i) start(engine, "multi-", i);
    engine.poll();
    for (const char* run : {"multi-1", "multi-2", "multi-3"})
        (void)engine.resume(run, "manager_approval", R"({"approved":true,"approved_by":"manager@company.com"})");
    engine.poll();  // multi-1 is done; the others now wait for finance
    (void)engine.resume("multi-2", "finance_approval", R"({"approved":true,"approved_by":"cfo@company.com"})");
    (void)engine.resume("multi-3", "finance_approval", R"({"approved":false,"reason":"no budget"})");
    engine.poll();
    ex::run_notifier(engine, args, slack_message);
    check.expect(ex::read_outbox(args.outbox).size() == 5, "3 manager and 2 finance requests posted");
    check.expect(engine.result<MultiApprovalOutput>("multi-1").status == "completed", "$5000 needs the manager only");
    check.expect(world.ledger.count_for("multi-2") == 1, "$25000 is paid once after both approvals");
    check.expect(engine.result<MultiApprovalOutput>("multi-3").status == "rejected_by_finance", "finance can say no");
    check.expect(world.ledger.count_for("multi-3") == 0, "and then nothing is paid");
    std::cout << "\n" << engine.trace("multi-2").render() << "\n";
    std::filesystem::remove_all(dir);
    return check.exit_code();
}

int main(int argc, char** argv) {
    return ex::example_main(argc, argv, {.name = "multi_approval",
                                         .usage = usage,
                                         .runs_prefix = "multi-",
                                         .scenario = scenario,
                                         .define = define,
                                         .start = start,
                                         .notify = slack_message});
}
