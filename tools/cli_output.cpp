// The abide command's renderings.
#include "cli_output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>

namespace abide::cli {

std::string compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string waiting_label(const WaitInfo& w) {
    if (w.name.empty()) return std::string(to_string(w.kind));
    return fmt::format("{} {}", to_string(w.kind), w.name);
}

std::string runs_table(const std::vector<RunInfo>& runs) {
    using Row = std::array<std::string, 6>;
    std::vector<Row> rows;
    rows.push_back({"ID", "WORKFLOW", "STATUS", "WAITING FOR", "DEADLINE", "UPDATED"});
    for (const RunInfo& r : runs) {
        std::string waiting = "-", deadline = "-";
        if (r.waiting) {
            waiting = waiting_label(*r.waiting);
            if (r.waiting->deadline) deadline = format_time(*r.waiting->deadline);
        }
        rows.push_back({r.id, r.workflow, std::string(to_string(r.status)), waiting, deadline, format_time(r.updated)});
    }
    std::array<std::size_t, 6> width{};
    for (const Row& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    std::string out;
    for (const Row& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            line += row[c];
            if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

std::string run_text(const RunInfo& run) {
    std::string out;
    auto field = [&](std::string_view label, const std::string& value) {
        out += fmt::format("{:<10}{}\n", label, value);
    };
    field("run", run.id);
    field("workflow", run.workflow);
    field("status", std::string(to_string(run.status)));
    field("created", format_time(run.created));
    field("updated", format_time(run.updated));
    field("input", compact(run.input));
    if (run.waiting) {
        const WaitInfo& w = *run.waiting;
        field("waiting", waiting_label(w));
        out += fmt::format("  {:<10}{}\n", "since", format_time(w.since));
        out += fmt::format("  {:<10}{}\n", "deadline", w.deadline ? format_time(*w.deadline) : std::string("none"));
        if (!w.data.is_null())
            out += fmt::format("  {:<10}{}\n", w.kind == WaitKind::suspend ? "data" : "metadata", compact(w.data));
        if (w.kind == WaitKind::signal)
            out += fmt::format("  {:<10}abide signal {} {} --data JSON [--id ID]\n", "answer", run.id, w.name);
        else if (w.kind == WaitKind::suspend)
            out += fmt::format("  {:<10}abide resume {} {} --data JSON [--id ID]\n", "answer", run.id, w.name);
    }
    if (run.output) field("output", compact(*run.output));
    if (run.error) {
        field("error", run.error->message);
        out += fmt::format("  {:<10}{}\n", "id", run.error->id);
        if (!run.error->type.empty()) out += fmt::format("  {:<10}{}\n", "type", run.error->type);
    }
    field("journal", fmt::format("{} entr{}", run.journal_entries, run.journal_entries == 1 ? "y" : "ies"));
    return out;
}

std::string event_line(const Event& e) {
    std::string line =
        fmt::format("{:>6}  {}  {:<16}  {} ({})", e.seq, format_time(e.at), to_string(e.type), e.run_id, e.workflow);
    if (!e.name.empty()) line += "  " + e.name;
    if (!e.topic.empty()) line += "  topic " + e.topic;
    if (!e.data.is_null() && !(e.data.is_object() && e.data.empty())) line += "  " + compact(e.data);
    if (e.deadline) line += "  until " + format_time(*e.deadline);
    return line;
}

namespace {

std::string size_text(std::uint64_t bytes) {
    constexpr std::array<const char*, 5> units = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    std::size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < units.size()) {
        value /= 1024.0;
        ++unit;
    }
    if (unit == 0) return fmt::format("{} bytes", bytes);
    return fmt::format("{:.1f} {} ({} bytes)", value, units[unit], bytes);
}

}  // namespace

std::string stats_text(const Stats& s) {
    std::string out;
    out += fmt::format("{:<18}{}\n", "runs", s.runs);
    out += fmt::format("  {:<16}{}\n", "ready", s.ready);
    out += fmt::format("  {:<16}{}\n", "running", s.running);
    out += fmt::format("  {:<16}{}\n", "waiting", s.waiting);
    out += fmt::format("  {:<16}{}\n", "completed", s.completed);
    out += fmt::format("  {:<16}{}\n", "failed", s.failed);
    out += fmt::format("  {:<16}{}\n", "cancelled", s.cancelled);
    out += fmt::format("  {:<16}{}\n", "quarantined", s.quarantined);
    out += fmt::format("{:<18}{}\n", "timers", s.timers);
    out += fmt::format("{:<18}{}\n", "buffered signals", s.buffered_signals);
    out += fmt::format("{:<18}{}\n", "last event seq", s.last_event_seq);
    out += fmt::format("{:<18}{}\n", "file size", size_text(s.file_bytes));
    out += fmt::format("{:<18}{}\n", "map size", size_text(s.map_bytes));
    return out;
}

}  // namespace abide::cli
