// Test support: a temporary database per test case, a clock tests move by hand,
// the fixtures built on them, and checks that several test files share.
#pragma once

#include <abide/abide.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>

namespace abide::test {

/// A fresh directory removed at the end of the test case (kept, and named on
/// stderr, when ABIDE_KEEP_DIRS=1, to look at a failure's files).
class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "abide-test-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        if (const char* keep = std::getenv("ABIDE_KEEP_DIRS"); keep && std::string_view(keep) == "1") {
            std::fprintf(stderr, "kept %s\n", path_.c_str());
            return;
        }
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path db() const { return path_ / "abide.db"; }

private:
    std::filesystem::path path_;
};

/// A clock that only moves when told to; copies share the same time.
class ManualClock {
public:
    ManualClock() : us_(std::make_shared<std::atomic<std::int64_t>>(1'700'000'000'000'000)) {}
    TimePoint operator()() const {
        return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(us_->load())));
    }
    void advance(Duration d) { us_->fetch_add(d.count()); }

private:
    std::shared_ptr<std::atomic<std::int64_t>> us_;
};

/// A reviewer's answer: the signal and resume payload the workflow and host
/// tests send. Every field is required when decoding, so a payload of another
/// shape is refused.
struct Decision {
    std::string status, reviewer_id, reason;
    std::int64_t approved_amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Decision, status, reviewer_id, reason, approved_amount)

inline Decision approved(std::int64_t amount = 4900) { return {"approved", "u_123", "receipt checked", amount}; }

/// How many events of `type` the log holds for `run`.
inline std::size_t count_events(const Engine& engine, std::string_view run, EventType type) {
    std::size_t n = 0;
    for (const Event& e : engine.events(0, std::size_t{1} << 20))
        if (e.run_id == run && e.type == type) ++n;
    return n;
}

/// Options for a test engine: the temp database, the manual clock, and the
/// unsynced durability that is safe against everything but power loss (tests
/// do not pull the plug; the benchmarks measure synced commits).
inline EngineOptions test_options(const TempDir& dir, const ManualClock& clock, std::size_t cache_size = 1024) {
    EngineOptions o;
    o.path = dir.db();
    o.clock = clock;
    o.durability = Durability::unsynced;
    o.cache_size = cache_size;
    return o;
}

/// A fixture: a temporary database, a manual clock and an engine open on them.
struct EngineFixture {
    TempDir dir;
    ManualClock clock;
    Engine engine{test_options(dir, clock)};
};

/// A database file and a clock that outlive the engines opened on them, so a
/// test can destroy the engine and reopen the same file, or open it with
/// options of its own.
struct Reopenable {
    TempDir dir;
    ManualClock clock;
    std::unique_ptr<Engine> engine;
    /// When set, defines the workflows on every engine opened.
    std::function<void(Engine&)> define;

    EngineOptions options(std::size_t cache_size = 1024) const { return test_options(dir, clock, cache_size); }
    /// Closes the open engine, if any, and opens a new one on the same file.
    Engine& open(EngineOptions o) {
        engine.reset();
        engine = std::make_unique<Engine>(std::move(o));
        if (define) define(*engine);
        return *engine;
    }
    Engine& open(std::size_t cache_size = 1024) { return open(options(cache_size)); }
    void close() { engine.reset(); }
};

/// A fixture base that runs its test case twice: with cache_size 0, so that
/// every resume replays the workflow from its journal, and with the default
/// cache. Every failure report of the test case names the size, as
/// CAPTURE(cache_size) in its body would.
class EachCacheSize {
public:
    const std::size_t cache_size = GENERATE(std::size_t{0}, std::size_t{1024});

private:
    Catch::ScopedMessage captured_{Catch::MessageBuilder("CAPTURE", CATCH_INTERNAL_LINEINFO, Catch::ResultWas::Info)
                                   << "cache_size := " << cache_size};
};

/// The status of a run that must exist.
inline RunStatus status_of(const Engine& engine, std::string_view run) {
    auto info = engine.status(run);
    REQUIRE(info);
    return info->status;
}

/// What a run waits for: the run must be waiting, on a wait of `kind` named `name`.
inline WaitInfo waiting_on(const Engine& engine, std::string_view run, WaitKind kind, std::string_view name) {
    auto info = engine.status(run);
    REQUIRE(info);
    CAPTURE(info->error ? info->error->message : std::string());
    REQUIRE(info->status == RunStatus::waiting);
    REQUIRE(info->waiting);
    CHECK(info->waiting->kind == kind);
    CHECK(info->waiting->name == name);
    return *info->waiting;
}

/// Starts `workflow` and polls once; the run must then be waiting.
template <class... Input>
RunHandle start_waiting(Engine& engine, std::string_view workflow, const Input&... input) {
    RunHandle run = engine.start(workflow, input...);
    engine.poll();
    REQUIRE(status_of(engine, run) == RunStatus::waiting);
    return run;
}

/// The output of a run that must have completed.
template <class T>
T completed_output(const Engine& engine, std::string_view run) {
    REQUIRE(status_of(engine, run) == RunStatus::completed);
    return engine.result<T>(run);
}

/// A run that must have failed, with its error.
inline RunInfo failed_run(const Engine& engine, std::string_view run) {
    auto info = engine.status(run);
    REQUIRE(info);
    REQUIRE(info->status == RunStatus::failed);
    REQUIRE(info->error);
    return *info;
}

/// Starts a run of two steps ("first", "second") and a wait for signal
/// "decision", and executes it with one poll of an engine whose on_event
/// calls `act(engine, run id)` once: after the commit of step "first" and
/// before that of "second", between two commits of the poll that executes
/// the run. Returns the run as it stands after that poll.
inline RunInfo act_between_commits(const TempDir& dir, const ManualClock& clock,
                                   const std::function<void(Engine&, const std::string&)>& act) {
    auto options = test_options(dir, clock);
    Engine* self = nullptr;
    options.on_event = [&](const Event& e) {
        if (self && e.type == EventType::step_completed && e.name == "first") act(*self, e.run_id);
    };
    Engine engine(options);
    self = &engine;
    engine
        .define("steps_then_wait",
                [](Context& ctx) -> std::string {
                    ctx.step("first", [] { return 1; });
                    ctx.step("second", [] { return 2; });
                    return ctx.wait_for_signal<Decision>("decision", std::chrono::hours(1))->status;
                })
        .signal<Decision>("decision");
    const std::string run = engine.start("steps_then_wait").id;
    engine.poll();
    auto info = engine.status(run);
    REQUIRE(info);
    CHECK(count_events(engine, run, EventType::step_completed) == 2);
    return *info;
}

}  // namespace abide::test
