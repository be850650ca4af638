#include "workload.hpp"

#include <abide/verify.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>

namespace abide::corruption {

namespace {

using namespace std::chrono_literals;

constexpr std::int64_t reference_start_us = 1'800'000'000'000'000;

struct Decision {
    std::string status, by;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Decision, status, by)

struct OrderInput {
    std::string id;
    std::int64_t amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderInput, id, amount)

/// A clock that moves only when told; copies share the time.
class ManualClock {
public:
    explicit ManualClock(std::int64_t start_us) : us_(std::make_shared<std::atomic<std::int64_t>>(start_us)) {}
    TimePoint operator()() const {
        return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(us_->load())));
    }
    void advance(Duration d) { us_->fetch_add(d.count()); }
    std::int64_t micros() const { return us_->load(); }

private:
    std::shared_ptr<std::atomic<std::int64_t>> us_;
};

// ---- the workflows ------------------------------------------------------
// Outputs depend only on inputs and the decisions delivered, so the
// undamaged copy's outcome is the expected outcome of every run.

void define_workflows(Engine& engine) {
    // Steps with results, ctx.now/uuid entries; completes at its first poll.
    engine.define("batch", [](Context& ctx, const std::int64_t& n) {
        (void)ctx.now();
        (void)ctx.uuid();
        std::int64_t total = 0;
        for (std::int64_t part = 0; part < 4; ++part)
            total += ctx.step("part" + std::to_string(part), [&] { return part * n; });
        return total;
    });
    // A wait with a deadline between two steps.
    engine
        .define("order",
                [](Context& ctx, const OrderInput& in) {
                    const auto amount = ctx.step("reserve", [&] { return in.amount; });
                    const auto decision = ctx.wait_for_signal<Decision>("approval", 24h, json{{"amount", amount}});
                    if (!decision) return "expired " + in.id;
                    if (decision->status != "approved") return "declined " + in.id + " by " + decision->by;
                    const auto receipt =
                        ctx.step("charge", [&] { return "receipt-" + in.id + "-" + std::to_string(amount); });
                    return "charged " + receipt + " by " + decision->by;
                })
        .signal<Decision>("approval");
    // A suspend (no deadline) whose resume data a later step uses.
    engine.define("review", [](Context& ctx, const std::string& id) {
        const auto draft = ctx.step("prepare", [&] { return id + "-draft"; });
        const json data = ctx.suspend("review", json{{"draft", draft}});
        const auto verdict = ctx.step("apply", [&] { return data.at("verdict").get<std::string>(); });
        return "reviewed " + draft + " " + verdict;
    });
    // A durable timer.
    engine.define("nap", [](Context& ctx, const std::int64_t& n) {
        const auto before = ctx.step("before", [&] { return n; });
        ctx.sleep(3h);
        const auto after = ctx.step("after", [&] { return before * 2; });
        return before + after;
    });
    // Two waits without deadlines; a signal for the second may arrive first
    // and is then buffered.
    engine
        .define("pair",
                [](Context& ctx) {
                    const auto first = ctx.wait_for_signal<Decision>("first");
                    const auto second = ctx.wait_for_signal<Decision>("second");
                    return first.status + "+" + second.status;
                })
        .signal<Decision>("first")
        .signal<Decision>("second");
    // A step failure journaled and caught by the workflow.
    engine.define("flaky", [](Context& ctx) {
        try {
            ctx.step("call", []() -> std::int64_t { throw std::runtime_error("service down"); });
            return std::string("called");
        } catch (const StepError& e) {
            return std::string("fallback after ") + e.error_type();
        }
    });
}

// ---- the runs -----------------------------------------------------------

struct RunPlan {
    const char* id;
    const char* workflow;
    json input;
    int phase;  ///< build_reference starts it in this phase, in table order
};

/// Creation order: run numbers follow it.
const std::vector<RunPlan>& run_table() {
    static const std::vector<RunPlan> table = {
        {"batch-1", "batch", 10, 0},
        {"batch-2", "batch", 20, 0},
        {"batch-3", "batch", 30, 0},
        {"batch-4", "batch", 40, 0},
        {"order-expired", "order", OrderInput{"E", 500}, 0},
        {"flaky-1", "flaky", json(), 0},
        {"order-1", "order", OrderInput{"A1", 110}, 1},
        {"order-2", "order", OrderInput{"A2", 120}, 1},
        {"order-3", "order", OrderInput{"A3", 130}, 1},
        {"order-4", "order", OrderInput{"A4", 140}, 1},
        {"order-5", "order", OrderInput{"A5", 150}, 1},
        {"review-1", "review", "R1", 1},
        {"review-2", "review", "R2", 1},
        {"nap-1", "nap", 7, 1},
        {"pair-1", "pair", json(), 1},
        {"pair-2", "pair", json(), 1},
        {"nap-2", "nap", 9, 2},
        {"late-1", "order", OrderInput{"L1", 160}, 3},
    };
    return table;
}

