// The corruption harness's reference database and the host that reads a
// possibly damaged copy of it.
//
// build_reference() writes a real journal holding runs in every state the
// engine stores: completed runs with step results, a run whose wait timed
// out, runs waiting on signals with and without deadlines, a run suspended
// for a resume, a sleeping run (a timer), runs holding buffered signals, a
// ready run never polled, and the event log of all of it. Everything is a
// pure function of the code (fixed ids, a manual clock), so a host process
// rebuilds the run list and what is still to be delivered without being told.
//
// observe() is what a careful host does with such a file, and records every
// value it reads so that the harness can compare it with the undamaged copy's:
//   1. verify_database (a child process of its own);
//   2. if that check found it unreadable (VerifyReport::unreadable: LMDB's
//      own pages are damaged, or the check crashed), refuse the file;
//   3. otherwise open an Engine, read every run's status, trace and result,
//      the run list, the event log and the stats;
//   4. deliver the pending signals and resumes, then poll and move the clock
//      until every run has finished (bounded), and read every run again.
// Every read that throws is recorded as an error, never rethrown: one damaged
// run must not stop the others.
#pragma once

#include <abide/abide.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace abide::corruption {

namespace fs = std::filesystem;

/// One run of the reference database; `number` is abide's internal run
/// number (creation order, from 1), which damage reports may name instead of
/// the id ("run record #3").
struct PlannedRun {
    std::string id;
    std::uint64_t number = 0;
};

/// The runs of the reference database, in creation order.
const std::vector<PlannedRun>& planned_runs();

/// Writes the reference database at `db` (which must not exist). Returns the
/// clock reading at the end, in microseconds: a host continues from there.
std::int64_t build_reference(const fs::path& db);

/// The steps 1-4 above on the database at `db`, with the clock starting at
/// `clock_us`. Returns the record of what was read (see observation format in
/// oracle.hpp). Never throws for a damaged file. `verified` gets the check's
/// result before the file is opened, so that a host that then crashes still
/// leaves what verify_database had said.
json observe(const fs::path& db, std::int64_t clock_us, const std::function<void(const json& verify)>& verified);

}  // namespace abide::corruption
