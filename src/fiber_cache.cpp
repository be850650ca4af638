#include "fiber_cache.hpp"

#include "run_instance.hpp"

#include <limits>

namespace abide::detail {

std::unique_ptr<RunInstance> FiberCache::take(std::uint64_t run) {
    auto found = by_run_.find(run);
    if (found == by_run_.end()) return nullptr;
    std::unique_ptr<RunInstance> instance = std::move(found->second->second);
    by_need_.erase(found->second);
    by_run_.erase(found);
    return instance;
}

std::unique_ptr<RunInstance> FiberCache::keep(std::unique_ptr<RunInstance> instance) {
    if (capacity_ == 0) return instance;
    const std::int64_t deadline_us = instance->park_deadline_us();
    const Need need{deadline_us == 0 ? std::numeric_limits<std::int64_t>::max() : deadline_us, parked_count_++};
    // Full, and needed no sooner than every cached run: this one goes. (Its
    // `parked` is the largest yet, so an equal deadline also sends it.)
    if (by_need_.size() >= capacity_ && by_need_.rbegin()->first < need) return instance;
    const std::uint64_t run = instance->run_number();
    by_run_[run] = by_need_.emplace(need, std::move(instance)).first;
    if (by_need_.size() <= capacity_) return nullptr;
    auto last = std::prev(by_need_.end());
    std::unique_ptr<RunInstance> evicted = std::move(last->second);
    by_run_.erase(evicted->run_number());
    by_need_.erase(last);
    return evicted;
}

void FiberCache::clear() noexcept {
    by_run_.clear();
    by_need_.clear();
}

}  // namespace abide::detail
