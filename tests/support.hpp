// Test support: a temporary database per test case and a clock tests move by hand.
#pragma once

#include <abide/abide.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unistd.h>

namespace abide::test {

/// A fresh directory removed at the end of the test case.
class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "abide-test-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
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

}  // namespace abide::test
