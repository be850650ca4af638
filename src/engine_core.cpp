#include "engine_core.hpp"

#include "crash_points.hpp"

#include "bytes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <iterator>

namespace abide::detail {

namespace {

WaitKind park_kind_of(const JournalEntry& park) {
    switch (park.kind) {
        case EntryKind::wait: return park.wait_kind;
        case EntryKind::sleep: return WaitKind::sleep;
        default: return WaitKind::retry;
    }
}

json parse_or_null(std::string_view text) { return text.empty() ? json() : parse_stored_json(text); }

void check_name(std::string_view what, std::string_view name) {
    if (name.empty() || name.size() > 512 || name.find('\0') != std::string_view::npos)
        throw UsageError("abide.name.invalid",
                         fmt::format("{} '{}' is not a valid name: use 1 to 512 bytes without NUL", what, name));
}

}  // namespace

// ---- construction --------------------------------------------------------------

static EngineOptions with_defaults(EngineOptions o) {
    if (!o.clock) o.clock = [] { return Clock::now(); };
    if (o.max_runs_per_round == 0) o.max_runs_per_round = 1;
    return o;
}

EngineCore::EngineCore(EngineOptions opts)
    : options(with_defaults(std::move(opts))), storage(options),
      // Enough pooled stacks for every cached fiber plus a full round, so a
      // steady state maps no new stacks.
      stacks(options.fiber_stack_size, options.cache_size + options.max_runs_per_round),
      commits(storage, options.clock, options.on_event), run_locks(options.path.string()),
      random_(std::random_device{}()), cache_(options.cache_size) {}

EngineCore::~EngineCore() {
    // Unwind cached fibers while the stack pool still exists.
    cache_.clear();
}

std::uint64_t EngineCore::random64() {
    std::lock_guard lock(random_mutex_);
    return random_();
}

std::string EngineCore::random_uuid() {
    std::uint64_t hi = random64(), lo = random64();
    hi = (hi & ~std::uint64_t{0xf000}) | 0x4000;                          // version 4
    lo = (lo & ~(std::uint64_t{0xc} << 60)) | (std::uint64_t{0x8} << 60);  // RFC 4122 variant
    return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                       lo & 0xffffffffffffULL);
}

WorkflowDef& EngineCore::add_definition(std::string name) {
    check_name("workflow", name);
    std::lock_guard lock(definitions_mutex_);
    auto [it, inserted] = definitions_.try_emplace(name, nullptr);
    if (!inserted)
        throw UsageError("abide.workflow.duplicate",
                         fmt::format("workflow '{}' is already defined; define each name once", name));
    it->second = std::make_unique<WorkflowDef>();
    it->second->name = std::move(name);
    return *it->second;
}

const WorkflowDef* EngineCore::find_definition(std::string_view name) const {
    std::lock_guard lock(definitions_mutex_);
    auto it = definitions_.find(name);
    return it == definitions_.end() ? nullptr : it->second.get();
}

// ---- record helpers (inside a write) -------------------------------------------

void EngineCore::put_run(WriteContext& w, std::uint64_t run, RunRecord& record) {
    w.record_changed();  // the run's executor, if any, must read it again
    store_run(w, run, record);
}

void EngineCore::store_run(WriteContext& w, std::uint64_t run, RunRecord& record) {
    record.updated_us = w.now_us;
    w.run_stored(run);
    w.txn.put(Db::runs, run_key(run), encode(record, run, w.scratch()));
}

void EngineCore::put_own_run(WriteContext& w, std::uint64_t run, RunRecord& record, KeptRecord& kept) {
    // Only the executor writes its run without moving the epoch, and no one
    // else holds a copy of the record (runs parked in the cache keep none).
    store_run(w, run, record);
    kept.record = std::move(record);
    kept.epoch = w.record_epoch();
}

const RunRecord& EngineCore::known_current(WriteContext& w, std::uint64_t run, const RunRecord& record) const {
    // Debug builds check the invariant: nothing has changed the record since.
    assert([&] {
        const auto stored = w.txn.get(Db::runs, run_key(run));
        return stored && decode_run_record(*stored, run) == record;
    }());
    (void)w;
    (void)run;
    return record;
}

std::optional<RunRecord> EngineCore::read_own_run(WriteContext& w, const RunInstance& instance) const {
    const std::uint64_t run = instance.run_number();
    const KeptRecord* kept = instance.kept_record();
    if (kept && (kept->snapshot_txn != 0 ? w.snapshot_current(kept->snapshot_txn, run)
                                         : kept->epoch == w.record_epoch()))
        return known_current(w, run, kept->record);
    auto raw = w.txn.get(Db::runs, run_key(run));
    if (!raw) return std::nullopt;
    return decode_run_record(*raw, run);
}

void EngineCore::set_status(WriteContext& w, std::uint64_t run, RunRecord& record, RunStatus status) {
    if (record.status == status) return;
    const bool was = in_ready_set(record.status), is = in_ready_set(status);
    if (!was) w.txn.del(Db::by_status, status_key(record.status, run));
    if (!is) w.txn.put(Db::by_status, status_key(status, run), record.workflow);
    if (was && !is) w.txn.del(Db::ready, run_key(run));
    if (!was && is) w.txn.put(Db::ready, run_key(run), {});
    record.status = status;
}

void EngineCore::append_journal(WriteContext& w, std::uint64_t run, RunRecord& record, const JournalEntry& entry) {
    w.txn.put(Db::journal, journal_key(run, record.journal_len),
              encode(entry, run, record.journal_len, record.created_us, w.scratch()));
    ++record.journal_len;
}

void EngineCore::clear_park(WriteContext& w, std::uint64_t run, RunRecord& record) {
    if (!record.park) return;
    const ParkState& p = *record.park;
    if (p.kind == WaitKind::signal || p.kind == WaitKind::suspend) w.txn.del(Db::waits, waits_key(p.name, run));
    if (p.deadline_us != 0) w.txn.del(Db::timers, timer_key(p.deadline_us, run, p.seq));
    record.park.reset();
}

Event EngineCore::make_event(EventType type, std::string name) {
    // The run's id and workflow are filled in by WriteContext::emit, and only
    // for the on_event callback: the stored event names its run by number.
    Event e;
    e.type = type;
    e.name = std::move(name);
    return e;
}

namespace {

/// The event that says how a park of the run `run_id` ended.
Event wake_event(Event base, std::string_view run_id, WaitKind parked_on, const JournalEntry& wake) {
    switch (wake.reason) {
        case WakeReason::payload:
            if (parked_on == WaitKind::suspend) {
                base.type = EventType::resumed;
                base.topic = base.name + "/";
                base.topic += run_id;
            } else {
                base.type = EventType::signal_delivered;
            }
            break;  // the payload goes in as text: see emit_wake
        case WakeReason::timeout: base.type = EventType::timed_out; break;
        case WakeReason::timer: base.type = EventType::woke; break;
        case WakeReason::cancelled:
            base.type = EventType::cancelled;
            base.data = json{{"reason", wake.error_message}};
            break;
    }
    return base;
}

}  // namespace

