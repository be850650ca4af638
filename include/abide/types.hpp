// abide/types.hpp: the values the engine hands back: run status, what a run
// waits for, outcomes of signals and cancellations, events and traces.
#pragma once

#include <abide/codec.hpp>
#include <abide/options.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace abide {

enum class RunStatus : std::uint8_t {
    ready = 1,      ///< started or woken; the next poll runs it
    running = 2,    ///< advanced by a poll and not yet parked (also after a crash mid-run)
    waiting = 3,    ///< parked on a signal, a suspend, a sleep or a retry backoff
    completed = 4,  ///< returned; result() holds the output
    failed = 5,     ///< threw, or its code no longer matches its journal; retry() re-runs it
    cancelled = 6,  ///< a cancellation escaped the workflow
    /// The process died while running it EngineOptions::quarantine_after
    /// times in a row: it is no longer executed until Engine::release().
    /// Signals to it are buffered; error() says where it was.
    quarantined = 7,
};
std::string_view to_string(RunStatus);
std::optional<RunStatus> parse_run_status(std::string_view);
inline bool is_finished(RunStatus s) {
    return s == RunStatus::completed || s == RunStatus::failed || s == RunStatus::cancelled;
}

/// What a waiting run is parked on.
enum class WaitKind : std::uint8_t {
    signal = 1,   ///< ctx.wait_for_signal(name): woken by Engine::signal(run, name)
    suspend = 2,  ///< ctx.suspend(step_key): woken by Engine::resume(run, step_key)
    sleep = 3,    ///< ctx.sleep: woken by its timer
    retry = 4,    ///< a step's retry backoff: woken by its timer
};
std::string_view to_string(WaitKind);

struct WaitInfo {
    WaitKind kind{};
    std::string name;  ///< signal name or suspend step key; step name for retry
    json data;         ///< wait metadata (signals) or suspend data
    std::optional<TimePoint> deadline;
    TimePoint since{};
};

struct ErrorInfo {
    std::string id;    ///< abide error id, or "abide.workflow.exception"
    std::string type;  ///< C++ exception type
    std::string message;
    bool operator==(const ErrorInfo&) const = default;
};

/// A run as stored, read without replaying anything.
struct RunInfo {
    std::string id;
    std::string workflow;
    RunStatus status{};
    TimePoint created{};
    TimePoint updated{};
    json input;
    std::optional<json> output;     ///< when completed
    std::optional<ErrorInfo> error; ///< when failed or cancelled
    std::optional<WaitInfo> waiting;///< when waiting
    std::uint32_t journal_entries = 0;
    /// {id, workflow, status, created, updated, input, journal_entries,
    /// waiting {kind, name, data, since, deadline}, output, error}.
    json to_json() const;
};

/// UTC ISO 8601 with milliseconds, e.g. "2026-11-23T18:49:44.123Z": how abide
/// writes times in JSON, traces and the abide command.
std::string format_time(TimePoint t);

struct RunQuery {
    std::optional<RunStatus> status{};
    std::optional<std::string> workflow{};
    /// Only runs waiting for this signal name or suspend step key, oldest first.
    std::optional<std::string> waiting_for{};
    /// Page size; pass the last id you got as `after` for the next page.
    std::size_t limit = 100;
    std::string after{};
};

/// What happened to a signal or resume. Only delivered, buffered and
/// (for the same id) duplicate were accepted; the rest wrote nothing.
enum class SignalOutcome : std::uint8_t {
    delivered = 1,      ///< the run was waiting for it and is now ready
    buffered = 2,       ///< kept; the run's next wait for this name consumes it
    duplicate = 3,      ///< a signal with this id was accepted before; stored once
    run_finished = 4,   ///< refused: the run has completed, failed or been cancelled
    unknown_run = 5,    ///< refused: no run with this id
    invalid_payload = 6,///< refused: not JSON, too large, or not the declared type
    undeclared = 7,     ///< refused: the workflow declares no such signal
    too_late = 8,       ///< refused: the wait for it passed its deadline; it timed out now
};
std::string_view to_string(SignalOutcome);

struct [[nodiscard]] SignalResult {
    SignalOutcome outcome{};
    std::string message;  ///< says what happened and, for refusals, what to do
    bool accepted() const {
        return outcome == SignalOutcome::delivered || outcome == SignalOutcome::buffered;
    }
};

enum class CancelOutcome : std::uint8_t {
    cancelled = 1,     ///< the run was waiting; it is ready and sees Cancelled at that wait
    requested = 2,     ///< the run is executing or ready; it sees Cancelled at its next wait
    already_requested = 3,
    run_finished = 4,  ///< refused: nothing to cancel
    unknown_run = 5,   ///< refused: no such run
};
std::string_view to_string(CancelOutcome);

