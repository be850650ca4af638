// abide/context.hpp: what workflow code calls.
//
// A workflow is `Out fn(abide::Context& ctx, const In& input)`. Every ctx call
// is journaled at the next position of the run; on replay the call returns the
// recorded value instead of acting again. Rules for the code between ctx
// calls (see README "Rules for workflow code"):
//   * be deterministic: take time, randomness and ids from ctx.now(),
//     ctx.random(), ctx.uuid(); do I/O only inside steps;
//   * make step bodies idempotent: they run at least once (again if the
//     process dies before their result is committed); use idempotency_key();
//   * never swallow abide's unwind: rethrow from every `catch (...)`.
//
// Thread-safety: a Context belongs to its run's fiber; use it only from the
// workflow function, never from step bodies or other threads.
#pragma once

#include <abide/codec.hpp>
#include <abide/detail/fiber_unwind.hpp>
#include <abide/errors.hpp>
#include <abide/options.hpp>
#include <abide/types.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace abide {

namespace detail {
class RunInstance;

/// Non-owning reference to a callable; valid only during the call it is passed to.
template <class Sig>
class function_ref;
template <class R, class... A>
class function_ref<R(A...)> {
public:
    template <class F>
    function_ref(F& f) noexcept  // NOLINT(google-explicit-constructor)
        : obj_(static_cast<void*>(std::addressof(f))),
          call_([](void* o, A... a) -> R { return (*static_cast<F*>(o))(std::forward<A>(a)...); }) {}
    R operator()(A... a) const { return call_(obj_, std::forward<A>(a)...); }

private:
    void* obj_;
    R (*call_)(void*, A...);
};

/// A wait's data (metadata or suspend data), asked for only when the wait is
/// reached live, never on replay: the value itself, or its encoding written
/// into the scratch value given.
using WaitData = function_ref<const json&(json& scratch)>;
}  // namespace detail

/// Given to a step body that takes it as first parameter.
class StepContext {
public:
    const std::string& run_id() const noexcept { return run_id_; }
    const std::string& step_name() const noexcept { return step_name_; }
    /// 1 on the first attempt; counts retries and re-executions after a crash.
    std::uint32_t attempt() const noexcept { return attempt_; }
    /// "{run_id}:{position}": the same on every attempt of this step in this
    /// run, and different for every other step. Pass it to external services.
    const std::string& idempotency_key() const noexcept { return key_; }

private:
    friend class detail::RunInstance;
    StepContext(std::string run_id, std::string step_name, std::uint32_t attempt, std::string key)
        : run_id_(std::move(run_id)), step_name_(std::move(step_name)), attempt_(attempt),
          key_(std::move(key)) {}
    std::string run_id_, step_name_;
    std::uint32_t attempt_;
    std::string key_;
};

class Context {
public:
    /// Runs `fn(args...)` (or `fn(step_ctx, args...)`) once per run and returns
    /// its result, which is journaled before the workflow sees it. On replay
    /// the recorded result is returned, or the recorded failure raised again as
    /// StepError, and `fn` is not called. The result type needs a codec
    /// (see codec.hpp) or is void. Arguments are passed by reference.
    template <class F, class... Args>
        requires(!std::is_same_v<std::decay_t<F>, StepOptions>)
    auto step(std::string_view name, F&& fn, Args&&... args) {
        return step(name, StepOptions{}, std::forward<F>(fn), std::forward<Args>(args)...);
    }

    /// As above, with a retry policy: a failed attempt is journaled and the
    /// next one runs after a durable backoff timer; the last failure is raised
    /// as StepError.
    template <class F, class... Args>
    auto step(std::string_view name, const StepOptions& options, F&& fn, Args&&... args) {
        constexpr bool takes_ctx = std::is_invocable_v<F&, StepContext&, Args&...>;
        using R = std::decay_t<decltype(invoke_body<takes_ctx>(std::declval<F&>(),
                                                               std::declval<StepContext&>(),
                                                               std::declval<Args&>()...))>;
        auto body = [&](StepContext& sc) -> json {
            auto call = [&]() -> decltype(auto) { return invoke_body<takes_ctx>(fn, sc, args...); };
            return detail::call_and_encode<R>(call);
        };
        json recorded = run_step(name, options, detail::function_ref<json(StepContext&)>(body));
        if constexpr (!std::is_void_v<R>) {
            return detail::decode_as<R>(recorded, "the recorded result of step", name);
        }
    }

