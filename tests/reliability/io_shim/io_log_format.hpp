// The binary log abide_io_shim writes in record mode: one record per event on
// the watched file, in the order the calls returned. Host byte order; the log
// is read on the machine that wrote it.
//
//   RecordHeader, then `length` payload bytes.
//
// Shared by the shim (which must stay free of the C++ library) and io_log.hpp.
#pragma once

#include <cstdint>

namespace abide::io_log {

enum class RecordType : std::uint32_t {
    /// A write that returned `length` bytes at `offset`; payload: the bytes.
    /// Not durable until a later sync.
    write = 1,
    /// The same, through an O_DSYNC / O_SYNC descriptor (LMDB's meta pages):
    /// durable when it returned.
    synced_write = 2,
    /// fdatasync / fsync returned 0: every earlier write is durable.
    sync = 3,
    /// ftruncate to `offset` bytes returned 0 (not durable until a sync).
    truncate = 4,
    /// A note from the traced program (abide_io_note); payload: its text.
    note = 5,
    /// link() gave the target its name (abide creates a database whole under
    /// a temporary name first): before this record the target does not exist.
    created = 6,
};

struct RecordHeader {
    std::uint32_t type;
    std::uint32_t length;
    std::uint64_t offset;
};
static_assert(sizeof(RecordHeader) == 16);

}  // namespace abide::io_log
