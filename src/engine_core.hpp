// The engine's non-template core: definitions, the write operations (start,
// signal, cancel, timers, committing a run's request), poll, and the cache of
// parked fibers. Queries live in queries.cpp.
#pragma once

#include "bytes.hpp"
#include "commit_queue.hpp"
#include "fiber.hpp"
#include "fiber_cache.hpp"
#include "keys.hpp"
#include "records.hpp"
#include "run_instance.hpp"
#include "run_locks.hpp"
#include "storage.hpp"

#include <abide/engine.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>

namespace abide::detail {

class EngineCore {
public:
    explicit EngineCore(EngineOptions options);
    ~EngineCore();

    EngineOptions options;
    Storage storage;
    StackPool stacks;
    CommitQueue commits;
    RunLocks run_locks;

    TimePoint now() const { return options.clock(); }
    std::uint64_t random64();
    /// A random version-4 UUID: generated run ids, and ctx.uuid() (journaled).
    std::string random_uuid();

    // ---- definitions ----
    WorkflowDef& add_definition(std::string name);
    const WorkflowDef* find_definition(std::string_view name) const;

    // ---- writes ----
    /// Checks every request, then starts them all in one commit.
    std::vector<RunHandle> start(std::span<const StartRequest> requests);
    /// Checks every request, then applies the accepted ones in one commit.
    std::vector<SignalResult> deliver(std::span<const SignalRequest> requests);
    CancelResult cancel(std::string_view run, std::string_view reason);
    void retry(std::string_view run);
    void release_quarantined(std::string_view run);
    PollResult poll();

    // ---- reads (queries.cpp) ----
    std::optional<RunRecord> find_run(Txn& txn, std::string_view id, std::uint64_t* number = nullptr) const;
    /// The record of run number `run` (id `id`, for the message), which
    /// exists: run numbers are never reused or removed. Throws FormatError
    /// if the record is missing or damaged.
    RunRecord read_run(Txn& txn, std::uint64_t run, std::string_view id) const;
    /// The public view of run #`run`, with its wait's data read from the journal.
    RunInfo run_info(Txn& txn, std::uint64_t run, const RunRecord& record) const;
    std::optional<RunInfo> status(std::string_view run);
    std::vector<RunInfo> list_runs(const RunQuery& query);
    std::vector<Event> events(std::uint64_t after, std::size_t limit);
    Trace trace(std::string_view run);
    std::optional<TimePoint> next_deadline();
    json completed_output(std::string_view run);
    Stats stats();

private:
    struct PreparedStart {
        const StartRequest* request = nullptr;
        std::string text;  // the input as JSON text
        std::string id;
    };
    PreparedStart prepare_start(const StartRequest& request);
    void apply_start(WriteContext& w, const PreparedStart& start, RunHandle& handle);

    struct PreparedSignal {
        const SignalRequest* request = nullptr;
        std::uint64_t run = 0;  // the run's number: ids map to numbers for good
        std::string text;       // the payload as JSON text
        bool validated = false;
        /// The run's record in the snapshot of the commit `snapshot_txn`:
        /// apply_signal uses it while WriteContext::snapshot_current says so.
        std::optional<RunRecord> record;
        std::uint64_t snapshot_txn = 0;
    };
    /// Checks what can be checked before writing; a refusal is returned.
    std::optional<SignalResult> prepare_signal(Txn& read, const SignalRequest& request, PreparedSignal& prepared);
    void apply_signal(WriteContext& w, const PreparedSignal& prepared, SignalResult& result);

    struct Outcome {
        enum class Kind { proceed, parked, finished, stale } kind = Kind::stale;
        /// The request's entry (a step result, a park) was journaled.
        bool request_entry_appended = false;
        /// A park was answered at once: this wake entry follows it.
        std::optional<JournalEntry> wake;
        RunStatus final_status = RunStatus::completed;
        /// The record this commit stored, for the instance to keep if it goes on.
        std::optional<KeptRecord> kept;
    };

    /// Commits one instance's request inside a batch.
    void apply_request(WriteContext& w, const RunInstance& instance, Outcome& out);
    /// Records `park` as the run's current wait, or returns the wake entry when
    /// it can be satisfied at once (a buffered signal, a cancel, a past deadline).
    std::optional<JournalEntry> park_or_wake(WriteContext& w, std::uint64_t run, RunRecord& record,
                                             const JournalEntry& park, std::uint32_t park_seq);
    /// Appends a wake entry to a parked run and makes it ready again.
    void wake_parked(WriteContext& w, std::uint64_t run, RunRecord& record, JournalEntry wake);
    void clear_park(WriteContext& w, std::uint64_t run, RunRecord& record);
    /// The event that says how a park ended (payloads go in as text).
    void emit_wake(WriteContext& w, std::uint64_t run, const RunRecord& record, WaitKind parked_on,
                   const JournalEntry& wake);
    void set_status(WriteContext& w, std::uint64_t run, RunRecord& record, RunStatus status);
    /// Stores `record` (stamped now), outdating any copy the run's executor keeps.
    void put_run(WriteContext& w, std::uint64_t run, RunRecord& record);
    /// put_run by the run's executor (this poll holds the run), which moves
    /// the record, stamped, into `kept` for the instance to keep.
    void put_own_run(WriteContext& w, std::uint64_t run, RunRecord& record, KeptRecord& kept);
    /// Stamps and stores `record`, outdating nothing: only for the executor.
    void store_run(WriteContext& w, std::uint64_t run, RunRecord& record);
    /// The record of the run `instance` executes, in the write `w`: the one
    /// it kept, if that is still current (KeptRecord); else
    /// read and decoded (nullopt if there is none; FormatError if damaged).
    std::optional<RunRecord> read_own_run(WriteContext& w, const RunInstance& instance) const;
    /// `record`, a copy of `run`'s record that the caller knows is still the
    /// stored one in `w` (asserted in Debug builds).
    const RunRecord& known_current(WriteContext& w, std::uint64_t run, const RunRecord& record) const;
    void append_journal(WriteContext& w, std::uint64_t run, RunRecord& record, const JournalEntry& entry);
    /// Drops signals still buffered for a finished run, with an event each.
    void drop_inbox(WriteContext& w, std::uint64_t run, const RunRecord& record);
    std::optional<JournalEntry> take_buffered(WriteContext& w, std::uint64_t run, const RunRecord& record,
                                              WaitKind kind, std::string_view name);
    static Event make_event(EventType type, std::string name = {});

