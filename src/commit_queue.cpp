#include "commit_queue.hpp"

#include "bytes.hpp"
#include "crash_points.hpp"
#include "keys.hpp"
#include "records.hpp"

#include <abide/errors.hpp>

namespace abide::detail {

std::uint64_t WriteContext::next_number(Db db) {
    auto& next = next_number_[static_cast<std::size_t>(db)];
    if (!next) next = next_sequence(txn, db);
    return *next;
}

std::uint64_t WriteContext::new_number(Db db) {
    const std::uint64_t number = next_number(db);
    ++*next_number_[static_cast<std::size_t>(db)];
    return number;
}

std::uint64_t WriteContext::emit(std::uint64_t run, const RunRecord& record, Event event, std::string_view data_json,
                                 std::optional<FromEntry> from) {
    event.seq = new_number(Db::events);
    event.at = from_micros(now_us);
    txn.put_new(Db::events, event_key(event.seq),
                encode_event(event, {run, record.created_us}, event.seq, data_json, from, scratch_));
    const std::uint64_t seq = event.seq;
    if (keep_events_) {
        event.run_id = record.id;
        event.workflow = record.workflow;
        if (!data_json.empty()) event.data = parse_stored_json(data_json);
        events_.push_back(std::move(event));
    }
    return seq;
}

CommitQueue::CommitQueue(Storage& storage, std::function<TimePoint()> clock,
                         std::function<void(const Event&)> on_event)
    : storage_(storage), clock_(std::move(clock)), on_event_(std::move(on_event)) {}

std::uint64_t CommitQueue::commits() const {
    std::lock_guard lock(mutex_);
    return commits_;
}

void CommitQueue::run(const Op& op) {
    std::exception_ptr error;
    run(std::span<const Op>(&op, 1), std::span<std::exception_ptr>(&error, 1));
    if (error) std::rethrow_exception(error);
}

void CommitQueue::run(std::span<const Op> ops, std::span<std::exception_ptr> errors) {
    Group group{ops, errors, nullptr, false};
    std::unique_lock lock(mutex_);
    pending_.push_back(&group);
    while (!group.done) {
        if (leading_) {
            cv_.wait(lock);
            continue;
        }
        leading_ = true;
        std::vector<Group*> batch = std::exchange(pending_, {});
        lock.unlock();
        std::vector<Event> events = commit(batch);
        lock.lock();
        for (Group* g : batch) g->done = true;
        leading_ = false;
        cv_.notify_all();
        if (!events.empty()) deliver_events(lock, std::move(events));
    }
    if (group.commit_error) std::rethrow_exception(group.commit_error);
}

std::vector<Event> CommitQueue::commit(std::vector<Group*>& batch) {
    const bool keep_events = static_cast<bool>(on_event_);
    for (;;) {
        bool restart = false;
        try {
            Txn txn = storage_.write();
            const std::uint64_t txn_id = txn.id();
            // Someone else committed since this queue's last commit: any run
            // record may have changed.
            if (txn_id != last_txn_ + 1) ++record_epoch_;
            WriteContext ctx(txn, to_micros(clock_()), keep_events, record_epoch_);
            for (Group* g : batch) {
                for (std::size_t i = 0; i < g->ops.size() && !restart; ++i) {
                    if (g->errors[i]) continue;  // dropped in an earlier attempt
                    try {
                        g->ops[i](ctx);
                    } catch (const MapFullError&) {
                        throw;
                    } catch (const FormatError&) {
                        g->errors[i] = std::current_exception();  // one damaged record, not the batch
                        restart = true;
                    } catch (const StorageError&) {
                        throw;
                    } catch (...) {
                        g->errors[i] = std::current_exception();
                        restart = true;
                    }
                }
                if (restart) break;
            }
            if (restart) continue;  // txn aborts here; re-apply without the failed op
            ABIDE_CRASH_POINT("commit.before");  // crash: the batch is lost, no caller was answered
            txn.commit();
            last_txn_ = txn_id;
            ABIDE_CRASH_POINT("commit.after");  // crash: the batch is durable, no caller was answered
            {
                std::lock_guard lock(mutex_);
                ++commits_;
            }
            return ctx.take_events();
        } catch (const MapFullError&) {
            try {
                storage_.grow_map();
            } catch (...) {
                for (Group* g : batch) g->commit_error = std::current_exception();
                return {};
            }
        } catch (...) {
            for (Group* g : batch) g->commit_error = std::current_exception();
            return {};
        }
    }
}

void CommitQueue::deliver_events(std::unique_lock<std::mutex>& lock, std::vector<Event> events) {
    callback_queue_.insert(callback_queue_.end(), std::make_move_iterator(events.begin()),
                           std::make_move_iterator(events.end()));
    if (delivering_) return;  // the thread delivering now will reach them, in order
    delivering_ = true;
    while (!callback_queue_.empty()) {
        std::vector<Event> now = std::exchange(callback_queue_, {});
        lock.unlock();
        for (const Event& e : now) {
            ABIDE_CRASH_POINT("event.callback.before");  // crash: committed, the callback never saw it
            try {
                on_event_(e);
            } catch (...) {
                // A throwing callback must not undo or block a committed write.
            }
        }
        lock.lock();
    }
    delivering_ = false;
}

}  // namespace abide::detail
