// The host side: starting runs, handing in signals and resumes, queries, the
// event log, traces, threads, and the storage file.
#include "lmdb_support.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>


#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace abide;
using namespace std::chrono_literals;
using test::Decision;
using test::status_of;

namespace {

/// The workflows most host tests drive: an approval that waits for a
/// "decision" signal, and a review that suspends on "approve".
struct Workflows {
    std::atomic<int> loads{0}, acts{0};

    void define(Engine& e) {
        e.define("approval",
                 [this](Context& ctx, const std::string& ticket) {
                     auto amount = ctx.step("load", [this] {
                         ++loads;
                         return 4900;
                     });
                     auto d = ctx.wait_for_signal<Decision>("decision", 24h, {{"ticket", ticket}, {"amount", amount}});
                     if (!d) return std::string("timed_out");
                     ctx.step("act", [this] { ++acts; });
                     return d->status + " by " + d->reviewer_id;
                 })
            .signal<Decision>("decision");
        e.define("review",
                 [this](Context& ctx) {
                     auto data = ctx.suspend("approve", {{"doc", "D-1"}}, 24h);
                     ctx.step("act", [this] { ++acts; });
                     return data.at("status").get<std::string>();
                 })
            .resume<Decision>("approve");
    }
};

/// Most host tests: an engine with the approval and the review defined.
struct HostFixture : test::EngineFixture {
    Workflows wf;
    HostFixture() { wf.define(engine); }
};

/// Starts an approval of `ticket` and polls until it waits for its decision.
RunHandle park_approval(Engine& engine, const std::string& ticket = "T-1") {
    return test::start_waiting(engine, "approval", ticket);
}

/// What a refused call must leave untouched.
struct Snapshot {
    std::size_t events = 0;
    std::optional<RunStatus> status;
    std::uint32_t journal_entries = 0;
    bool waiting = false;
    bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const Engine& engine, std::string_view run) {
    Snapshot s;
    s.events = engine.events(0, std::size_t{1} << 20).size();
    if (auto info = engine.status(run)) {
        s.status = info->status;
        s.journal_entries = info->journal_entries;
        s.waiting = info->waiting.has_value();
    }
    return s;
}

std::string read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

// ---- start ----------------------------------------------------------------------

TEST_CASE("start is durable and makes the run ready for the next poll", "[start][reopen]") {
    Workflows wf;
    test::Reopenable db;
    db.define = [&](Engine& e) { wf.define(e); };
    std::string run;
    {
        Engine& engine = db.open();
        auto h = engine.start("approval", std::string("T-1"));
        CHECK(h.created);
        CHECK_FALSE(h.id.empty());
        run = h.id;
        auto info = engine.status(run);
        REQUIRE(info);
        CHECK(info->status == RunStatus::ready);
        CHECK(info->workflow == "approval");
        CHECK(info->input == "T-1");
        CHECK(wf.loads == 0);  // nothing runs until poll
        auto ev = engine.events(0);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0].type == EventType::started);
        CHECK(ev[0].run_id == run);
        CHECK(ev[0].data.is_null());  // the input lives in the run record, not in every event
    }
    Engine& engine = db.open();
    CHECK(status_of(engine, run) == RunStatus::ready);
    CHECK(engine.list_runs({.status = RunStatus::ready}).size() == 1);
    auto p = engine.poll();
    CHECK(p.runs_advanced == 1);
    CHECK(p.waiting == 1);
    CHECK(status_of(engine, run) == RunStatus::waiting);
    CHECK(wf.loads == 1);
}

TEST_CASE("list_runs and stats tell ready runs from running ones", "[start][queries]") {
    test::TempDir dir;
    test::ManualClock clock;
    Engine engine(test::test_options(dir, clock));
    std::vector<std::string> seen_running;
    Stats seen_stats;
    engine.define("look", [&](Context& ctx, const std::string&) {
        return ctx.step("look", [&] {
            // Inside its step the run is running; the other run is still ready.
            for (const RunInfo& r : engine.list_runs({.status = RunStatus::running})) seen_running.push_back(r.id);
            seen_stats = engine.stats();
            return 1;
        });
    });
    engine.define("idle", [](Context& ctx, const std::string&) { return ctx.step("idle", [] { return 0; }); });
    (void)engine.start("look", std::string("x"), StartOptions{.run_id = "looker"});
    (void)engine.start("idle", std::string("y"), StartOptions{.run_id = "idler"});
    CHECK(engine.list_runs({.status = RunStatus::ready}).size() == 2);
    CHECK(engine.list_runs({.status = RunStatus::ready, .workflow = std::string("idle")}).size() == 1);
    CHECK(engine.stats().ready == 2);
    // One round takes both: inside it both are running.
    engine.poll();
    CHECK(seen_running == std::vector<std::string>{"looker", "idler"});
    CHECK(seen_stats.running == 2);
    CHECK(seen_stats.ready == 0);
    CHECK(engine.stats().completed == 2);
    CHECK(engine.list_runs({.status = RunStatus::completed}).size() == 2);
    CHECK(engine.list_runs({.status = RunStatus::running}).empty());
}

