// abide/engine.hpp: the host side. Open a database, define workflows, start
// runs, deliver signals, and drive everything with poll() from your own loop.
//
// Thread-safety: every member function may be called from any thread at any
// time. Concurrent writers share commits (group commit). A run executes on the
// thread that called poll(), and never on two threads at once.
//
// abide starts no threads: nothing runs unless the host calls poll().
#pragma once

#include <abide/codec.hpp>
#include <abide/context.hpp>
#include <abide/detail/workflow_def.hpp>
#include <abide/errors.hpp>
#include <abide/options.hpp>
#include <abide/types.hpp>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace abide {

namespace detail {
class EngineCore;
}

/// Returned by Engine::define to declare what a workflow accepts.
class WorkflowBuilder {
public:
    /// Declares a signal and its payload type. Engine::signal decodes every
    /// payload for this name into T before writing anything, and refuses it
    /// with the decoder's message if that fails.
    template <class T>
    WorkflowBuilder& signal(std::string name) {
        def_.signals[std::move(name)] = [name_copy = name](const json& v) {
            (void)detail::decode_as<T>(v, "signal", name_copy);
        };
        return *this;
    }
    /// Declares the resume data type for a suspend step key (optional: an
    /// undeclared key accepts any JSON).
    template <class T>
    WorkflowBuilder& resume(std::string step_key) {
        def_.resumes[std::move(step_key)] = [key = step_key](const json& v) {
            (void)detail::decode_as<T>(v, "resume data for", key);
        };
        return *this;
    }

private:
    friend class Engine;
    explicit WorkflowBuilder(detail::WorkflowDef& def) : def_(def) {}
    detail::WorkflowDef& def_;
};

class Engine {
public:
    /// Opens (or creates) the database at options.path. Throws FormatError for
    /// a file that is not an abide database or has a newer format (the file is
    /// left untouched), StorageError when it cannot be opened.
    explicit Engine(EngineOptions options);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    /// Defines a workflow: `Out fn(Context&, const In&)` or `Out fn(Context&)`.
    /// Define every workflow before the first poll(). Throws UsageError if the
    /// name is already defined.
    template <class F>
    WorkflowBuilder define(std::string name, F fn) {
        using sig = detail::workflow_signature<decltype(std::function{fn})>;
        using Out = std::decay_t<typename sig::result>;
        static_assert(sig::arity == 1 || sig::arity == 2,
                      "a workflow is Out fn(abide::Context&) or Out fn(abide::Context&, const In&)");
        detail::WorkflowDef& def = add_definition(std::move(name));
        if constexpr (sig::arity == 2) {
            using In = typename sig::template arg<1>;
            def.validate_input = [](const json& v) { (void)detail::decode_as<In>(v, "workflow input"); };
        } else {
            def.validate_input = [](const json&) {};
        }
        def.body = [fn](Context& ctx, json&& input) -> json {
            try {
                if constexpr (sig::arity == 2) {
                    using In = typename sig::template arg<1>;
                    In in = detail::decode_as<In>(input, "workflow input");
                    input = json();  // a parked run keeps one copy of its input: the workflow's
                    return detail::call_and_encode<Out>(fn, ctx, in);
                } else {
                    (void)input;
                    return detail::call_and_encode<Out>(fn, ctx);
                }
            } catch (const detail::FiberUnwind&) {
                return json(json::value_t::discarded);  // see FiberUnwind
            }
        };
        return WorkflowBuilder(def);
    }

    /// Durably records a new run and makes it ready; the next poll() runs it.
    /// The input is checked against the workflow's input type first. With
    /// options.run_id, starting an id that exists returns that run
    /// (created == false) and writes nothing. Throws UsageError for an unknown
    /// workflow or a run id used by another workflow, PayloadError for bad input.
    template <class In>
    RunHandle start(std::string_view workflow, const In& input, StartOptions options = {}) {
        return start_json(workflow, codec<In>::encode(input), std::move(options));
    }
    RunHandle start(std::string_view workflow) { return start_json(workflow, json(), {}); }
    RunHandle start_json(std::string_view workflow, const json& input, StartOptions options = {});

