// Read-only queries: one read transaction each, no replay, no fiber.
#include "bytes.hpp"
#include "engine_core.hpp"

#include <fmt/format.h>

#include <filesystem>

namespace abide::detail {

std::optional<RunRecord> EngineCore::find_run(Txn& txn, std::string_view id, std::uint64_t* number) const {
    auto n = txn.get(Db::run_ids, id);
    if (!n) return std::nullopt;
    const std::uint64_t run = get_be64(*n);
    if (number) *number = run;
    return read_run(txn, run, id);
}

RunRecord EngineCore::read_run(Txn& txn, std::uint64_t run, std::string_view id) const {
    auto raw = txn.get(Db::runs, run_key(run));
    if (!raw)
        throw FormatError("abide.storage.corrupt",
                          fmt::format("run '{}' is indexed but its record #{} is missing; the file is damaged", id, run));
    RunRecord record = decode_run_record(*raw, run);
    if (record.id != id)
        throw FormatError("abide.storage.corrupt",
                          fmt::format("run id '{}' is indexed to record #{}, which holds run '{}'; the file is "
                                      "damaged. Run `abide check`",
                                      id, run, record.id));
    return record;
}

RunInfo EngineCore::run_info(Txn& txn, std::uint64_t run, const RunRecord& record) const {
    std::optional<JournalEntry> park;
    // The wait's data lives in its park entry only (the record mirrors the rest).
    if (record.park && record.status == RunStatus::waiting)
        park = read_journal_entry(txn, run, record.park->seq, record.created_us);
    return to_run_info(record, read_run_input(txn, run, record), park ? &*park : nullptr);
}

std::optional<RunInfo> EngineCore::status(std::string_view run) {
    Txn t = storage.read();
    std::uint64_t number = 0;
    auto record = find_run(t, run, &number);
    if (!record) return std::nullopt;
    return run_info(t, number, *record);
}

json EngineCore::completed_output(std::string_view run) {
    Txn t = storage.read();
    auto record = find_run(t, run);
    if (!record) throw UsageError("abide.run.unknown", fmt::format("no run '{}' exists; check the id", run));
    if (record->status != RunStatus::completed) {
        std::string why = record->error ? fmt::format(" ({})", record->error->message) : std::string();
        throw UsageError("abide.run.not_completed",
                         fmt::format("run '{}' is {}{}; it has no result. Check status() first", run,
                                     to_string(record->status), why));
    }
    return record->output.empty() ? json() : parse_stored_json(record->output);
}

std::vector<RunInfo> EngineCore::list_runs(const RunQuery& query) {
    std::vector<RunInfo> out;
    if (query.limit == 0) return out;
    Txn t = storage.read();
    std::uint64_t after = 0;
    if (!query.after.empty()) {
        auto n = t.get(Db::run_ids, query.after);
        if (!n) throw UsageError("abide.run.unknown", fmt::format("the page cursor '{}' is not a run id", query.after));
        after = get_be64(*n);
    }
    // Each branch walks an index in run order and yields candidate run numbers.
    auto consider = [&](std::uint64_t run) {
        auto raw = t.get(Db::runs, run_key(run));
        if (!raw) return;
        RunRecord record = decode_run_record(*raw, run);
        if (query.status && record.status != *query.status) return;
        if (query.workflow && record.workflow != *query.workflow) return;
        out.push_back(run_info(t, run, record));
    };
    if (query.waiting_for) {
        std::string prefix = *query.waiting_for;
        prefix.push_back('\0');
        Cursor c(t, Db::waits);
        for (bool ok = c.seek(waits_key(*query.waiting_for, after + 1));
             ok && out.size() < query.limit && c.key().substr(0, prefix.size()) == prefix; ok = c.next())
            consider(get_be64(c.key(), prefix.size()));
    } else if (query.status && in_ready_set(*query.status)) {
        // The ready set holds both; `consider` tells them apart by the record.
        Cursor c(t, Db::ready);
        for (bool ok = c.seek(run_key(after + 1)); ok && out.size() < query.limit; ok = c.next())
            consider(get_be64(c.key()));
    } else if (query.status) {
        Cursor c(t, Db::by_status);
        const char s = static_cast<char>(*query.status);
        for (bool ok = c.seek(status_key(*query.status, after + 1)); ok && out.size() < query.limit && c.key()[0] == s;
             ok = c.next()) {
            if (query.workflow && c.value() != *query.workflow) continue;  // skip without decoding
            consider(get_be64(c.key(), 1));
        }
    } else {
        Cursor c(t, Db::runs);
        for (bool ok = c.seek(run_key(after + 1)); ok && out.size() < query.limit; ok = c.next())
            consider(get_be64(c.key()));
    }
    return out;
}

std::vector<Event> EngineCore::events(std::uint64_t after, std::size_t limit) {
    std::vector<Event> out;
    Txn t = storage.read();
    Cursor c(t, Db::events);
    const EventSources sources = event_sources_in(t);
    for (bool ok = c.seek(event_key(after + 1)); ok && out.size() < limit; ok = c.next()) {
        const std::uint64_t seq = get_be64(c.key());
        std::uint64_t run = 0;  // known once the event's own bytes check out
        try {
            out.push_back(decode_event(c.value(), seq, sources, &run));
        } catch (const FormatError& e) {
            // An event reads its run's record and the journal entry it tells
            // of: say which event failed, so that a reader can go on after it.
            throw FormatError("abide.storage.corrupt",
                              fmt::format("event {}{} cannot be read: {}. Read on with events({}); run `abide check`",
                                          seq, run ? fmt::format(" of run #{}", run) : std::string(), e.what(), seq));
        }
    }
    return out;
}

std::optional<TimePoint> EngineCore::next_deadline() {
    Txn t = storage.read();
    Cursor c(t, Db::timers);
    if (!c.first()) return std::nullopt;
    return from_micros(static_cast<std::int64_t>(get_be64(c.key())));
}

Stats EngineCore::stats() {
    Stats st;
    Txn t = storage.read();
    st.runs = t.count(Db::runs);
    st.timers = t.count(Db::timers);
    st.buffered_signals = t.count(Db::inbox);
    // Ready and running runs are in the ready set (usually few): their
    // records tell which. Every other status has its own range of by_status.
    Cursor r(t, Db::ready);
    for (bool ok = r.first(); ok; ok = r.next()) {
        bool running = false;
        try {
            const std::uint64_t run = get_be64(r.key());
            auto raw = t.get(Db::runs, run_key(run));
            running = raw && decode_run_record(*raw, run).status == RunStatus::running;
        } catch (const FormatError&) {
            // Damaged: counted as ready, as the index says; `abide check` reports it.
        }
        ++(running ? st.running : st.ready);
    }
    Cursor c(t, Db::by_status);
    for (bool ok = c.first(); ok; ok = c.next()) {
        switch (static_cast<RunStatus>(c.key()[0])) {
            case RunStatus::ready:
            case RunStatus::running: break;  // not kept here (verify reports such an entry)
            case RunStatus::waiting: ++st.waiting; break;
            case RunStatus::completed: ++st.completed; break;
            case RunStatus::failed: ++st.failed; break;
            case RunStatus::cancelled: ++st.cancelled; break;
            case RunStatus::quarantined: ++st.quarantined; break;
        }
    }
    Cursor e(t, Db::events);
    if (e.last()) st.last_event_seq = get_be64(e.key());
    std::error_code ec;
    st.file_bytes = std::filesystem::file_size(storage.path(), ec);
    st.map_bytes = storage.map_size();
    {
        std::lock_guard lock(runs_mutex_);
        st.cached_runs = cache_.size();
    }
    return st;
}

Trace EngineCore::trace(std::string_view run_id) {
    Txn t = storage.read();
    std::uint64_t run = 0;
    auto record = find_run(t, run_id, &run);
    if (!record) throw UsageError("abide.run.unknown", fmt::format("no run '{}' exists; check the id", run_id));
    Trace trace;
    trace.run = run_info(t, run, *record);
    Cursor c(t, Db::journal);
    WaitKind last_wait{};
    for (bool ok = c.seek(journal_key(run, 0)); ok && get_be64(c.key()) == run; ok = c.next()) {
        const std::uint32_t seq = get_be32(c.key(), 8);
        JournalEntry e = decode_journal_entry(c.value(), run, seq, record->created_us);
        TraceEntry te;
        te.seq = seq;
        te.name = e.name;
        te.started = from_micros(e.started_us);
        te.finished = from_micros(e.finished_us);
        if (e.deadline_us != 0) te.deadline = from_micros(e.deadline_us);
        te.value = e.value.empty() ? json() : parse_stored_json(e.value);
        switch (e.kind) {
            case EntryKind::wait:
                last_wait = e.wait_kind;
                te.kind = e.wait_kind == WaitKind::suspend ? "suspend" : "wait";
                break;
            case EntryKind::sleep: last_wait = WaitKind::sleep; te.kind = "sleep"; break;
            case EntryKind::step_retry:
                last_wait = WaitKind::retry;
                te.kind = "step_retry";
                te.error = ErrorInfo{"abide.step.failed", e.error_type, e.error_message};
                te.detail = fmt::format("attempt {}", e.attempt);
                break;
            case EntryKind::step_error:
                te.kind = "step";
                te.error = ErrorInfo{"abide.step.failed", e.error_type, e.error_message};
                te.detail = fmt::format("attempt {}", e.attempt);
                break;
            case EntryKind::step_ok:
                te.kind = "step";
                te.detail = fmt::format("attempt {}", e.attempt);
                break;
            case EntryKind::wake:
                te.kind = "wake";
                te.detail = std::string(to_string(e.reason));
                if (e.reason == WakeReason::payload && last_wait == WaitKind::suspend) te.detail = "resumed";
                if (e.reason == WakeReason::payload && last_wait == WaitKind::signal) te.detail = "signal";
                if (e.reason == WakeReason::cancelled) te.value = json{{"reason", e.error_message}};
                if (!e.signal_id.empty()) te.detail += " id=" + e.signal_id;
                break;
            default: te.kind = std::string(to_string(e.kind)); break;
        }
        trace.entries.push_back(std::move(te));
    }
    return trace;
}

}  // namespace abide::detail