TEST_CASE_METHOD(HostFixture, "starting a chosen run id again returns the existing run and writes nothing",
                 "[start][idempotency]") {
    auto first = engine.start("approval", std::string("T-1"), StartOptions{.run_id = "x"});
    CHECK(first.created);
    CHECK(first.id == "x");
    engine.poll();
    const Snapshot before = snapshot(engine, "x");

    auto second = engine.start("approval", std::string("T-2"), StartOptions{.run_id = "x"});
    CHECK_FALSE(second.created);
    CHECK(second.id == "x");
    CHECK(snapshot(engine, "x") == before);
    CHECK(engine.list_runs().size() == 1);
    CHECK(engine.status("x")->input == "T-1");
    CHECK(wf.loads == 1);

    const auto events_before = engine.events(0).size();
    CHECK_THROWS_AS(engine.start_json("review", json(), StartOptions{.run_id = "x"}), UsageError);
    CHECK(engine.events(0).size() == events_before);
    CHECK(engine.list_runs().size() == 1);
}

TEST_CASE_METHOD(HostFixture, "starting an unknown workflow throws UsageError", "[start][usage]") {
    CHECK_THROWS_AS(engine.start("no_such_workflow", std::string("T-1")), UsageError);
    CHECK_THROWS_AS(engine.start("no_such_workflow"), UsageError);
    CHECK(engine.events(0).empty());
    CHECK(engine.list_runs().empty());
}

TEST_CASE_METHOD(HostFixture, "a start whose input does not fit the workflow throws PayloadError and writes nothing",
                 "[start][payload]") {
    CHECK_THROWS_AS(engine.start("approval", 42), PayloadError);
    CHECK_THROWS_AS(engine.start_json("approval", json{{"ticket", "T-1"}}), PayloadError);
    CHECK_THROWS_AS(engine.start("approval", std::string("T-1"), StartOptions{.run_id = std::string(600, 'r')}),
                    UsageError);
    CHECK(engine.events(0).empty());
    CHECK(engine.list_runs().empty());
    CHECK(engine.poll().runs_advanced == 0);
}

// ---- signals ---------------------------------------------------------------------

TEST_CASE_METHOD(HostFixture, "a signal to a waiting run is delivered and the run continues", "[signal]") {
    auto run = park_approval(engine);
    CHECK(engine.next_deadline() == clock() + 24h);
    auto r = engine.signal(run, "decision",
                           R"({"status":"approved","reviewer_id":"u_7","reason":"ok","approved_amount":4900})");
    CHECK(r.outcome == SignalOutcome::delivered);
    CHECK(r.accepted());
    CHECK_FALSE(r.message.empty());
    CHECK(status_of(engine, run) == RunStatus::ready);
    CHECK_FALSE(engine.next_deadline());  // the wait's timeout is gone with the wait
    CHECK(test::count_events(engine, run.id, EventType::signal_delivered) == 1);
    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(engine.result<std::string>(run) == "approved by u_7");
    CHECK(wf.acts == 1);
}

TEST_CASE_METHOD(HostFixture, "a signal sent before the run waits is buffered and consumed by the wait",
                 "[signal][buffer]") {
    auto run = engine.start("approval", std::string("T-1"));
    REQUIRE(status_of(engine, run) == RunStatus::ready);
    auto r = engine.signal(run, "decision", test::approved());
    CHECK(r.outcome == SignalOutcome::buffered);
    CHECK(r.accepted());
    CHECK(test::count_events(engine, run.id, EventType::signal_buffered) == 1);
    auto p = engine.poll();
    CHECK(p.completed == 1);
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(engine.result<std::string>(run) == "approved by u_123");
    CHECK(wf.acts == 1);
    CHECK(test::count_events(engine, run.id, EventType::signal_dropped) == 0);
}

TEST_CASE_METHOD(HostFixture, "a signal id that was accepted before is reported duplicate and stored once",
                 "[signal][duplicate]") {
    auto run = engine.start("approval", std::string("T-1"));
    const bool waiting_first = GENERATE(true, false);
    CAPTURE(waiting_first);
    if (waiting_first) engine.poll();

    auto first = engine.signal(run, "decision", test::approved(), "sig-1");
    CHECK(first.outcome == (waiting_first ? SignalOutcome::delivered : SignalOutcome::buffered));
    const Snapshot before = snapshot(engine, run);
    Decision other = test::approved();
    other.status = "rejected";
    auto again = engine.signal(run, "decision", other, "sig-1");
    CHECK(again.outcome == SignalOutcome::duplicate);
    CHECK_FALSE(again.accepted());
    CHECK(snapshot(engine, run) == before);

    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(engine.result<std::string>(run) == "approved by u_123");
    CHECK(wf.acts == 1);
    // One signal: buffered once if it came early, delivered once (to the wait
    // it was handed to, or to the wait that consumed it).
    CHECK(test::count_events(engine, run.id, EventType::signal_buffered) == (waiting_first ? 0u : 1u));
    CHECK(test::count_events(engine, run.id, EventType::signal_delivered) == 1);
    CHECK(test::count_events(engine, run.id, EventType::signal_dropped) == 0);

    // After the run finished, the same id is still a duplicate; a new one is too late.
    const Snapshot finished = snapshot(engine, run);
    CHECK(engine.signal(run, "decision", test::approved(), "sig-1").outcome == SignalOutcome::duplicate);
    CHECK(engine.signal(run, "decision", test::approved(), "sig-2").outcome == SignalOutcome::run_finished);
    CHECK(snapshot(engine, run) == finished);
}

