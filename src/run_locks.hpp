// Which process executes a run: one advisory lock per run, held while a poll
// executes it, so that several host processes can poll one database and no
// run executes in two of them at once.
//
// The locks are Linux open-file-description locks (F_OFD_SETLK) on byte
// `run#` of "<database>-runs", an empty file beside the database. The kernel
// drops them when the holder dies, however it dies, so a killed process's
// runs are free for the next poll anywhere, with no lease to expire. They
// belong to this object's open file description: two engines in one process
// exclude each other too, while threads of one engine share its locks (the
// engine keeps its own set of runs in execution for those).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace abide::detail {

class RunLocks {
public:
    /// `database`: the database file; the lock file is created beside it on
    /// first use, so read-only users (the abide command) never create it.
    explicit RunLocks(std::string database) : path_(std::move(database) + "-runs") {}
    ~RunLocks();
    RunLocks(const RunLocks&) = delete;
    RunLocks& operator=(const RunLocks&) = delete;

    /// True if this engine now holds run's lock; false if another holds it.
    /// Throws StorageError if the lock file cannot be opened.
    bool try_lock(std::uint64_t run);
    void unlock(std::uint64_t run) noexcept;
    /// The runs of `runs` (sorted, distinct) whose lock this engine now holds;
    /// the others are held by another. One system call per stretch of
    /// consecutive numbers when none of it is held elsewhere: a poll round
    /// claims hundreds of runs, mostly consecutive, and each call walks the
    /// file's lock list. Throws StorageError as try_lock does.
    std::vector<std::uint64_t> try_lock_all(const std::vector<std::uint64_t>& runs);
    /// Unlocks every run of `runs` (sorted, distinct), one call per stretch.
    void unlock_all(const std::vector<std::uint64_t>& runs) noexcept;

private:
    int fd();
    std::string path_;
    std::mutex open_mutex_;
    int fd_ = -1;
};

}  // namespace abide::detail