    /// retry() and release(): a run in status `from` becomes ready, its error
    /// cleared and `reset` applied, with `event`; otherwise UsageError `refusal_id`.
    void make_ready_again(std::string_view run, RunStatus from, std::string_view refusal_id, std::string_view what,
                          EventType event, void (*reset)(RunRecord&));

    /// Fires up to max_runs_per_round due timers in one commit, claiming the
    /// runs it wakes for this poll in that commit (attempt counted, run lock
    /// taken): they go to `woken` with their records as that commit stored
    /// them. True if more timers are due.
    bool fire_timer_round(PollResult& result, std::map<std::uint64_t, KeptRecord>& woken);
    /// Takes `runs` (sorted, distinct) for this process: marks them executing
    /// and takes their run locks, a stretch of numbers at a time. Returns
    /// those taken; runs another thread of this process executes are left,
    /// and those another process holds go to `busy`.
    std::vector<std::uint64_t> claim_runs(const std::vector<std::uint64_t>& runs,
                                          std::vector<std::uint64_t>* busy = nullptr);
    /// Ready runs taken for one round: locked for this process, journals loaded.
    struct Claim {
        std::vector<std::unique_ptr<RunInstance>> runs;
        /// One suspect (its last execution was cut short), to run alone.
        bool isolated = false;
        /// Runs over EngineOptions::quarantine_after, quarantined by count_attempts.
        std::vector<std::uint64_t> quarantine;
        /// Their attempts were counted when they were claimed (fire_timer_round).
        bool counted = false;
    };
    /// Takes up to max_runs_per_round ready runs executing nowhere else (nor
    /// in `skip`), or a single suspect. A damaged run goes into `skip` and its
    /// error into `problems`.
    Claim claim_ready(std::set<std::uint64_t>& skip, std::vector<std::string>& problems);
    /// Loads runs already marked executing and locked by this process (the
    /// caller claimed them); `counted`: their attempts are already committed.
    /// `committed`: records the caller's own commit stored (and the run locks
    /// held since kept unchanged), used instead of reading them again.
    Claim load_claimed(const std::vector<std::uint64_t>& runs, std::set<std::uint64_t>& skip,
                       std::vector<std::string>& problems, bool counted,
                       std::map<std::uint64_t, KeptRecord>* committed = nullptr);
    /// Commits the claimed runs' attempts (and the quarantines) before any of
    /// their code runs; drops runs that changed meanwhile.
    void count_attempts(Claim& claim, std::set<std::uint64_t>& skip);
    void unclaim(std::uint64_t run);
    /// unclaim for many runs: their locks go a stretch of numbers at a time.
    void unclaim_all(std::vector<std::uint64_t> runs);
    /// Advances the runs together, one shared commit per round, until each
    /// has parked or finished. Runs whose commit failed go into `skip`.
    void drive(std::vector<std::unique_ptr<RunInstance>> batch, PollResult& result, std::set<std::uint64_t>& skip);
    /// Lets go of a run after its last commit: unlocks it, and keeps its
    /// fiber in the cache if it parked.
    void release_instance(std::unique_ptr<RunInstance> instance, bool parked);
    struct Release {
        std::unique_ptr<RunInstance> instance;
        bool parked = false;
    };
    /// release_instance for the runs of one round, their run locks a stretch
    /// of numbers at a time.
    void release_instances(std::vector<Release> releases);

    std::map<std::string, std::unique_ptr<WorkflowDef>, std::less<>> definitions_;
    mutable std::mutex definitions_mutex_;

    std::mutex random_mutex_;
    std::mt19937_64 random_;

    // Runs being executed by a poll in this process, and parked fibers kept
    // for a quick resume.
    std::mutex runs_mutex_;
    std::set<std::uint64_t> executing_;
    // Runs whose last claim ended in a failed commit, not a crash: their next
    // claim is not counted as another attempt.
    std::set<std::uint64_t> not_counted_;
    // Normal rounds hold it shared; a suspect's round holds it alone.
    std::shared_mutex isolation_mutex_;
    FiberCache cache_;
};

}  // namespace abide::detail
