// refund_review: the AGNT5 cookbook "durable human-approval AI workflow".
//
// An agent drafts a refund; a person approves, rejects or asks for changes
// (signal refund_decision, 7 days); the refund is paid once, through a ledger
// that refuses to pay one idempotency key twice. The pause is journal state,
// not process memory: the host may be killed and restarted while runs wait.
#include "common/host.hpp"

#include <iostream>

namespace ex = examples;
using namespace std::chrono_literals;

const char* const usage =
    "usage: refund_review                      run a short scenario and check it\n"
    "       refund_review host --db DB --ledger FILE [--steplog FILE] [--start N] [--runs-prefix P]\n"
    "                          [--poll-ms M] [--step-delay-ms M] [--fake-clock-file F] [--quarantine-after N] [--exit-when-idle]\n";

// ---- payload types ---------------------------------------------------------------
struct Ticket {
    std::string id, customer_id, subject;
    std::int64_t amount = 0;  // cents
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Ticket, id, customer_id, subject, amount)
struct Customer {
    std::string id, name;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Customer, id, name)
// Explicit decision record: the trace keeps who decided what and why.
struct Decision {
    std::string status, reviewer_id, reason;
    std::int64_t approved_amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Decision, status, reviewer_id, reason, approved_amount)
struct RefundOutcome {
    std::string status, reason, receipt_id;
    std::int64_t amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RefundOutcome, status, reason, receipt_id, amount)

// Stand-ins for the ticket and customer services: ticket T-1001 is index 0.
Ticket find_ticket(const std::string& id) {
    static const char* subjects[] = {"Blender arrived broken", "Charged twice for one order", "Late delivery"};
    static const std::int64_t amounts[] = {4900, 12999, 2500};
    const int i = (std::stoi(id.substr(2)) - 1001) % 3;
    return {id, "C-" + id.substr(2), subjects[i], amounts[i]};
}

// ---- the workflow ------------------------------------------------------------------
RefundOutcome refund_review(abide::Context& ctx, ex::World& world, const std::string& ticket_id) {
    auto ticket = ctx.step("load_ticket", [&](abide::StepContext& s) {
        world.ran(s);
        return find_ticket(ticket_id);
    });
    auto customer = ctx.step("load_customer", [&](abide::StepContext& s) {
        world.ran(s);
        return Customer{ticket.customer_id, "Customer " + ticket.customer_id};
    });
    std::string feedback;  // the reviewer's reason when they asked for changes
    for (;;) {
        // The agent recommends; only a person's decision moves money.
        auto plan = abide::agent_step<ex::ActionPlan>(
            ctx, "draft_recommendation", world.planner,
            ex::plan_request("refund ticket " + ticket.id + " (" + ticket.subject + ") for " + customer.name,
                             static_cast<double>(ticket.amount) / 100, feedback));
        const std::int64_t amount = ex::to_cents(plan.estimated_cost);
        auto decision =
            ctx.wait_for_signal<Decision>("refund_decision", 7 * 24h, {{"ticket_id", ticket.id}, {"amount", amount}});
        if (!decision) return {"timed_out", "no decision within 7 days", "", 0};
        if (decision->status == "request_changes") {
            feedback = decision->reason;  // re-draft with it, then wait again
            continue;
        }
        if (decision->status != "approved") return {"not_approved", decision->reason, "", 0};
        if (decision->approved_amount > amount) return {"not_approved", "approved more than recommended", "", 0};
        // The ledger sees the same key on every attempt of this step: one payment.
        auto receipt = ctx.step("issue_refund", [&](abide::StepContext& s) {
            world.ran(s);
            return world.ledger.pay(s.idempotency_key(), decision->approved_amount, ticket.id);
        });
        return {"refunded", decision->reason, receipt, decision->approved_amount};
    }
}

void define(abide::Engine& engine, ex::World& world) {
    engine
        .define("refund_review",
                [&world](abide::Context& ctx, const std::string& ticket) { return refund_review(ctx, world, ticket); })
        .signal<Decision>("refund_decision");
}

void start(abide::Engine& engine, const std::string& prefix, int i) {
    const std::string ticket = "T-" + std::to_string(1001 + i);
    engine.start("refund_review", ticket, {.run_id = prefix + ticket});  // same id again: nothing new
}

// ---- a short scenario, run with no arguments (and as a test) ------------------------------
int scenario() {
    const auto dir = ex::make_temp_dir("refund-review");
    ex::HostArgs args{.db = dir / "refunds.db", .ledger = dir / "ledger.txt"};
    ex::World world(args);
    ex::Checks check;
    {
        abide::Engine engine(ex::engine_options(args));
        define(engine, world);
        for (int i = 0; i < 3; ++i) start(engine, "refund-", i);
        engine.poll();  // each run drafts and then waits for a person
        check.expect(engine.list_runs({.waiting_for = "refund_decision"}).size() == 3, "3 refunds wait for a decision");
    }  // the host is gone: only the database remembers the runs
    abide::Engine engine(ex::engine_options(args));
    define(engine, world);
    auto decide = [&](const char* ticket, Decision d, const char* id) {
        auto r = engine.signal(std::string("refund-") + ticket, "refund_decision", d, id);
        engine.poll();
        return r.outcome;
    };
    decide("T-1001", {"approved", "u_123", "inside the refund window", 4900}, "d-1");
    check.expect(decide("T-1001", {"approved", "u_123", "again", 4900}, "d-1") == abide::SignalOutcome::duplicate,
                 "a repeated approval is a duplicate");
    decide("T-1002", {"rejected", "u_123", "the second charge was refunded already", 0}, "d-2");
    decide("T-1003", {"request_changes", "u_7", "refund half: 12.50, the order arrived", 0}, "d-3");
    decide("T-1003", {"approved", "u_7", "half refund", 1250}, "d-4");
    check.expect(world.ledger.count_for("T-1001") == 1, "T-1001 is paid once");
    check.expect(world.ledger.count_for("T-1002") == 0, "rejected T-1002 is not paid");
    check.expect(engine.result<RefundOutcome>("refund-T-1003").amount == 1250, "T-1003 is paid the revised 12.50");
    std::cout << "\n" << engine.trace("refund-T-1003").render() << "\n";
    std::filesystem::remove_all(dir);
    return check.exit_code();
}

int main(int argc, char** argv) {
    return ex::example_main(argc, argv, {.name = "refund_review",
                                         .usage = usage,
                                         .runs_prefix = "refund-",
                                         .scenario = scenario,
                                         .define = define,
                                         .start = start});
}