void EngineCore::emit_wake(WriteContext& w, std::uint64_t run, const RunRecord& record, WaitKind parked_on,
                           const JournalEntry& wake) {
    w.emit(run, record, wake_event(make_event({}, wake.name), record.id, parked_on, wake),
           wake.reason == WakeReason::payload ? std::string_view(wake.value) : std::string_view());
}

void EngineCore::wake_parked(WriteContext& w, std::uint64_t run, RunRecord& record, JournalEntry wake) {
    const ParkState park = *record.park;
    wake.name = park.name;
    if (wake.started_us == 0) wake.started_us = wake.finished_us = w.now_us;
    if (wake.reason != WakeReason::cancelled) emit_wake(w, run, record, park.kind, wake);
    append_journal(w, run, record, wake);
    clear_park(w, run, record);
    set_status(w, run, record, RunStatus::ready);
}

std::optional<JournalEntry> EngineCore::take_buffered(WriteContext& w, std::uint64_t run, const RunRecord& record,
                                                      WaitKind kind, std::string_view name) {
    if (w.txn.count(Db::inbox) == 0) return std::nullopt;  // the usual case: no search, no cursor
    const std::string prefix = inbox_prefix(run, kind, name);
    Cursor c(w.txn, Db::inbox);
    while (c.seek(prefix) && c.key().substr(0, prefix.size()) == prefix) {
        InboxEntry buffered = decode_inbox_entry(c.value(), c.key());
        w.txn.del(Db::inbox, std::string(c.key()));
        if (!buffered.validated) {
            const WorkflowDef* def = find_definition(record.workflow);
            const auto& validators = kind == WaitKind::signal ? def->signals : def->resumes;
            auto it = validators.find(name);
            try {
                if (kind == WaitKind::signal && it == validators.end())
                    throw PayloadError("abide.signal.undeclared",
                                       fmt::format("workflow '{}' declares no signal '{}'", record.workflow, name));
                if (it != validators.end()) it->second(parse_stored_json(buffered.payload));
            } catch (const std::exception& e) {
                Event rejected = make_event(EventType::signal_rejected, std::string(name));
                rejected.data = json{{"error", e.what()}, {"signal_id", buffered.signal_id}};
                w.emit(run, record, std::move(rejected));
                continue;
            }
        }
        JournalEntry wake;
        wake.kind = EntryKind::wake;
        wake.reason = WakeReason::payload;
        wake.name = std::string(name);
        wake.value = std::move(buffered.payload);
        wake.signal_id = std::move(buffered.signal_id);
        wake.started_us = buffered.received_us;
        wake.finished_us = w.now_us;
        return wake;
    }
    return std::nullopt;
}

std::optional<JournalEntry> EngineCore::park_or_wake(WriteContext& w, std::uint64_t run, RunRecord& record,
                                                     const JournalEntry& park, std::uint32_t park_seq) {
    JournalEntry wake;
    wake.kind = EntryKind::wake;
    wake.name = park.name;
    wake.started_us = wake.finished_us = w.now_us;
    const WaitKind kind = park_kind_of(park);
    if (record.cancel_requested) {
        // Delivered once; cancel_reason stays to say the run was cancelled.
        record.cancel_requested = false;
        wake.reason = WakeReason::cancelled;
        wake.error_message = record.cancel_reason;
        return wake;
    }
    if (park.kind == EntryKind::wait) {
        if (auto buffered = take_buffered(w, run, record, park.wait_kind, park.name)) {
            emit_wake(w, run, record, kind, *buffered);
            return buffered;
        }
    }
    if (park.deadline_us != 0 && park.deadline_us <= w.now_us) {
        wake.reason = park.kind == EntryKind::wait ? WakeReason::timeout : WakeReason::timer;
        emit_wake(w, run, record, kind, wake);
        return wake;
    }
    ParkState state;
    state.kind = kind;
    state.name = park.name;
    state.deadline_us = park.deadline_us;
    state.since_us = w.now_us;
    state.seq = park_seq;
    if (kind == WaitKind::signal || kind == WaitKind::suspend) w.txn.put(Db::waits, waits_key(park.name, run), {});
    if (park.deadline_us != 0) w.txn.put(Db::timers, timer_key(park.deadline_us, run, park_seq), {});

    static constexpr EventType park_events[] = {EventType::waiting, EventType::waiting, EventType::suspended,
                                                EventType::sleeping, EventType::step_retrying};
    Event e = make_event(park_events[static_cast<std::size_t>(kind)], park.name);
    if (kind == WaitKind::suspend) e.topic = park.name + "/" + record.id;
    if (park.deadline_us != 0) e.deadline = from_micros(park.deadline_us);
    w.emit(run, record, std::move(e), wait_data(park), FromEntry{park_seq, true});

    record.park = std::move(state);
    set_status(w, run, record, RunStatus::waiting);
    return std::nullopt;
}

void EngineCore::drop_inbox(WriteContext& w, std::uint64_t run, const RunRecord& record) {
    if (w.txn.count(Db::inbox) == 0) return;  // the usual case: no search, no cursor
    const std::string prefix = run_key(run).str();
    Cursor c(w.txn, Db::inbox);
    while (c.seek(prefix) && c.key().substr(0, prefix.size()) == prefix) {
        std::string key(c.key());
        InboxEntry buffered = decode_inbox_entry(c.value(), key);
        std::string_view rest = std::string_view(key).substr(prefix.size() + 1);
        Event e = make_event(EventType::signal_dropped, std::string(rest.substr(0, rest.find('\0'))));
        e.data = json{{"payload", parse_or_null(buffered.payload)}, {"signal_id", buffered.signal_id}};
        w.emit(run, record, std::move(e));
        w.txn.del(Db::inbox, key);
    }
}

// ---- committing a run's request ---------------------------------------------------