    /// Waits until Engine::signal(run, name, payload) delivers a payload, and
    /// returns it decoded into T; returns nothing if `timeout` passes first.
    /// `metadata` is stored with the wait: Engine::list_runs and the event
    /// log show it (an approval inbox). It is a json value (a braced list
    /// makes one) or a value of any type with a codec (see codec.hpp), such
    /// as the workflow's own struct; a typed value is encoded only when the
    /// wait is first reached, so replay, which passes the journaled wait,
    /// does not build its JSON again. A signal sent before this wait is
    /// consumed by it. Raises Cancelled if the run is cancelled meanwhile.
    /// (The waits are always inlined and throw abide's unwind in the
    /// workflow's own frame: a run evicted while it waits is unwound through
    /// the fewest frames; see RunInstance::unwinding_.)
    template <class T, class M = json>
    [[gnu::always_inline]] std::optional<T> wait_for_signal(std::string_view name, Duration timeout,
                                                            const M& metadata = json::object()) {
        std::optional<json> payload;
        if (!wait_with(WaitKind::signal, name, metadata, timeout, payload)) throw detail::FiberUnwind{};
        if (!payload) return std::nullopt;
        return detail::decode_as<T>(*payload, "signal", name);
    }

    /// Waits without a deadline. (A duration as the second argument is the
    /// timeout of the form above, never metadata.)
    template <class T, class M = json>
        requires(!std::is_convertible_v<const M&, Duration>)
    [[gnu::always_inline]] T wait_for_signal(std::string_view name, const M& metadata = json::object()) {
        std::optional<json> payload;
        if (!wait_with(WaitKind::signal, name, metadata, std::nullopt, payload)) throw detail::FiberUnwind{};
        if (!payload) timed_out_without_timeout(name);
        return detail::decode_as<T>(*payload, "signal", name);
    }

    /// Parks the run until Engine::resume(run, step_key, data) and returns that
    /// data. Emits a `suspended` event with topic "{step_key}/{run_id}" and
    /// `data`, which is json or a typed value as wait_for_signal's metadata.
    /// Raises TimeoutError if `timeout` passes first, Cancelled if the run is
    /// cancelled meanwhile.
    template <class M = json>
    [[gnu::always_inline]] json suspend(std::string_view step_key, const M& data = json::object(),
                                        std::optional<Duration> timeout = std::nullopt) {
        std::optional<json> resumed;
        if (!wait_with(WaitKind::suspend, step_key, data, timeout, resumed)) throw detail::FiberUnwind{};
        if (!resumed) suspend_timed_out(step_key);
        return std::move(*resumed);
    }

    /// Parks the run for `duration` (a durable timer; survives restarts).
    [[gnu::always_inline]] void sleep(Duration duration) {
        if (!sleep_woken(duration)) throw detail::FiberUnwind{};
    }

    /// The engine clock's time, journaled: replay returns the recorded time.
    TimePoint now();
    /// A random 64-bit number, journaled.
    std::uint64_t random();
    /// A random UUID (version 4) string, journaled.
    std::string uuid();

    const std::string& run_id() const noexcept;
    const std::string& workflow() const noexcept;
    /// True while the run is re-executing journaled calls. For logging only:
    /// branching on it breaks determinism.
    bool replaying() const noexcept;

private:
    friend class detail::RunInstance;
    explicit Context(detail::RunInstance& instance) : instance_(instance) {}

    template <bool TakesCtx, class F, class... Args>
    static decltype(auto) invoke_body(F& fn, StepContext& sc, Args&... args) {
        if constexpr (TakesCtx) {
            return std::invoke(fn, sc, args...);
        } else {
            (void)sc;
            return std::invoke(fn, args...);
        }
    }

    json run_step(std::string_view name, const StepOptions& options,
                  detail::function_ref<json(StepContext&)> body);
    /// wait() with `value` as the wait's data (see detail::WaitData): itself
    /// if it is json, else its codec's encoding, built only if the wait asks.
    /// Not on the stack when the caller unwinds: it has returned by then.
    template <class M>
    bool wait_with(WaitKind kind, std::string_view name, const M& value, std::optional<Duration> timeout,
                   std::optional<json>& payload) {
        auto data = [&value](json& scratch) -> const json& {
            if constexpr (std::is_same_v<M, json>) {
                (void)scratch;
                return value;
            } else {
                return scratch = codec<M>::encode(value);
            }
        };
        return wait(kind, name, data, timeout, payload);
    }
    /// Sets `payload` to the wake's payload, or to nothing on a timeout.
    /// Returns false when the run is being unwound (evicted): the caller
    /// throws FiberUnwind itself, so that the unwinder starts in the
    /// workflow's own frame and crosses one frame fewer.
    bool wait(WaitKind kind, std::string_view name, detail::WaitData data, std::optional<Duration> timeout,
              std::optional<json>& payload);
    /// Raises NondeterminismError: a wait without a timeout found a timeout in
    /// the journal (the code dropped the timeout of a wait in flight).
    [[noreturn]] void timed_out_without_timeout(std::string_view name) const;
    /// Raises TimeoutError: the timeout of suspend(step_key) passed.
    [[noreturn]] static void suspend_timed_out(std::string_view step_key);
    /// False when the run is being unwound (as wait()).
    bool sleep_woken(Duration duration);

    detail::RunInstance& instance_;
};

}  // namespace abide
