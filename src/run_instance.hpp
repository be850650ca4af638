// A run in memory: its fiber, the journal entries it has been given, and the
// one request it is waiting on.
//
// Protocol between the fiber (workflow code, through Context) and the engine:
//  * the fiber consumes journal entries in order; while entries remain it is
//    replaying and never yields;
//  * past the end it is live: it sets exactly one Request and yields;
//  * the engine commits the request and appends what it wrote for this run
//    to the instance (append_committed) before resuming it, so the workflow
//    only ever sees committed entries;
//  * a parked instance stays suspended inside its wait until the engine
//    appends the wake entry and resumes it, or tells it to unwind.
#pragma once

#include "fiber.hpp"
#include "records.hpp"

#include <abide/context.hpp>
#include <abide/detail/workflow_def.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace abide::detail {

class EngineCore;

/// A run's record kept by the instance that executes it, so that its next
/// write need not read and decode the record again. Either its executor's own
/// commit stored it, and `epoch` is the record epoch right after that write
/// (WriteContext::record_epoch); or the claim read it in the snapshot of the
/// commit `snapshot_txn` (nonzero), which stays current only for the write
/// that directly follows that commit (WriteContext::snapshot_current).
struct KeptRecord {
    RunRecord record;
    std::uint64_t epoch = 0;
    std::uint64_t snapshot_txn = 0;
};

/// What the fiber asks the engine to commit. Reused from request to request:
/// only the fields of `kind` are meaningful; the others may hold what an
/// earlier request left.
struct Request {
    enum class Kind { none, append, park, finish };
    Kind kind = Kind::none;
    /// append: the entry; park: the park entry (already journaled if !new_entry).
    JournalEntry entry;
    bool new_entry = true;
    /// finish:
    RunStatus final_status = RunStatus::completed;
    std::string output;
    std::optional<ErrorInfo> error;
};

class RunInstance {
public:
    /// `input`: the run's input as JSON text (read_run_input).
    RunInstance(EngineCore& core, const WorkflowDef& def, std::uint64_t run_number, const RunRecord& record,
                std::string input);
    ~RunInstance();
    RunInstance(const RunInstance&) = delete;
    RunInstance& operator=(const RunInstance&) = delete;

    // ---- engine side ----
    std::uint64_t run_number() const noexcept { return run_number_; }
    const std::string& id() const noexcept { return id_; }
    std::uint32_t incarnation() const noexcept { return incarnation_; }
    /// Entries known to the instance; equals the run's journal_len when in sync.
    std::uint32_t journal_size() const noexcept { return static_cast<std::uint32_t>(journal_.size()); }
    void append_committed(std::vector<JournalEntry> entries);
    /// After the commit of this instance's request: moves the request's entry
    /// (if it was journaled) and the wake that answered it into the journal.
    void committed(bool request_entry_appended, std::optional<JournalEntry>&& wake);
    /// Runs the fiber until it sets its next request (or finishes).
    void advance();
    const Request& request() const noexcept { return request_; }
    bool finished() const noexcept { return fiber_.finished(); }
    /// While parked: the deadline of the park entry it waits on (0: none).
    std::int64_t park_deadline_us() const noexcept { return journal_.empty() ? 0 : journal_.back().deadline_us; }
    /// Unwinds a parked fiber; afterwards finished() is true. Idempotent.
    void unwind() noexcept;
    /// The run's record as this instance's last commit stored it, or as its
    /// claim read it (see KeptRecord, EngineCore::read_own_run), or nullptr.
    /// Kept while the run executes; dropped when it parks, since what wakes
    /// it rewrites the record.
    const KeptRecord* kept_record() const noexcept { return kept_ ? &*kept_ : nullptr; }
    void keep_record(KeptRecord&& kept) { kept_ = std::move(kept); }
    void drop_record() noexcept { kept_.reset(); }

    // ---- fiber side (called by Context) ----
    json run_step(std::string_view name, const StepOptions& options, function_ref<json(StepContext&)> body);
    /// A wait or a sleep, up to its wake entry, which it returns (valid
    /// until the next journal append), or nullptr if told to unwind: the
    /// caller, Context, then throws FiberUnwind.
    /// `data` gives the wait's data (see WaitData); replay never asks.
    [[nodiscard]] const JournalEntry* wake_of_wait(WaitKind kind, std::string_view name, WaitData data,
                                                   std::optional<Duration> timeout);
    [[nodiscard]] const JournalEntry* wake_of_sleep(Duration duration);
    std::string recorded(EntryKind kind, const std::function<std::string()>& make);
    const std::string& workflow() const noexcept { return def_.name; }
    TimePoint core_now() const;
    std::uint64_t core_random();
    std::string core_uuid();
    bool replaying() const noexcept { return cursor_ < journal_.size(); }

private:
    /// Runs the workflow; lets nothing escape but Boost's forced_unwind.
    void fiber_main();
    void finish(RunStatus status, std::string output, std::optional<ErrorInfo> error);
    /// Makes `entry` the request (append, or park on it) and yields; false if
    /// told to unwind meanwhile. The entry is moved once, into the request,
    /// and once more, into the journal, when the engine commits it.
    [[nodiscard]] bool yield_request(Request::Kind kind, JournalEntry&& entry, bool new_entry = true);
    void check_callable(std::string_view call) const;
    const JournalEntry* peek() const { return cursor_ < journal_.size() ? &journal_[cursor_] : nullptr; }
    /// Stops the run: the journal at the cursor does not match `call`.
    [[noreturn]] void mismatch(const JournalEntry& found, std::string_view call);
    [[noreturn]] void fatal(std::string id, std::string message);
    /// Parks on the entry at cursor-1 until its wake entry is there; consumes
    /// it and returns it (valid until the next journal append), or nullptr if
    /// told to unwind meanwhile.
    [[nodiscard]] const JournalEntry* await_wake();
    /// Journals a new entry and returns it as committed (the reference lives
    /// until the next journal append).
    const JournalEntry& append(JournalEntry&& entry);
    /// Journals a new park entry and waits for its wake entry (as await_wake).
    [[nodiscard]] const JournalEntry* park(JournalEntry&& entry);
    std::int64_t deadline_after(std::optional<Duration> d) const;

    EngineCore& core_;
    const WorkflowDef& def_;
    const std::uint64_t run_number_;
    const std::string id_;
    const std::uint32_t incarnation_;
    /// The input as JSON text until the fiber starts, which parses it and lets
    /// it go: a parked fiber holds only what its workflow keeps of it.
    std::string input_;
    std::vector<JournalEntry> journal_;
    std::size_t cursor_ = 0;
    Request request_;
    std::optional<KeptRecord> kept_;
    Fiber fiber_;
    /// Set by unwind(). Every ctx call then raises FiberUnwind; a parked
    /// wait sees it when it resumes. An evicted run pays this unwind once,
    /// and on this kind of machine a throw costs more than half a microsecond
    /// for each frame it crosses, and more for each cleanup it runs: so the
    /// waits return their wake as a pointer (nullptr: unwinding) up to
    /// Context, whose always-inlined waits throw in the workflow's own frame.
    /// (Throwing one frame deeper, from Context::wait, cost an eviction 37,000
    /// instructions instead of 22,000: the unwinder searched that frame's
    /// call-site table in both of its phases.)
    bool unwinding_ = false;
    bool in_step_ = false;
    /// A cancellation reached the workflow; later waits raise Cancelled at once.
    std::optional<std::string> cancelled_;
    /// Set by a nondeterminism error; it wins over whatever the workflow does next.
    std::optional<ErrorInfo> fatal_;
};

}  // namespace abide::detail
