#include "workload.hpp"

#include "common/ledger.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <random>

namespace abide::io_test {

namespace {

using namespace std::chrono_literals;

struct OrderInput {
    std::string id;
    std::int64_t amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderInput, id, amount)

struct Decision {
    std::string status;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Decision, status)

// Every step body records its execution first: the at-least-once oracle.
void record_execution(const World& world, const StepContext& step) {
    examples::append_step_run(world.steplog,
                              {step.run_id(), step.step_name(), step.idempotency_key(), step.attempt(), ::getpid()});
}

std::string order_output(const OrderInput& in, bool approved) {
    return approved ? "charged " + in.id + " " + std::to_string(in.amount) : "declined " + in.id;
}

std::int64_t batch_output(std::int64_t n) { return n * (0 + 1 + 2 + 3); }

std::string review_output(const std::string& id) { return "reviewed " + id; }

}  // namespace

std::string Op::describe() const {
    switch (kind) {
        case Kind::start: return "start " + run;
        case Kind::signal: return "signal " + run + " " + id;
        case Kind::resume: return "resume " + run + " " + id;
        case Kind::poll: return "poll";
        case Kind::advance_clock: return "advance_clock";
    }
    return "?";
}

Plan make_plan(std::uint64_t seed, int runs) {
    std::mt19937_64 rng(seed);
    Plan plan;
    // Each run's own ops in order; the runs are then interleaved at random.
    std::vector<std::vector<Op>> per_run(static_cast<std::size_t>(runs));
    for (int i = 0; i < runs; ++i) {
        auto& ops = per_run[static_cast<std::size_t>(i)];
        const std::int64_t amount = 100 + static_cast<std::int64_t>(rng() % 900);
        switch (i % 3) {
            case 0: {
                const std::string run = "order-" + std::to_string(i);
                const bool approve = rng() % 3 != 0;
                OrderInput in{"T" + std::to_string(i), amount};
                ops.push_back({Op::Kind::start, run, "order", in, ""});
                ops.push_back({Op::Kind::signal, run, "approval", Decision{approve ? "approved" : "rejected"},
                               "decision-" + std::to_string(i)});
                plan.expected_outputs[run] = order_output(in, approve);
                break;
            }
            case 1: {
                const std::string run = "batch-" + std::to_string(i);
                ops.push_back({Op::Kind::start, run, "batch", amount, ""});
                plan.expected_outputs[run] = batch_output(amount);
                break;
            }
            default: {
                const std::string run = "review-" + std::to_string(i);
                ops.push_back({Op::Kind::start, run, "review", run, ""});
                ops.push_back({Op::Kind::resume, run, "review", json{{"ok", true}}, "review-" + std::to_string(i)});
                plan.expected_outputs[run] = review_output(run);
                break;
            }
        }
    }
    std::vector<std::size_t> next(per_run.size(), 0);
    for (;;) {
        std::vector<std::size_t> open;
        for (std::size_t r = 0; r < per_run.size(); ++r)
            if (next[r] < per_run[r].size()) open.push_back(r);
        if (open.empty()) break;
        const std::size_t r = open[rng() % open.size()];
        plan.ops.push_back(per_run[r][next[r]++]);
        if (rng() % 2 == 0) plan.ops.push_back({Op::Kind::poll, "", "", {}, ""});
        if (rng() % 6 == 0) plan.ops.push_back({Op::Kind::advance_clock, "", "", {}, ""});
    }
    for (int i = 0; i < 2; ++i) {
        plan.ops.push_back({Op::Kind::poll, "", "", {}, ""});
        plan.ops.push_back({Op::Kind::advance_clock, "", "", {}, ""});
    }
    plan.ops.push_back({Op::Kind::poll, "", "", {}, ""});
    return plan;
}

TimePoint PlanClock::now() const {
    return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(micros_->load())));
}

std::function<TimePoint()> PlanClock::function() const {
    return [micros = micros_] {
        return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(micros->load())));
    };
}

void define_workflows(Engine& engine, const World& world) {
    engine
        .define("order",
                [world](Context& ctx, const OrderInput& in) {
                    ctx.step("reserve", [&](StepContext& s) {
                        record_execution(world, s);
                        return in.amount;
                    });
                    const auto decision = ctx.wait_for_signal<Decision>("approval", json{{"amount", in.amount}});
                    if (decision.status != "approved") return order_output(in, false);
                    ctx.step("charge", [&](StepContext& s) {
                        record_execution(world, s);
                        examples::PaymentsLedger(world.ledger).pay(s.idempotency_key(), in.amount, in.id);
                    });
                    ctx.sleep(1h);
                    ctx.step("notify", [&](StepContext& s) { record_execution(world, s); });
                    return order_output(in, true);
                })
        .signal<Decision>("approval");
    engine.define("batch", [world](Context& ctx, const std::int64_t& n) {
        std::int64_t total = 0;
        for (std::int64_t part = 0; part < 4; ++part)
            total += ctx.step("part" + std::to_string(part), [&](StepContext& s) {
                record_execution(world, s);
                return part * n;
            });
        return total;
    });
    engine.define("review", [world](Context& ctx, const std::string& id) {
        ctx.step("prepare", [&](StepContext& s) { record_execution(world, s); });
        (void)ctx.suspend("review", json{{"id", id}});
        ctx.step("apply", [&](StepContext& s) { record_execution(world, s); });
        return review_output(id);
    });
}

