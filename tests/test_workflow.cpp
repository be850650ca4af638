// The workflow side: what code inside a workflow observes from ctx calls, on
// first execution, on replay and across engine reopen.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <exception>
#include <map>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

using namespace abide;
using namespace std::chrono_literals;
using test::Decision;
using test::status_of;

// ---- memoised steps -------------------------------------------------------------

TEST_CASE_METHOD(test::EachCacheSize, "a completed step is not re-run after the engine is destroyed and reopened",
                 "[step][replay][reopen]") {
    test::Reopenable db;
    int loads = 0, finals = 0;
    db.define = [&](Engine& e) {
        e.define("greet",
                 [&](Context& ctx, const std::string& who) {
                     auto greeting = ctx.step("load", [&] {
                         ++loads;
                         return "hello " + who;
                     });
                     auto d = ctx.wait_for_signal<Decision>("decision");
                     ctx.step("finish", [&] { ++finals; });
                     return greeting + ": " + d.status;
                 })
            .signal<Decision>("decision");
    };

    std::string run;
    {
        Engine& e = db.open(cache_size);
        run = test::start_waiting(e, "greet", std::string("ann")).id;
        CHECK(loads == 1);
        CHECK(finals == 0);
        db.close();
    }
    Engine& e = db.open(cache_size);
    CHECK(e.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
    auto p = e.poll();
    CHECK(p.completed == 1);
    REQUIRE(status_of(e, run) == RunStatus::completed);
    CHECK(e.result<std::string>(run) == "hello ann: approved");
    CHECK(loads == 1);
    CHECK(finals == 1);
}

TEST_CASE_METHOD(test::EachCacheSize, "with cache_size 0 every resume replays, and replay does not re-run steps",
                 "[step][replay][cache]") {
    test::Reopenable db;
    Engine& engine = db.open(cache_size);
    int entries = 0, loads = 0;
    std::vector<bool> replaying_at_entry;
    engine
        .define("two_waits",
                [&](Context& ctx) {
                    ++entries;
                    replaying_at_entry.push_back(ctx.replaying());
                    int n = ctx.step("load", [&] { return ++loads; });
                    (void)ctx.wait_for_signal<Decision>("decision");
                    (void)ctx.wait_for_signal<Decision>("decision");
                    return n;
                })
        .signal<Decision>("decision");
    auto run = engine.start("two_waits");
    engine.poll();
    for (int i = 0; i < 2; ++i) {
        REQUIRE(status_of(engine, run) == RunStatus::waiting);
        CHECK(engine.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
        engine.poll();
    }
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(engine.result<int>(run) == 1);
    CHECK(loads == 1);
    if (cache_size == 0) {
        CHECK(entries == 3);
        CHECK(replaying_at_entry == std::vector<bool>{false, true, true});
    } else {
        CHECK(entries == 1);
    }
}

TEST_CASE("a value that does not decode is named in the error: a step's recorded result, resume data, an output",
          "[step][replay][payload]") {
    test::Reopenable db;
    db.define = [](Engine& e) {
        e.define("typed", [](Context& ctx) {
             const int amount = ctx.step("load", [] { return 5; });
             (void)ctx.suspend("review");
             return amount;
         }).resume<Decision>("review");
    };
    Engine& first = db.open(0);
    const std::string run = test::start_waiting(first, "typed").id;
    const SignalResult refused = first.resume(run, "review", json{{"status", 5}});
    CHECK(refused.outcome == SignalOutcome::invalid_payload);
    CHECK_THAT(refused.message, Catch::Contains("resume data for 'review' does not decode into"));
    // The step's code now returns a string; the journal holds an int.
    db.define = [](Engine& e) {
        e.define("typed", [](Context& ctx) {
            return ctx.step("load", [] { return std::string("five"); });
        });
    };
    Engine& second = db.open(0);
    CHECK(second.resume(run, "review", test::approved()).outcome == SignalOutcome::delivered);
    second.poll();
    CHECK_THAT(test::failed_run(second, run).error->message,
               Catch::Contains("the recorded result of step 'load' does not decode into std::"));

    auto done = second.start("typed");  // the new code: completes with "five"
    second.poll();
    CHECK_THROWS_WITH(second.result<int>(done),
                      Catch::Contains("the output of run '" + done.id + "' does not decode into int"));
}

TEST_CASE_METHOD(test::EngineFixture, "a step may return nothing", "[step]") {
    int calls = 0;
    engine.define("void_step", [&](Context& ctx) {
        ctx.step("touch", [&] { ++calls; });
        ctx.step("touch_again", [&](StepContext&) { ++calls; });
        return calls;
    });
    auto run = engine.start("void_step");
    auto p = engine.poll();
    CHECK(p.completed == 1);
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(calls == 2);
    CHECK(engine.result<int>(run) == 2);
    CHECK(test::count_events(engine, run.id, EventType::step_completed) == 2);
}

TEST_CASE_METHOD(test::EngineFixture, "step arguments are passed through to the body", "[step]") {
    engine.define("args", [&](Context& ctx, const std::string& who) {
        const int times = 3;
        auto repeated = ctx.step(
            "repeat",
            [](const std::string& s, int n) {
                std::string out;
                for (int i = 0; i < n; ++i) out += s;
                return out;
            },
            who, times);
        auto tagged = ctx.step(
            "tag", [](StepContext& sc, const std::string& s) { return sc.step_name() + ":" + s; }, repeated);
        return tagged;
    });
    auto run = engine.start("args", std::string("ab"));
    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(engine.result<std::string>(run) == "tag:ababab");
}

TEST_CASE("a step's idempotency key is run id and position, stable across a retry and a reopen",
          "[step][idempotency][retry][reopen]") {
    test::Reopenable db;
    struct Seen {
        std::string step, key, run;
        std::uint32_t attempt;
    };
    std::vector<Seen> seen;
    db.define = [&](Engine& e) {
        e.define("keys", [&](Context& ctx) {
            ctx.step("first", [&](StepContext& sc) {
                seen.push_back({sc.step_name(), sc.idempotency_key(), sc.run_id(), sc.attempt()});
            });
            return ctx.step("charge", StepOptions{RetryPolicy{3, 10s}}, [&](StepContext& sc) {
                seen.push_back({sc.step_name(), sc.idempotency_key(), sc.run_id(), sc.attempt()});
                if (sc.attempt() < 3) throw std::runtime_error("payment service unavailable");
                return sc.idempotency_key();
            });
        });
    };
    std::string run;
    {
        Engine& e = db.open();
        run = e.start("keys").id;
        e.poll();  // first, then charge attempt 1 fails
        db.clock.advance(10s);
        e.poll();  // attempt 2 fails
        REQUIRE(status_of(e, run) == RunStatus::waiting);
        db.close();
    }
    Engine& e = db.open(0);
    db.clock.advance(20s);
    e.poll();  // attempt 3, in the reopened engine
    REQUIRE(status_of(e, run) == RunStatus::completed);

    REQUIRE(seen.size() == 4);
    CHECK(seen[0].step == "first");
    CHECK(seen[0].key == run + ":0");
    for (std::size_t i = 1; i < 4; ++i) {
        CAPTURE(i);
        CHECK(seen[i].step == "charge");
        CHECK(seen[i].key == run + ":1");
        CHECK(seen[i].run == run);
        CHECK(seen[i].attempt == i);
    }
    CHECK(seen[0].key != seen[1].key);
    CHECK(e.result<std::string>(run) == run + ":1");
}

// ---- step failures and retries ----------------------------------------------------

TEST_CASE("a step that throws is journaled and replayed as the same StepError without running again",
          "[step][error][replay][reopen]") {
    test::Reopenable db;
    int calls = 0;
    struct Observed {
        std::string step, type, message;
        std::uint32_t attempts;
        std::string id;
    };
    std::vector<Observed> observed;
    db.define = [&](Engine& e) {
        e.define("fragile",
                 [&](Context& ctx) {
                     std::string what;
                     try {
                         ctx.step("boom", [&]() -> int {
                             ++calls;
                             throw std::runtime_error("disk on fire");
                         });
                     } catch (const StepError& err) {
                         observed.push_back({err.step(), err.error_type(), err.message(), err.attempts(), err.id()});
                         what = err.message();
                     }
                     (void)ctx.wait_for_signal<Decision>("decision");
                     return what;
                 })
            .signal<Decision>("decision");
    };
    std::string run;
    {
        Engine& e = db.open(0);
        run = test::start_waiting(e, "fragile").id;
        CHECK(calls == 1);
        CHECK(test::count_events(e, run, EventType::step_failed) == 1);
        auto t = e.trace(run);
        REQUIRE_FALSE(t.entries.empty());
        CHECK(t.entries[0].kind == "step");
        CHECK(t.entries[0].name == "boom");
        REQUIRE(t.entries[0].error);
        CHECK(t.entries[0].error->message == "disk on fire");
        db.close();
    }
    Engine& e = db.open(0);
    CHECK(e.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
    e.poll();
    REQUIRE(status_of(e, run) == RunStatus::completed);
    CHECK(calls == 1);
    CHECK(e.result<std::string>(run) == "disk on fire");
    REQUIRE(observed.size() == 2);  // first execution, then the replay after reopen
    for (const Observed& o : observed) {
        CHECK(o.step == "boom");
        CHECK(o.type == "std::runtime_error");
        CHECK(o.message == "disk on fire");
        CHECK(o.attempts == 1);
        CHECK(o.id == "abide.step.failed");
    }
}

TEST_CASE("a retried step waits on a durable backoff timer, survives a reopen and then succeeds",
          "[step][retry][timer][reopen]") {
    test::Reopenable db;
    int attempts = 0;
    std::vector<std::uint32_t> attempt_numbers;
    db.define = [&](Engine& e) {
        e.define("flaky", [&](Context& ctx) {
            return ctx.step("call_api", StepOptions{RetryPolicy{3, 10s}}, [&](StepContext& sc) {
                ++attempts;
                attempt_numbers.push_back(sc.attempt());
                if (attempts < 3) throw std::runtime_error("503 from upstream");
                return 42;
            });
        });
    };
    std::string run;
    {
        Engine& e = db.open();
        const TimePoint t0 = db.clock();
        run = e.start("flaky").id;
        auto p = e.poll();
        CHECK(attempts == 1);
        CHECK(p.waiting == 1);
        const WaitInfo wait = test::waiting_on(e, run, WaitKind::retry, "call_api");
        REQUIRE(wait.deadline);
        CHECK(*wait.deadline == t0 + 10s);
        CHECK(e.next_deadline() == t0 + 10s);
        CHECK(p.next_deadline == t0 + 10s);
        CHECK(test::count_events(e, run, EventType::step_retrying) == 1);

        db.clock.advance(9s);
        p = e.poll();
        CHECK(p.timers_fired == 0);
        CHECK(attempts == 1);
        CHECK(status_of(e, run) == RunStatus::waiting);

        db.clock.advance(1s);  // exactly at the deadline
        p = e.poll();
        CHECK(p.timers_fired == 1);
        CHECK(attempts == 2);
        auto info = e.status(run);
        REQUIRE(info->waiting);
        CHECK(info->waiting->kind == WaitKind::retry);
        CHECK(info->waiting->deadline == db.clock() + 20s);  // multiplier 2
        db.close();
    }
    Engine& e = db.open();
    CHECK(status_of(e, run) == RunStatus::waiting);
    CHECK(e.next_deadline() == db.clock() + 20s);
    e.poll();
    CHECK(attempts == 2);
    db.clock.advance(20s);
    auto p = e.poll();
    CHECK(p.timers_fired == 1);
    CHECK(p.completed == 1);
    REQUIRE(status_of(e, run) == RunStatus::completed);
    CHECK(e.result<int>(run) == 42);
    CHECK(attempts == 3);
    CHECK(attempt_numbers == std::vector<std::uint32_t>{1, 2, 3});
    CHECK_FALSE(e.next_deadline());
}

TEST_CASE_METHOD(test::EngineFixture, "a step that exhausts its attempts raises StepError with the last failure",
                 "[step][retry][error]") {
    int attempts = 0;
    engine.define("hopeless", [&](Context& ctx) {
        try {
            ctx.step("call_api", StepOptions{RetryPolicy{2, 1s}}, [&]() -> int {
                ++attempts;
                throw std::runtime_error("failure #" + std::to_string(attempts));
            });
        } catch (const StepError& e) {
            return std::to_string(e.attempts()) + " " + e.message();
        }
        return std::string("unreachable");
    });
    auto run = engine.start("hopeless");
    engine.poll();
    CHECK(attempts == 1);
    clock.advance(1s);
    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(attempts == 2);
    CHECK(engine.result<std::string>(run) == "2 failure #2");
    // Nothing more is scheduled.
    clock.advance(1h);
    CHECK(engine.poll().timers_fired == 0);
    CHECK(attempts == 2);
}

// ---- timers ---------------------------------------------------------------------

TEST_CASE("ctx.sleep parks the run on a durable timer until the clock passes it", "[sleep][timer][reopen]") {
    const bool reopen = GENERATE(false, true);
    CAPTURE(reopen);
    test::Reopenable db;
    int before = 0, after = 0;
    db.define = [&](Engine& e) {
        e.define("nap", [&](Context& ctx) {
            ctx.step("before", [&] { ++before; });
            ctx.sleep(1h);
            ctx.step("after", [&] { ++after; });
            return after;
        });
    };
    Engine* e = &db.open();
    const TimePoint deadline = db.clock() + 1h;
    auto run = e->start("nap").id;
    auto p = e->poll();
    CHECK(p.waiting == 1);
    CHECK(p.next_deadline == deadline);
    auto info = e->status(run);
    REQUIRE(info);
    CHECK(info->status == RunStatus::waiting);
    REQUIRE(info->waiting);
    CHECK(info->waiting->kind == WaitKind::sleep);
    CHECK(info->waiting->deadline == deadline);
    CHECK(e->next_deadline() == deadline);
    CHECK(test::count_events(*e, run, EventType::sleeping) == 1);

    if (reopen) {
        e = &db.open(0);
        CHECK(e->next_deadline() == deadline);
    }
    db.clock.advance(59min);
    p = e->poll();
    CHECK(p.timers_fired == 0);
    CHECK(after == 0);
    CHECK(status_of(*e, run) == RunStatus::waiting);

    db.clock.advance(1min);
    p = e->poll();
    CHECK(p.timers_fired == 1);
    CHECK(p.completed == 1);
    REQUIRE(status_of(*e, run) == RunStatus::completed);
    CHECK(before == 1);
    CHECK(after == 1);
    CHECK_FALSE(e->next_deadline());
    CHECK(test::count_events(*e, run, EventType::woke) == 1);
}

TEST_CASE_METHOD(test::EngineFixture, "wait_for_signal returns nothing when its timeout passes", "[wait][timeout]") {
    engine
        .define("approval",
                [&](Context& ctx) {
                    auto d = ctx.wait_for_signal<Decision>("decision", 24h);
                    return d ? d->status : std::string("timed_out");
                })
        .signal<Decision>("decision");
    auto run = engine.start("approval");
    engine.poll();
    CHECK(engine.next_deadline() == clock() + 24h);
    clock.advance(23h);
    engine.poll();
    CHECK(status_of(engine, run) == RunStatus::waiting);
    clock.advance(1h);
    auto p = engine.poll();
    CHECK(p.timers_fired == 1);
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(engine.result<std::string>(run) == "timed_out");
    CHECK(test::count_events(engine, run.id, EventType::timed_out) == 1);
    // Too late now.
    CHECK(engine.signal(run, "decision", test::approved()).outcome == SignalOutcome::run_finished);
}

TEST_CASE_METHOD(test::EngineFixture,
                 "suspend raises TimeoutError when its timeout passes, and the workflow can catch it",
                 "[suspend][timeout]") {
    engine.define("review", [&](Context& ctx) {
        try {
            auto data = ctx.suspend("approve", {{"doc", "D-1"}}, 2h);
            return data.dump();
        } catch (const TimeoutError& e) {
            return "timeout:" + e.step_key() + ":" + e.id();
        }
    });
    auto run = engine.start("review");
    engine.poll();
    const WaitInfo wait = test::waiting_on(engine, run, WaitKind::suspend, "approve");
    CHECK(wait.data == json{{"doc", "D-1"}});
    clock.advance(2h);
    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(engine.result<std::string>(run) == "timeout:approve:abide.wait.timeout");
}

namespace {
/// Wait metadata of the workflow's own type; counts its encodings.
struct RefundRequest {
    std::string ticket_id;
    std::int64_t amount = 0;
};
int refund_request_encodings = 0;
void to_json(json& j, const RefundRequest& r) {
    ++refund_request_encodings;
    j = json{{"ticket_id", r.ticket_id}, {"amount", r.amount}};
}
}  // namespace

TEST_CASE_METHOD(test::EachCacheSize,
                 "typed wait metadata and suspend data are stored as their JSON, and replay does not encode them again",
                 "[wait][suspend][metadata][replay]") {
    test::Reopenable db;
    refund_request_encodings = 0;
    db.define = [&](Engine& e) {
        e.define("refund",
                 [&](Context& ctx, const std::string& ticket) {
                     const RefundRequest request{ticket, 4900};
                     auto d = ctx.wait_for_signal<Decision>("decision", 24h, request);   // with a timeout
                     auto again = ctx.wait_for_signal<Decision>("decision", request);    // without one
                     json note = ctx.suspend("sign_off", RefundRequest{ticket + "-b", 10});
                     return d->status + "/" + again.status + "/" + note.dump();
                 })
            .signal<Decision>("decision");
    };
    Engine& e = db.open(cache_size);
    const std::string run = test::start_waiting(e, "refund", std::string("T-1")).id;
    const json stored = {{"ticket_id", "T-1"}, {"amount", 4900}};
    const WaitInfo first = test::waiting_on(e, run, WaitKind::signal, "decision");
    CHECK(first.data == stored);
    REQUIRE(first.deadline);  // the duration was the timeout, not metadata
    CHECK(refund_request_encodings == 1);

    CHECK(e.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
    e.poll();
    const WaitInfo second = test::waiting_on(e, run, WaitKind::signal, "decision");
    CHECK(second.data == stored);
    CHECK_FALSE(second.deadline);
    // A replay (every resume, with cache_size 0) passes the first wait
    // without encoding its metadata: one encoding per wait reached live.
    CHECK(refund_request_encodings == 2);

    CHECK(e.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
    e.poll();
    const WaitInfo third = test::waiting_on(e, run, WaitKind::suspend, "sign_off");
    CHECK(third.data == json{{"ticket_id", "T-1-b"}, {"amount", 10}});
    CHECK(refund_request_encodings == 3);
    std::size_t waiting_events = 0;
    for (const Event& ev : e.events())
        if (ev.run_id == run && ev.type == EventType::waiting) {
            CHECK(ev.data == stored);
            ++waiting_events;
        }
    CHECK(waiting_events == 2);

    db.close();
    Engine& reopened = db.open(cache_size);
    CHECK(reopened.resume(run, "sign_off", json{{"ok", true}}).outcome == SignalOutcome::delivered);
    reopened.poll();
    REQUIRE(status_of(reopened, run) == RunStatus::completed);
    CHECK(reopened.result<std::string>(run) == R"(approved/approved/{"ok":true})");
    CHECK(refund_request_encodings == 3);
}

// ---- journaled sources of time, randomness and ids ---------------------------------

TEST_CASE("ctx.now, ctx.random and ctx.uuid return the recorded values on replay", "[determinism][replay][reopen]") {
    test::Reopenable db;
    std::vector<TimePoint> times;
    std::vector<std::uint64_t> randoms;
    std::vector<std::string> uuids;
    db.define = [&](Engine& e) {
        e.define("sources",
                 [&](Context& ctx) {
                     times.push_back(ctx.now());
                     randoms.push_back(ctx.random());
                     randoms.push_back(ctx.random());
                     uuids.push_back(ctx.uuid());
                     uuids.push_back(ctx.uuid());
                     (void)ctx.wait_for_signal<Decision>("decision");
                     return uuids.back();
                 })
            .signal<Decision>("decision");
    };
    const TimePoint started = db.clock();
    std::string run;
    {
        Engine& e = db.open(0);
        run = test::start_waiting(e, "sources").id;
        db.close();
    }
    db.clock.advance(3h);
    Engine& e = db.open(0);
    CHECK(e.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
    e.poll();
    REQUIRE(status_of(e, run) == RunStatus::completed);

    REQUIRE(times.size() == 2);
    CHECK(times[0] == started);
    CHECK(times[1] == times[0]);
    REQUIRE(randoms.size() == 4);
    CHECK(randoms[2] == randoms[0]);
    CHECK(randoms[3] == randoms[1]);
    CHECK(randoms[0] != randoms[1]);
    REQUIRE(uuids.size() == 4);
    CHECK(uuids[2] == uuids[0]);
    CHECK(uuids[3] == uuids[1]);
    CHECK(uuids[0] != uuids[1]);
    const std::regex v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
    for (const auto& u : uuids) {
        CAPTURE(u);
        CHECK(std::regex_match(u, v4));
    }
    CHECK(e.result<std::string>(run) == uuids[1]);
}

// ---- cancellation ---------------------------------------------------------------

namespace {

/// A workflow that reserves, waits for a decision, and releases the
/// reservation when cancelled; it then returns or rethrows.
struct CancellableOrder {
    int reserved = 0, released = 0;
    std::vector<std::string> reasons;
    bool rethrow = false;

    void define(Engine& e) {
        e.define("order",
                 [this](Context& ctx) -> std::string {
                     ctx.step("reserve", [this] { ++reserved; });
                     try {
                         return ctx.wait_for_signal<Decision>("decision").status;
                     } catch (const Cancelled& c) {
                         reasons.push_back(c.reason());
                         ctx.step("release", [this] { ++released; });
                         if (rethrow) throw;
                         return "compensated";
                     }
                 })
            .signal<Decision>("decision");
    }
};

/// An engine with the cancellable order defined.
struct OrderFixture : test::EngineFixture {
    CancellableOrder wf;
    OrderFixture() { wf.define(engine); }
};

}  // namespace

TEST_CASE_METHOD(OrderFixture, "cancelling a waiting run raises Cancelled at the wait, where it can compensate",
                 "[cancel]") {
    const bool rethrow = GENERATE(false, true);
    CAPTURE(rethrow);
    wf.rethrow = rethrow;
    auto run = engine.start("order");
    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::waiting);

    auto c = engine.cancel(run, "customer withdrew");
    CHECK(c.outcome == CancelOutcome::cancelled);
    CHECK(status_of(engine, run) == RunStatus::ready);
    CHECK(engine.cancel(run, "again").outcome == CancelOutcome::already_requested);

    auto p = engine.poll();
    CHECK(wf.reasons == std::vector<std::string>{"customer withdrew"});
    CHECK(wf.reserved == 1);
    CHECK(wf.released == 1);
    auto info = engine.status(run);
    REQUIRE(info);
    if (rethrow) {
        CHECK(p.cancelled == 1);
        CHECK(info->status == RunStatus::cancelled);
        REQUIRE(info->error);
        CHECK(info->error->id == "abide.run.cancelled");
        CHECK_THROWS_AS(engine.result<std::string>(run), UsageError);
        CHECK(test::count_events(engine, run.id, EventType::cancelled) >= 1);
    } else {
        CHECK(p.completed == 1);
        CHECK(info->status == RunStatus::completed);
        CHECK(engine.result<std::string>(run) == "compensated");
    }
    CHECK(engine.cancel(run, "too late").outcome == CancelOutcome::run_finished);
    CHECK(engine.signal(run, "decision", test::approved()).outcome == SignalOutcome::run_finished);
}

TEST_CASE_METHOD(OrderFixture, "cancelling a run that is not yet waiting is seen at its next wait", "[cancel]") {
    auto run = engine.start("order");
    REQUIRE(status_of(engine, run) == RunStatus::ready);
    auto c = engine.cancel(run, "duplicate order");
    CHECK(c.outcome == CancelOutcome::requested);
    CHECK(engine.cancel(run, "again").outcome == CancelOutcome::already_requested);
    engine.poll();
    CHECK(wf.reserved == 1);  // the step before the wait still ran
    CHECK(wf.reasons == std::vector<std::string>{"duplicate order"});
    CHECK(wf.released == 1);
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(engine.result<std::string>(run) == "compensated");
}

TEST_CASE_METHOD(test::EngineFixture,
                 "cancelling a sleeping run raises Cancelled from ctx.sleep and its timer no longer fires",
                 "[cancel][sleep][timer]") {
    std::vector<std::string> reasons;
    int woke = 0;
    engine.define("nap", [&](Context& ctx) {
        try {
            ctx.sleep(1h);
            ctx.step("woke", [&] { ++woke; });
            return std::string("slept");
        } catch (const Cancelled& c) {
            reasons.push_back(c.reason());
            throw;
        }
    });
    auto run = engine.start("nap");
    engine.poll();
    REQUIRE(engine.next_deadline());
    CHECK(engine.cancel(run, "shutting down").outcome == CancelOutcome::cancelled);
    CHECK_FALSE(engine.next_deadline());
    auto p = engine.poll();
    CHECK(p.cancelled == 1);
    CHECK(status_of(engine, run) == RunStatus::cancelled);
    CHECK(reasons == std::vector<std::string>{"shutting down"});
    clock.advance(2h);
    CHECK(engine.poll().timers_fired == 0);
    CHECK(woke == 0);
    CHECK(status_of(engine, run) == RunStatus::cancelled);
}

TEST_CASE_METHOD(test::EngineFixture, "cancel reports unknown runs and finished runs without writing", "[cancel]") {
    engine.define("quick", [](Context&) { return 1; });
    auto run = engine.start("quick");
    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    const auto events_before = engine.events(0).size();
    CHECK(engine.cancel("no-such-run", "x").outcome == CancelOutcome::unknown_run);
    CHECK(engine.cancel(run, "x").outcome == CancelOutcome::run_finished);
    CHECK(engine.events(0).size() == events_before);
    CHECK(status_of(engine, run) == RunStatus::completed);
}

// ---- the determinism guard ---------------------------------------------------------

namespace {

enum class Change { renamed_step, step_where_the_journal_waits, swallowed_by_catch };

/// The original workflow: load, wait for a decision, act.
struct Original {
    int loads = 0, acts = 0;
    void define(Engine& e) {
        e.define("refund",
                 [this](Context& ctx) {
                     ctx.step("load", [this] { ++loads; });
                     auto d = ctx.wait_for_signal<Decision>("decision");
                     ctx.step("act", [this] { ++acts; });
                     return d.status;
                 })
            .signal<Decision>("decision");
    }
};

}  // namespace

TEST_CASE("changed workflow code stops the run with a nondeterminism error, and retry works after the fix",
          "[replay][nondeterminism][reopen]") {
    const Change change =
        GENERATE(Change::renamed_step, Change::step_where_the_journal_waits, Change::swallowed_by_catch);
    CAPTURE(static_cast<int>(change));
    test::Reopenable db;
    Original original;
    int changed_bodies = 0;

    std::string run;
    {
        Engine& e = db.open();
        original.define(e);
        run = test::start_waiting(e, "refund").id;
        db.close();
    }
    {
        Engine& e = db.open();
        e.define("refund",
                 [&](Context& ctx) -> std::string {
                     switch (change) {
                         case Change::renamed_step: {
                             ctx.step("load_v2", [&] { ++changed_bodies; });
                             return ctx.wait_for_signal<Decision>("decision").status;
                         }
                         case Change::step_where_the_journal_waits: {
                             ctx.step("load", [&] { ++changed_bodies; });
                             ctx.step("extra", [&] { ++changed_bodies; });
                             return ctx.wait_for_signal<Decision>("decision").status;
                         }
                         case Change::swallowed_by_catch:
                             try {
                                 ctx.step("load_v2", [&] { ++changed_bodies; });
                                 return ctx.wait_for_signal<Decision>("decision").status;
                             } catch (const std::exception&) {
                                 return "swallowed";
                             }
                     }
                     return "unreachable";
                 })
            .signal<Decision>("decision");
        CHECK(e.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
        auto p = e.poll();
        CHECK(p.failed == 1);
        const RunInfo info = test::failed_run(e, run);
        CHECK(info.error->id == "abide.replay.nondeterminism");
        const std::string& msg = info.error->message;
        CAPTURE(msg);
        if (change == Change::step_where_the_journal_waits) {
            CHECK_THAT(msg, Catch::Contains("position 1"));
            CHECK_THAT(msg, Catch::Contains("wait_for_signal 'decision'"));
            CHECK_THAT(msg, Catch::Contains("step 'extra'"));
        } else {
            CHECK_THAT(msg, Catch::Contains("position 0"));
            CHECK_THAT(msg, Catch::Contains("step 'load'"));
            CHECK_THAT(msg, Catch::Contains("step 'load_v2'"));
        }
        CHECK(changed_bodies == 0);
        CHECK(test::count_events(e, run, EventType::failed) == 1);
        CHECK_THROWS_AS(e.result<std::string>(run), UsageError);
        db.close();
    }
    Engine& e = db.open();
    original.define(e);
    REQUIRE(status_of(e, run) == RunStatus::failed);
    e.retry(run);
    CHECK(status_of(e, run) == RunStatus::ready);
    CHECK(test::count_events(e, run, EventType::retried) == 1);
    auto p = e.poll();
    CHECK(p.completed == 1);
    REQUIRE(status_of(e, run) == RunStatus::completed);
    CHECK(e.result<std::string>(run) == "approved");
    CHECK(original.loads == 1);
    CHECK(original.acts == 1);
    CHECK_THROWS_AS(e.retry(run), UsageError);  // only failed runs
}

TEST_CASE("a wait whose timeout the code dropped fails its run as nondeterminism when the journal holds the timeout",
          "[replay][nondeterminism][timeout]") {
    test::Reopenable db;
    db.define = [](Engine& e) {
        e.define("approval", [](Context& ctx) {
             auto d = ctx.wait_for_signal<Decision>("decision", 1h);
             (void)ctx.suspend("escalate");
             return d ? d->status : std::string("timed out");
         }).signal<Decision>("decision");
    };
    Engine& first = db.open(0);
    const std::string run = test::start_waiting(first, "approval").id;
    db.clock.advance(2h);
    first.poll();
    test::waiting_on(first, run, WaitKind::suspend, "escalate");
    db.define = [](Engine& e) {
        e.define("approval", [](Context& ctx) {
             auto d = ctx.wait_for_signal<Decision>("decision");  // the timeout is gone
             (void)ctx.suspend("escalate");
             return d.status;
         }).signal<Decision>("decision");
    };
    Engine& second = db.open(0);
    CHECK(second.resume(run, "escalate", json::object()).outcome == SignalOutcome::delivered);
    second.poll();
    const RunInfo info = test::failed_run(second, run);
    CHECK(info.error->id == "abide.replay.nondeterminism");
    CHECK_THAT(info.error->message, Catch::Contains("wait_for_signal 'decision' has no timeout"));
}

TEST_CASE_METHOD(test::EngineFixture, "a workflow waiting on a signal it did not declare fails with a clear error",
                 "[wait][usage]") {
    engine
        .define("sloppy",
                [](Context& ctx) {
                    auto d = ctx.wait_for_signal<Decision>("manager_approval", 1h);
                    return d ? d->status : std::string("none");
                })
        .signal<Decision>("decision");
    auto run = engine.start("sloppy");
    auto p = engine.poll();
    CHECK(p.failed == 1);
    const RunInfo info = test::failed_run(engine, run);
    CHECK(info.error->id == "abide.workflow.undeclared_signal");
    CHECK_THAT(info.error->message, Catch::Contains("manager_approval"));
    CHECK_THAT(info.error->message, Catch::Contains("sloppy"));
    CHECK_FALSE(engine.next_deadline());  // the wait was never recorded
    CHECK(engine.list_runs({.waiting_for = "manager_approval"}).empty());
}

// ---- exceptions inside workflows ---------------------------------------------------

TEST_CASE_METHOD(test::EngineFixture, "a fiber parked inside a catch block keeps its own exception",
                 "[fiber][exception]") {
    std::vector<std::string> caught;
    engine
        .define("catcher",
                [&](Context& ctx, const std::string& message) -> std::string {
                    try {
                        throw std::runtime_error(message);
                    } catch (const std::runtime_error& e) {
                        ctx.step("log", [&] { caught.push_back(e.what()); });
                        (void)ctx.wait_for_signal<Decision>("decision");
                        throw;
                    }
                })
        .signal<Decision>("decision");
    auto a = engine.start("catcher", std::string("boom-A"));
    auto b = engine.start("catcher", std::string("boom-B"));

    // The host is itself inside a catch block while it polls: its exception
    // must be the same afterwards.
    std::string host_saw;
    try {
        throw std::logic_error("host-exception");
    } catch (const std::logic_error&) {
        auto p = engine.poll();
        CHECK(p.waiting == 2);
        try {
            throw;
        } catch (const std::exception& e) {
            host_saw = e.what();
        }
    }
    CHECK(host_saw == "host-exception");
    CHECK_FALSE(std::current_exception());
    REQUIRE(status_of(engine, a) == RunStatus::waiting);
    REQUIRE(status_of(engine, b) == RunStatus::waiting);

    CHECK(engine.signal(b, "decision", test::approved()).outcome == SignalOutcome::delivered);
    engine.poll();
    CHECK_FALSE(std::current_exception());
    CHECK(engine.signal(a, "decision", test::approved()).outcome == SignalOutcome::delivered);
    engine.poll();
    CHECK_FALSE(std::current_exception());

    for (auto [run, expected] : {std::pair{a.id, "boom-A"}, std::pair{b.id, "boom-B"}}) {
        CAPTURE(run);
        const RunInfo info = test::failed_run(engine, run);
        CHECK(info.error->message == expected);
        CHECK(info.error->type == "std::runtime_error");
    }
    std::sort(caught.begin(), caught.end());
    CHECK(caught == std::vector<std::string>{"boom-A", "boom-B"});
}

// Counts the objects alive in workflow frames: a parked run evicted from the
// cache must have destroyed its frames' objects.
struct FrameObject {
    static inline int alive = 0;
    FrameObject() { ++alive; }
    FrameObject(const FrameObject&) { ++alive; }
    ~FrameObject() { --alive; }
};

namespace {

// A run that parks with a 1 h timeout: needed sooner than a wait with no
// deadline, so a full cache keeps it and evicts that wait instead.
void define_filler(Engine& e) {
    e.define("filler", [](Context& ctx) { (void)ctx.wait_for_signal<Decision>("decision", 1h); })
        .signal<Decision>("decision");
}

}  // namespace

TEST_CASE("a parked run evicted from the cache destroys its frames, whatever it waits on, and resumes by replay",
          "[fiber][cache][exception]") {
    test::Reopenable db;
    int failures_left = 1;
    db.define = [&](Engine& e) {
        e.define("parker",
                 [&](Context& ctx, const std::string& kind) -> std::string {
                     FrameObject held;
                     const std::string label = "parked on " + kind;  // owns heap memory: must be freed
                     if (kind == "signal") return label + ": " + ctx.wait_for_signal<Decision>("decision", 1h)->status;
                     if (kind == "suspend") return label + ": " + ctx.suspend("review").at("ok").dump();
                     if (kind == "sleep") {
                         ctx.sleep(1h);
                         return label;
                     }
                     return label + ": " + std::to_string(ctx.step("flaky", StepOptions{RetryPolicy{2, 1h}}, [&] {
                                if (failures_left-- > 0) throw std::runtime_error("not yet");
                                return 7;
                            }));
                 })
            .signal<Decision>("decision");
    };
    Engine& engine = db.open(1);  // one fiber stays cached; the other runs are evicted
    FrameObject::alive = 0;
    std::vector<std::string> runs;
    for (std::string kind : {"signal", "suspend", "sleep", "retry"}) {
        runs.push_back(test::start_waiting(engine, "parker", kind).id);
        CHECK(FrameObject::alive == 1);  // only the cached run's frame
    }
    CHECK(engine.signal(runs[0], "decision", test::approved()).outcome == SignalOutcome::delivered);
    CHECK(engine.resume(runs[1], "review", json{{"ok", true}}).outcome == SignalOutcome::delivered);
    db.clock.advance(2h);
    auto p = engine.poll();
    CHECK(p.completed == 4);
    CHECK(FrameObject::alive == 0);
    CHECK(test::completed_output<std::string>(engine, runs[0]) == "parked on signal: approved");
    CHECK(test::completed_output<std::string>(engine, runs[1]) == "parked on suspend: true");
    CHECK(test::completed_output<std::string>(engine, runs[2]) == "parked on sleep");
    CHECK(test::completed_output<std::string>(engine, runs[3]) == "parked on retry: 7");
}

TEST_CASE("however many runs park, the cache keeps at most cache_size fibers, and stats() counts them",
          "[fiber][cache]") {
    const std::size_t cache_size = GENERATE(std::size_t{0}, std::size_t{1}, std::size_t{8});
    test::Reopenable db;
    db.define = [&](Engine& e) {
        e.define("held",
                 [&](Context& ctx, const std::int64_t& i) -> std::int64_t {
                     FrameObject held;
                     return i + ctx.wait_for_signal<Decision>("decision", 1h)->approved_amount;
                 })
            .signal<Decision>("decision");
    };
    Engine& engine = db.open(cache_size);
    FrameObject::alive = 0;
    // 300 runs park, 100 started at a time, each batch in one poll.
    std::vector<std::string> runs;
    for (std::int64_t batch = 0; batch < 3; ++batch) {
        std::vector<StartRequest> starts;
        for (std::int64_t i = 0; i < 100; ++i) starts.push_back({"held", batch * 100 + i, {}});
        for (const RunHandle& h : engine.start_batch(starts)) runs.push_back(h.id);
        CHECK(engine.poll().waiting == 100);
        CHECK(engine.stats().cached_runs == cache_size);
        CHECK(FrameObject::alive == static_cast<int>(cache_size));  // the evicted runs' frames are gone
    }
    CHECK(engine.stats().waiting == 300);
    std::vector<SignalRequest> decisions;
    for (const std::string& run : runs) decisions.push_back({run, "decision", test::approved(1)});
    for (const SignalResult& r : engine.signal_batch(decisions)) CHECK(r.outcome == SignalOutcome::delivered);
    CHECK(engine.poll().completed == 300);
    CHECK(engine.stats().cached_runs == 0);
    CHECK(FrameObject::alive == 0);
    CHECK(test::completed_output<std::int64_t>(engine, runs[0]) == 1);
    CHECK(test::completed_output<std::int64_t>(engine, runs[299]) == 300);
}

TEST_CASE("a full cache evicts the run needed last: the latest deadline, none counting as latest, then the last parked",
          "[fiber][cache]") {
    test::Reopenable db;
    std::map<std::string, int> executions;  // workflow code outside steps runs again on each replay
    db.define = [&](Engine& e) {
        e.define("waiter",
                 [&](Context& ctx, const std::string& kind) -> std::string {
                     ++executions[kind];
                     if (kind == "sleep") {
                         ctx.sleep(1min);
                         return "slept";
                     }
                     if (kind == "no-deadline") return ctx.wait_for_signal<Decision>("decision").status;
                     return ctx.wait_for_signal<Decision>("decision", 7 * 24h)->status;
                 })
            .signal<Decision>("decision");
    };
    Engine& engine = db.open(2);
    // Parked in this order, one poll each. Needed soonest first: the sleep
    // (1 minute), then the two week-long waits by parking order, then the
    // wait with no deadline. A recency order would keep the last two instead.
    std::map<std::string, std::string> runs;
    for (std::string kind : {"week-first", "sleep", "no-deadline", "week-second"}) {
        runs[kind] = engine.start("waiter", kind).id;
        CHECK(engine.poll().waiting == 1);
    }
    CHECK(engine.stats().cached_runs == 2);
    for (std::string kind : {"week-first", "no-deadline", "week-second"})
        CHECK(engine.signal(runs[kind], "decision", test::approved()).outcome == SignalOutcome::delivered);
    db.clock.advance(2min);
    CHECK(engine.poll().completed == 4);
    CHECK(executions == std::map<std::string, int>{
                            {"week-first", 1}, {"sleep", 1}, {"no-deadline", 2}, {"week-second", 2}});
    CHECK(test::completed_output<std::string>(engine, runs["sleep"]) == "slept");
    CHECK(test::completed_output<std::string>(engine, runs["no-deadline"]) == "approved");
}

TEST_CASE("a run evicted while it waits inside a handler unwinds through nested catch blocks, which see it in flight",
          "[fiber][cache][exception]") {
    test::Reopenable db;
    int rethrown = 0, typed_handler_saw_it = 0, unwinding_destructors = 0;
    // Destroyed while the eviction's unwind is in flight: std::uncaught_exceptions
    // counts it there, as it would a thrown exception.
    struct Witness {
        int& unwinding;
        ~Witness() {
            if (std::uncaught_exceptions() > 0) ++unwinding;
        }
    };
    db.define = [&](Engine& e) {
        e.define("escalate",
                 [&](Context& ctx) -> std::string {
                     try {
                         ctx.step("charge", [] { throw std::runtime_error("card declined"); });
                     } catch (const StepError&) {
                         // Ask a person, from inside the handler: the fiber parks
                         // with StepError caught, and the eviction's unwind must
                         // nest in it, then leave both handlers.
                         try {
                             Witness witness{unwinding_destructors};
                             auto d = ctx.wait_for_signal<Decision>("decision");
                             return d.status;
                         } catch (const std::exception&) {
                             ++typed_handler_saw_it;
                             throw;
                         } catch (...) {
                             ++rethrown;
                             throw;
                         }
                     }
                     return "charged";
                 })
            .signal<Decision>("decision");
        define_filler(e);
    };
    Engine& engine = db.open(1);
    auto run = test::start_waiting(engine, "escalate");
    (void)test::start_waiting(engine, "filler");  // evicts `run`
    CHECK(rethrown == 1);
    CHECK(typed_handler_saw_it == 0);
    CHECK(unwinding_destructors == 1);
    CHECK(std::uncaught_exceptions() == 0);
    test::waiting_on(engine, run, WaitKind::signal, "decision");
    CHECK(engine.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
    CHECK(engine.poll().completed == 1);
    CHECK(test::completed_output<std::string>(engine, run) == "approved");
    CHECK(rethrown == 1);  // the replay took the same path and nothing unwound it
}

TEST_CASE("a workflow that swallows the unwind of an evicted run is unwound again at its next call, or stays parked",
          "[fiber][cache][exception]") {
    test::Reopenable db;
    int swallowed = 0, after_runs = 0;
    db.define = [&](Engine& e) {
        e.define("swallower",
                 [&](Context& ctx, const std::string& how) -> std::string {
                     std::string status = "none";
                     try {
                         status = ctx.wait_for_signal<Decision>("decision").status;
                     } catch (...) {  // breaks the rule "rethrow from every catch (...)"
                         ++swallowed;
                         if (how == "return") return "swallowed";
                     }
                     ctx.step("after", [&] { ++after_runs; });
                     return status;
                 })
            .signal<Decision>("decision");
        define_filler(e);
    };
    Engine& engine = db.open(1);
    auto call_again = test::start_waiting(engine, "swallower", std::string("call again"));
    // Waits as long as call_again and parked later: evicted as it parks.
    auto give_back = test::start_waiting(engine, "swallower", std::string("return"));
    (void)test::start_waiting(engine, "filler");  // evicts call_again
    CHECK(swallowed == 2);
    CHECK(after_runs == 0);
    // Neither the swallowed unwind nor the early return wrote anything.
    for (const auto& run : {call_again, give_back}) {
        CAPTURE(run.id);
        test::waiting_on(engine, run, WaitKind::signal, "decision");
        CHECK(test::count_events(engine, run.id, EventType::step_completed) == 0);
    }
    for (const auto& run : {call_again, give_back})
        CHECK(engine.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
    CHECK(engine.poll().completed == 2);
    CHECK(test::completed_output<std::string>(engine, call_again) == "approved");
    CHECK(test::completed_output<std::string>(engine, give_back) == "approved");
    CHECK(after_runs == 2);
}

TEST_CASE_METHOD(test::EngineFixture, "a workflow that throws ends failed with its message, and result() refuses it",
                 "[exception][result]") {
    engine.define("broken", [](Context& ctx) -> int {
        ctx.step("fine", [] { return 1; });
        throw std::runtime_error("the ledger is closed");
    });
    auto run = engine.start("broken");
    auto p = engine.poll();
    CHECK(p.failed == 1);
    const RunInfo info = test::failed_run(engine, run);
    CHECK(info.error->id == "abide.workflow.exception");
    CHECK(info.error->type == "std::runtime_error");
    CHECK(info.error->message == "the ledger is closed");
    CHECK_FALSE(info.output);
    CHECK_THROWS_AS(engine.result<int>(run), UsageError);
    try {
        (void)engine.result<int>(run);
    } catch (const UsageError& e) {
        CHECK_THAT(e.what(), Catch::Contains("failed"));
        CHECK_THAT(e.what(), Catch::Contains("the ledger is closed"));
    }
    CHECK(test::count_events(engine, run.id, EventType::failed) == 1);
}