void EngineCore::apply_request(WriteContext& w, const RunInstance& instance, Outcome& out) {
    out = Outcome{};
    const std::uint64_t run = instance.run_number();
    std::optional<RunRecord> stored = read_own_run(w, instance);
    if (!stored) return;
    RunRecord& record = *stored;
    // Someone else moved the run on (retry, another process): our fiber is stale.
    if (record.incarnation != instance.incarnation() || record.journal_len != instance.journal_size() ||
        is_finished(record.status))
        return;
    const Request& req = instance.request();
    switch (req.kind) {
        case Request::Kind::none: return;
        case Request::Kind::append: {
            append_journal(w, run, record, req.entry);
            if (record.status == RunStatus::ready) set_status(w, run, record, RunStatus::running);
            // The result itself is in the journal (trace); the event names the step.
            if (req.entry.kind == EntryKind::step_ok) {
                w.emit(run, record, make_event(EventType::step_completed, req.entry.name), {},
                       FromEntry{record.journal_len - 1, false});
            } else if (req.entry.kind == EntryKind::step_error) {
                Event e = make_event(EventType::step_failed, req.entry.name);
                e.data = json{{"type", req.entry.error_type}, {"message", req.entry.error_message}};
                w.emit(run, record, std::move(e));
            }
            record.attempts = 0;  // progress: this execution was not cut short
            put_own_run(w, run, record, out.kept.emplace());
            out.kind = Outcome::Kind::proceed;
            out.request_entry_appended = true;
            return;
        }
        case Request::Kind::park: {
            std::uint32_t seq = record.journal_len - 1;  // re-park: the entry is the last one
            clear_park(w, run, record);
            if (req.new_entry) {
                seq = record.journal_len;
                append_journal(w, run, record, req.entry);
                out.request_entry_appended = true;
            }
            if (record.status == RunStatus::ready) set_status(w, run, record, RunStatus::running);
            if (auto wake = park_or_wake(w, run, record, req.entry, seq)) {
                append_journal(w, run, record, *wake);
                out.wake = std::move(*wake);
                out.kind = Outcome::Kind::proceed;
            } else {
                out.kind = Outcome::Kind::parked;
            }
            record.attempts = 0;
            if (out.kind == Outcome::Kind::parked)
                store_run(w, run, record);  // what wakes it rewrites the record: nothing to keep
            else
                put_own_run(w, run, record, out.kept.emplace());
            return;
        }
        case Request::Kind::finish: {
            clear_park(w, run, record);
            record.output = req.output;
            record.error = req.error;
            set_status(w, run, record, req.final_status);
            drop_inbox(w, run, record);
            static constexpr EventType finish_events[] = {EventType::completed, EventType::completed,
                                                          EventType::completed, EventType::completed,
                                                          EventType::completed, EventType::failed,
                                                          EventType::cancelled};
            Event e = make_event(finish_events[static_cast<std::size_t>(req.final_status)]);
            if (req.error)
                e.data = json{{"id", req.error->id}, {"type", req.error->type}, {"message", req.error->message}};
            w.emit(run, record, std::move(e), req.final_status == RunStatus::completed ? std::string_view(req.output)
                                                                          : std::string_view());
            record.attempts = 0;
            store_run(w, run, record);  // its own last write: it keeps nothing
            out.kind = Outcome::Kind::finished;
            out.final_status = req.final_status;
            return;
        }
    }
}

// ---- host writes ------------------------------------------------------------------

EngineCore::PreparedStart EngineCore::prepare_start(const StartRequest& request) {
    const WorkflowDef* def = find_definition(request.workflow);
    if (!def)
        throw UsageError("abide.workflow.unknown",
                         fmt::format("no workflow named '{}' is defined in this engine; call Engine::define "
                                     "before starting it",
                                     request.workflow));
    def->validate_input(request.input);
    PreparedStart p;
    p.request = &request;
    p.text = dump_stored_json(request.input);
    if (p.text.size() > options.max_payload_bytes)
        throw PayloadError("abide.payload.too_large",
                           fmt::format("the input of workflow '{}' is {} bytes, over max_payload_bytes ({})",
                                       request.workflow, p.text.size(), options.max_payload_bytes));
    p.id = request.options.run_id.empty() ? random_uuid() : request.options.run_id;
    check_name("run id", p.id);
    return p;
}

void EngineCore::apply_start(WriteContext& w, const PreparedStart& p, RunHandle& handle) {
    ABIDE_CRASH_POINT("start.apply");  // crash: inside the transaction, nothing stored
    const std::string& workflow = p.request->workflow;
    handle.id = p.id;
    handle.created = true;
    // The id is indexed to the number a new run gets, unless it names a run already.
    const std::uint64_t run = w.next_number(Db::runs);
    if (auto existing = w.txn.put_absent(Db::run_ids, p.id, run_key(run))) {
        const std::uint64_t number = get_be64(*existing);
        const RunRecord old = read_run(w.txn, number, p.id);
        if (old.workflow != workflow)
            throw UsageError("abide.run.id_conflict",
                             fmt::format("run id '{}' already belongs to a run of workflow '{}', not '{}'; choose "
                                         "another id",
                                         p.id, old.workflow, workflow));
        handle.created = false;
        return;
    }
    [[maybe_unused]] const std::uint64_t taken = w.new_number(Db::runs);
    assert(taken == run);
    RunRecord record;
    record.id = p.id;
    record.workflow = workflow;
    record.status = RunStatus::ready;
    record.created_us = w.now_us;
    // Stored once, beside the record that every step rewrites.
    w.txn.put_new(Db::inputs, run_key(run), encode_run_input(p.text, run, w.scratch()));
    w.txn.put(Db::ready, run_key(run), {});
    w.emit(run, record, make_event(EventType::started));  // the input is in the inputs table
    record.updated_us = w.now_us;
    w.txn.put_new(Db::runs, run_key(run), encode(record, run, w.scratch()));
}

std::vector<RunHandle> EngineCore::start(std::span<const StartRequest> requests) {
    // Everything is checked before anything is written.
    std::vector<PreparedStart> prepared;
    prepared.reserve(requests.size());
    for (const StartRequest& r : requests) prepared.push_back(prepare_start(r));
    std::vector<RunHandle> handles(requests.size());
    auto apply = [&](WriteContext& w, std::size_t i) { apply_start(w, prepared[i], handles[i]); };
    std::vector<std::exception_ptr> errors(requests.size());
    commits.run(CommitQueue::indexed_ops(prepared.size(), apply), errors);
    ABIDE_CRASH_POINT("start.committed");  // crash: stored, the caller got no answer and starts again
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);  // an id conflict: that run was not created
    return handles;
}

