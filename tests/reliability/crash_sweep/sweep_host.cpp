// sweep_host: the deterministic host of the crash-point sweep.
//
//   sweep_host --dir DIR [--copies N] [--unsynced] [--break-journal]
//
// It runs the reference workflows (steps with side effects in a payments
// ledger, both forms of wait_for_signal, a timeout that fires, suspend and
// resume, a suspend that times out, a signal that comes too late (its
// application times the wait out), a sleep, a step retried with backoff, a
// step that exhausts its retries, multi-stage approvals, two cancellations)
// through a fixed script of driver phases: start, signal, resume, cancel,
// move the fake clock, poll until idle. Run it to the end and it writes
// DIR/outcome.json and exits 0.
//
// Restart safety, the property the sweep relies on: killed at any instant
// and run again with the same arguments, it carries on and ends with the
// outcome of an uninterrupted run, because every driver action is idempotent:
//   * runs are started with fixed ids (a repeated start creates nothing);
//   * signals and resumes carry fixed ids (a resend is a duplicate);
//   * a cancel repeated is `already_requested` or `run_finished`;
//   * the clock is a fixed epoch plus an offset kept in DIR/clock, and a phase
//     sets it to an absolute value, so repeating that phase changes nothing;
//   * DIR/progress names the first phase not known to be complete (written
//     atomically after each phase), so a restart repeats at most the phase it
//     died in and never goes back to an earlier clock.
// abide's crash points fire only inside the engine, so a kill never lands
// between a phase's last engine call and its progress write; repeating the
// phase is still harmless.
//
// Every step body first appends "body <idempotency key> <attempt>" to
// ABIDE_CRASH_LOG (one O_APPEND write), so the log orders body executions
// against abide's crash points exactly.
//
// --unsynced commits without fsync. A SIGKILL loses nothing the kernel has
// accepted, so against kills (all this sweep does) unsynced commits are as
// durable as synced ones, and the sweep runs several times faster; power loss
// is another harness's subject.
//
// --break-journal deliberately breaks the rules: the `effects` workflow pays
// its charge outside ctx.step, so every replay pays again. The sweep uses it
// to show that its oracles catch re-run steps and duplicate effects.
#include "case_dir.hpp"

#include "common/host.hpp"
#include "common/ledger.hpp"

#include <abide/abide.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using abide::Context;
using abide::StepContext;
using abide::sweep::CaseDir;

/// The input of every reference run.
struct Order {
    std::string ref;
    std::int64_t amount = 0;  ///< cents
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Order, ref, amount)

/// A reviewer's answer, the payload of every signal the driver sends.
struct Decision {
    std::string status;  ///< "approved" or "rejected"
    std::string by;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Decision, status, by)