TEST_CASE_METHOD(HostFixture, "refused signals say why and write nothing", "[signal][refusal]") {
    auto run = park_approval(engine);
    const Snapshot before = snapshot(engine, run);

    SECTION("unknown run") {
        auto r = engine.signal("no-such-run", "decision", test::approved());
        CHECK(r.outcome == SignalOutcome::unknown_run);
        CHECK_THAT(r.message, Catch::Contains("no-such-run"));
    }
    SECTION("payload that is not JSON") {
        auto r = engine.signal(run, "decision", "{status: approved");
        CHECK(r.outcome == SignalOutcome::invalid_payload);
        CHECK_THAT(r.message, Catch::Contains("JSON"));
    }
    SECTION("JSON followed by a NUL byte and more bytes") {
        const std::string text = json(test::approved()).dump() + std::string(1, '\0') + "[[[garbage";
        auto r = engine.signal(run, "decision", text);
        CHECK(r.outcome == SignalOutcome::invalid_payload);
        CHECK_THAT(r.message, Catch::Contains("NUL byte at offset " + std::to_string(text.find('\0'))));
    }
    SECTION("JSON of the wrong shape") {
        auto r = engine.signal(run, "decision", R"({"status": 5, "reviewer_id": "u_1"})");
        CHECK(r.outcome == SignalOutcome::invalid_payload);
        CHECK_THAT(r.message, Catch::Contains("signal 'decision'"));
        CHECK_THAT(r.message, Catch::Contains("Decision"));
        CHECK_THAT(r.message, Catch::Contains("[json.exception."));
    }
    SECTION("undeclared signal name") {
        auto r = engine.signal(run, "escalation", test::approved());
        CHECK(r.outcome == SignalOutcome::undeclared);
        CHECK_THAT(r.message, Catch::Contains("escalation"));
        CHECK_THAT(r.message, Catch::Contains("decision"));  // what it does declare
    }
    CHECK(snapshot(engine, run) == before);
    CHECK(status_of(engine, run) == RunStatus::waiting);

    // The run still takes a good signal afterwards.
    CHECK(engine.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::completed);

    const Snapshot finished = snapshot(engine, run);
    auto r = engine.signal(run, "decision", test::approved());
    CHECK(r.outcome == SignalOutcome::run_finished);
    CHECK_FALSE(r.accepted());
    CHECK(snapshot(engine, run) == finished);
}

