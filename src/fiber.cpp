#include "fiber.hpp"

#include <abide/errors.hpp>

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>

#include <cxxabi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#if defined(__SANITIZE_ADDRESS__)
#define ABIDE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ABIDE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define ABIDE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ABIDE_TSAN 1
#endif
#endif

#ifdef ABIDE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef ABIDE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace abide::detail {

namespace {

/// The head of libsupc++'s per-thread __cxa_eh_globals: the stack of caught
/// exceptions and the count of exceptions in flight. std::uncaught_exceptions,
/// `throw;` and std::current_exception read them.
struct EhGlobals {
    void* caught_exceptions = nullptr;
    unsigned int uncaught_exceptions = 0;
};

EhGlobals* thread_eh_globals() { return reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals()); }

}  // namespace

// ---- StackPool ---------------------------------------------------------------

std::size_t StackPool::guard_size() {
    static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return page;
}

StackPool::StackPool(std::size_t stack_size, std::size_t keep) : keep_(keep) {
    const std::size_t page = guard_size();
    stack_size_ = (std::max<std::size_t>(stack_size, 16 * 1024) + page - 1) / page * page;
}

StackPool::~StackPool() {
    for (Stack& s : free_) munmap(s.base, s.size + guard_size());
}

StackPool::Stack StackPool::take() {
    {
        std::lock_guard lock(mutex_);
        if (!free_.empty()) {
            Stack s = free_.back();
            free_.pop_back();
            return s;
        }
    }
    const std::size_t total = stack_size_ + guard_size();
    void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        throw StorageError("abide.fiber.stack",
                           std::string("cannot map a fiber stack: ") + std::strerror(errno) +
                               "; lower EngineOptions::fiber_stack_size or cache_size");
    // The lowest page traps a stack overflow instead of corrupting memory.
    mprotect(base, guard_size(), PROT_NONE);
    return Stack{base, stack_size_};
}

void StackPool::give_back(Stack stack) {
#ifdef ABIDE_ASAN
    // Frames abandoned on this stack may leave poisoned redzones behind.
    ASAN_UNPOISON_MEMORY_REGION(static_cast<char*>(stack.base) + guard_size(), stack.size);
#endif
    std::lock_guard lock(mutex_);
    if (free_.size() < keep_) {
        free_.push_back(stack);
        return;
    }
    munmap(stack.base, stack.size + guard_size());
}

// ---- Fiber -------------------------------------------------------------------

struct Fiber::State {
    StackPool& pool;
    std::function<void()> body;
    boost::context::fiber inside;   // held while the fiber is not running
    boost::context::fiber outside;  // held by the running fiber: the way back
    EhGlobals eh;                   // the fiber's EH globals while it is not running
    const void* stack_bottom = nullptr;
    std::size_t stack_size = 0;
    // Bounds of the stack that last resumed the fiber (ASan). Refreshed on
    // every switch in, so a fiber resumed by another thread than last time
    // returns to that thread's stack.
    const void* outside_bottom = nullptr;
    std::size_t outside_size = 0;
#ifdef ABIDE_TSAN
    void* tsan_fiber = nullptr;  // the fiber's ThreadSanitizer context
#endif

    State(StackPool& p, std::function<void()> b) : pool(p), body(std::move(b)) {}

    /// Boost StackAllocator over the pool; records the bounds for ASan.
    struct Allocator {
        State* state;
        boost::context::stack_context allocate() {
            StackPool::Stack s = state->pool.take();
            boost::context::stack_context sc;
            sc.size = s.size;
            sc.sp = s.top();
            state->stack_bottom = static_cast<char*>(s.top()) - s.size;
            state->stack_size = s.size;
            return sc;
        }
        void deallocate(boost::context::stack_context& sc) noexcept {
            StackPool::Stack s;
            s.size = sc.size;
            s.base = static_cast<char*>(sc.sp) - sc.size - StackPool::guard_size();
            state->pool.give_back(s);
        }
    };

    // AddressSanitizer, inside the fiber: announce the switch back to the
    // resumer's stack, and complete a switch in (learning the resumer's stack).
    void asan_leave(void** fake_stack) {
#ifdef ABIDE_ASAN
        __sanitizer_start_switch_fiber(fake_stack, outside_bottom, outside_size);
#else
        (void)fake_stack;
#endif
    }
    void asan_entered(void* fake_stack) {
#ifdef ABIDE_ASAN
        __sanitizer_finish_switch_fiber(fake_stack, &outside_bottom, &outside_size);
#else
        (void)fake_stack;
#endif
    }
};

Fiber::Fiber(StackPool& pool, std::function<void()> body)
    : state_(std::make_unique<State>(pool, std::move(body))) {
    State* st = state_.get();
#ifdef ABIDE_TSAN
    st->tsan_fiber = __tsan_create_fiber(0);
#endif
    st->inside = boost::context::fiber(std::allocator_arg, State::Allocator{st},
                                       [st](boost::context::fiber&& caller) {
                                           st->outside = std::move(caller);
                                           st->asan_entered(nullptr);
                                           st->body();  // never throws (see header)
                                           // nullptr: this fiber's fake stack dies with it.
                                           st->asan_leave(nullptr);
                                           return std::move(st->outside);
                                       });
}

Fiber::~Fiber() {
#ifdef ABIDE_TSAN
    if (state_ && state_->tsan_fiber) __tsan_destroy_fiber(state_->tsan_fiber);
#endif
}

// ThreadSanitizer model: the fiber is a TSan context of its own, and only
// resume() switches TSan contexts, both ways: into the fiber just before the
// jump, and back to the resumer's own context just after the jump returns.
// The fiber never names the context it returns to, so nothing in the fiber's
// state depends on which thread resumed it last: a cached fiber that the next
// poll resumes on another thread switches from and back to that thread's
// context. Both switches synchronise (flags 0): everything the resumer did
// happens before the fiber continues, and everything the fiber did happens
// before the resumer continues; the handover of a parked fiber between
// threads is ordered by the engine's own locks.
//
// Why not switch in yield(): TSan keeps a shadow call stack per context, and
// every function return pops the current context's. With a switch inside the
// fiber, the frames between that switch and the jump (and, at the end of the
// body, the body's own frames) would return in the resumer's context and pop
// frames it never pushed, until its shadow stack underflows; reports then show
// "failed to restore the stack" or crash. Here each context pops only what it
// pushed: Boost's resume() is entered and left in the fiber's context on both
// sides of the jump.
void Fiber::resume() {
    started_ = true;
    State* st = state_.get();
    EhGlobals* globals = thread_eh_globals();
    const EhGlobals saved = *globals;
    *globals = st->eh;
    void* fake_stack = nullptr;
#ifdef ABIDE_ASAN
    __sanitizer_start_switch_fiber(&fake_stack, st->stack_bottom, st->stack_size);
#endif
#ifdef ABIDE_TSAN
    void* resumer = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(st->tsan_fiber, 0);
#endif
    boost::context::fiber back = std::move(st->inside).resume();
#ifdef ABIDE_TSAN
    __tsan_switch_to_fiber(resumer, 0);
#endif
#ifdef ABIDE_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
    (void)fake_stack;
#endif
    st->inside = std::move(back);
    st->eh = *globals;
    *globals = saved;
    if (!st->inside) finished_ = true;
}

void Fiber::yield() {
    State* st = state_.get();
    void* fake_stack = nullptr;
    st->asan_leave(&fake_stack);
    st->outside = std::move(st->outside).resume();
    st->asan_entered(fake_stack);
}

}  // namespace abide::detail
