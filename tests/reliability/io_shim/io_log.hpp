// Reading abide_io_shim's record log, and building the file as a power cut
// could have left it.
//
// The crash model (LevelDB's fault-injection test, at sector granularity):
// a cut happens between two returned calls. What is durable at the cut is
// every write before the last sync that returned, and every synced_write
// (O_DSYNC) that returned. Every other write that returned before the cut may
// have reached the disk whole, not at all, or torn: any subset of its 512-byte
// sectors. The call in flight at the cut (the next record, if it is a write,
// even an O_DSYNC one) may have reached the disk partly too.
#pragma once

#include "io_log_format.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace abide::io_log {

struct Record {
    RecordType type{};
    std::uint64_t offset = 0;
    std::string payload;  ///< written bytes, or a note's text
    bool is_write() const { return type == RecordType::write || type == RecordType::synced_write; }
};

/// Every record of the log, in order. Throws if the log ends inside a record
/// (the shim could not write it whole) or holds an unknown type.
std::vector<Record> read_log(const std::filesystem::path& log);

/// Counts of the calls a log shows, for sweeping every N.
struct CallCounts {
    std::size_t writes = 0;         ///< write + synced_write records
    std::size_t synced_writes = 0;  ///< of which through an O_DSYNC descriptor
    std::size_t syncs = 0;
};
CallCounts count_calls(const std::vector<Record>& records);

/// What became of the writes in one crash image.
struct CrashImage {
    bool exists = true;  ///< false: the cut came before the file got its name
    std::string bytes;   ///< the file's content after the cut
    std::size_t durable = 0, kept = 0, dropped = 0, torn = 0;
};

constexpr std::size_t sector_size = 512;

/// The file after a power cut just before record `cut` (records [0, cut)
/// returned), with the fate of every non-durable write drawn from `rng`.
CrashImage build_crash_image(const std::vector<Record>& records, std::size_t cut, std::mt19937_64& rng);

}  // namespace abide::io_log
