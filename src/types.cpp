// Names, JSON and text renderings of the public value types.
#include "records.hpp"

#include <abide/types.hpp>

#include <fmt/format.h>

#include <cxxabi.h>

#include <array>
#include <cstdlib>
#include <ctime>
#include <memory>

namespace abide {

namespace {

template <class E, std::size_t N>
std::string_view name_of(E value, const std::array<std::string_view, N>& names) {
    auto i = static_cast<std::size_t>(value);
    return i < N && !names[i].empty() ? names[i] : std::string_view("unknown");
}

constexpr std::array<std::string_view, 8> run_status_names = {"",       "ready",  "running",   "waiting",
                                                              "completed", "failed", "cancelled", "quarantined"};

}  // namespace

std::string format_time(TimePoint t) {
    const std::int64_t us = detail::to_micros(t);
    std::time_t secs = static_cast<std::time_t>(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, (us - static_cast<std::int64_t>(secs) * 1000000) / 1000);
}

namespace {

json error_json(const ErrorInfo& e) { return json{{"id", e.id}, {"type", e.type}, {"message", e.message}}; }

}  // namespace

json RunInfo::to_json() const {
    json j{{"id", id},
           {"workflow", workflow},
           {"status", to_string(status)},
           {"created", format_time(created)},
           {"updated", format_time(updated)},
           {"input", input},
           {"journal_entries", journal_entries}};
    if (waiting) {
        j["waiting"] = {{"kind", to_string(waiting->kind)},
                        {"name", waiting->name},
                        {"data", waiting->data},
                        {"since", format_time(waiting->since)},
                        {"deadline", waiting->deadline ? json(format_time(*waiting->deadline)) : json()}};
    }
    if (output) j["output"] = *output;
    if (error) j["error"] = error_json(*error);
    return j;
}

std::string_view to_string(RunStatus s) { return name_of(s, run_status_names); }

std::optional<RunStatus> parse_run_status(std::string_view text) {
    for (std::size_t i = 1; i < run_status_names.size(); ++i)
        if (run_status_names[i] == text) return static_cast<RunStatus>(i);
    return std::nullopt;
}

std::string_view to_string(WaitKind k) {
    static constexpr std::array<std::string_view, 5> names = {"", "signal", "suspend", "sleep", "retry"};
    return name_of(k, names);
}

std::string_view to_string(SignalOutcome o) {
    static constexpr std::array<std::string_view, 9> names = {"",           "delivered",       "buffered",
                                                              "duplicate",  "run_finished",    "unknown_run",
                                                              "invalid_payload", "undeclared", "too_late"};
    return name_of(o, names);
}

std::string_view to_string(CancelOutcome o) {
    static constexpr std::array<std::string_view, 6> names = {"", "cancelled", "requested", "already_requested",
                                                              "run_finished", "unknown_run"};
    return name_of(o, names);
}

std::string_view to_string(EventType t) {
    static constexpr std::array<std::string_view, 22> names = {
        "",          "started",        "step_completed", "step_failed",   "step_retrying",
        "waiting",   "suspended",      "sleeping",       "signal_buffered", "signal_delivered",
        "resumed",   "timed_out",      "woke",           "cancel_requested", "completed",
        "failed",    "cancelled",      "signal_dropped", "retried",       "signal_rejected",
        "quarantined", "released"};
    return name_of(t, names);
}

json Event::to_json() const {
    json j{{"seq", seq},       {"event_type", to_string(type)}, {"at", format_time(at)},
           {"run_id", run_id}, {"workflow", workflow},          {"data", data}};
    if (!name.empty()) j["name"] = name;
    if (!topic.empty()) j["topic"] = topic;
    if (deadline) j["deadline"] = format_time(*deadline);
    return j;
}

json Stats::to_json() const {
    return json{{"runs", runs},
                {"by_status",
                 {{"ready", ready}, {"running", running}, {"waiting", waiting}, {"completed", completed},
                  {"failed", failed}, {"cancelled", cancelled}, {"quarantined", quarantined}}},
                {"timers", timers},
                {"buffered_signals", buffered_signals},
                {"last_event_seq", last_event_seq},
                {"file_bytes", file_bytes},
                {"map_bytes", map_bytes},
                {"cached_runs", cached_runs}};
}

json Trace::to_json() const {
    json j = run.to_json();
    j["run_id"] = run.id;  // the trace's own name for the id
    json list = json::array();
    for (const TraceEntry& e : entries) {
        json x{{"seq", e.seq},
               {"kind", e.kind},
               {"started", format_time(e.started)},
               {"duration_us", std::chrono::duration_cast<std::chrono::microseconds>(e.finished - e.started).count()}};
        if (!e.name.empty()) x["name"] = e.name;
        if (!e.value.is_null()) x["value"] = e.value;
        if (e.error) x["error"] = error_json(*e.error);
        if (!e.detail.empty()) x["detail"] = e.detail;
        if (e.deadline) x["deadline"] = format_time(*e.deadline);
        list.push_back(std::move(x));
    }
    j["entries"] = std::move(list);
    return j;
}

std::string Trace::render() const {
    std::string out = fmt::format("run {} ({}) {}\n", run.id, run.workflow, to_string(run.status));
    out += fmt::format("  input    {}\n", run.input.dump());
    for (const TraceEntry& e : entries) {
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(e.finished - e.started).count();
        std::string line = fmt::format("  #{:<3} {} {:<10} {}", e.seq, format_time(e.started), e.kind, e.name);
        if (e.error)
            line += fmt::format(" FAILED {}: {}", e.error->type, e.error->message);
        else if (!e.value.is_null() && !(e.value.is_object() && e.value.empty()))
            line += fmt::format(" {}", e.value.dump());
        if (!e.detail.empty()) line += fmt::format(" [{}]", e.detail);
        if (e.deadline) line += fmt::format(" until {}", format_time(*e.deadline));
        if (e.kind == "step" && us > 0) line += fmt::format(" ({} us)", us);
        out += line;
        out += '\n';
    }
    if (run.output) out += fmt::format("  output   {}\n", run.output->dump());
    if (run.error) out += fmt::format("  error    {}\n", run.error->message);
    if (run.waiting)
        out += fmt::format("  waiting  {} '{}' {}\n", to_string(run.waiting->kind), run.waiting->name,
                           run.waiting->deadline ? "until " + format_time(*run.waiting->deadline) : std::string());
    return out;
}

namespace detail {

std::string type_name(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                                     std::free);
    return status == 0 && demangled ? std::string(demangled.get()) : std::string(mangled);
}

}  // namespace detail
}  // namespace abide