std::optional<SignalResult> EngineCore::prepare_signal(Txn& read, const SignalRequest& req, PreparedSignal& p) {
    auto refuse = [](SignalOutcome o, std::string msg) { return SignalResult{o, std::move(msg)}; };
    p.request = &req;
    if (req.kind != WaitKind::signal && req.kind != WaitKind::suspend)
        return refuse(SignalOutcome::undeclared, "only signals and resumes can be delivered; nothing was written");
    if (req.name.empty() || req.name.find('\0') != std::string::npos)
        return refuse(SignalOutcome::undeclared, "the name is empty or contains NUL; nothing was written");
    p.text = dump_stored_json(req.payload);
    if (p.text.size() > options.max_payload_bytes)
        return refuse(SignalOutcome::invalid_payload,
                      fmt::format("the payload is {} bytes, over max_payload_bytes ({}); nothing was written",
                                  p.text.size(), options.max_payload_bytes));
    p.record = find_run(read, req.run, &p.run);
    p.snapshot_txn = read.id();
    const std::optional<RunRecord>& record = p.record;
    if (!record)
        return refuse(SignalOutcome::unknown_run,
                      fmt::format("no run '{}' exists; check the id. Nothing was written", req.run));
    // Validate against the run's declared types before writing anything.
    const WorkflowDef* def = find_definition(record->workflow);
    p.validated = def != nullptr;
    if (!def) return std::nullopt;  // written unvalidated; the host checks it
    const auto& validators = req.kind == WaitKind::signal ? def->signals : def->resumes;
    auto it = validators.find(req.name);
    if (req.kind == WaitKind::signal && it == validators.end()) {
        std::string declared;
        for (const auto& entry : def->signals) declared += (declared.empty() ? "" : ", ") + entry.first;
        return refuse(SignalOutcome::undeclared,
                      fmt::format("workflow '{}' declares no signal '{}' (it declares: {}); nothing was written",
                                  record->workflow, req.name, declared.empty() ? "none" : declared));
    }
    if (it != validators.end()) {
        try {
            it->second(req.payload);
        } catch (const std::exception& e) {
            return refuse(SignalOutcome::invalid_payload, std::string(e.what()) + "; nothing was written");
        }
    }
    return std::nullopt;
}

namespace {

/// The message of every delivered signal: appended, not formatted, since it
/// is built once per signal (formatting it cost a delivery about 1,300
/// instructions, appending it about 750; profile_refund --phase=decide).
std::string delivered_message(std::string_view run_id, std::string_view noun, std::string_view name) {
    constexpr std::string_view a = "delivered: run '", b = "' was waiting for ", c = " '",
                               d = "' and is ready; the next poll continues it";
    std::string m;
    m.reserve(a.size() + run_id.size() + b.size() + noun.size() + c.size() + name.size() + d.size());
    m.append(a).append(run_id).append(b).append(noun).append(c).append(name).append(d);
    return m;
}

}  // namespace

void EngineCore::apply_signal(WriteContext& w, const PreparedSignal& p, SignalResult& result) {
    ABIDE_CRASH_POINT("signal.apply");  // crash: inside the transaction, nothing stored
    const SignalRequest& req = *p.request;
    const std::string& run_id = req.run;
    const std::string& name = req.name;
    const char* noun = req.kind == WaitKind::signal ? "signal" : "resume for";
    auto refuse = [](SignalOutcome o, std::string msg) { return SignalResult{o, std::move(msg)}; };
    // prepare_signal found the run; its id names that number for good.
    const std::uint64_t run = p.run;
    RunRecord record = w.snapshot_current(p.snapshot_txn, run) ? known_current(w, run, *p.record)
                                                               : read_run(w.txn, run, run_id);
    // A repeated id is a duplicate even after the run finished: the sender's
    // first copy was accepted, which is what a retrying sender asks.
    const std::string id_key = signal_id_key(run, req.signal_id);
    const auto seen_record = req.signal_id.empty() ? std::nullopt : w.txn.get(Db::signal_ids, id_key);
    const std::optional<SignalIdMark> seen =
        seen_record ? std::optional(decode_signal_id(*seen_record, run, req.signal_id)) : std::nullopt;
    if (seen == SignalIdMark::too_late) {
        // A resend of a signal refused as too late gets the same answer.
        result = refuse(SignalOutcome::too_late,
                        fmt::format("signal id '{}' for run '{}' came after its wait's deadline and was refused; "
                                    "this copy was not stored either",
                                    req.signal_id, run_id));
        return;
    }
    if (seen) {
        result = refuse(SignalOutcome::duplicate,
                        fmt::format("signal id '{}' was already accepted for run '{}'; this copy was not stored again",
                                    req.signal_id, run_id));
        return;
    }
    if (is_finished(record.status)) {
        result = refuse(SignalOutcome::run_finished,
                        fmt::format("run '{}' has {}; it accepts no more signals. Nothing was written", run_id,
                                    to_string(record.status)));
        return;
    }
    const bool waiting_for_it = record.status == RunStatus::waiting && record.park &&
                                record.park->kind == req.kind && record.park->name == name;
    if (waiting_for_it && record.park->deadline_us != 0 && record.park->deadline_us <= w.now_us) {
        // The wait's deadline passed before any poll fired its timer: it timed
        // out, whatever arrives now. Time it out here so that the caller and
        // the workflow agree.
        JournalEntry wake;
        wake.kind = EntryKind::wake;
        wake.reason = WakeReason::timeout;
        wake_parked(w, run, record, std::move(wake));
        put_run(w, run, record);
        if (!req.signal_id.empty())
            w.txn.put(Db::signal_ids, id_key, encode_signal_id(SignalIdMark::too_late, run, req.signal_id));
        result = refuse(SignalOutcome::too_late,
                        fmt::format("run '{}' stopped waiting for {} '{}' at its deadline; the wait timed out and "
                                    "this payload was not stored",
                                    run_id, noun, name));
        return;
    }
    if (!req.signal_id.empty())
        w.txn.put(Db::signal_ids, id_key, encode_signal_id(SignalIdMark::accepted, run, req.signal_id));
    if (waiting_for_it && p.validated) {
        JournalEntry wake;
        wake.kind = EntryKind::wake;
        wake.reason = WakeReason::payload;
        wake.value = p.text;
        wake.signal_id = req.signal_id;
        wake_parked(w, run, record, std::move(wake));
        put_run(w, run, record);
        result = {SignalOutcome::delivered, delivered_message(run_id, noun, name)};
        return;
    }
    Event e = make_event(EventType::signal_buffered, name);
    if (req.kind == WaitKind::suspend) e.topic = name + "/" + record.id;
    const std::uint64_t seq = w.emit(run, record, std::move(e), p.text);
    std::string key = inbox_prefix(run, req.kind, name);
    put_be64(key, seq);
    w.txn.put(Db::inbox, key, encode(InboxEntry{req.signal_id, p.text, w.now_us, p.validated}, key));
    if (waiting_for_it) {
        // Written without the workflow's definition: the host checks it when
        // the run, made ready here, re-enters its wait.
        clear_park(w, run, record);
        set_status(w, run, record, RunStatus::ready);
        put_run(w, run, record);
    }
    result = {SignalOutcome::buffered,
              waiting_for_it ? fmt::format("buffered: run '{}' waits for {} '{}'; the host validates the payload "
                                           "and delivers it at its next poll",
                                           run_id, noun, name)
                             : fmt::format("buffered: run '{}' is not waiting for {} '{}' now; its next wait for it "
                                           "consumes this",
                                           run_id, noun, name)};
}

