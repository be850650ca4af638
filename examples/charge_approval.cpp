// charge_approval: the Polos guide's charge_customer_workflow.
//
// Validate the charge; over $1000, suspend for a person's approval (2 hours);
// charge once through the payments ledger; send the confirmation. A notifier
// process reads the suspend events from the durable event log and posts the
// guide's Slack message with an approval link.
#include "common/host.hpp"

#include <iostream>

namespace ex = examples;
using namespace std::chrono_literals;

const char* const usage =
    "usage: charge_approval                      run a short scenario and check it\n"
    "       charge_approval host --db DB --ledger FILE [--steplog FILE] [--start N] [--runs-prefix P]\n"
    "                            [--poll-ms M] [--step-delay-ms M] [--fake-clock-file F] [--quarantine-after N] [--exit-when-idle]\n"
    "       charge_approval notify --db DB --outbox FILE [--follow] [--poll-ms M] [--post-delay-ms M]\n";

// ---- payload types ---------------------------------------------------------------
struct ChargeRequest {
    std::string customer_id;
    double amount = 0;
    std::string description;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ChargeRequest, customer_id, amount, description)
struct ChargeResponse {
    std::string status, reason, charge_id;
    double amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ChargeResponse, status, reason, charge_id, amount)
struct Validation {
    bool is_valid = false;
    std::string error;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Validation, is_valid, error)
// The resume data an approver sends; a missing field means "no".
struct Approval {
    bool approved = false;
    std::string approved_by, reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Approval, approved, approved_by, reason)

// ---- the workflow ------------------------------------------------------------------
ChargeResponse charge_customer(abide::Context& ctx, ex::World& world, const ChargeRequest& in) {
    auto validation = ctx.step("validate_charge", [&](abide::StepContext& s) {
        world.ran(s);
        return in.amount > 0 ? Validation{true, ""} : Validation{false, "amount must be positive"};
    });
    if (!validation.is_valid) return {"invalid", validation.error, "", 0};
    if (in.amount > 1000) {
        Approval decision;
        try {  // the suspended event (topic "high_value_approval/{run}") carries this data to the notifier
            decision = ctx.suspend("high_value_approval",
                                   {{"customer_id", in.customer_id},
                                    {"amount", in.amount},
                                    {"description", in.description},
                                    {"threshold_exceeded", true}},
                                   2h)
                           .get<Approval>();
        } catch (const abide::TimeoutError&) {
            return {"timeout", "Approval not received in time", "", 0};
        }
        if (!decision.approved) return {"rejected", decision.reason.empty() ? "Not approved" : decision.reason, "", 0};
    }
    auto charge_id = ctx.step("execute_charge", [&](abide::StepContext& s) {
        world.ran(s);  // the idempotency key makes a re-run after a crash charge nothing more
        return world.ledger.pay(s.idempotency_key(), ex::to_cents(in.amount), in.customer_id);
    });
    ctx.step("send_confirmation", [&](abide::StepContext& s) {
        world.ran(s);
        ex::say("email to " + in.customer_id + ": charge " + charge_id + " of $" +
                ex::format_usd(ex::to_cents(in.amount)));
    });
    return {"completed", "", charge_id, in.amount};
}

void define(abide::Engine& engine, ex::World& world) {
    engine
        .define("charge_customer",
                [&world](abide::Context& ctx, const ChargeRequest& in) { return charge_customer(ctx, world, in); })
        .resume<Approval>("high_value_approval");
}

void start(abide::Engine& engine, const std::string& prefix, int i) {
    static const double amounts[] = {250, 5000, 2500, 20000};  // the first needs no approval
    const std::string n = std::to_string(i + 1);
    engine.start("charge_customer", ChargeRequest{"cust_" + n, amounts[i % 4], "Enterprise annual subscription"},
                 {.run_id = prefix + n});
}

// The guide's Slack message, sent to #financial-approvals.
std::string slack_message(const abide::Event& e, const std::string& url) {
    return "#financial-approvals: *Charge Approval Required*\nAmount: $" +
           ex::format_usd(ex::to_cents(e.data.at("amount").get<double>())) +
           "\nCustomer: " + e.data.at("customer_id").get<std::string>() + "\n<" + url + "|Approve or Reject>";
}

// ---- a short scenario, run with no arguments (and as a test) ------------------------------
int scenario() {
    const auto dir = ex::make_temp_dir("charge-approval");
    ex::HostArgs args{.db = dir / "charges.db",
                      .ledger = dir / "ledger.txt",
                      .clock_file = dir / "clock",
                      .outbox = dir / "outbox.txt"};
    ex::World world(args);
    ex::Checks check;
    abide::Engine engine(ex::engine_options(args));
    define(engine, world);
    for (int i = 0; i < 4; ++i) start(engine, "charge-", i);
    engine.poll();
    ex::run_notifier(engine, args, slack_message);  // posts the 3 approval requests
    ex::run_notifier(engine, args, slack_message);  // its cursor is saved: posts nothing again
    check.expect(ex::read_outbox(args.outbox).size() == 3, "3 approval messages, each posted once");
    (void)engine.resume("charge-2", "high_value_approval", R"({"approved":true,"approved_by":"alice"})", "a-2");
    (void)engine.resume("charge-3", "high_value_approval", R"({"approved":false,"reason":"duplicate order"})", "a-3");
    engine.poll();
    ex::set_clock_offset(args.clock_file, 3h);  // charge-4's approval never comes
    engine.poll();
    check.expect(world.ledger.count_for("cust_1") == 1, "$250 is charged without approval");
    check.expect(world.ledger.count_for("cust_2") == 1, "approved $5000 is charged once");
    check.expect(world.ledger.count_for("cust_3") == 0, "rejected $2500 is not charged");
    check.expect(engine.result<ChargeResponse>("charge-4").status == "timeout", "$20000 times out after 2 hours");
    std::filesystem::remove_all(dir);
    return check.exit_code();
}

int main(int argc, char** argv) {
    return ex::example_main(argc, argv, {.name = "charge_approval",
                                         .usage = usage,
                                         .runs_prefix = "charge-",
                                         .scenario = scenario,
                                         .define = define,
                                         .start = start,
                                         .notify = slack_message});
}
