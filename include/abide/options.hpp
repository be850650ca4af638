// abide/options.hpp: plain option structs. Each field gives its default and
// what it costs or risks.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace abide {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;
/// Durations are microseconds; hours, seconds and milliseconds convert implicitly.
using Duration = std::chrono::microseconds;

struct Event;

/// What a commit survives. Only `synced` survives power loss; the others are
/// opt-in speed for tests and for data that can be rebuilt.
enum class Durability {
    /// Default. Every commit is on stable storage before any caller or
    /// workflow sees its effect. Survives process kills and power loss.
    synced,
    /// Data pages are synced, the meta page is not: after power loss the last
    /// commits may be lost, but the file stays consistent. Survives kills.
    meta_unsynced,
    /// Nothing is synced: survives a killed process (the OS keeps the pages)
    /// but power loss can corrupt the whole file. For tests and scratch data.
    unsynced,
};

struct EngineOptions {
    /// Database file; created if missing, with a "<path>-lock" file beside it.
    std::filesystem::path path{};
    Durability durability = Durability::synced;
    /// Initial size of the memory map. The file only grows as data is written.
    std::size_t map_size = std::size_t{64} << 20;
    /// The map doubles when full, up to this bound; past it writes fail with
    /// MapFullError and nothing is lost.
    std::size_t max_map_size = std::size_t{1} << 40;
    /// Stack of each workflow fiber, with a guard page below it. Deep recursion
    /// or big locals in workflow code (not step bodies' callees) need more.
    std::size_t fiber_stack_size = std::size_t{256} << 10;
    /// How many waiting runs keep their fiber in memory so that a signal
    /// resumes them without replay. 0 keeps none: every resume replays. When
    /// full, the run likely needed last is evicted: the latest deadline (a
    /// wait with none counts as latest), and of equal ones the last parked.
    std::size_t cache_size = 1024;
    /// Largest accepted payload (input, signal, resume data, step result), in
    /// bytes of JSON text. Larger ones are refused before anything is written.
    std::size_t max_payload_bytes = std::size_t{1} << 20;
    /// How many ready runs one poll round advances together (group commit).
    std::size_t max_runs_per_round = 1024;
    /// A run whose process died this many times in a row while running it
    /// (before it committed any progress) is quarantined instead of being run
    /// again, so one poisonous run cannot keep a service in a crash loop.
    /// Attempts are counted durably before any of its code runs; after a
    /// crash, runs under suspicion execute alone, so a crash is charged only
    /// to the run that caused it. 0 never quarantines.
    std::uint32_t quarantine_after = 3;
    /// The time source for deadlines, ctx.now() and event stamps. Inject a
    /// fake clock in tests. Must be safe to call from any thread.
    std::function<TimePoint()> clock{};
    /// Called after each commit, once for each event it made, on the thread
    /// that committed (which may be another caller's). It may call the engine.
    std::function<void(const Event&)> on_event{};
};

/// Retry policy for one step. Attempt n+1 starts after
/// min(initial_backoff * multiplier^(n-1), max_backoff); the wait is a durable
/// timer, so retries survive restarts. Step bodies are at-least-once anyway:
/// a body whose result was not yet committed when the process died runs again.
struct RetryPolicy {
    std::uint32_t max_attempts = 1;
    Duration initial_backoff = std::chrono::seconds(1);
    double multiplier = 2.0;
    Duration max_backoff = std::chrono::minutes(10);
};

struct StepOptions {
    RetryPolicy retry{};
};

struct StartOptions {
    /// Caller-chosen run id. Starting the same id again returns the existing
    /// run and creates nothing (idempotent start). Empty: abide makes a UUID.
    std::string run_id{};
};

}  // namespace abide