TEST_CASE("a signal payload or input over max_payload_bytes is refused and writes nothing",
          "[signal][refusal][limits]") {
    Workflows wf;
    test::Reopenable db;
    auto options = db.options();
    options.max_payload_bytes = 512;
    Engine& engine = db.open(options);
    wf.define(engine);
    auto run = park_approval(engine);
    const Snapshot before = snapshot(engine, run);
    Decision big = test::approved();
    big.reason = std::string(1000, 'x');
    CHECK(engine.signal(run, "decision", big).outcome == SignalOutcome::invalid_payload);
    CHECK(engine.signal(run, "decision", json(big).dump()).outcome == SignalOutcome::invalid_payload);
    CHECK(snapshot(engine, run) == before);
    CHECK_THROWS_AS(engine.start("approval", std::string(1000, 'T')), PayloadError);
    CHECK(snapshot(engine, run) == before);
    CHECK(engine.list_runs().size() == 1);
    CHECK(engine.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
}

TEST_CASE_METHOD(HostFixture, "a signal can carry a C++ value, encoded by its codec", "[signal][codec]") {
    auto run = park_approval(engine);
    auto r = engine.signal(run, "decision", Decision{"approved", "u_42", "fine", 100});
    CHECK(r.outcome == SignalOutcome::delivered);
    engine.poll();
    CHECK(engine.result<std::string>(run) == "approved by u_42");
}

TEST_CASE_METHOD(HostFixture, "resume continues a suspended run, with the outcomes of signal", "[resume][suspend]") {
    auto run = engine.start("review");
    engine.poll();
    const WaitInfo wait = test::waiting_on(engine, run, WaitKind::suspend, "approve");
    CHECK(wait.data == json{{"doc", "D-1"}});
    CHECK(wait.deadline == clock() + 24h);
    auto ev = engine.events(0);
    auto suspended = std::find_if(ev.begin(), ev.end(), [](const Event& e) { return e.type == EventType::suspended; });
    REQUIRE(suspended != ev.end());
    CHECK(suspended->topic == "approve/" + run.id);
    CHECK(suspended->data == json{{"doc", "D-1"}});
    CHECK(suspended->deadline == clock() + 24h);

    const Snapshot before = snapshot(engine, run);
    CHECK(engine.resume(run, "approve", "not json").outcome == SignalOutcome::invalid_payload);
    CHECK(engine.resume(run, "approve", R"({"status":"approved"})").outcome == SignalOutcome::invalid_payload);
    CHECK(engine.resume("no-such-run", "approve", test::approved()).outcome == SignalOutcome::unknown_run);
    CHECK(snapshot(engine, run) == before);

    auto r = engine.resume(run, "approve", test::approved(), "resume-1");
    CHECK(r.outcome == SignalOutcome::delivered);
    CHECK(engine.resume(run, "approve", test::approved(), "resume-1").outcome == SignalOutcome::duplicate);
    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    CHECK(engine.result<std::string>(run) == "approved");
    CHECK(wf.acts == 1);
    auto resumed = engine.events(0);
    auto it = std::find_if(resumed.begin(), resumed.end(), [](const Event& e) { return e.type == EventType::resumed; });
    REQUIRE(it != resumed.end());
    CHECK(it->topic == "approve/" + run.id);
    CHECK(it->data.at("reviewer_id") == "u_123");
    CHECK(engine.resume(run, "approve", test::approved()).outcome == SignalOutcome::run_finished);

    // Sent before the suspend, it is kept and consumed by it.
    auto early = engine.start("review");
    CHECK(engine.resume(early, "approve", R"({"status":"rejected","reviewer_id":"u_9","reason":"no",)"
                                          R"("approved_amount":0})")
              .outcome == SignalOutcome::buffered);
    engine.poll();
    REQUIRE(status_of(engine, early) == RunStatus::completed);
    CHECK(engine.result<std::string>(early) == "rejected");
}

// ---- queries ---------------------------------------------------------------------

TEST_CASE_METHOD(test::EngineFixture, "status of an unknown run is nothing", "[query]") {
    CHECK_FALSE(engine.status("nope"));
    CHECK_THROWS_AS(engine.trace("nope"), UsageError);
    CHECK_THROWS_AS(engine.result<int>("nope"), UsageError);
}

TEST_CASE_METHOD(test::EngineFixture,
                 "list_runs filters by status, by workflow and by what runs wait for (an approval inbox)",
                 "[query][inbox]") {
    engine
        .define("refund",
                [](Context& ctx, const int& n) {
                    auto d = ctx.wait_for_signal<Decision>("refund_decision", 72h,
                                                           {{"ticket", "T-" + std::to_string(n)}, {"amount", n * 100}});
                    return d ? d->status : std::string("timed_out");
                })
        .signal<Decision>("refund_decision");
    engine
        .define("other",
                [](Context& ctx) {
                    (void)ctx.wait_for_signal<Decision>("other_signal");
                    return 0;
                })
        .signal<Decision>("other_signal");
    engine.define("quick", [](Context&) { return 1; });

    std::vector<std::string> inbox_ids;
    std::vector<TimePoint> since;
    for (int i = 0; i < 5; ++i) {
        inbox_ids.push_back(engine.start("refund", i).id);
        since.push_back(clock());
        engine.poll();
        clock.advance(1min);
        if (i == 2) {
            engine.start("other");
            engine.start("quick");
            engine.poll();
        }
    }
    const std::string done = engine.list_runs({.workflow = "quick"}).at(0).id;

    CHECK(engine.list_runs().size() == 7);
    CHECK(engine.list_runs({.status = RunStatus::waiting}).size() == 6);
    CHECK(engine.list_runs({.status = RunStatus::completed}).size() == 1);
    CHECK(engine.list_runs({.status = RunStatus::completed}).at(0).id == done);
    CHECK(engine.list_runs({.workflow = "refund"}).size() == 5);
    CHECK(engine.list_runs({.status = RunStatus::waiting, .workflow = "other"}).size() == 1);
    CHECK(engine.list_runs({.status = RunStatus::completed, .workflow = "refund"}).empty());

    auto inbox = engine.list_runs({.waiting_for = "refund_decision"});
    REQUIRE(inbox.size() == 5);
    for (std::size_t i = 0; i < inbox.size(); ++i) {
        CAPTURE(i);
        const RunInfo& r = inbox[i];
        CHECK(r.id == inbox_ids[i]);  // oldest first
        CHECK(r.status == RunStatus::waiting);
        REQUIRE(r.waiting);
        CHECK(r.waiting->kind == WaitKind::signal);
        CHECK(r.waiting->name == "refund_decision");
        CHECK(r.waiting->data == json{{"ticket", "T-" + std::to_string(i)}, {"amount", static_cast<int>(i) * 100}});
        CHECK(r.waiting->since == since[i]);
        CHECK(r.waiting->deadline == since[i] + 72h);
    }

    // Pages of two, each continuing after the last id of the previous page.
    std::vector<std::string> paged;
    std::string after;
    for (int page = 0; page < 4; ++page) {
        auto got = engine.list_runs({.waiting_for = "refund_decision", .limit = 2, .after = after});
        CHECK(got.size() == (page < 2 ? 2u : page == 2 ? 1u : 0u));
        for (const auto& r : got) paged.push_back(r.id);
        if (!got.empty()) after = got.back().id;
    }
    CHECK(paged == inbox_ids);

    // Answering one takes it out of the inbox.
    CHECK(engine.signal(inbox_ids[1], "refund_decision", test::approved()).outcome == SignalOutcome::delivered);
    engine.poll();
    auto left = engine.list_runs({.waiting_for = "refund_decision"});
    REQUIRE(left.size() == 4);
    CHECK(std::none_of(left.begin(), left.end(), [&](const RunInfo& r) { return r.id == inbox_ids[1]; }));
}

// ---- events ---------------------------------------------------------------------

TEST_CASE_METHOD(HostFixture, "the event log is ordered and read from a cursor", "[events]") {
    auto run = park_approval(engine);
    CHECK(engine.signal(run, "decision", test::approved()).outcome == SignalOutcome::delivered);
    engine.poll();

    auto all = engine.events(0);
    REQUIRE(all.size() >= 6);
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].seq == i + 1);
    std::vector<EventType> types;
    for (const Event& e : all) types.push_back(e.type);
    CHECK(types == std::vector<EventType>{EventType::started, EventType::step_completed, EventType::waiting,
                                          EventType::signal_delivered, EventType::step_completed,
                                          EventType::completed});
    CHECK(all[1].name == "load");
    CHECK(all[1].data.is_null());  // results live in the journal: trace(run) shows them
    CHECK(all[2].name == "decision");
    CHECK(all[2].data == json{{"ticket", "T-1"}, {"amount", 4900}});
    CHECK(all[2].deadline == clock() + 24h);
    CHECK(all[3].data.at("reviewer_id") == "u_123");
    CHECK(all[5].data == "approved by u_123");
    CHECK(all[0].to_json().at("event_type") == "started");

    const std::uint64_t cursor = all.back().seq;
    CHECK(engine.events(cursor).empty());
    auto second = engine.start("approval", std::string("T-2"));
    engine.poll();
    auto newer = engine.events(cursor);
    REQUIRE(newer.size() == 3);
    CHECK(newer[0].seq == cursor + 1);
    CHECK(newer[0].type == EventType::started);
    CHECK(newer[0].run_id == second.id);
    for (const Event& e : newer) CHECK(e.seq > cursor);
    auto limited = engine.events(0, 2);
    REQUIRE(limited.size() == 2);
    CHECK(limited[1].seq == 2);
}