std::vector<SignalResult> EngineCore::deliver(std::span<const SignalRequest> requests) {
    std::vector<SignalResult> results(requests.size());
    std::vector<PreparedSignal> prepared(requests.size());
    std::vector<std::size_t> slots;  // which result each op fills
    {
        Txn read = storage.read();
        for (std::size_t i = 0; i < requests.size(); ++i) {
            if (auto refused = prepare_signal(read, requests[i], prepared[i])) {
                results[i] = std::move(*refused);
                continue;
            }
            slots.push_back(i);
        }
    }
    if (slots.empty()) return results;
    auto apply = [&](WriteContext& w, std::size_t k) { apply_signal(w, prepared[slots[k]], results[slots[k]]); };
    std::vector<std::exception_ptr> errors(slots.size());
    commits.run(CommitQueue::indexed_ops(slots.size(), apply), errors);
    ABIDE_CRASH_POINT("signal.committed");  // crash: stored, the sender got no answer and resends
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);  // a damaged run record
    return results;
}

CancelResult EngineCore::cancel(std::string_view run_id, std::string_view reason_in) {
    const std::string reason = reason_in.empty() ? std::string("cancelled") : std::string(reason_in);
    CancelResult result;
    commits.run([&](WriteContext& w) {
        std::uint64_t run = 0;
        auto record = find_run(w.txn, run_id, &run);
        if (!record) {
            result = {CancelOutcome::unknown_run, fmt::format("no run '{}' exists; nothing was written", run_id)};
            return;
        }
        if (is_finished(record->status)) {
            result = {CancelOutcome::run_finished,
                      fmt::format("run '{}' has already {}; nothing was written", run_id, to_string(record->status))};
            return;
        }
        if (record->cancel_requested || !record->cancel_reason.empty()) {
            result = {CancelOutcome::already_requested,
                      fmt::format("run '{}' was already asked to cancel ({})", run_id, record->cancel_reason)};
            return;
        }
        record->cancel_reason = reason;
        Event e = make_event(EventType::cancel_requested);
        e.data = json{{"reason", reason}};
        w.emit(run, *record, std::move(e));
        if (record->status == RunStatus::waiting) {
            JournalEntry wake;
            wake.kind = EntryKind::wake;
            wake.reason = WakeReason::cancelled;
            wake.error_message = reason;
            wake_parked(w, run, *record, std::move(wake));
            result = {CancelOutcome::cancelled,
                      fmt::format("run '{}' was waiting; it is ready and sees the cancellation at the next poll",
                                  run_id)};
        } else {
            record->cancel_requested = true;
            result = {CancelOutcome::requested,
                      fmt::format("run '{}' is {}; it sees the cancellation at its next wait", run_id,
                                  to_string(record->status))};
        }
        put_run(w, run, *record);
    });
    return result;
}

void EngineCore::make_ready_again(std::string_view run_id, RunStatus from, std::string_view refusal_id,
                                  std::string_view what, EventType event, void (*reset)(RunRecord&)) {
    commits.run([&](WriteContext& w) {
        std::uint64_t run = 0;
        auto record = find_run(w.txn, run_id, &run);
        if (!record)
            throw UsageError("abide.run.unknown", fmt::format("no run '{}' exists; check the id", run_id));
        if (record->status != from)
            throw UsageError(std::string(refusal_id), fmt::format("run '{}' is {}; only {} runs can be {}", run_id,
                                                                  to_string(record->status), to_string(from), what));
        record->error.reset();
        reset(*record);
        set_status(w, run, *record, RunStatus::ready);
        w.emit(run, *record, make_event(event));
        put_run(w, run, *record);
    });
}

void EngineCore::retry(std::string_view run_id) {
    // A new incarnation: fibers of the old one are stale.
    make_ready_again(run_id, RunStatus::failed, "abide.run.not_failed", "retried", EventType::retried,
                     [](RunRecord& r) { ++r.incarnation; });
}

void EngineCore::release_quarantined(std::string_view run_id) {
    make_ready_again(run_id, RunStatus::quarantined, "abide.run.not_quarantined", "released", EventType::released,
                     [](RunRecord& r) { r.attempts = 0; });
}

// ---- poll ---------------------------------------------------------------------------

bool EngineCore::fire_timer_round(PollResult& result, std::map<std::uint64_t, KeptRecord>& woken) {
    // At most one round of runs: they are claimed (locked) here and executed
    // before the next round is fired, so the run locks held at once stay
    // bounded (the kernel walks a file's lock list on every lock and unlock).
    const std::size_t max_per_commit = options.max_runs_per_round;
    std::size_t count = 0;
    bool more = false;
    std::vector<std::string> damaged;       // timer keys
    std::vector<std::string> damaged_runs;  // errors of runs whose record is damaged
    std::set<std::uint64_t> locked;         // locked in any attempt of the operation
    try {
        commits.run([&](WriteContext& w) {
            count = 0;
            more = false;
            damaged.clear();
            damaged_runs.clear();
            woken.clear();
            std::vector<std::string> due;
            {
                Cursor c(w.txn, Db::timers);
                for (bool ok = c.first(); ok; ok = c.next()) {
                    if (c.key().size() != timer_key_size) {
                        damaged.emplace_back(c.key());  // left for an operator; the other timers go on
                        continue;
                    }
                    if (static_cast<std::int64_t>(get_be64(c.key())) > w.now_us) break;
                    if (due.size() == max_per_commit) {
                        more = true;
                        break;
                    }
                    due.emplace_back(c.key());
                }
            }
            {
                // Claimed together, a stretch of run numbers at a time; a run
                // claimed by another thread or process stays ready for it.
                std::vector<std::uint64_t> runs;
                for (const std::string& key : due)
                    if (!locked.count(get_be64(key, 8))) runs.push_back(get_be64(key, 8));
                std::sort(runs.begin(), runs.end());
                runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
                for (std::uint64_t run : claim_runs(runs)) locked.insert(run);
            }
            for (const std::string& key : due) {
                const std::uint64_t run = get_be64(key, 8);
                const std::uint32_t seq = get_be32(key, 16);
                auto raw = w.txn.get(Db::runs, run_key(run));
                RunRecord record;
                if (raw) {
                    try {
                        record = decode_run_record(*raw, run);
                    } catch (const FormatError& e) {
                        damaged_runs.emplace_back(e.what());  // its timer stays, for an operator
                        continue;
                    }
                }
                // Stale timers (the wait ended some other way) are deleted and do
                // nothing: firing is idempotent. A live one is its park's own
                // timer entry (same park entry, same deadline), which
                // wake_parked deletes with the park.
                const bool live = raw && record.status == RunStatus::waiting && record.park &&
                                  record.park->seq == seq &&
                                  record.park->deadline_us == static_cast<std::int64_t>(get_be64(key));
                if (!live) {
                    w.txn.del(Db::timers, key);
                    continue;
                }
                ABIDE_CRASH_POINT("timer.fire");  // crash: inside the transaction, the timer stays due
                JournalEntry wake;
                wake.kind = EntryKind::wake;
                const WaitKind k = record.park->kind;
                wake.reason = (k == WaitKind::signal || k == WaitKind::suspend) ? WakeReason::timeout : WakeReason::timer;
                wake_parked(w, run, record, std::move(wake));
                // This poll executes the run next, so the claim rides in this
                // commit (a woken run just made progress: it is no suspect).
                const bool claimed = locked.count(run) > 0;
                if (claimed) {
                    record.attempts = 1;
                    set_status(w, run, record, RunStatus::running);
                    put_own_run(w, run, record, woken[run]);
                } else {
                    put_run(w, run, record);
                }
                ++count;
            }
        });
    } catch (...) {
        unclaim_all({locked.begin(), locked.end()});
        throw;
    }
    for (const auto& [run, record] : woken) locked.erase(run);
    // Locked but not woken: stale timers, or an attempt re-applied without them.
    unclaim_all({locked.begin(), locked.end()});
    ABIDE_CRASH_POINT("timer.committed");  // crash: the woken runs are claimed (attempt 1), none executed
    result.problems.insert(result.problems.end(), damaged_runs.begin(), damaged_runs.end());
    for (const std::string& key : damaged)
        result.problems.push_back(fmt::format("a timer entry of {} bytes is damaged (timers hold {}); it was "
                                              "skipped. Run `abide check`",
                                              key.size(), timer_key_size));
    ++result.commits;
    result.timers_fired += count;
    return more;
}