/// A fixed epoch plus the offset in DIR/clock. Only this process moves it,
/// and it writes the file before it uses the new time, so after a kill the
/// next process starts from the last time any engine call could have seen.
class FakeClock {
public:
    explicit FakeClock(fs::path file) : file_(std::move(file)) {
        long long seconds = 0;
        if (std::ifstream in(file_); in) in >> seconds;
        offset_s_ = seconds;
    }
    abide::TimePoint now() const { return epoch + std::chrono::seconds(offset_s_.load()); }
    /// Sets the clock to epoch + offset (absolute, so repeating it is harmless).
    void set(std::chrono::seconds offset) {
        examples::set_clock_offset(file_, offset);
        offset_s_ = offset.count();
    }

private:
    static constexpr abide::TimePoint epoch{std::chrono::seconds(1'767'225'600)};  // 2026-01-01T00:00:00Z
    fs::path file_;
    std::atomic<long long> offset_s_{0};
};

/// What step bodies touch outside the journal.
class World {
public:
    World(const CaseDir& dir, bool break_journal) : ledger_(dir.ledger()), break_journal_(break_journal) {
        if (const char* log = std::getenv("ABIDE_CRASH_LOG"); log && *log)
            log_fd_ = ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    ~World() {
        if (log_fd_ >= 0) ::close(log_fd_);
    }
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    bool break_journal() const { return break_journal_; }

    /// Every step body calls this first: one line per execution.
    void ran(const StepContext& step) const { log_body(step.idempotency_key(), step.attempt()); }

    /// A body that pays: idempotent by the step's key, as a real provider is.
    /// It logs the body's run (ran()) itself.
    std::string pay(const StepContext& step, std::int64_t amount, const std::string& reference) const {
        ran(step);
        return pay_once(step.idempotency_key(), amount, reference);
    }

    /// The broken charge of --break-journal: outside any step, so it runs on
    /// every replay, and without an idempotency key, so the provider makes a
    /// new payment on every call (numbered by the earlier ones for the same
    /// reference, so that an uninterrupted run pays as the reference does).
    std::string pay_outside_journal(const std::string& run_id, std::int64_t amount,
                                    const std::string& reference) const {
        log_body(run_id + ":outside", 1);
        std::size_t earlier = 0;
        for (const std::string& line : ledger_.lines()) earlier += line.ends_with(" " + reference) ? 1 : 0;
        return pay_once(run_id + ":outside:" + std::to_string(earlier), amount, reference);
    }

    void log_line(const std::string& line) const {
        if (log_fd_ < 0) return;
        const std::string text = line + "\n";
        [[maybe_unused]] const ssize_t n = ::write(log_fd_, text.data(), text.size());
    }

private:
    /// Appends "key amount receipt reference" to the ledger unless `key` was
    /// paid. The receipt is named after the key, not numbered in ledger order
    /// as examples::PaymentsLedger does: a recovery may run other runs in
    /// another order (abide promises no order across runs), and that must not
    /// change any run's outcome.
    std::string pay_once(const std::string& key, std::int64_t amount, const std::string& reference) const {
        const std::string receipt = "receipt-" + key;
        (void)ledger_.append_once(key, [&](std::size_t) { return std::to_string(amount) + " " + receipt + " " + reference; });
        return receipt;
    }

    void log_body(const std::string& key, std::uint32_t attempt) const {
        log_line(std::string(abide::sweep::body_prefix) + key + " " + std::to_string(attempt));
    }

    examples::AppendOnceFile ledger_;
    bool break_journal_;
    int log_fd_ = -1;
};

// ---- the reference workflows -------------------------------------------------------

/// Steps with side effects, and a journaled ctx.now().
std::string effects(Context& ctx, const Order& o, const World& w) {
    const auto started = ctx.now();
    const std::string reserved =
        ctx.step("reserve", [&](StepContext& s) { return w.pay(s, o.amount, o.ref + "/reserve"); });
    const std::string charged =
        w.break_journal()
            ? w.pay_outside_journal(ctx.run_id(), o.amount, o.ref + "/charge")
            : ctx.step("charge", [&](StepContext& s) { return w.pay(s, o.amount, o.ref + "/charge"); });
    ctx.step("notify", [&](StepContext& s) { w.ran(s); });
    return reserved + " " + charged + " at " + abide::format_time(started);
}

/// wait_for_signal without a timeout; the signal may come before the wait.
std::string approval(Context& ctx, const Order& o, const World& w) {
    ctx.step("prepare", [&](StepContext& s) { w.ran(s); });
    const Decision d = ctx.wait_for_signal<Decision>("decision", {{"ref", o.ref}});
    if (d.status != "approved") return "not approved by " + d.by;
    return "paid " + ctx.step("pay", [&](StepContext& s) { return w.pay(s, o.amount, o.ref); });
}

/// wait_for_signal with a timeout: paid if approved in time, else escalated.
std::string deadline(Context& ctx, const Order& o, const World& w) {
    ctx.step("prepare", [&](StepContext& s) { w.ran(s); });
    const auto d = ctx.wait_for_signal<Decision>("decision", 1h, {{"ref", o.ref}});
    if (!d) return "timed out, " + ctx.step("escalate", [&](StepContext& s) { return w.pay(s, 0, o.ref + "/escalation"); });
    return "paid " + ctx.step("pay", [&](StepContext& s) { return w.pay(s, o.amount, o.ref); });
}

/// suspend/resume, optionally with a timeout that raises TimeoutError.
std::string review(Context& ctx, const Order& o, const World& w, std::optional<abide::Duration> timeout) {
    const std::string draft = ctx.step("draft", [&](StepContext& s) {
        w.ran(s);
        return o.ref + " draft";
    });
    try {
        const abide::json verdict = ctx.suspend("review", {{"draft", draft}}, timeout);
        if (!verdict.value("approved", false)) return "rejected";
        return "published " + ctx.step("publish", [&](StepContext& s) { return w.pay(s, o.amount, o.ref); });
    } catch (const abide::TimeoutError&) {
        ctx.step("expire", [&](StepContext& s) { w.ran(s); });
        return "expired";
    }
}

/// A durable sleep between two steps.
std::string sleeper(Context& ctx, const Order& o, const World& w) {
    ctx.step("before", [&](StepContext& s) { w.ran(s); });
    ctx.sleep(30min);
    return "woke, " + ctx.step("after", [&](StepContext& s) { return w.pay(s, o.amount, o.ref); });
}

/// A step retried on durable backoff timers (10 s, then 20 s). Its body fails
/// on its first `failures` attempts, decided by the attempt number alone, so a
/// re-execution after a crash fails or succeeds exactly as the first did.
std::string flaky(Context& ctx, const Order& o, const World& w, std::uint32_t max_attempts, std::uint32_t failures) {
    const abide::StepOptions retry{.retry = {.max_attempts = max_attempts, .initial_backoff = 10s}};
    try {
        return "paid " + ctx.step("call", retry, [&](StepContext& s) {
                   if (s.attempt() > failures) return w.pay(s, o.amount, o.ref);  // pay() logs the run
                   w.ran(s);
                   throw std::runtime_error("provider unavailable (attempt " + std::to_string(s.attempt()) + ")");
               });
    } catch (const abide::StepError& e) {
        ctx.step("compensate", [&](StepContext& s) { w.ran(s); });
        return "gave up after " + std::to_string(e.attempts()) + " attempts";
    }
}

/// Multi-stage approval: the manager, then finance above 10000.
std::string multi_stage(Context& ctx, const Order& o, const World& w) {
    ctx.step("plan", [&](StepContext& s) {
        w.ran(s);
        return o.amount;
    });
    const Decision manager = ctx.wait_for_signal<Decision>("manager", {{"ref", o.ref}, {"stage", "manager"}});
    if (manager.status != "approved") return "stopped by the manager";
    if (o.amount > 10000) {
        const Decision finance = ctx.wait_for_signal<Decision>("finance", {{"ref", o.ref}, {"stage", "finance"}});
        if (finance.status != "approved") return "stopped by finance";
    }
    return "executed " + ctx.step("execute", [&](StepContext& s) { return w.pay(s, o.amount, o.ref); });
}

/// Reserves, then waits; a cancellation releases the reservation (a step run
/// inside the catch) and ends the run cancelled.
std::string cancellable(Context& ctx, const Order& o, const World& w) {
    ctx.step("reserve", [&](StepContext& s) { return w.pay(s, o.amount, o.ref + "/reserve"); });
    try {
        return ctx.wait_for_signal<Decision>("decision", {{"ref", o.ref}}).status;
    } catch (const abide::Cancelled&) {
        ctx.step("release", [&](StepContext& s) { return w.pay(s, -o.amount, o.ref + "/release"); });
        throw;
    }
}

void define_workflows(abide::Engine& engine, const World& w) {
    auto bind = [&w](auto fn) { return [fn, &w](Context& ctx, const Order& o) { return fn(ctx, o, w); }; };
    engine.define("effects", bind(effects));
    engine.define("approval", bind(approval)).signal<Decision>("decision");
    engine.define("deadline", bind(deadline)).signal<Decision>("decision");
    engine.define("review", bind([](Context& c, const Order& o, const World& wr) { return review(c, o, wr, {}); }));
    engine.define("review_timed",
                  bind([](Context& c, const Order& o, const World& wr) { return review(c, o, wr, 2h); }));
    engine.define("sleeper", bind(sleeper));
    engine.define("flaky_recovers",
                  bind([](Context& c, const Order& o, const World& wr) { return flaky(c, o, wr, 3, 2); }));
    engine.define("flaky_gives_up",
                  bind([](Context& c, const Order& o, const World& wr) { return flaky(c, o, wr, 2, 2); }));
    engine.define("multi_stage", bind(multi_stage)).signal<Decision>("manager").signal<Decision>("finance");
    engine.define("cancellable", bind(cancellable)).signal<Decision>("decision");
}

// ---- the driver script --------------------------------------------------------------

struct RunSpec {
    std::string id, workflow;
    Order order;
};

/// The reference runs of one copy; copies differ only in their id suffix.
std::vector<RunSpec> reference_runs(const std::string& suffix) {
    auto run = [&](const std::string& name, const std::string& workflow, std::int64_t amount) {
        return RunSpec{name + suffix, workflow, {"T-" + name + suffix, amount}};
    };
    return {run("effects", "effects", 1200),
            run("approval-early", "approval", 2100),
            run("approval-late", "approval", 2200),
            run("approval-rejected", "approval", 2300),
            run("deadline-fires", "deadline", 3100),
            run("deadline-met", "deadline", 3200),
            run("deadline-late", "deadline", 3300),
            run("review-approved", "review", 4100),
            run("review-expires", "review_timed", 4200),
            run("sleeper", "sleeper", 5100),
            run("flaky-recovers", "flaky_recovers", 6100),
            run("flaky-gives-up", "flaky_gives_up", 6200),
            run("multi-big", "multi_stage", 25000),
            run("multi-small", "multi_stage", 5000),
            run("multi-rejected", "multi_stage", 15000),
            run("cancel-waiting", "cancellable", 7100),
            run("cancel-ready", "cancellable", 7200)};
}

/// One step of the driver. Each must be safe to repeat after a kill in it.
struct Phase {
    std::string what;
    std::function<void()> act;
};

class Driver {
public:
    Driver(abide::Engine& engine, FakeClock& clock, int copies) : engine_(engine), clock_(clock) {
        for (int c = 1; c <= copies; ++c) suffixes_.push_back(c == 1 ? "" : "-c" + std::to_string(c));
    }

    std::vector<Phase> script() {
        return {
            {"start every run", [this] { start_all(); }},
            {"signal before its wait", [this] { each([this](auto& s) { send(s, "approval-early", "decision", "approved"); }); }},
            {"cancel a run before it runs", [this] { each([this](auto& s) { cancel(s, "cancel-ready"); }); }},
            {"poll", [this] { poll_until_idle(); }},
            {"signals and resumes to waiting runs", [this] { each([this](auto& s) { decide(s); }); }},
            {"resend them (duplicates)", [this] { each([this](auto& s) { decide(s); }); }},
            {"poll", [this] { poll_until_idle(); }},
            {"cancel a waiting run", [this] { each([this](auto& s) { cancel(s, "cancel-waiting"); }); }},
            {"poll", [this] { poll_until_idle(); }},
            {"clock +15 s: the first retry backoff ends", [this] { clock_.set(15s); }},
            {"poll", [this] { poll_until_idle(); }},
            {"clock +60 s: the second retry backoff ends", [this] { clock_.set(60s); }},
            {"poll", [this] { poll_until_idle(); }},
            {"clock +45 min: the sleep ends", [this] { clock_.set(45min); }},
            {"poll", [this] { poll_until_idle(); }},
            {"finance approves", [this] { each([this](auto& s) { send(s, "multi-big", "finance", "approved"); }); }},
            {"poll", [this] { poll_until_idle(); }},
            {"clock +3 h: the waits and the suspend time out", [this] { clock_.set(3h); }},
            // The signal's own application times the wait out (too_late). Killed
            // after that commit, the host sends it again with the same id: the
            // run must end as if it had been sent once.
            {"a decision after the deadline, before a poll fired it (too late)",
             [this] { each([this](auto& s) { send(s, "deadline-late", "decision", "approved"); }); }},
            {"poll", [this] { poll_until_idle(); }},
        };
    }

    std::vector<RunSpec> runs() const {
        std::vector<RunSpec> all;
        for (const std::string& s : suffixes_)
            for (RunSpec& r : reference_runs(s)) all.push_back(std::move(r));
        return all;
    }

private:
    void each(const std::function<void(const std::string&)>& action) {
        for (const std::string& s : suffixes_) action(s);
    }

    /// Half of the runs in one start_batch commit, the rest one by one.
    void start_all() {
        const std::vector<RunSpec> all = runs();
        std::vector<abide::StartRequest> batch;
        for (const RunSpec& r : all) {
            if (batch.size() < all.size() / 2)
                batch.push_back({r.workflow, abide::codec<Order>::encode(r.order), {.run_id = r.id}});
            else
                (void)engine_.start(r.workflow, r.order, {.run_id = r.id});
        }
        (void)engine_.start_batch(batch);
    }

    /// The decisions of the "signals and resumes" phase, sent again (same
    /// ids) by the next phase.
    void decide(const std::string& s) {
        send(s, "approval-late", "decision", "approved");
        send(s, "approval-rejected", "decision", "rejected");
        send(s, "deadline-met", "decision", "approved");
        send(s, "multi-big", "manager", "approved");
        send(s, "multi-small", "manager", "approved");
        send(s, "multi-rejected", "manager", "rejected");
        (void)engine_.resume("review-approved" + s, "review", abide::json{{"approved", true}},
                             "review-approved" + s + "/review");
    }

    /// The signal id is fixed by run and name: a resend is a duplicate.
    void send(const std::string& suffix, const std::string& run, const std::string& name, const std::string& status) {
        const std::string id = run + suffix;
        (void)engine_.signal(id, name, Decision{status, name + "-reviewer"}, id + "/" + name);
    }

    void cancel(const std::string& suffix, const std::string& run) {
        (void)engine_.cancel(run + suffix, "withdrawn by the customer");
    }

    void poll_until_idle() {
        for (;;) {
            const abide::PollResult r = engine_.poll();
            if (r.runs_advanced == 0 && r.timers_fired == 0) return;
        }
    }

    abide::Engine& engine_;
    FakeClock& clock_;
    std::vector<std::string> suffixes_;
};

std::size_t read_progress(const fs::path& file) {
    std::size_t next = 0;
    if (std::ifstream in(file); in) in >> next;
    return next;
}

// ---- the outcome --------------------------------------------------------------------

/// What an uninterrupted run and a crashed-and-recovered one must agree on:
/// every run's status, output and error, its journal as the trace shows it
/// and its events, without wall-clock stamps (creation and update times,
/// trace entry durations, event times and sequence numbers, which count
/// other runs' events too); and the payments ledger, sorted (its order is
/// the order runs ran in, which a recovery may change).
abide::json outcome(const abide::Engine& engine, const std::vector<RunSpec>& runs, const CaseDir& dir) {
    abide::json out = {{"runs", abide::json::object()}, {"ledger", abide::json::array()}};
    std::map<std::string, abide::json> events;
    for (const abide::Event& e : engine.events(0, std::size_t{1} << 20)) {
        abide::json j = e.to_json();
        j.erase("seq");
        j.erase("at");
        events[e.run_id].push_back(std::move(j));
    }
    for (const RunSpec& r : runs) {
        abide::json t = engine.trace(r.id).to_json();
        for (const char* stamp : {"created", "updated"}) t.erase(stamp);
        for (abide::json& entry : t["entries"]) {
            entry.erase("started");
            entry.erase("duration_us");
        }
        t["events"] = events[r.id];
        out["runs"][r.id] = std::move(t);
    }
    std::vector<std::string> ledger = examples::AppendOnceFile(dir.ledger()).lines();
    std::sort(ledger.begin(), ledger.end());
    for (const std::string& line : ledger) out["ledger"].push_back(line);
    return out;
}

int usage(const char* why) {
    std::cerr << "error: " << why << "\nusage: sweep_host --dir DIR [--copies N] [--unsynced] [--break-journal]\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    CaseDir dir;
    int copies = 1;
    bool break_journal = false;
    bool unsynced = false;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--dir" && i + 1 < argc)
            dir.root = argv[++i];
        else if (flag == "--copies" && i + 1 < argc)
            copies = std::atoi(argv[++i]);
        else if (flag == "--break-journal")
            break_journal = true;
        else if (flag == "--unsynced")
            unsynced = true;
        else
            return usage(("unknown option " + flag).c_str());
    }
    if (dir.root.empty()) return usage("--dir is required");
    if (copies < 1) return usage("--copies must be at least 1");

    World world(dir, break_journal);
    world.log_line(std::string(abide::sweep::host_start_line));
    FakeClock clock(dir.clock());
    abide::EngineOptions options;
    options.path = dir.db();
    options.durability = unsynced ? abide::Durability::unsynced : abide::Durability::synced;
    options.clock = [&clock] { return clock.now(); };
    // A callback, so that the "event.callback.before" point is reached; what
    // it would do (notify someone) is not part of the outcome.
    options.on_event = [](const abide::Event&) {};
    abide::Engine engine(options);
    define_workflows(engine, world);

    Driver driver(engine, clock, copies);
    const std::vector<Phase> phases = driver.script();
    for (std::size_t next = read_progress(dir.progress()); next < phases.size(); ++next) {
        std::cout << "phase " << next << ": " << phases[next].what << std::endl;  // for a failed case's host.out
        phases[next].act();
        examples::write_file_atomically(dir.progress(), std::to_string(next + 1) + "\n");
    }

    const std::vector<RunSpec> runs = driver.runs();
    for (const RunSpec& r : runs) {
        const auto info = engine.status(r.id);
        if (!info || !abide::is_finished(info->status)) {
            std::cerr << "run " << r.id << " is " << (info ? abide::to_string(info->status) : "missing")
                      << " after the last phase\n";
            return 3;
        }
    }
    examples::write_file_atomically(dir.outcome(), outcome(engine, runs, dir).dump(1) + "\n");
    return 0;
}