TEST_CASE("on_event sees every event after its commit and may call the engine", "[events][callback]") {
    test::TempDir dir;
    test::ManualClock clock;
    auto options = test::test_options(dir, clock);
    Engine* self = nullptr;
    std::vector<Event> seen;
    std::vector<bool> visible_when_called;
    std::string waiter;
    std::vector<SignalOutcome> chained;
    options.on_event = [&](const Event& e) {
        seen.push_back(e);
        if (!self) return;
        auto stored = self->events(e.seq - 1, 1);
        visible_when_called.push_back(stored.size() == 1 && stored[0].seq == e.seq && stored[0].type == e.type);
        if (e.type == EventType::completed && e.workflow == "first")
            chained.push_back(self->signal(waiter, "decision", test::approved()).outcome);
    };
    Engine engine(options);
    self = &engine;
    Workflows wf;
    wf.define(engine);
    engine.define("first", [](Context& ctx) { return ctx.step("compute", [] { return 7; }); });

    waiter = park_approval(engine).id;
    engine.start("first");
    engine.poll();
    if (status_of(engine, waiter) != RunStatus::completed) engine.poll();
    CHECK(status_of(engine, waiter) == RunStatus::completed);
    CHECK(chained == std::vector<SignalOutcome>{SignalOutcome::delivered});
    const std::string reviewed = engine.start("review").id;  // suspends; its resume has a topic
    engine.poll();
    CHECK(engine.resume(reviewed, "approve", test::approved()).outcome == SignalOutcome::delivered);
    engine.poll();

    auto stored = engine.events(0);
    REQUIRE(seen.size() == stored.size());
    for (std::size_t i = 0; i < seen.size(); ++i) {
        CAPTURE(i);
        CHECK(seen[i].seq == stored[i].seq);
        CHECK(seen[i].type == stored[i].type);
        CHECK(seen[i].run_id == stored[i].run_id);
        CHECK(seen[i].workflow == stored[i].workflow);
        CHECK(seen[i].name == stored[i].name);
        CHECK(seen[i].topic == stored[i].topic);
        CHECK(seen[i].data == stored[i].data);
    }
    CHECK(std::count_if(seen.begin(), seen.end(), [&](const Event& e) {
              return e.type == EventType::resumed && e.topic == "approve/" + reviewed;
          }) == 1);
    CHECK(std::all_of(visible_when_called.begin(), visible_when_called.end(), [](bool b) { return b; }));
    CHECK(visible_when_called.size() == seen.size());
}

