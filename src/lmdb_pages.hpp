// A structural check of LMDB's own pages, for verify_database.
//
// LMDB checks little when it reads a page (no checksums; it trusts page
// numbers, flags and node offsets) and a damaged page can make it crash, lose
// a write, or fail every later transaction. abide's records carry checksums,
// but the B-tree pages around them do not, so verify walks the trees itself
// from the raw bytes of the file: every page reachable from the snapshot's
// meta page, with its header, node offsets, key order, overflow pages,
// subtree depth and the counts LMDB keeps. The layout is LMDB 0.9's on-disk
// format (MDB_DATA_VERSION 1, 64-bit); see lmdb_pages.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace abide::detail {

/// Problems found in `file` (the whole database file, read-only) as of the
/// commit `txnid`, which a read transaction must hold open meanwhile so that
/// its pages are not reused. Each problem names the page and the table.
std::vector<std::string> check_lmdb_pages(std::string_view file, std::uint64_t txnid);

}  // namespace abide::detail
