// The corruption harness's oracle: compares what a host read from a damaged
// copy with what it read from the undamaged one.
//
// An observation (workload.hpp, observe()) is JSON:
//   verify      {problems, damaged_runs, unreadable}
//   refused     the check's first problem, when it found the file unreadable (nothing else then)
//   open_error  a read result (below), when the Engine refused the file
//   before      {run: {status, trace, result}}   each a read result
//   tables      {listed, events, stats}          each a read result
//   deliveries  [{run, outcome}]                 outcome a read result
//   poll_problems, poll_errors                   strings
//   after       {run: read result of {status, output}}
// A read result is {"value": v} or {"error": what(), "abide": bool}.
//
// The rules, for a copy that was opened:
//   - a value equal to the reference is right;
//   - an error is acceptable if it is clear: abide's storage error
//     ("[abide.storage.*] ...", FormatError for a damaged record), or any
//     error for a run verify_database named;
//   - a value that differs is acceptable only if verify_database named the
//     run (damaged_runs, or a problem naming it), or, for the run list, the
//     event log and the stats, reported any problem. Anything else is a
//     silently wrong value: a failure;
//   - every run nobody reported damaged (not named by verify, no error for it,
//     not in a poll's problems) ends with the reference outcome. One
//     exception: when verify reported damage to a table all runs share (a
//     problem naming no run: the event log, an index, LMDB's own pages), such
//     a run may stay unfinished (ready, running, waiting, or unreadable), as
//     the writes it needs go through the damaged table; it is counted as
//     blocked. It may never finish with another outcome.
// A refused copy passes if the check found it unreadable (LMDB-level damage) or the Engine
// refused it with a storage error after verify_database reported a problem.
#pragma once

#include <abide/types.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace abide::corruption {

struct Verdict {
    enum class Handling {
        refused,   ///< not opened (the check found it unreadable) or the Engine refused it
        reported,  ///< opened; damage reported (verify problems, errors, poll problems)
        sound,     ///< opened; nothing reported and every value right (unused bytes hit)
    } handling = Handling::sound;
    bool detected_by_verify = false;
    /// Values that differ from the reference for runs (or tables) that
    /// verify_database had reported: the host was warned, but the value was
    /// returned without an error.
    std::size_t wrong_values_behind_warning = 0;
    /// Runs the engine reported (a storage error, a poll problem) that
    /// verify_database did not name.
    std::size_t runs_verify_missed = 0;
    /// Runs nobody named that stayed unfinished after verify reported damage
    /// to a shared table.
    std::size_t runs_blocked = 0;
    /// Empty: the case passes. Else one line per broken rule.
    std::vector<std::string> failures;
};

/// Judges `damaged` against `reference` (the undamaged copy's observation).
Verdict judge(const json& reference, const json& damaged);

/// Whether `text` names the run `id` (as 'id', as a whole word, or by its
/// number as "#n").
bool names_run(const std::string& text, const std::string& id, std::uint64_t number);

}  // namespace abide::corruption