TEST_CASE("a cancel made while its run executes, between two of its commits, is not lost", "[events][callback][cancel]") {
    test::TempDir dir;
    test::ManualClock clock;
    std::vector<CancelOutcome> outcomes;
    const RunInfo run = test::act_between_commits(dir, clock, [&](Engine& engine, const std::string& id) {
        outcomes.push_back(engine.cancel(id, "changed my mind").outcome);
    });
    CHECK(outcomes == std::vector<CancelOutcome>{CancelOutcome::requested});
    CHECK(run.status == RunStatus::cancelled);
}

TEST_CASE_METHOD(test::EngineFixture,
                 "two decisions for one run in one batch: the first wakes it, the second waits for its next wait",
                 "[signal][batch]") {
    // Both are checked against the record the batch read before writing; the
    // second must see the record as the first left it (waiting no more).
    engine
        .define("two_decisions",
                [](Context& ctx) -> std::int64_t {
                    const std::int64_t first = ctx.wait_for_signal<Decision>("decision", 1h)->approved_amount;
                    return first * 10 + ctx.wait_for_signal<Decision>("decision", 1h)->approved_amount;
                })
        .signal<Decision>("decision");
    const std::string run = test::start_waiting(engine, "two_decisions").id;
    const std::vector<SignalRequest> both{{run, "decision", test::approved(1), "first"},
                                          {run, "decision", test::approved(2), "second"}};
    std::vector<SignalOutcome> outcomes;
    for (const SignalResult& r : engine.signal_batch(both)) outcomes.push_back(r.outcome);
    CHECK(outcomes == std::vector<SignalOutcome>{SignalOutcome::delivered, SignalOutcome::buffered});
    CHECK(engine.poll().completed == 1);
    CHECK(test::completed_output<std::int64_t>(engine, run) == 12);
}

namespace {
/// A decision whose decoding runs `interrupt` once: the signal's validation
/// then stands between the batch's read of the run and its write.
std::function<void()> interrupt;
struct InterruptedDecision {
    std::string status;
};
void from_json(const json& j, InterruptedDecision& d) {
    d.status = j.at("status").get<std::string>();
    if (auto act = std::exchange(interrupt, {})) act();
}
}  // namespace

TEST_CASE_METHOD(test::EngineFixture,
                 "a run cancelled after a signal batch read it and before the batch writes gets the signal buffered",
                 "[signal][batch][cancel]") {
    // Another thread's cancel, committed while signal_batch validates: the
    // batch must not deliver into the wait the cancel already ended.
    engine
        .define("cancellable",
                [](Context& ctx) -> std::string {
                    return ctx.wait_for_signal<InterruptedDecision>("decision", 1h)->status;
                })
        .signal<InterruptedDecision>("decision");
    const std::string run = test::start_waiting(engine, "cancellable").id;
    CancelOutcome cancelled{};
    interrupt = [&] { cancelled = engine.cancel(run, "withdrawn").outcome; };
    const std::vector<SignalRequest> one{{run, "decision", json{{"status", "approved"}}, "late"}};
    CHECK(engine.signal_batch(one).at(0).outcome == SignalOutcome::buffered);
    CHECK(cancelled == CancelOutcome::cancelled);
    engine.poll();
    const auto info = engine.status(run);
    REQUIRE(info);
    CHECK(info->status == RunStatus::cancelled);
}

// ---- trace -----------------------------------------------------------------------

TEST_CASE_METHOD(HostFixture,
                 "a trace shows steps with results, the wait with its metadata, the signal and the outcome",
                 "[trace]") {
    auto run = park_approval(engine, "T-9");
    clock.advance(2h);
    CHECK(engine.signal(run, "decision", Decision{"approved", "u_123", "receipt checked", 4900}, "sig-7").outcome ==
          SignalOutcome::delivered);
    engine.poll();

    auto trace = engine.trace(run);
    CHECK(trace.run.status == RunStatus::completed);
    json j = trace.to_json();
    CAPTURE(j.dump(2));
    CHECK(j.at("run_id") == run.id);
    CHECK(j.at("workflow") == "approval");
    CHECK(j.at("status") == "completed");
    CHECK(j.at("input") == "T-9");
    CHECK(j.at("output") == "approved by u_123");
    const json& entries = j.at("entries");
    auto find = [&](const std::string& kind, const std::string& name) -> const json* {
        for (const json& e : entries)
            if (e.at("kind") == kind && e.value("name", "") == name) return &e;
        return nullptr;
    };
    const json* load = find("step", "load");
    REQUIRE(load);
    CHECK(load->at("value") == 4900);
    const json* wait = find("wait", "decision");
    REQUIRE(wait);
    CHECK(wait->at("value") == json{{"ticket", "T-9"}, {"amount", 4900}});
    CHECK(wait->contains("deadline"));
    const json* wake = find("wake", "decision");
    REQUIRE(wake);
    CHECK(wake->at("value").at("reviewer_id") == "u_123");
    CHECK(wake->at("value").at("reason") == "receipt checked");
    CHECK_THAT(wake->at("detail").get<std::string>(), Catch::Contains("sig-7"));
    CHECK(find("step", "act"));

    const std::string text = trace.render();
    CAPTURE(text);
    for (const char* needle : {"approval", "completed", "load", "4900", "decision", "T-9", "u_123", "receipt checked",
                               "sig-7", "act", "approved by u_123"})
        CHECK_THAT(text, Catch::Contains(needle));
}

