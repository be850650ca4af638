// Parked runs whose fiber is kept, so that what wakes them resumes the fiber
// instead of replaying the journal; EngineOptions::cache_size bounds them.
//
// Which run to let go when the cache is full: the one likely to be needed
// last. A parked run is woken by its deadline (a sleep, a retry's backoff,
// a wait's timeout) or by a signal before it, so the deadline bounds when it
// is needed. The cache evicts the run with the latest deadline, a run with
// none counting as latest; among equal deadlines, the one parked last. So
// short sleeps and retries stay cached while runs wait days for a person,
// and of those the oldest stay, which an inbox read oldest first (as
// list_runs gives them) resumes first. A recency order (LRU) would do the
// opposite there: it evicts the oldest approvals, the next to be decided.
//
// Evicting a run that is parking now (when its deadline is the latest) costs
// least: its stack is still in the processor's caches when it is unwound.
//
// Not thread-safe: EngineCore holds runs_mutex_ around every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>

namespace abide::detail {

class RunInstance;

class FiberCache {
public:
    explicit FiberCache(std::size_t capacity) : capacity_(capacity) {}
    FiberCache(const FiberCache&) = delete;
    FiberCache& operator=(const FiberCache&) = delete;

    /// Takes run's instance out of the cache; null if it is not cached.
    std::unique_ptr<RunInstance> take(std::uint64_t run);
    /// Keeps a parked instance, placed by its park's deadline. Returns the
    /// instance the bound leaves out (this one or an evicted one) for the
    /// caller to destroy outside its lock, or null.
    [[nodiscard]] std::unique_ptr<RunInstance> keep(std::unique_ptr<RunInstance> instance);
    std::size_t size() const noexcept { return by_need_.size(); }
    /// Unwinds every cached fiber.
    void clear() noexcept;

private:
    /// Later keys are needed later; the last one is evicted first.
    struct Need {
        std::int64_t deadline_us;  // INT64_MAX for none
        std::uint64_t parked;      // order of parking
        auto operator<=>(const Need&) const = default;
    };
    using Entries = std::map<Need, std::unique_ptr<RunInstance>>;

    std::size_t capacity_;
    std::uint64_t parked_count_ = 0;
    Entries by_need_;
    std::unordered_map<std::uint64_t, Entries::iterator> by_run_;
};

}  // namespace abide::detail
