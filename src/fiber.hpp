// Stackful fibers for workflow code, on Boost.Context.
//
// Invariants:
//  * a fiber's body never lets an exception out (the caller of Fiber wraps it);
//  * a fiber is only ever destroyed when finished: to get rid of a parked one,
//    the owner resumes it with a request to unwind (RunInstance does this), so
//    Boost's forced_unwind is never needed;
//  * each switch swaps the thread's C++ exception-handling globals, so a fiber
//    parked inside a catch block keeps its own caught-exception stack even when
//    other fibers (or another thread) run meanwhile;
//  * switches are annotated for AddressSanitizer and ThreadSanitizer, and a
//    parked fiber may be resumed by another thread than last time (a cached
//    run taken by another poller): see the TSan model in fiber.cpp.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace abide::detail {

/// Guard-paged stacks, reused: mmap+mprotect costs microseconds, reuse nothing.
/// Thread-safe.
class StackPool {
public:
    explicit StackPool(std::size_t stack_size, std::size_t keep = 256);
    ~StackPool();
    StackPool(const StackPool&) = delete;
    StackPool& operator=(const StackPool&) = delete;

    struct Stack {
        void* base = nullptr;  // lowest address of the mapping (the guard page)
        std::size_t size = 0;  // usable bytes above the guard page
        void* top() const { return static_cast<char*>(base) + guard_size() + size; }
    };
    Stack take();
    void give_back(Stack stack);
    std::size_t stack_size() const noexcept { return stack_size_; }
    static std::size_t guard_size();

private:
    std::size_t stack_size_;
    std::size_t keep_;
    std::mutex mutex_;
    std::vector<Stack> free_;
};

class Fiber {
public:
    /// Creates a fiber that will run `body` on a stack from `pool` at the first resume().
    Fiber(StackPool& pool, std::function<void()> body);
    /// Precondition: finished() or never resumed (see the invariants above).
    ~Fiber();
    Fiber(const Fiber&) = delete;
    Fiber& operator=(const Fiber&) = delete;

    /// From outside: runs the fiber until it calls yield() or its body returns.
    void resume();
    /// From inside the body: returns to the resume() that entered it.
    void yield();
    bool finished() const noexcept { return finished_; }
    bool started() const noexcept { return started_; }

    struct State;  // Boost and sanitizer state, defined in fiber.cpp

private:
    std::unique_ptr<State> state_;
    bool finished_ = false;
    bool started_ = false;
};

}  // namespace abide::detail