// ---- threads ----------------------------------------------------------------------

TEST_CASE_METHOD(test::EngineFixture,
                 "signals from four threads while another thread polls complete every run exactly once", "[threads]") {
    constexpr std::size_t runs = 200;
    std::vector<std::atomic<int>> before(runs), after(runs);
    engine
        .define("job",
                [&](Context& ctx, const std::size_t& i) {
                    ctx.step("before", [&] { ++before[i]; });
                    auto d = ctx.wait_for_signal<Decision>("decision");
                    ctx.step("after", [&] { ++after[i]; });
                    return d.approved_amount;
                })
        .signal<Decision>("decision");
    auto id = [](std::size_t i) { return "job-" + std::to_string(i); };
    for (std::size_t i = 0; i < runs; ++i) engine.start("job", i, StartOptions{.run_id = id(i)});
    engine.poll();
    REQUIRE(engine.list_runs({.status = RunStatus::waiting, .limit = 1000}).size() == runs);

    std::atomic<bool> senders_done{false};
    std::atomic<std::size_t> delivered{0};
    std::thread poller([&] {
        const auto give_up = std::chrono::steady_clock::now() + 120s;
        while (std::chrono::steady_clock::now() < give_up) {
            engine.poll();
            if (senders_done && engine.list_runs({.status = RunStatus::completed, .limit = 1000}).size() == runs) break;
        }
    });
    std::vector<std::thread> senders;
    for (std::size_t t = 0; t < 4; ++t)
        senders.emplace_back([&, t] {
            for (std::size_t i = t; i < runs; i += 4) {
                Decision d = test::approved(static_cast<std::int64_t>(i));
                if (engine.signal(id(i), "decision", d).outcome == SignalOutcome::delivered) ++delivered;
            }
        });
    for (auto& s : senders) s.join();
    senders_done = true;
    poller.join();

    CHECK(delivered == runs);
    auto completed = engine.list_runs({.status = RunStatus::completed, .limit = 1000});
    REQUIRE(completed.size() == runs);
    std::map<std::string, std::size_t> completions;
    for (const Event& e : engine.events(0, 100000))
        if (e.type == EventType::completed) ++completions[e.run_id];
    for (std::size_t i = 0; i < runs; ++i) {
        CAPTURE(i);
        CHECK(before[i] == 1);
        CHECK(after[i] == 1);
        CHECK(completions[id(i)] == 1);
        CHECK(engine.result<std::int64_t>(id(i)) == static_cast<std::int64_t>(i));
    }
}

TEST_CASE("two threads polling at once never execute the same run concurrently", "[threads]") {
    test::Reopenable db;
    auto options = db.options();
    options.max_runs_per_round = 3;  // so that both pollers find work
    Engine& engine = db.open(options);
    constexpr std::size_t runs = 40;
    std::vector<std::atomic<int>> in_flight(runs), bodies(runs);
    std::atomic<int> overlaps{0};
    engine
        .define("busy",
                [&](Context& ctx, const std::size_t& i) {
                    auto body = [&] {
                        if (in_flight[i].fetch_add(1) != 0) ++overlaps;
                        std::this_thread::sleep_for(200us);
                        in_flight[i].fetch_sub(1);
                        ++bodies[i];
                    };
                    for (int k = 0; k < 3; ++k) ctx.step("a" + std::to_string(k), body);
                    (void)ctx.wait_for_signal<Decision>("decision");
                    for (int k = 0; k < 3; ++k) ctx.step("b" + std::to_string(k), body);
                    return i;
                })
        .signal<Decision>("decision");
    auto id = [](std::size_t i) { return "busy-" + std::to_string(i); };

    std::atomic<bool> stop{false};
    auto poll_loop = [&] {
        while (!stop) engine.poll();
    };
    std::thread p1(poll_loop), p2(poll_loop);
    for (std::size_t i = 0; i < runs; ++i) engine.start("busy", i, StartOptions{.run_id = id(i)});
    std::vector<bool> signalled(runs, false);
    const auto give_up = std::chrono::steady_clock::now() + 120s;
    std::size_t completed = 0;
    while (completed < runs && std::chrono::steady_clock::now() < give_up) {
        for (std::size_t i = 0; i < runs; ++i) {
            if (signalled[i]) continue;
            auto info = engine.status(id(i));
            if (info && info->status == RunStatus::waiting) {
                CHECK(engine.signal(id(i), "decision", test::approved()).outcome == SignalOutcome::delivered);
                signalled[i] = true;
            }
        }
        completed = engine.list_runs({.status = RunStatus::completed, .limit = 1000}).size();
        std::this_thread::sleep_for(1ms);
    }
    stop = true;
    p1.join();
    p2.join();

    CHECK(completed == runs);
    CHECK(overlaps == 0);
    for (std::size_t i = 0; i < runs; ++i) {
        CAPTURE(i);
        CHECK(bodies[i] == 6);
    }
}

// ---- storage -----------------------------------------------------------------------

