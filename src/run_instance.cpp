#include "run_instance.hpp"

#include "crash_points.hpp"
#include "engine_core.hpp"

#include <boost/context/fiber.hpp>

#include <fmt/format.h>

#include <cmath>
#include <iterator>

namespace abide::detail {

namespace {

std::string describe_call(EntryKind kind, WaitKind wait_kind, std::string_view name) {
    switch (kind) {
        case EntryKind::step_ok:
        case EntryKind::step_error:
        case EntryKind::step_retry: return fmt::format("step '{}'", name);
        case EntryKind::wait:
            return wait_kind == WaitKind::suspend ? fmt::format("suspend '{}'", name)
                                                  : fmt::format("wait_for_signal '{}'", name);
        case EntryKind::sleep: return "sleep";
        case EntryKind::wake: return "the end of a wait";
        case EntryKind::now: return "now()";
        case EntryKind::random: return "random()";
        case EntryKind::uuid: return "uuid()";
    }
    return "unknown";
}

bool holds_float(const json& v) {
    if (v.is_number_float()) return true;
    if (v.is_structured())
        for (const auto& item : v) if (holds_float(item)) return true;
    return false;
}

bool is_step(EntryKind k) {
    return k == EntryKind::step_ok || k == EntryKind::step_error || k == EntryKind::step_retry;
}

ErrorInfo describe_current_exception() {
    try {
        throw;
    } catch (const Error& e) {
        return {e.id(), type_name(typeid(e).name()), e.what()};
    } catch (const std::exception& e) {
        return {"abide.workflow.exception", type_name(typeid(e).name()), e.what()};
    } catch (...) {
        return {"abide.workflow.exception", "unknown", "a non-standard exception was thrown"};
    }
}

}  // namespace

RunInstance::RunInstance(EngineCore& core, const WorkflowDef& def, std::uint64_t run_number, const RunRecord& record,
                         std::string input)
    : core_(core), def_(def), run_number_(run_number), id_(record.id), incarnation_(record.incarnation),
      input_(std::move(input)), fiber_(core.stacks, [this] { fiber_main(); }) {}

RunInstance::~RunInstance() { unwind(); }

TimePoint RunInstance::core_now() const { return core_.now(); }
std::uint64_t RunInstance::core_random() { return core_.random64(); }
std::string RunInstance::core_uuid() { return core_.random_uuid(); }

void RunInstance::append_committed(std::vector<JournalEntry> entries) {
    // A new instance takes the loaded vector whole, with the room the loader
    // left in it for the entries its next commits add.
    if (journal_.empty()) {
        journal_ = std::move(entries);
        return;
    }
    journal_.insert(journal_.end(), std::make_move_iterator(entries.begin()), std::make_move_iterator(entries.end()));
}

void RunInstance::committed(bool request_entry_appended, std::optional<JournalEntry>&& wake) {
    if (request_entry_appended) journal_.push_back(std::move(request_.entry));
    if (wake) journal_.push_back(std::move(*wake));
}

void RunInstance::advance() {
    request_.kind = Request::Kind::none;  // until the fiber sets its next one
    fiber_.resume();
}

void RunInstance::unwind() noexcept {
    // A fiber that never ran holds no workflow state; Boost frees it unstarted.
    if (fiber_.finished() || !fiber_.started()) return;
    unwinding_ = true;
    // The fiber is parked in yield_request(); the ctx call that parked it
    // throws FiberUnwind. Code that swallows it and calls ctx again gets it
    // again.
    while (!fiber_.finished()) fiber_.resume();
}

bool RunInstance::yield_request(Request::Kind kind, JournalEntry&& entry, bool new_entry) {
    request_.kind = kind;
    request_.entry = std::move(entry);
    request_.new_entry = new_entry;
    fiber_.yield();
    return !unwinding_;
}

void RunInstance::fiber_main() {
    try {
        Context ctx(*this);
        json output;
        try {
            json input = input_.empty() ? json() : parse_stored_json(input_);
            std::string().swap(input_);
            output = def_.body(ctx, std::move(input));
        } catch (const FiberUnwind&) {
            output = json(json::value_t::discarded);
        } catch (const boost::context::detail::forced_unwind&) {
            throw;
        } catch (const Cancelled& c) {
            if (fatal_) return finish(RunStatus::failed, {}, fatal_);
            ErrorInfo info{c.id(), "abide::Cancelled", c.reason()};
            return finish(RunStatus::cancelled, {}, std::move(info));
        } catch (...) {
            if (fatal_) return finish(RunStatus::failed, {}, fatal_);
            return finish(RunStatus::failed, {}, describe_current_exception());
        }
        if (output.is_discarded()) {  // unwound (see FiberUnwind)
            if (fatal_) finish(RunStatus::failed, {}, fatal_);
            return;  // evicted: nothing to commit
        }
        if (unwinding_) return;
        if (fatal_) return finish(RunStatus::failed, {}, fatal_);
        if (cursor_ < journal_.size()) {
            const JournalEntry& e = journal_[cursor_];
            return finish(RunStatus::failed, {},
                          ErrorInfo{"abide.replay.nondeterminism", "abide::NondeterminismError",
                                    fmt::format("run '{}' of workflow '{}': the code returned at journal position "
                                                "{}, but the journal holds {} there (and {} entries in all). The "
                                                "workflow changed in a way that does not fit runs in flight; keep "
                                                "the old path for them, then Engine::retry the run",
                                                id_, def_.name, cursor_, describe_call(e.kind, e.wait_kind, e.name),
                                                journal_.size())});
        }
        std::string text = dump_stored_json(output);
        if (text.size() > core_.options.max_payload_bytes)
            return finish(RunStatus::failed, {},
                          ErrorInfo{"abide.payload.too_large", "abide::PayloadError",
                                    fmt::format("the workflow's output is {} bytes, over max_payload_bytes ({})",
                                                text.size(), core_.options.max_payload_bytes)});
        finish(RunStatus::completed, std::move(text), std::nullopt);
    } catch (const boost::context::detail::forced_unwind&) {
        throw;
    } catch (...) {
        // Nothing may escape a fiber; an allocation failure while finishing
        // leaves the run as it is in storage (it will be retried).
    }
}

void RunInstance::finish(RunStatus status, std::string output, std::optional<ErrorInfo> error) {
    // Committed by the engine after the fiber returns.
    request_.kind = Request::Kind::finish;
    request_.final_status = status;
    request_.output = std::move(output);
    request_.error = std::move(error);
}

void RunInstance::check_callable(std::string_view call) const {
    if (unwinding_) throw FiberUnwind{};
    if (fatal_) throw FiberUnwind{};
    if (in_step_)
        throw UsageError("abide.context.in_step",
                         fmt::format("ctx.{} was called inside the body of a step of run '{}'; steps cannot "
                                     "contain ctx calls. Call it from the workflow function instead",
                                     call, id_));
}

void RunInstance::fatal(std::string id, std::string message) {
    fatal_ = ErrorInfo{std::move(id), "abide::NondeterminismError", std::move(message)};
    throw FiberUnwind{};
}

void RunInstance::mismatch(const JournalEntry& found, std::string_view call) {
    fatal("abide.replay.nondeterminism",
          fmt::format("run '{}' of workflow '{}': at journal position {} the journal holds {} but the code "
                      "called {}. The workflow changed in a way that does not fit runs in flight; keep the old "
                      "path for them (or fix the code), then Engine::retry the run",
                      id_, def_.name, cursor_, describe_call(found.kind, found.wait_kind, found.name), call));
}

std::int64_t RunInstance::deadline_after(std::optional<Duration> d) const {
    if (!d) return 0;
    std::int64_t now = to_micros(core_.now());
    std::int64_t span = d->count();
    if (span > std::numeric_limits<std::int64_t>::max() - now) return std::numeric_limits<std::int64_t>::max();
    return std::max<std::int64_t>(now + span, 1);
}

const JournalEntry* RunInstance::await_wake() {
    while (cursor_ >= journal_.size())
        if (!yield_request(Request::Kind::park, JournalEntry(journal_[cursor_ - 1]), false)) return nullptr;
    const JournalEntry& e = journal_[cursor_];
    if (e.kind != EntryKind::wake) mismatch(e, "the end of a wait");
    ++cursor_;
    if (e.reason == WakeReason::cancelled) {
        cancelled_ = e.error_message;
        throw Cancelled(e.error_message);
    }
    return &e;
}

const JournalEntry& RunInstance::append(JournalEntry&& entry) {
    if (!yield_request(Request::Kind::append, std::move(entry))) throw FiberUnwind{};
    // The engine appended the committed entry before resuming us.
    return journal_[cursor_++];
}

const JournalEntry* RunInstance::park(JournalEntry&& entry) {
    if (!yield_request(Request::Kind::park, std::move(entry))) return nullptr;
    // The engine appended the park entry (and perhaps its wake) before resuming us.
    ++cursor_;
    return await_wake();
}

json RunInstance::run_step(std::string_view name, const StepOptions& options,
                           function_ref<json(StepContext&)> body) {
    check_callable("step");
    const std::size_t position = cursor_;
    std::uint32_t attempt = 1;
    for (;;) {
        if (const JournalEntry* e = peek()) {
            if (!is_step(e->kind) || e->name != name) mismatch(*e, fmt::format("step '{}'", name));
            ++cursor_;
            if (e->kind == EntryKind::step_ok) return parse_stored_json(e->value);
            if (e->kind == EntryKind::step_error)
                throw StepError(std::string(name), e->error_type, e->error_message, e->attempt);
            attempt = e->attempt + 1;  // step_retry: its backoff must have ended
            if (!await_wake()) throw FiberUnwind{};
            continue;
        }
        // Live: run the body. If the process dies before the result is
        // committed, recovery runs it again (at-least-once).
        StepContext sc(id_, std::string(name), attempt, id_ + ':' + std::to_string(position));
        JournalEntry entry;
        entry.name = std::string(name);
        entry.attempt = attempt;
        entry.started_us = to_micros(core_.now());
        std::optional<ErrorInfo> failure;
        json value;
        in_step_ = true;
        try {
            ABIDE_CRASH_POINT("step.body.before");
            value = body(sc);
            ABIDE_CRASH_POINT("step.body.after");  // crash: the effect happened, its result is not journaled
            entry.value = dump_stored_json(value);
            if (entry.value.size() > core_.options.max_payload_bytes)
                failure = ErrorInfo{"abide.payload.too_large", "abide::PayloadError",
                                    fmt::format("the result is {} bytes, over max_payload_bytes ({})",
                                                entry.value.size(), core_.options.max_payload_bytes)};
        } catch (const FiberUnwind&) {
            in_step_ = false;
            throw;
        } catch (const boost::context::detail::forced_unwind&) {
            in_step_ = false;
            throw;
        } catch (...) {
            failure = describe_current_exception();
        }
        in_step_ = false;
        entry.finished_us = to_micros(core_.now());
        if (!failure) {
            entry.kind = EntryKind::step_ok;
            // The workflow gets what replay will return: the stored text,
            // parsed. Only floating-point numbers can change on the way.
            const JournalEntry& stored = append(std::move(entry));
            if (holds_float(value)) return parse_stored_json(stored.value);
            return value;
        }
        entry.value.clear();
        entry.error_type = failure->type;
        entry.error_message = failure->message;
        const RetryPolicy& retry = options.retry;
        if (attempt < retry.max_attempts) {
            double factor = std::pow(retry.multiplier, static_cast<double>(attempt - 1));
            double backoff = static_cast<double>(retry.initial_backoff.count()) * factor;
            backoff = std::min(backoff, static_cast<double>(retry.max_backoff.count()));
            entry.kind = EntryKind::step_retry;
            entry.deadline_us = deadline_after(Duration(static_cast<std::int64_t>(backoff)));
            if (!park(std::move(entry))) throw FiberUnwind{};
            ++attempt;
            continue;
        }
        entry.kind = EntryKind::step_error;
        const JournalEntry& failed = append(std::move(entry));
        throw StepError(std::string(name), failed.error_type, failed.error_message, attempt);
    }
}

const JournalEntry* RunInstance::wake_of_wait(WaitKind kind, std::string_view name, WaitData data,
                                              std::optional<Duration> timeout) {
    check_callable(kind == WaitKind::suspend ? "suspend" : "wait_for_signal");
    if (cancelled_) throw Cancelled(*cancelled_);
    if (const JournalEntry* e = peek()) {
        if (e->kind != EntryKind::wait || e->wait_kind != kind || e->name != name)
            mismatch(*e, describe_call(EntryKind::wait, kind, name));
        ++cursor_;
        return await_wake();
    }
    if (kind == WaitKind::signal && !def_.signals.count(name))
        fatal("abide.workflow.undeclared_signal",
              fmt::format("workflow '{}' waits for signal '{}' but does not declare it; add "
                          ".signal<T>(\"{}\") to its definition",
                          def_.name, name, name));
    JournalEntry entry;
    entry.kind = EntryKind::wait;
    entry.wait_kind = kind;
    entry.name = std::string(name);
    {
        json scratch;  // holds the data's encoding if it is not json already
        entry.value = dump_stored_json(data(scratch));
    }
    entry.started_us = entry.finished_us = to_micros(core_.now());  // the instant it parked
    entry.deadline_us = deadline_after(timeout);
    return park(std::move(entry));
}

const JournalEntry* RunInstance::wake_of_sleep(Duration duration) {
    check_callable("sleep");
    if (cancelled_) throw Cancelled(*cancelled_);
    if (const JournalEntry* e = peek()) {
        if (e->kind != EntryKind::sleep) mismatch(*e, "sleep");
        ++cursor_;
        return await_wake();
    }
    JournalEntry entry;
    entry.kind = EntryKind::sleep;
    entry.started_us = entry.finished_us = to_micros(core_.now());  // the instant it parked
    entry.deadline_us = deadline_after(duration);
    return park(std::move(entry));
}

std::string RunInstance::recorded(EntryKind kind, const std::function<std::string()>& make) {
    check_callable(std::string(to_string(kind)) + "()");
    if (const JournalEntry* e = peek()) {
        if (e->kind != kind) mismatch(*e, describe_call(kind, {}, {}));
        ++cursor_;
        return e->value;
    }
    JournalEntry entry;
    entry.kind = kind;
    entry.value = make();
    entry.started_us = entry.finished_us = to_micros(core_.now());
    return append(std::move(entry)).value;
}

}  // namespace abide::detail

