#pragma once

#define ABIDE_VERSION_MAJOR 0
#define ABIDE_VERSION_MINOR 1
#define ABIDE_VERSION_PATCH 0

namespace abide {
/// The on-disk format this build reads and writes (see docs/journal-format.md).
/// 2: records' checksums cover their keys. 3: the status index leaves ready
/// and running runs to the ready set. 4: events name their run by number.
/// 5: journal entries store only the fields they use, times relative.
/// 6: an event that tells of a journal entry refers to it, times relative.
/// 7: a run's input is stored once, in the inputs table, not in its record.
/// An Engine upgrades format 2 to 6 files in place; format 1 files are
/// refused (abide.storage.older_format), unchanged.
inline constexpr unsigned journal_format_version = 7;
}  // namespace abide