namespace {

/// Opening an engine with `options` must throw E with the error id `id`;
/// `opened` is the failure reported if it opens.
template <class E>
void check_open_refused(const EngineOptions& options, std::string_view id, const char* opened) {
    try {
        Engine engine(options);
        FAIL(opened);
    } catch (const E& e) {
        CHECK(e.id() == id);
    }
}

/// The database file holds `contents` that are not abide's: opening it must
/// be refused as a foreign file and leave the contents as they were.
void check_foreign_file_refused(const test::TempDir& dir, const std::string& contents, const char* opened) {
    check_open_refused<FormatError>(test::test_options(dir, test::ManualClock()), "abide.storage.foreign_file", opened);
    CHECK(read_bytes(dir.db()) == contents);
}

void define_store(Engine& engine) {
    engine.define("store", [](Context& ctx, const std::string& blob) {
        return ctx.step("measure", [&] { return blob.size(); });
    });
}

std::string blob(std::size_t i, std::size_t size = 16 * 1024) {
    std::string b(size, static_cast<char>('a' + i % 26));
    b.replace(0, std::to_string(i).size(), std::to_string(i));
    return b;
}

/// Every run of `ids` is stored with its input, blob(i), and has `status` when one is given.
void check_stored(const Engine& engine, const std::vector<std::string>& ids, std::optional<RunStatus> status = {}) {
    for (std::size_t i = 0; i < ids.size(); ++i) {
        CAPTURE(i);
        auto info = engine.status(ids[i]);
        REQUIRE(info);
        CHECK(info->input == blob(i));
        if (status) CHECK(info->status == *status);
    }
}

}  // namespace

TEST_CASE("a file that is not a database is refused and left unchanged", "[storage][format]") {
    test::TempDir dir;
    const std::size_t lines = GENERATE(std::size_t{1}, std::size_t{500});
    CAPTURE(lines);
    std::string text;
    for (std::size_t i = 0; i < lines; ++i) text += "quarterly figures, line " + std::to_string(i) + "\n";
    {
        std::ofstream out(dir.db(), std::ios::binary);
        out << text;
    }
    check_foreign_file_refused(dir, text, "a foreign file was opened");
}

TEST_CASE("an LMDB database that is not abide's is refused and left unchanged", "[storage][format][lmdb]") {
    test::TempDir dir;
    const std::string path = dir.db().string();
    test::write_foreign_lmdb(dir.db());
    const std::string bytes = read_bytes(dir.db());
    REQUIRE_FALSE(bytes.empty());
    check_foreign_file_refused(dir, bytes, "a foreign LMDB database was opened");
}

TEST_CASE("a tiny initial map grows as big payloads are written and nothing is lost", "[storage][map]") {
    test::Reopenable db;
    db.define = define_store;
    auto options = db.options();
    options.map_size = std::size_t{64} << 10;
    constexpr std::size_t runs = 40;
    std::vector<std::string> ids;
    {
        Engine& engine = db.open(options);
        for (std::size_t i = 0; i < runs; ++i) ids.push_back(engine.start("store", blob(i)).id);
        engine.poll();
        for (std::size_t i = 0; i < runs; ++i) {
            CAPTURE(i);
            REQUIRE(status_of(engine, ids[i]) == RunStatus::completed);
            CHECK(engine.result<std::size_t>(ids[i]) == 16 * 1024);
        }
    }
    db.close();
    CHECK(std::filesystem::file_size(db.dir.db()) > (std::size_t{64} << 10));
    Engine& engine = db.open(options);
    CHECK(engine.list_runs().size() == runs);
    check_stored(engine, ids, RunStatus::completed);
}

TEST_CASE("reaching max_map_size raises MapFullError and the earlier runs are intact", "[storage][map]") {
    test::Reopenable db;
    db.define = define_store;
    auto options = db.options();
    options.map_size = std::size_t{64} << 10;
    options.max_map_size = std::size_t{256} << 10;
    std::vector<std::string> ids;
    {
        Engine& engine = db.open(options);
        bool full = false;
        for (std::size_t i = 0; i < 200 && !full; ++i) {
            try {
                ids.push_back(engine.start("store", blob(i)).id);
            } catch (const MapFullError& e) {
                CHECK(e.id() == "abide.storage.map_full");
                full = true;
            }
        }
        REQUIRE(full);
        REQUIRE_FALSE(ids.empty());
        CHECK(engine.list_runs({.limit = 1000}).size() == ids.size());
        check_stored(engine, ids);
    }
    // Reopened with room to grow, every earlier run is there and runs.
    options.max_map_size = std::size_t{64} << 20;
    Engine& engine = db.open(options);
    CHECK(engine.list_runs({.limit = 1000}).size() == ids.size());
    engine.poll();
    check_stored(engine, ids, RunStatus::completed);
}

TEST_CASE("a database path that is a directory is a usage error", "[storage][usage]") {
    test::TempDir dir;
    test::ManualClock clock;
    auto options = test::test_options(dir, clock);
    options.path = dir.path();
    check_open_refused<UsageError>(options, "abide.options.path", "a directory was opened as a database");
}
