// Group commit: every write abide makes goes through one CommitQueue.
//
// Callers on any thread hand in operations; one caller at a time becomes the
// leader, applies every queued operation in one write transaction, commits it
// (one sync for all of them), and wakes the others. So concurrent signals, starts
// and poll rounds share synced commits instead of paying one each.
//
// Invariants:
//  * an operation reads and writes only through its WriteContext, decides its
//    outcome from what it reads, and stores the outcome in caller-owned memory;
//    it may be applied more than once (a retried batch), so it assigns, never
//    accumulates;
//  * a caller returns only after its operations' transaction committed, or
//    with the error that made it fail; nothing is visible before the commit;
//  * an operation that throws anything but a storage error is dropped from the
//    batch, which is then re-applied without it: its partial writes vanish;
//  * a full map is grown with no transaction open and the batch re-applied.
#pragma once

#include "records.hpp"
#include "storage.hpp"

#include <abide/types.hpp>

#include <array>
#include <bitset>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

namespace abide::detail {

/// What an operation sees: the transaction, the batch's clock reading, and
/// the next numbers of the tables keyed by a growing sequence.
class WriteContext {
public:
    WriteContext(Txn& transaction, std::int64_t now, bool keep_events, std::uint64_t& record_epoch)
        : txn(transaction), now_us(now), keep_events_(keep_events), txn_id_(transaction.id()),
          record_epoch_(record_epoch) {}
    Txn& txn;
    const std::int64_t now_us;
    /// Appends an event of the run numbered `run`, whose record is `record`,
    /// to the durable event log (stamped now); returns its seq. The stored
    /// event names its run by number; the run's id and workflow are copied
    /// into the event only when a callback will see it. `data_json`, when
    /// given, is the event's data as JSON text (stored as is, so callers
    /// holding text need not parse it); otherwise event.data is used.
    /// `from`: the event tells of that journal entry, written in this
    /// transaction, and stores a reference to it.
    std::uint64_t emit(std::uint64_t run, const RunRecord& record, Event event, std::string_view data_json = {},
                       std::optional<FromEntry> from = {});
    std::vector<Event> take_events() { return std::move(events_); }
    /// A new number of a table keyed by a growing sequence (runs, events):
    /// read from the table once per transaction (next_sequence), then
    /// counted on, so a batch of starts or events opens one cursor, not one
    /// each.
    std::uint64_t new_number(Db db);
    /// The number new_number(db) would give, not taken.
    std::uint64_t next_number(Db db);
    /// Where this transaction's records are built before LMDB copies them
    /// in: one buffer, so a batch does not allocate a string per record.
    /// The record is the view its encoder returns (the buffer's start), valid
    /// until the next record is built here.
    std::string& scratch() noexcept { return scratch_; }

    /// The run-record epoch. The thread executing a run keeps the record its
    /// own last commit stored, stamped with the epoch after that write, and
    /// uses it instead of reading and decoding the record again while the
    /// epoch has not moved. So the epoch moves (record_changed) at every write
    /// of a run record that the run's executor did not make, and at every
    /// transaction that follows one this queue did not commit (another
    /// process's, or another Engine's on the same file). Conservative by
    /// design: a move only costs the executors a read.
    std::uint64_t record_epoch() const noexcept { return record_epoch_; }
    void record_changed() noexcept { ++record_epoch_; }

    /// Notes that this transaction stores `run`'s record (EngineCore::store_run,
    /// the one place that rewrites a run record, calls it).
    void run_stored(std::uint64_t run) noexcept { stored_runs_.set(run % stored_runs_.size()); }
    /// True if `run`'s record, as read in the snapshot of the commit
    /// `snapshot_txn`, is still its record here: this transaction directly
    /// follows that commit (nothing, in this or another process, committed
    /// in between) and has not stored the record yet. The stored set is a
    /// filter, so a collision only makes the caller read the record.
    bool snapshot_current(std::uint64_t snapshot_txn, std::uint64_t run) const noexcept {
        return txn_id_ == snapshot_txn + 1 && !stored_runs_.test(run % stored_runs_.size());
    }

private:
    std::array<std::optional<std::uint64_t>, static_cast<std::size_t>(Db::count_)> next_number_{};
    bool keep_events_;
    std::vector<Event> events_;
    std::string scratch_;
    std::uint64_t txn_id_;
    std::uint64_t& record_epoch_;
    std::bitset<4096> stored_runs_;  // run numbers modulo 4096: see run_stored
};

class CommitQueue {
public:
    using Op = std::function<void(WriteContext&)>;

    CommitQueue(Storage& storage, std::function<TimePoint()> clock, std::function<void(const Event&)> on_event);

    /// Applies `ops` in a shared transaction and commits it. errors[i] receives
    /// the exception op i threw (that op took no effect). Throws the storage
    /// error when the commit itself failed: then no op took effect.
    void run(std::span<const Op> ops, std::span<std::exception_ptr> errors);
    /// One operation; rethrows what it threw.
    void run(const Op& op);

    /// Write transactions committed so far.
    std::uint64_t commits() const;

    /// `n` operations for one batch: operation i calls apply(w, i). Each holds
    /// only a reference and an index, which std::function keeps inline, so a
    /// batch of a thousand runs does not allocate a thousand closures.
    /// `apply` must outlive the run() they are passed to.
    template <class Apply>
    static std::vector<Op> indexed_ops(std::size_t n, const Apply& apply) {
        std::vector<Op> ops;
        ops.reserve(n);
        for (std::size_t i = 0; i < n; ++i) ops.emplace_back([&apply, i](WriteContext& w) { apply(w, i); });
        return ops;
    }
    /// A temporary would be gone before the operations run.
    template <class Apply>
    static std::vector<Op> indexed_ops(std::size_t n, const Apply&& apply) = delete;

private:
    struct Group {
        std::span<const Op> ops;
        std::span<std::exception_ptr> errors;
        std::exception_ptr commit_error;
        bool done = false;
    };
    std::vector<Event> commit(std::vector<Group*>& batch);
    void deliver_events(std::unique_lock<std::mutex>& lock, std::vector<Event> events);

    Storage& storage_;
    std::function<TimePoint()> clock_;
    std::function<void(const Event&)> on_event_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<Group*> pending_;
    bool leading_ = false;
    std::uint64_t commits_ = 0;
    // Used by the leader only (inside commit()): see WriteContext::record_epoch.
    std::uint64_t record_epoch_ = 0;
    std::uint64_t last_txn_ = 0;  // the id of the last transaction this queue committed
    // Events wait here for the on_event callback, in commit order; one thread
    // at a time delivers them, so a callback that writes does not deadlock.
    std::vector<Event> callback_queue_;
    bool delivering_ = false;
};

}  // namespace abide::detail