EngineCore::Claim EngineCore::claim_ready(std::set<std::uint64_t>& skip, std::vector<std::string>& problems) {
    // Phase 1: pick candidates; mark them executing in this process and take
    // their run locks (another process may be executing some of them). The
    // locks are taken a stretch at a time; runs another process holds are
    // skipped and the scan goes on, so a round fills up if it can.
    std::vector<std::uint64_t> candidates;
    {
        Txn t = storage.read();
        Cursor c(t, Db::ready);
        bool ok = c.first();
        while (ok && candidates.size() < options.max_runs_per_round) {
            std::vector<std::uint64_t> batch;  // ascending, as the ready index is
            for (; ok && candidates.size() + batch.size() < options.max_runs_per_round; ok = c.next()) {
                const std::uint64_t run = get_be64(c.key());
                if (!skip.count(run)) batch.push_back(run);
            }
            std::vector<std::uint64_t> busy;  // another process executes them; not again in this poll
            try {
                const std::vector<std::uint64_t> taken = claim_runs(batch, &busy);
                candidates.insert(candidates.end(), taken.begin(), taken.end());
            } catch (...) {
                unclaim_all(candidates);
                throw;
            }
            skip.insert(busy.begin(), busy.end());
        }
    }
    return load_claimed(candidates, skip, problems, false);
}

std::vector<std::uint64_t> EngineCore::claim_runs(const std::vector<std::uint64_t>& runs,
                                                  std::vector<std::uint64_t>* busy) {
    std::vector<std::uint64_t> marked;  // not executing in this process yet: now they are
    {
        std::lock_guard lock(runs_mutex_);
        for (std::uint64_t run : runs)
            if (executing_.insert(run).second) marked.push_back(run);
    }
    std::vector<std::uint64_t> taken;
    try {
        taken = run_locks.try_lock_all(marked);
    } catch (...) {
        unclaim_all(marked);
        throw;
    }
    std::vector<std::uint64_t> refused;  // another process holds them
    std::set_difference(marked.begin(), marked.end(), taken.begin(), taken.end(), std::back_inserter(refused));
    {
        std::lock_guard lock(runs_mutex_);
        for (std::uint64_t run : refused) executing_.erase(run);
    }
    if (busy) busy->insert(busy->end(), refused.begin(), refused.end());
    return taken;
}

