#include "workload.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace abide::torture {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t charge_approval_above = 100'000;   // $1000: a person approves larger charges
constexpr std::int64_t finance_approval_above = 1'000'000;  // $10000: finance approves too

/// splitmix64: a tiny generator whose sequence is fixed by its seed on every
/// platform, so every process derives the same plan.
class Draw {
public:
    explicit Draw(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    int between(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<std::uint64_t>(hi - lo + 1)); }
    bool percent(int p) { return between(1, 100) <= p; }

private:
    std::uint64_t state_;
};

// ---- payloads ------------------------------------------------------------------------

struct Decision {
    std::string status, reviewer;
    std::int64_t amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Decision, status, reviewer, amount)
struct Approval {
    bool approved = false;
    std::string by;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Approval, approved, by)

/// The refund draft after `changes` requests for changes: each halves it.
std::int64_t draft_amount(const Plan& p, int changes) { return p.amount >> changes; }

/// The signal name (or suspend step key) of the plan's first wait, and its channel.
std::string first_wait_name(const Plan& p) {
    if (p.workflow == "charge") return "approval";
    if (p.workflow == "multi") return "manager";
    return "decision";
}
WaitKind channel_of(const std::string& name) { return name == "approval" ? WaitKind::suspend : WaitKind::signal; }

/// The payload answering wait `name` at `stage` as the plan says.
json decision_payload(const Plan& p, const std::string& name, int stage) {
    if (p.workflow == "refund") {
        const std::string& status = p.decisions.at(static_cast<std::size_t>(stage));
        return Decision{status, "r-" + std::to_string(stage), status == "approved" ? draft_amount(p, stage) : 0};
    }
    const std::string& d = p.decisions.at(name == "finance" ? 1 : 0);
    return Approval{d == "approved", name};
}

json malformed_payload(const std::string& name) {
    return name == "decision" ? json{{"status", 7}} : json{{"approved", "maybe"}};
}

/// A well-formed answer that comes too late: after the deadline or the end.
json late_payload(const std::string& name) {
    return name == "decision" ? json(Decision{"approved", "late", 1}) : json(Approval{true, "late"});
}

std::string send_id(const Plan& p, const std::string& name, const std::string& what) {
    return p.run_id + "/" + name + "/" + what;
}

// ---- step bodies ---------------------------------------------------------------------

/// Every step body starts here: one line in the step log, written before any
/// effect, then the body's work time (a window for kills mid-step).
void body_runs(const Outside& o, const StepContext& s, int work_us) {
    if (!o.steplog.empty())
        examples::append_step_run(o.steplog,
                                  {s.run_id(), s.step_name(), s.idempotency_key(), s.attempt(), ::getpid()});
    if (work_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(work_us));
}

std::int64_t plain_step(Context& ctx, const Outside& o, const Plan& p, const std::string& name, std::int64_t value) {
    return ctx.step(name, [&](StepContext& s) {
        body_runs(o, s, p.work_us);
        return value;
    });
}

/// A step with an effect: pays `amount` in the ledger under the step's
/// idempotency key, for reference "{run}/{step}", and returns the receipt.
std::string effect_step(Context& ctx, const Outside& o, Breakage breakage, const Plan& p, const std::string& name,
                        std::int64_t amount) {
    const std::string reference = p.run_id + "/" + name;
    if (breakage == Breakage::effect_outside_step && name == "charge")  // the bug: an effect outside any step
        o.ledger.pay(p.run_id + ":outside-" + std::to_string(::getpid()), amount, reference);
    return ctx.step(name, [&](StepContext& s) {
        std::string receipt;
        for (int i = 0; i < (breakage == Breakage::step_twice ? 2 : 1); ++i) {
            body_runs(o, s, p.work_us);
            receipt = o.ledger.pay(s.idempotency_key(), amount, reference);
        }
        return receipt;
    });
}