    /// Starts many runs in one commit (one sync for all). Every request is
    /// checked first; a bad one throws before anything is written.
    std::vector<RunHandle> start_batch(std::span<const StartRequest> requests);

    /// Hands a signal to a run. `payload` is JSON text (an HTTP body, say).
    /// With a `signal_id`, a repeat of the same id is reported as duplicate and
    /// stored once. Refusals (unknown run, finished run, invalid payload,
    /// undeclared name) write nothing. Never throws for bad input; may throw
    /// StorageError.
    SignalResult signal(std::string_view run, std::string_view name, std::string_view payload,
                        std::string_view signal_id = {});
    /// As above with a C++ value, encoded by its codec.
    template <class T>
        requires(!std::is_convertible_v<const T&, std::string_view>)
    SignalResult signal(std::string_view run, std::string_view name, const T& payload,
                        std::string_view signal_id = {}) {
        return deliver(run, WaitKind::signal, name, codec<T>::encode(payload), signal_id);
    }

    /// Delivers many signals and resumes in one commit; one result each.
    std::vector<SignalResult> signal_batch(std::span<const SignalRequest> requests);

    /// Resumes a run parked in ctx.suspend(step_key) with `data` (JSON text).
    /// Sent before the suspend, it is kept and consumed by it. Same outcomes as signal.
    SignalResult resume(std::string_view run, std::string_view step_key, std::string_view data,
                        std::string_view signal_id = {});
    template <class T>
        requires(!std::is_convertible_v<const T&, std::string_view>)
    SignalResult resume(std::string_view run, std::string_view step_key, const T& data,
                        std::string_view signal_id = {}) {
        return deliver(run, WaitKind::suspend, step_key, codec<T>::encode(data), signal_id);
    }

    /// Asks a run to stop. The workflow sees Cancelled at its current wait (or
    /// its next one) and may catch it to compensate.
    CancelResult cancel(std::string_view run, std::string_view reason);

    /// Makes a failed run ready again; it replays its journal and carries on
    /// from where it failed (after a code fix, say). Throws UsageError for an
    /// unknown run or one that is not failed.
    void retry(std::string_view run);

    /// Makes a quarantined run ready again (after the fix for what crashed
    /// it is deployed); its attempt count starts over. Throws UsageError for
    /// an unknown run or one that is not quarantined.
    void release(std::string_view run);

    /// Runs every ready run and fires every due timer, on the calling thread,
    /// committing the runs it advances together. Returns what it did and the
    /// next timer deadline. Throws StorageError when a commit fails; the runs
    /// of that commit stay ready and nothing they did is visible.
    PollResult poll();

    /// The earliest timer deadline, for hosts that arm their own timer.
    std::optional<TimePoint> next_deadline() const;

    /// The stored state of a run, without replay; nothing for an unknown id.
    std::optional<RunInfo> status(std::string_view run) const;

    /// The output of a completed run decoded into T. Throws UsageError if the
    /// run is unknown or not completed (the message says its status and error).
    template <class T>
    T result(std::string_view run) const {
        return detail::decode_as<T>(completed_output(run), "the output of run", run);
    }

    /// Runs matching the query, in creation order.
    std::vector<RunInfo> list_runs(const RunQuery& query = {}) const;

    /// Events with seq > after, oldest first, at most `limit`.
    std::vector<Event> events(std::uint64_t after = 0, std::size_t limit = 1000) const;

    /// The decision path of a run. Throws UsageError for an unknown run.
    Trace trace(std::string_view run) const;

    /// Counts by status, pending timers, buffered signals, sizes.
    Stats stats() const;

    const EngineOptions& options() const noexcept;

private:
    detail::WorkflowDef& add_definition(std::string name);
    SignalResult deliver(std::string_view run, WaitKind channel, std::string_view name, json payload,
                         std::string_view signal_id);
    json completed_output(std::string_view run) const;

    std::unique_ptr<detail::EngineCore> core_;
};

}  // namespace abide