EngineCore::Claim EngineCore::load_claimed(const std::vector<std::uint64_t>& candidates,
                                           std::set<std::uint64_t>& skip, std::vector<std::string>& problems,
                                           bool counted, std::map<std::uint64_t, KeptRecord>* committed) {
    // Phase 2: read each run in a snapshot taken after the claim. A thread or
    // process that executed one of them let go only after its commit, so this
    // snapshot holds everything it wrote (an older one could replay a step
    // whose result is already journaled).
    Claim claim;
    claim.counted = counted;
    std::vector<std::unique_ptr<RunInstance>> dropped;  // destroyed after the read ends
    std::vector<std::uint64_t> let_go;                  // unclaimed after the read ends
    {
        Txn t = storage.read();
        const std::uint64_t snapshot_txn = t.id();
        for (const std::uint64_t run : candidates) {
            std::unique_ptr<RunInstance> instance;
            {
                std::lock_guard lock(runs_mutex_);
                instance = cache_.take(run);
            }
            auto give_up = [&] {
                let_go.push_back(run);
                if (instance) dropped.push_back(std::move(instance));
            };
            KeptRecord* known = nullptr;
            if (committed)
                if (auto it = committed->find(run); it != committed->end()) known = &it->second;
            std::optional<std::string_view> raw;
            if (!known) {
                raw = t.get(Db::runs, run_key(run));
                if (!raw) {
                    // Runs are never removed: only a damaged index lists one without a record.
                    problems.push_back(fmt::format("run #{} is in the ready set but has no record: the index is "
                                                   "damaged. Run `abide check`",
                                                   run));
                    skip.insert(run);
                    give_up();
                    continue;
                }
            }
            try {
                RunRecord record = known ? known->record : decode_run_record(*raw, run);
                if (!in_ready_set(record.status)) {
                    if (!t.get(Db::ready, run_key(run))) {
                        give_up();  // advanced meanwhile: its record and the ready index agree
                        continue;
                    }
                    // One snapshot holds both, and every write keeps them
                    // together: only a damaged index disagrees with the record.
                    problems.push_back(fmt::format("run '{}' (#{}) is in the ready set but is {}: the index is "
                                                   "damaged. Run `abide check`",
                                                   record.id, run, to_string(record.status)));
                    skip.insert(run);
                    give_up();
                    continue;
                }
                const WorkflowDef* def = find_definition(record.workflow);
                if (!def) {
                    give_up();  // another host may define it
                    continue;
                }
                if (!counted && options.quarantine_after != 0 && record.attempts >= options.quarantine_after) {
                    claim.quarantine.push_back(run);
                    give_up();
                    continue;
                }
                // A suspect's last execution was cut short: it runs alone, so
                // that a crash is charged to it and not to runs beside it.
                // (Counted claims were counted just now, from a park.)
                const bool suspect = !counted && record.attempts > 0;
                if (suspect && !claim.isolated) {
                    for (auto& other : claim.runs) {
                        let_go.push_back(other->run_number());
                        dropped.push_back(std::move(other));
                    }
                    claim.runs.clear();
                    claim.isolated = true;
                } else if (suspect || claim.isolated) {
                    give_up();  // taken by a later round of this poll
                    continue;
                }
                if (instance && (instance->incarnation() != record.incarnation ||
                                 instance->journal_size() > record.journal_len))
                    dropped.push_back(std::move(instance));  // leaves it null: a new one is made below
                const std::uint32_t cached_entries = instance ? instance->journal_size() : 0;
                std::vector<JournalEntry> entries;
                Cursor j(t, Db::journal);
                // A new instance keeps this vector as its journal: room for
                // what its next commits add spares it regrowing (an allocation
                // and a move of every entry) at its first, second and fourth.
                entries.reserve(record.journal_len - cached_entries + (instance ? 0 : 8));
                for (bool more = j.seek(journal_key(run, cached_entries));
                     more && get_be64(j.key()) == run; more = j.next()) {
                    const std::uint32_t seq = get_be32(j.key(), 8);
                    if (seq >= record.journal_len) break;
                    entries.push_back(decode_journal_entry(j.value(), run, seq, record.created_us));
                }
                if (!instance)
                    instance = std::make_unique<RunInstance>(*this, *def, run, record, read_run_input(t, run, record));
                instance->append_committed(std::move(entries));
                // A record read here, outside the commit queue, is kept only
                // for the write that directly follows this snapshot (the
                // attempt count's, if nothing commits in between).
                if (known)
                    instance->keep_record(std::move(*known));
                else
                    instance->keep_record({std::move(record), 0, snapshot_txn});
                claim.runs.push_back(std::move(instance));
            } catch (const FormatError& e) {
                // Damaged: say so, leave it for an operator, go on with the rest.
                problems.push_back(e.what());
                skip.insert(run);
                give_up();
            }
        }
    }
    unclaim_all(std::move(let_go));
    return claim;
}

void EngineCore::unclaim(std::uint64_t run) {
    std::lock_guard lock(runs_mutex_);
    executing_.erase(run);
    run_locks.unlock(run);
}

void EngineCore::unclaim_all(std::vector<std::uint64_t> runs) {
    std::sort(runs.begin(), runs.end());
    runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
    std::lock_guard lock(runs_mutex_);
    for (std::uint64_t run : runs) executing_.erase(run);
    run_locks.unlock_all(runs);
}

void EngineCore::count_attempts(Claim& claim, std::set<std::uint64_t>& skip) {
    if (claim.counted) return;  // claimed in the commit that woke them
    // Phase 3, one commit: each claimed run's attempt is on disk before any
    // of its code runs, so a crash during it is counted; runs over the limit
    // are quarantined instead. Crash after this commit: the attempts count,
    // nothing of the runs ran.
    std::vector<char> keep(claim.runs.size(), 1);
    std::vector<std::optional<KeptRecord>> kept(claim.runs.size());
    commits.run([&](WriteContext& w) {
        for (std::size_t i = 0; i < claim.runs.size(); ++i) {
            const RunInstance& instance = *claim.runs[i];
            const std::uint64_t run = instance.run_number();
            std::optional<RunRecord> stored = read_own_run(w, instance);
            // The claim's snapshot held the record; runs are never removed.
            keep[i] = stored && in_ready_set(stored->status) && stored->incarnation == instance.incarnation();
            if (!keep[i]) continue;
            RunRecord& record = *stored;
            bool counted = true;
            {
                std::lock_guard lock(runs_mutex_);
                counted = !not_counted_.count(run);
            }
            if (counted) ++record.attempts;
            set_status(w, run, record, RunStatus::running);
            put_own_run(w, run, record, kept[i].emplace());
        }
        for (const std::uint64_t run : claim.quarantine) {
            auto raw = w.txn.get(Db::runs, run_key(run));
            RunRecord record = decode_run_record(*raw, run);
            if (!in_ready_set(record.status)) continue;
            std::string where = "before its first journal entry";
            if (record.journal_len > 0) {
                auto last = w.txn.get(Db::journal, journal_key(run, record.journal_len - 1));
                if (last) {
                    const JournalEntry e = decode_journal_entry(*last, run, record.journal_len - 1, record.created_us);
                    where = fmt::format("after journal entry {} ({} '{}')", record.journal_len - 1, to_string(e.kind),
                                        e.name);
                }
            }
            record.error = ErrorInfo{
                "abide.run.quarantined", "quarantined",
                fmt::format("the process died {} times in a row while running this run, {}; it will not run again "
                            "until released. Find the cause (the host's crash logs; the call after that entry), "
                            "deploy the fix, then call Engine::release(\"{}\") or run `abide release {}`",
                            record.attempts, where, record.id, record.id)};
            set_status(w, run, record, RunStatus::quarantined);
            Event e = make_event(EventType::quarantined);
            e.data = json{{"attempts", record.attempts}, {"message", record.error->message}};
            w.emit(run, record, std::move(e));
            put_run(w, run, record);
        }
    });
    ABIDE_CRASH_POINT("claim.committed");
    std::vector<std::unique_ptr<RunInstance>> kept_runs;
    for (std::size_t i = 0; i < claim.runs.size(); ++i) {
        const std::uint64_t run = claim.runs[i]->run_number();
        {
            std::lock_guard lock(runs_mutex_);
            not_counted_.erase(run);
        }
        if (keep[i]) {
            claim.runs[i]->keep_record(std::move(*kept[i]));
            kept_runs.push_back(std::move(claim.runs[i]));
        } else {
            skip.insert(run);  // not again in this poll: each round must take new runs or end
            release_instance(std::move(claim.runs[i]), false);  // cancelled, retried or finished meanwhile
        }
    }
    claim.runs = std::move(kept_runs);
}

void EngineCore::release_instance(std::unique_ptr<RunInstance> instance, bool parked) {
    std::vector<Release> one;
    one.push_back({std::move(instance), parked});
    release_instances(std::move(one));
}