json ending(const std::string& outcome, std::int64_t amount, const std::vector<std::string>& receipts = {}) {
    return {{"outcome", outcome}, {"amount", amount}, {"receipts", receipts}};
}

void prepare(Context& ctx, const Outside& o, const Plan& p) {
    for (int i = 0; i < p.prep_steps; ++i) plain_step(ctx, o, p, "prepare-" + std::to_string(i), p.amount + i);
}

template <class T>
std::optional<T> wait_decision(Context& ctx, const Plan& p, const std::string& name, json metadata) {
    if (p.long_timeout) return ctx.wait_for_signal<T>(name, 7 * 24h, std::move(metadata));
    return ctx.wait_for_signal<T>(name, std::move(metadata));
}

// ---- the workflows -------------------------------------------------------------------

json refund(Context& ctx, const Outside& o, Breakage b, const Plan& p) {
    prepare(ctx, o, p);
    for (int stage = 0;; ++stage) {
        const std::int64_t draft = plain_step(ctx, o, p, "draft", draft_amount(p, stage));
        auto d = wait_decision<Decision>(ctx, p, "decision", {{"stage", stage}, {"draft", draft}});
        if (!d) return ending("timed_out", 0);
        if (d->status == "request_changes") continue;
        if (d->status != "approved") return ending("rejected", 0);
        return ending("paid", d->amount, {effect_step(ctx, o, b, p, "refund", d->amount)});
    }
}

json charge(Context& ctx, const Outside& o, Breakage b, const Plan& p) {
    prepare(ctx, o, p);
    plain_step(ctx, o, p, "validate", p.amount);
    if (p.amount > charge_approval_above) {
        std::optional<Duration> timeout;
        if (p.short_timeout_ms > 0) timeout = std::chrono::milliseconds(p.short_timeout_ms);
        json answer;
        try {
            answer = ctx.suspend("approval", {{"stage", 0}, {"amount", p.amount}}, timeout);
        } catch (const TimeoutError&) {
            return ending("expired", 0, {effect_step(ctx, o, b, p, "release_hold", 0)});
        }
        if (!answer.get<Approval>().approved) return ending("declined", 0);
    }
    if (p.sleep_ms > 0) ctx.sleep(std::chrono::milliseconds(p.sleep_ms));
    const std::string paid = effect_step(ctx, o, b, p, "charge", p.amount);
    return ending("charged", p.amount, {paid, effect_step(ctx, o, b, p, "receipt_mail", 0)});
}

json multi(Context& ctx, const Outside& o, Breakage b, const Plan& p) {
    prepare(ctx, o, p);
    plain_step(ctx, o, p, "plan", p.amount);
    if (!wait_decision<Approval>(ctx, p, "manager", {{"stage", 0}})->approved) return ending("rejected_by_manager", 0);
    if (p.amount > finance_approval_above) {
        auto finance = ctx.wait_for_signal<Approval>("finance", 7 * 24h, {{"stage", 0}});
        if (!finance) return ending("timed_out", 0);
        if (!finance->approved) return ending("rejected_by_finance", 0);
    }
    return ending("executed", p.amount, {effect_step(ctx, o, b, p, "execute", p.amount)});
}

json expiring(Context& ctx, const Outside& o, Breakage b, const Plan& p) {
    prepare(ctx, o, p);
    auto d = ctx.wait_for_signal<Decision>("decision", std::chrono::milliseconds(p.short_timeout_ms), {{"stage", 0}});
    if (d) return ending("decided", d->amount);  // never planned: nobody answers in time
    return ending("timed_out", 0, {effect_step(ctx, o, b, p, "escalate", 0)});
}

}  // namespace

std::string run_id_of(int index) {
    char id[16];
    std::snprintf(id, sizeof id, "t-%06d", index);
    return id;
}