struct [[nodiscard]] CancelResult {
    CancelOutcome outcome{};
    std::string message;
};

/// One run to start, for Engine::start_batch.
struct StartRequest {
    std::string workflow;
    json input{};
    StartOptions options{};
};

/// One signal (or resume) to deliver, for Engine::signal_batch.
struct SignalRequest {
    std::string run;
    std::string name;  ///< signal name, or step key when kind is suspend
    json payload{};
    std::string signal_id{};
    WaitKind kind = WaitKind::signal;  ///< signal or suspend (resume)
};

struct RunHandle {
    std::string id;
    bool created = true;  ///< false: a run with this id existed and was returned
    operator std::string_view() const noexcept { return id; }
};

/// Event data by type: waiting (the metadata), suspended (the suspend data),
/// signal_buffered / signal_delivered / resumed (the payload), step_failed and
/// failed (the error), completed (the output), cancel_requested and cancelled
/// (the reason). started and step_completed carry none: the input is in
/// status(run) and step results are in trace(run).
enum class EventType : std::uint8_t {
    started = 1,
    step_completed = 2,
    step_failed = 3,
    step_retrying = 4,
    waiting = 5,          ///< parked in wait_for_signal
    suspended = 6,        ///< parked in suspend; topic is "{step_key}/{run_id}"
    sleeping = 7,
    signal_buffered = 8,
    signal_delivered = 9, ///< a wait_for_signal got its payload
    resumed = 10,         ///< a suspend got its resume data
    timed_out = 11,
    woke = 12,            ///< a sleep or retry backoff ended
    cancel_requested = 13,
    completed = 14,
    failed = 15,
    cancelled = 16,
    signal_dropped = 17,  ///< a buffered signal no wait consumed before the run finished
    retried = 18,         ///< retry() made a failed run ready again
    signal_rejected = 19, ///< a signal written without validation failed the host's check
    quarantined = 20,     ///< the run crashed its process too often; data says where
    released = 21,        ///< release() made a quarantined run ready again
};
std::string_view to_string(EventType);

/// One entry of the durable event log. `seq` increases by one per event and
/// is the cursor for Engine::events.
struct Event {
    std::uint64_t seq = 0;
    EventType type{};
    TimePoint at{};
    std::string run_id;
    std::string workflow;
    std::string name;   ///< step name, signal name or step key
    std::string topic;  ///< for suspended/resumed: "{step_key}/{run_id}"
    json data;          ///< result, payload, metadata or error, by type
    std::optional<TimePoint> deadline;
    json to_json() const;
};

struct PollResult {
    std::size_t runs_advanced = 0;  ///< runs executed in this poll
    std::size_t completed = 0;
    std::size_t failed = 0;
    std::size_t cancelled = 0;
    std::size_t waiting = 0;        ///< runs that parked
    std::size_t quarantined = 0;    ///< runs quarantined (see EngineOptions::quarantine_after)
    std::size_t timers_fired = 0;
    std::size_t commits = 0;        ///< write transactions this poll committed
    std::optional<TimePoint> next_deadline;
    /// Runs this poll could not advance, one error each (a damaged record,
    /// say: FormatError text naming the run). Other runs went on.
    std::vector<std::string> problems;
};

/// Counts for operators (Engine::stats). Counting walks the status index.
struct Stats {
    std::uint64_t runs = 0;
    std::uint64_t ready = 0, running = 0, waiting = 0, completed = 0, failed = 0, cancelled = 0, quarantined = 0;
    std::uint64_t timers = 0;          ///< pending deadlines
    std::uint64_t buffered_signals = 0;
    std::uint64_t last_event_seq = 0;
    std::uint64_t file_bytes = 0;      ///< size of the database file
    std::uint64_t map_bytes = 0;       ///< current map size (grows when full)
    /// Parked runs whose fiber this engine keeps in memory, at most
    /// EngineOptions::cache_size: the memory waiting runs cost this process.
    /// Not a value of the file: another process's engine has its own.
    std::uint64_t cached_runs = 0;
    json to_json() const;
};

/// The decision path of one run, read from its journal.
struct TraceEntry {
    std::uint32_t seq = 0;
    std::string kind;  ///< "step", "step_retry", "wait", "suspend", "sleep", "wake", "now", ...
    std::string name;
    TimePoint started{};
    TimePoint finished{};
    json value;                     ///< step result, wait metadata, payload
    std::optional<ErrorInfo> error; ///< step failure
    std::string detail;             ///< wake reason, signal id, attempt
    std::optional<TimePoint> deadline;
};

struct Trace {
    RunInfo run;
    std::vector<TraceEntry> entries;
    json to_json() const;
    /// A readable timeline, one line per entry.
    std::string render() const;
};

}  // namespace abide