// ---- Context: thin forwarding to the run's instance ---------------------------

namespace abide {

json Context::run_step(std::string_view name, const StepOptions& options,
                       detail::function_ref<json(StepContext&)> body) {
    return instance_.run_step(name, options, body);
}

// The waits report an unwind to their inline callers, which throw
// FiberUnwind in the workflow's frame, with nothing of theirs alive (see
// RunInstance::unwinding_).
bool Context::wait(WaitKind kind, std::string_view name, detail::WaitData data, std::optional<Duration> timeout,
                   std::optional<json>& payload) {
    const detail::JournalEntry* wake = instance_.wake_of_wait(kind, name, data, timeout);
    if (!wake) return false;
    if (wake->reason == detail::WakeReason::timeout)
        payload.reset();
    else
        payload = detail::parse_stored_json(wake->value);
    return true;
}

void Context::timed_out_without_timeout(std::string_view name) const {
    throw NondeterminismError(
        "abide.replay.nondeterminism",
        fmt::format("run '{}' of workflow '{}': wait_for_signal '{}' has no timeout, but the journal holds its "
                    "timeout. The workflow changed in a way that does not fit runs in flight; keep the timeout "
                    "for them, then Engine::retry the run",
                    instance_.id(), instance_.workflow(), name));
}

void Context::suspend_timed_out(std::string_view step_key) { throw TimeoutError(std::string(step_key)); }

bool Context::sleep_woken(Duration duration) { return instance_.wake_of_sleep(duration) != nullptr; }

TimePoint Context::now() {
    auto text = instance_.recorded(detail::EntryKind::now, [this] {
        return std::to_string(detail::to_micros(instance_.core_now()));
    });
    return detail::from_micros(std::stoll(text));
}

std::uint64_t Context::random() {
    auto text = instance_.recorded(detail::EntryKind::random,
                                   [this] { return std::to_string(instance_.core_random()); });
    return std::stoull(text);
}

std::string Context::uuid() {
    return instance_.recorded(detail::EntryKind::uuid, [this] { return instance_.core_uuid(); });
}

const std::string& Context::run_id() const noexcept { return instance_.id(); }
const std::string& Context::workflow() const noexcept { return instance_.workflow(); }
bool Context::replaying() const noexcept { return instance_.replaying(); }

}  // namespace abide