/// A signal or resume a host sends.
struct Delivery {
    const char* run;
    WaitKind kind;
    const char* name;
    json payload;
    const char* signal_id;
};

json decision(const char* status, const char* by) { return Decision{status, by}; }

SignalResult deliver(Engine& engine, const Delivery& d) {
    const std::string payload = d.payload.dump();
    return d.kind == WaitKind::suspend ? engine.resume(d.run, d.name, payload, d.signal_id)
                                       : engine.signal(d.run, d.name, payload, d.signal_id);
}

/// What the host still delivers to a reference database. order-4 gets
/// nothing and times out while the host moves the clock; pair-2's "first" is
/// sent again with the id it was accepted under (a duplicate).
const std::vector<Delivery>& pending_deliveries() {
    static const std::vector<Delivery> pending = {
        {"order-5", WaitKind::signal, "approval", decision("approved", "ops"), "order-5-decision"},
        {"review-2", WaitKind::suspend, "review", json{{"verdict", "accepted"}}, "review-2-verdict"},
        {"pair-1", WaitKind::signal, "first", decision("yes", "a"), "pair-1-first"},
        {"pair-2", WaitKind::signal, "first", decision("yes", "b"), "pair-2-first"},
        {"pair-2", WaitKind::signal, "second", decision("no", "b"), "pair-2-second"},
    };
    return pending;
}

EngineOptions options_for(const fs::path& db, const ManualClock& clock, Durability durability) {
    EngineOptions o;
    o.path = db;
    o.clock = clock;
    o.durability = durability;
    return o;
}

void start_phase(Engine& engine, int phase) {
    for (const RunPlan& run : run_table())
        if (run.phase == phase) (void)engine.start_json(run.workflow, run.input, {.run_id = run.id});
}

void require_accepted(const SignalResult& r, const char* what) {
    if (!r.accepted()) throw std::runtime_error(std::string("building the reference: ") + what + ": " + r.message);
}

// ---- the host's reads ----------------------------------------------------

/// {"value": fn()} or, if it throws, {"error": what(), "abide": is an abide::Error}.
json attempt(const std::function<json()>& fn) {
    try {
        return json{{"value", fn()}};
    } catch (const Error& e) {
        return json{{"error", e.what()}, {"abide", true}};
    } catch (const std::exception& e) {
        return json{{"error", e.what()}, {"abide", false}};
    }
}

json read_runs(const Engine& engine) {
    json runs = json::object();
    for (const PlannedRun& run : planned_runs()) {
        runs[run.id] = {
            {"status", attempt([&] {
                 const auto info = engine.status(run.id);
                 return info ? info->to_json() : json();
             })},
            {"trace", attempt([&] { return engine.trace(run.id).to_json(); })},
            {"result", attempt([&] { return engine.result<json>(run.id); })},
        };
    }
    return runs;
}

json read_tables(const Engine& engine) {
    json tables;
    tables["listed"] = attempt([&] {
        RunQuery all;
        all.limit = 1000;
        json ids = json::array();
        for (const RunInfo& info : engine.list_runs(all)) ids.push_back(info.id);
        return ids;
    });
    tables["events"] = attempt([&] {
        json events = json::array();
        for (const Event& e : engine.events(0, std::size_t{1} << 20)) events.push_back(e.to_json());
        return events;
    });
    tables["stats"] = attempt([&] {
        json stats = engine.stats().to_json();
        // The file's and the map's size are not values of the journal (a
        // truncated copy is smaller and still holds the same data), nor is
        // what this process keeps in memory.
        stats.erase("file_bytes");
        stats.erase("map_bytes");
        stats.erase("cached_runs");
        return stats;
    });
    return tables;
}

bool all_finished(const Engine& engine) {
    for (const PlannedRun& run : planned_runs()) {
        try {
            const auto info = engine.status(run.id);
            if (info && !is_finished(info->status)) return false;
        } catch (const std::exception&) {
            // unreadable: nothing more will happen to it
        }
    }
    return true;
}