Plan make_plan(std::uint64_t seed, int index) {
    Draw draw(seed ^ (static_cast<std::uint64_t>(index) * 0xd1b54a32d192ed03ull));
    Plan p;
    p.index = index;
    p.run_id = run_id_of(index);
    p.prep_steps = draw.between(1, 3);
    p.work_us = draw.percent(30) ? 0 : draw.between(50, 1500);
    const int kind = draw.between(1, 100);
    if (kind <= 35) {
        p.workflow = "refund";
        p.amount = draw.between(1000, 20000);
        const int d = draw.between(1, 100);
        p.decisions = d <= 40   ? std::vector<std::string>{"approved"}
                      : d <= 65 ? std::vector<std::string>{"rejected"}
                      : d <= 85 ? std::vector<std::string>{"request_changes", "approved"}
                                : std::vector<std::string>{"request_changes", "request_changes", "rejected"};
        p.long_timeout = draw.percent(50);
    } else if (kind <= 60) {
        p.workflow = "charge";
        p.amount = draw.percent(40) ? draw.between(500, 100'000) : draw.between(100'001, 500'000);
        if (p.amount > charge_approval_above && draw.percent(25))
            p.short_timeout_ms = draw.between(50, 400);
        else
            p.decisions = {draw.percent(70) ? "approved" : "rejected"};
        p.sleep_ms = draw.percent(50) ? draw.between(5, 150) : 0;
    } else if (kind <= 85) {
        p.workflow = "multi";
        p.amount = draw.percent(50) ? draw.between(10'000, 1'000'000) : draw.between(1'000'001, 3'000'000);
        p.decisions = {draw.percent(80) ? "approved" : "rejected", draw.percent(70) ? "approved" : "rejected"};
        p.long_timeout = draw.percent(50);
        p.stray = p.amount > finance_approval_above && p.decisions[0] == "approved" && draw.percent(50);
    } else {
        p.workflow = "expiring";
        p.amount = draw.between(100, 5000);
        p.short_timeout_ms = draw.between(50, 400);
    }
    // Only a wait that will happen gets an early answer or a malformed one.
    const bool answered = !p.decisions.empty() && (p.workflow != "charge" || p.amount > charge_approval_above);
    p.early = answered && draw.percent(25);
    p.resend = draw.percent(25);
    p.malformed = answered && draw.percent(10);
    p.via_cli = draw.percent(8);
    return p;
}

Ending expected_ending(const Plan& p) {
    if (p.workflow == "refund") {
        for (std::size_t stage = 0; stage < p.decisions.size(); ++stage) {
            if (p.decisions[stage] == "request_changes") continue;
            if (p.decisions[stage] == "approved") return {"paid", draft_amount(p, static_cast<int>(stage))};
            return {"rejected", 0};
        }
        throw std::logic_error("a refund plan must end with a decision");
    }
    if (p.workflow == "charge") {
        if (p.amount <= charge_approval_above) return {"charged", p.amount};
        if (p.short_timeout_ms > 0) return {"expired", 0};
        return p.decisions[0] == "approved" ? Ending{"charged", p.amount} : Ending{"declined", 0};
    }
    if (p.workflow == "multi") {
        if (p.decisions[0] != "approved") return {"rejected_by_manager", 0};
        if (p.amount > finance_approval_above && p.decisions[1] != "approved") return {"rejected_by_finance", 0};
        return {"executed", p.amount};
    }
    return {"timed_out", 0};
}

std::vector<std::string> expected_effects(const Plan& p) {
    const std::string outcome = expected_ending(p).outcome;
    if (outcome == "paid") return {"refund"};
    if (outcome == "charged") return {"charge", "receipt_mail"};
    if (outcome == "expired") return {"release_hold"};
    if (outcome == "executed") return {"execute"};
    if (outcome == "timed_out") return {"escalate"};
    return {};
}

bool is_effect_step(const std::string& name) {
    for (std::string_view e : {"refund", "charge", "receipt_mail", "release_hold", "execute", "escalate"})
        if (name == e) return true;
    return false;
}

std::vector<std::string> expected_consumed(const Plan& p) {
    std::vector<std::string> ids;
    if (p.workflow == "refund") {
        for (std::size_t stage = 0; stage < p.decisions.size(); ++stage)
            ids.push_back(send_id(p, "decision", std::to_string(stage)));
    } else if (p.workflow == "charge") {
        if (p.amount > charge_approval_above && p.short_timeout_ms == 0) ids.push_back(send_id(p, "approval", "0"));
    } else if (p.workflow == "multi") {
        ids.push_back(send_id(p, "manager", "0"));
        if (p.decisions[0] == "approved" && p.amount > finance_approval_above)
            ids.push_back(send_id(p, "finance", "0"));
    }
    return ids;
}

std::vector<Send> sends_for(const Plan& p, const RunInfo& info, TimePoint now) {
    std::vector<Send> out;
    const std::string first = first_wait_name(p);
    auto send = [&](const std::string& name, const std::string& what, json payload, const std::string& purpose) {
        out.push_back({send_id(p, name, what), channel_of(name), name, std::move(payload), purpose});
    };
    if (is_finished(info.status)) {
        if (p.resend) send(first, "after", late_payload(first), "after");
        if (p.short_timeout_ms > 0) send(first, "late", late_payload(first), "late");
        return out;
    }
    const bool waits_for_person = info.status == RunStatus::waiting && info.waiting &&
                                  (info.waiting->kind == WaitKind::signal || info.waiting->kind == WaitKind::suspend);
    if (waits_for_person) {
        const std::string& name = info.waiting->name;
        const int stage = info.waiting->data.is_object() ? info.waiting->data.value("stage", 0) : 0;
        if (p.short_timeout_ms > 0 && name == first) {
            // Nobody answers in time; once the deadline has passed, a late answer.
            if (info.waiting->deadline && now >= *info.waiting->deadline)
                send(name, "late", late_payload(name), "late");
            return out;
        }
        if (p.malformed && stage == 0 && name == first) send(name, "0-bad", malformed_payload(name), "malformed");
        send(name, std::to_string(stage), decision_payload(p, name, stage), "decision");
        if (p.resend) send(name, std::to_string(stage), decision_payload(p, name, stage), "duplicate");
        if (p.stray && name == "finance") send("manager", "stray", decision_payload(p, "manager", 0), "stray");
        return out;
    }
    // Started, running, or asleep: the first decision may come before the wait.
    if (p.early && p.short_timeout_ms == 0) send(first, "0", decision_payload(p, first, 0), "decision");
    return out;
}

Breakage breakage_from_env() {
    const char* v = std::getenv("ABIDE_TORTURE_BREAK");
    if (!v || !*v) return Breakage::none;
    const std::string_view s(v);
    if (s == "step_twice") return Breakage::step_twice;
    if (s == "effect_outside_step") return Breakage::effect_outside_step;
    throw std::runtime_error("ABIDE_TORTURE_BREAK must be step_twice or effect_outside_step, not '" + std::string(s) +
                             "'");
}

std::vector<RunInfo> list_all_runs(const Engine& db, std::optional<RunStatus> status) {
    std::vector<RunInfo> all;
    for (std::string after;;) {
        auto page = db.list_runs({.status = status, .limit = 500, .after = after});
        if (page.empty()) return all;
        after = page.back().id;
        all.insert(all.end(), std::make_move_iterator(page.begin()), std::make_move_iterator(page.end()));
    }
}

void define_workflows(Engine& engine, const Outside& o, Breakage b) {
    auto with_plan = [&o, b](json (*fn)(Context&, const Outside&, Breakage, const Plan&)) {
        return [&o, b, fn](Context& ctx, const Plan& p) { return fn(ctx, o, b, p); };
    };
    engine.define("refund", with_plan(refund)).signal<Decision>("decision");
    engine.define("charge", with_plan(charge)).resume<Approval>("approval");
    engine.define("multi", with_plan(multi)).signal<Approval>("manager").signal<Approval>("finance");
    engine.define("expiring", with_plan(expiring)).signal<Decision>("decision");
}

}  // namespace abide::torture