void EngineCore::release_instances(std::vector<Release> releases) {
    std::vector<std::unique_ptr<RunInstance>> gone;  // not cached, or evicted
    std::vector<std::uint64_t> runs;
    runs.reserve(releases.size());
    for (const Release& r : releases) runs.push_back(r.instance->run_number());
    std::sort(runs.begin(), runs.end());
    {
        std::lock_guard lock(runs_mutex_);
        for (std::uint64_t run : runs) executing_.erase(run);
        run_locks.unlock_all(runs);  // after their commit: the next executor sees it all
        for (Release& r : releases) {
            if (!r.parked || r.instance->finished()) {
                gone.push_back(std::move(r.instance));
                continue;
            }
            if (auto left_out = cache_.keep(std::move(r.instance))) gone.push_back(std::move(left_out));
        }
    }
    // `gone` unwinds here, outside the lock.
}

void EngineCore::drive(std::vector<std::unique_ptr<RunInstance>> active, PollResult& result,
                       std::set<std::uint64_t>& skip) {
    result.runs_advanced += active.size();
    while (!active.empty()) {
        for (auto& instance : active) instance->advance();
        std::vector<Outcome> outcomes(active.size());
        auto apply = [&](WriteContext& w, std::size_t i) { apply_request(w, *active[i], outcomes[i]); };
        std::vector<std::exception_ptr> errors(active.size());
        try {
            commits.run(CommitQueue::indexed_ops(active.size(), apply), errors);
        } catch (...) {
            // Nothing of this round is stored: the runs stay ready, their
            // fibers (which must not see uncommitted results) are unwound.
            // This process did not die, so their next claim is not another attempt.
            {
                std::lock_guard lock(runs_mutex_);
                for (auto& instance : active) not_counted_.insert(instance->run_number());
            }
            for (auto& instance : active) release_instance(std::move(instance), false);
            throw;
        }
        ++result.commits;
        std::vector<std::unique_ptr<RunInstance>> next;
        std::vector<Release> done;  // released together once the round is sorted out
        try {
            for (std::size_t i = 0; i < active.size(); ++i) {
                Outcome& out = outcomes[i];
                if (errors[i]) {
                    try {
                        std::rethrow_exception(errors[i]);
                    } catch (const std::exception& e) {
                        result.problems.push_back(e.what());
                    }
                    skip.insert(active[i]->run_number());
                    done.push_back({std::move(active[i]), false});
                    continue;
                }
                switch (out.kind) {
                    case Outcome::Kind::proceed:
                        active[i]->committed(out.request_entry_appended, std::move(out.wake));
                        active[i]->keep_record(std::move(*out.kept));
                        next.push_back(std::move(active[i]));
                        break;
                    case Outcome::Kind::parked:
                        active[i]->committed(out.request_entry_appended, std::move(out.wake));
                        active[i]->drop_record();  // what wakes it rewrites the record
                        ++result.waiting;
                        done.push_back({std::move(active[i]), true});
                        break;
                    case Outcome::Kind::finished:
                        if (out.final_status == RunStatus::completed) ++result.completed;
                        if (out.final_status == RunStatus::failed) ++result.failed;
                        if (out.final_status == RunStatus::cancelled) ++result.cancelled;
                        done.push_back({std::move(active[i]), false});
                        break;
                    case Outcome::Kind::stale:
                        skip.insert(active[i]->run_number());
                        done.push_back({std::move(active[i]), false});
                        break;
                }
            }
        } catch (...) {
            // Every run of the round is released (locks, executing set), or no
            // poll anywhere could take it again.
            for (auto* list : {&active, &next})
                for (auto& instance : *list)
                    if (instance) done.push_back({std::move(instance), false});
            release_instances(std::move(done));
            throw;
        }
        release_instances(std::move(done));
        active = std::move(next);
    }
}

PollResult EngineCore::poll() {
    PollResult result;
    // One look at the earliest timer and the ready set: an idle poll ends here.
    std::optional<TimePoint> earliest;
    std::uint64_t budget = 0;
    {
        Txn t = storage.read();
        Cursor c(t, Db::timers);
        // A damaged entry counts as due, so that the firing pass reports it.
        if (c.first())
            earliest = c.key().size() == timer_key_size ? from_micros(static_cast<std::int64_t>(get_be64(c.key())))
                                                        : now();
        budget = t.count(Db::ready);
    }
    // Runs not to take again in this poll: their commit failed, their ready
    // entry is damaged, or they changed between claim and count.
    std::set<std::uint64_t> skip;
    // An idle poll must not take the write lock: fire only if the first look saw a due timer.
    for (bool more = earliest && *earliest <= now(); more;) {
        std::map<std::uint64_t, KeptRecord> woken;  // claimed by the commit that fired their timers
        more = fire_timer_round(result, woken);
        budget += woken.size();
        std::vector<std::uint64_t> woken_runs;
        for (const auto& [run, record] : woken) woken_runs.push_back(run);
        Claim claim;
        try {
            claim = load_claimed(woken_runs, skip, result.problems, true, &woken);
        } catch (...) {
            // This process did not die: runs of the round that never ran
            // were counted, and their next claim must not count again. (Once
            // drive has them, it releases them itself, and another thread
            // may claim them again: they are not this catch's to release.)
            std::lock_guard lock(runs_mutex_);
            for (std::uint64_t run : woken_runs)
                if (executing_.erase(run)) {
                    run_locks.unlock(run);
                    not_counted_.insert(run);
                }
            throw;
        }
        std::shared_lock<std::shared_mutex> beside(isolation_mutex_);
        drive(std::move(claim.runs), result, skip);
    }
    // Runs made ready while this poll works are taken only up to the number
    // that was ready when it began (or woken by its timers), so a stream of
    // signals cannot keep one poll() from returning; the next poll takes the rest.
    while (result.runs_advanced < budget) {
        Claim claim = claim_ready(skip, result.problems);
        if (claim.runs.empty() && claim.quarantine.empty()) break;
        // A suspect runs with nothing else of this process in flight.
        std::shared_lock<std::shared_mutex> beside;
        std::unique_lock<std::shared_mutex> alone;
        if (claim.isolated)
            alone = std::unique_lock(isolation_mutex_);
        else
            beside = std::shared_lock(isolation_mutex_);
        try {
            count_attempts(claim, skip);
        } catch (...) {
            for (auto& instance : claim.runs) release_instance(std::move(instance), false);
            throw;
        }
        ++result.commits;
        result.quarantined += claim.quarantine.size();
        if (claim.runs.empty()) continue;
        drive(std::move(claim.runs), result, skip);
    }
    // Nothing this poll wrote moved a timer, so the first look still holds.
    result.next_deadline = result.timers_fired == 0 && result.runs_advanced == 0 ? earliest : next_deadline();
    return result;
}

}  // namespace abide::detail