/// Polls and moves the clock (past every sleep and deadline of the workload)
/// until every run has finished; records every poll problem and error.
void finish_runs(Engine& engine, ManualClock& clock, json& obs) {
    obs["poll_problems"] = json::array();
    obs["poll_errors"] = json::array();
    for (int round = 0; round < 12; ++round) {
        try {
            for (const std::string& problem : engine.poll().problems) obs["poll_problems"].push_back(problem);
        } catch (const std::exception& e) {
            obs["poll_errors"].push_back(e.what());
        }
        if (all_finished(engine)) break;
        clock.advance(6h);
    }
}

}  // namespace

const std::vector<PlannedRun>& planned_runs() {
    static const std::vector<PlannedRun> runs = [] {
        std::vector<PlannedRun> list;
        for (const RunPlan& run : run_table()) list.push_back({run.id, list.size() + 1});
        return list;
    }();
    return runs;
}

std::int64_t build_reference(const fs::path& db) {
    if (fs::exists(db)) throw std::runtime_error("the reference database must be new: " + db.string());
    ManualClock clock(reference_start_us);
    Engine engine(options_for(db, clock, Durability::synced));
    define_workflows(engine);
    // Phase 0: the batches and flaky-1 complete; order-expired times out.
    start_phase(engine, 0);
    (void)engine.poll();
    clock.advance(25h);
    (void)engine.poll();
    // Phase 1: orders, reviews, a nap and pairs park; some are answered.
    start_phase(engine, 1);
    (void)engine.poll();
    require_accepted(engine.signal("order-1", "approval", decision("approved", "ann").dump(), "order-1-decision"),
                     "order-1");
    require_accepted(engine.signal("order-2", "approval", decision("rejected", "bob").dump(), "order-2-decision"),
                     "order-2");
    require_accepted(engine.resume("review-1", "review", json{{"verdict", "fine"}}.dump(), "review-1-verdict"),
                     "review-1");
    (void)engine.poll();
    // pair-1 waits for "first": its "second" is buffered. pair-2 moves on
    // to wait for "second".
    require_accepted(engine.signal("pair-1", "second", decision("no", "a").dump(), "pair-1-second"), "pair-1");
    require_accepted(engine.signal("pair-2", "first", decision("yes", "b").dump(), "pair-2-first"), "pair-2");
    (void)engine.poll();
    clock.advance(4h);  // nap-1 wakes; the orders' deadlines are still ahead
    (void)engine.poll();
    // Phase 2: nap-2 sleeps (a pending timer).
    start_phase(engine, 2);
    (void)engine.poll();
    // order-3's decision is delivered but not yet run: it is ready.
    require_accepted(engine.signal("order-3", "approval", decision("approved", "cy").dump(), "order-3-decision"),
                     "order-3");
    // Phase 3: late-1 is started and never polled; its decision is buffered.
    start_phase(engine, 3);
    require_accepted(engine.signal("late-1", "approval", decision("approved", "dee").dump(), "late-1-decision"),
                     "late-1");
    return clock.micros();
}

json observe(const fs::path& db, std::int64_t clock_us, const std::function<void(const json& verify)>& verified) {
    json obs;
    const VerifyReport report = verify_database(db);
    obs["verify"] = {
        {"problems", report.problems}, {"damaged_runs", report.damaged_runs}, {"unreadable", report.unreadable}};
    verified(obs["verify"]);
    if (report.unreadable) {
        // LMDB's own structure is damaged (or the check crashed): opening it
        // here could crash this process or lose writes. The host refuses it.
        obs["refused"] = report.problems.front();
        return obs;
    }
    ManualClock clock(clock_us);
    std::unique_ptr<Engine> engine;
    try {
        // Unsynced: the file is a scratch copy, and the host must be quick.
        engine = std::make_unique<Engine>(options_for(db, clock, Durability::unsynced));
        define_workflows(*engine);
    } catch (const std::exception&) {
        obs["open_error"] = attempt([]() -> json { throw; });
        return obs;
    }
    obs["before"] = read_runs(*engine);
    obs["tables"] = read_tables(*engine);
    obs["deliveries"] = json::array();
    for (const Delivery& d : pending_deliveries())
        obs["deliveries"].push_back(
            {{"run", d.run}, {"outcome", attempt([&] { return std::string(to_string(deliver(*engine, d).outcome)); })}});
    finish_runs(*engine, clock, obs);
    json after = json::object();
    for (const PlannedRun& run : planned_runs())
        after[run.id] = attempt([&] {
            const auto info = engine->status(run.id);
            if (!info) return json();
            return json{{"status", to_string(info->status)}, {"output", info->output.value_or(json())}};
        });
    obs["after"] = after;
    return obs;
}

}  // namespace abide::corruption
