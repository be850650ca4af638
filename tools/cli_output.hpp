// The abide command's renderings: times, tables, runs, events and stats as
// text and as JSON.
#pragma once

#include <abide/types.hpp>

#include <string>
#include <vector>

namespace abide::cli {

/// JSON text on one line; invalid UTF-8 is replaced rather than thrown on.
std::string compact(const json&);

/// "signal refund_decision", "suspend approve", "sleep", "retry load".
std::string waiting_label(const WaitInfo&);

/// The `runs` table: a header and one line per run.
std::string runs_table(const std::vector<RunInfo>&);

/// The `show` text.
std::string run_text(const RunInfo&);

/// One `events` line.
std::string event_line(const Event&);

/// The `stats` text.
std::string stats_text(const Stats&);

}  // namespace abide::cli
