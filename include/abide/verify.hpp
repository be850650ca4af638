// abide/verify.hpp: checking a database file without trusting it.
#pragma once

#include <abide/codec.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace abide {

/// What verify_database found.
struct VerifyReport {
    std::uint64_t runs = 0;
    std::uint64_t journal_entries = 0;
    std::uint64_t buffered_signals = 0;
    std::uint64_t events = 0;
    std::uint64_t free_list_entries = 0;
    /// One line per problem, naming the run (id and number) or table and
    /// what is wrong. Empty: the file is sound.
    std::vector<std::string> problems;
    /// Ids of the runs with a problem of their own (other runs are unaffected).
    std::vector<std::string> damaged_runs;
    /// The storage structure itself is damaged (LMDB's pages, or a check that
    /// crashed): do not open the file in a host, restore it from a backup.
    /// False with problems: only the named runs (or tables) are damaged, and
    /// a host may open the file; the others complete.
    bool unreadable = false;

    bool ok() const { return problems.empty(); }
    json to_json() const;
};

/// Checks the database at `path` in a child process, so that a file damaged
/// where LMDB itself reads it cannot crash the caller (LMDB may crash instead
/// of returning an error). The child opens it read-only, reads every page
/// that a later read or write could touch (every table and LMDB's free-page
/// list) and checks LMDB's own page structure from the raw bytes (headers,
/// node offsets, key order, both meta pages), decodes every record
/// (checksums), and checks that the indexes agree with the run records. The file is never modified, and the check is safe
/// while a host has it open. Cost: one pass over the file.
///
/// Throws StorageError only if the check itself cannot run (fork fails); a
/// missing, foreign, newer or damaged file is a problem in the report. Forks:
/// like any fork in a threaded program, call it where no other thread holds
/// locks the child would need (it uses only malloc and LMDB).
VerifyReport verify_database(const std::filesystem::path& path);

}  // namespace abide