EngineOptions engine_options(const fs::path& db, Durability durability, const PlanClock& clock) {
    EngineOptions o;
    o.path = db;
    o.durability = durability;
    o.clock = clock.function();
    // Small pieces so that the plan's commits touch several pages and the
    // file grows; a second open must not find a bigger map than it can use.
    o.map_size = std::size_t{1} << 20;
    return o;
}

std::optional<SignalOutcome> apply(Engine& engine, PlanClock& clock, const Op& op) {
    switch (op.kind) {
        case Op::Kind::start:
            (void)engine.start_json(op.name, op.payload, {.run_id = op.run});
            return std::nullopt;
        case Op::Kind::signal:
            return engine.signal(op.run, op.name, op.payload.dump(), op.id).outcome;
        case Op::Kind::resume:
            return engine.resume(op.run, op.name, op.payload.dump(), op.id).outcome;
        case Op::Kind::poll:
            (void)engine.poll();
            return std::nullopt;
        case Op::Kind::advance_clock:
            clock.advance(2h);
            return std::nullopt;
    }
    return std::nullopt;
}

json snapshot(const Engine& engine, Writers writers) {
    json runs = json::object();
    RunQuery query;
    query.limit = 1000;
    for (const RunInfo& run : engine.list_runs(query)) runs[run.id] = engine.trace(run.id).to_json();
    const auto events = engine.events(0, std::size_t{1} << 20);
    const Stats stats = engine.stats();
    if (writers == Writers::others) return {{"runs", runs}, {"last_event_seq", stats.last_event_seq}};
    if (stats.runs != runs.size())
        throw std::runtime_error("stats() counts " + std::to_string(stats.runs) + " runs, list_runs() lists " +
                                 std::to_string(runs.size()));
    if (!events.empty() && events.back().seq != stats.last_event_seq)
        throw std::runtime_error("the event log ends at " + std::to_string(events.back().seq) +
                                 " but stats() says " + std::to_string(stats.last_event_seq));
    return {{"runs", runs}, {"last_event_seq", stats.last_event_seq}};
}

std::string missing_from(const json& acked, const json& now) {
    std::string missing;
    for (const auto& [id, then] : acked["runs"].items()) {
        if (!now["runs"].contains(id)) {
            missing += "run " + id + " (" + then["status"].get<std::string>() + ") is gone\n";
            continue;
        }
        const json& later = now["runs"][id];
        const json& then_entries = then["entries"];
        const json& later_entries = later["entries"];
        if (later_entries.size() < then_entries.size() ||
            !std::equal(then_entries.begin(), then_entries.end(), later_entries.begin()))
            missing += "run " + id + ": acknowledged journal " + then_entries.dump() + "\n  now " +
                       later_entries.dump() + "\n";
        const std::string status = then["status"];
        if (status == "completed" || status == "failed" || status == "cancelled")
            if (later["status"] != then["status"] || later.value("output", json()) != then.value("output", json()))
                missing += "run " + id + " was acknowledged " + status + " " + then.value("output", json()).dump() +
                           ", now " + later["status"].dump() + " " + later.value("output", json()).dump() + "\n";
    }
    if (now["last_event_seq"].get<std::uint64_t>() < acked["last_event_seq"].get<std::uint64_t>())
        missing += "the event log ends at " + now["last_event_seq"].dump() + ", before the acknowledged " +
                   acked["last_event_seq"].dump() + "\n";
    return missing;
}

std::string finish_plan(Engine& engine, PlanClock& clock, const Plan& plan) {
    for (const Op& op : plan.ops) (void)apply(engine, clock, op);
    auto all_finished = [&] {
        for (const auto& [run, output] : plan.expected_outputs) {
            const auto info = engine.status(run);
            if (!info || !is_finished(info->status)) return false;
        }
        return true;
    };
    for (int round = 0; round < 20 && !all_finished(); ++round) {
        (void)engine.poll();
        clock.advance(2h);
        (void)engine.poll();
    }
    std::string differs;
    for (const auto& [run, expected] : plan.expected_outputs) {
        const auto info = engine.status(run);
        if (!info) {
            differs += "run " + run + " does not exist\n";
        } else if (info->status != RunStatus::completed || info->output != expected) {
            differs += "run " + run + " ended " + std::string(to_string(info->status)) + " " +
                       info->output.value_or(json()).dump() + (info->error ? " " + info->error->message : "") +
                       ", expected completed " + expected.dump() + "\n";
        }
    }
    return differs;
}

std::vector<std::string> shim_environment(const char* shim_path, const fs::path& db, const std::string& mode) {
    const fs::path absolute = fs::weakly_canonical(fs::absolute(db));
    std::string asan = "ASAN_OPTIONS=verify_asan_link_order=0";
    if (const char* existing = std::getenv("ASAN_OPTIONS"); existing && *existing) asan += std::string(":") + existing;
    return {std::string("LD_PRELOAD=") + shim_path, "ABIDE_IO_FILE=" + absolute.string(), mode, asan};
}

std::uint64_t parse_number(const std::string& text) {
    std::size_t used = 0;
    const std::uint64_t n = std::stoull(text, &used);
    if (used != text.size()) throw std::runtime_error("not a number: " + text);
    return n;
}

}  // namespace abide::io_test
