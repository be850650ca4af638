#include "run_locks.hpp"

#include <abide/errors.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace abide::detail {

namespace {

/// Locks or unlocks bytes [first, first + count) of the lock file.
bool set_lock(int fd, std::uint64_t first, std::uint64_t count, short type, bool* busy) {
    struct flock lock {};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_start = static_cast<off_t>(first);
    lock.l_len = static_cast<off_t>(count);
    if (::fcntl(fd, F_OFD_SETLK, &lock) == 0) return true;
    if (busy) *busy = errno == EAGAIN || errno == EACCES;
    return false;
}

/// Calls `each(first, count)` for every stretch of consecutive numbers in
/// `runs` (sorted, distinct).
template <typename F>
void for_each_stretch(const std::vector<std::uint64_t>& runs, F&& each) {
    for (std::size_t begin = 0; begin < runs.size();) {
        std::size_t end = begin + 1;
        while (end < runs.size() && runs[end] == runs[end - 1] + 1) ++end;
        each(runs[begin], static_cast<std::uint64_t>(end - begin));
        begin = end;
    }
}

}  // namespace

RunLocks::~RunLocks() {
    if (fd_ >= 0) ::close(fd_);  // drops every lock still held
}

int RunLocks::fd() {
    std::lock_guard lock(open_mutex_);
    if (fd_ < 0) {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0)
            throw StorageError("abide.storage.run_locks",
                               "cannot open the run lock file '" + path_ + "': " + std::strerror(errno) +
                                   "; polling needs it beside the database (check the directory's permissions)");
    }
    return fd_;
}

bool RunLocks::try_lock(std::uint64_t run) {
    bool busy = false;
    if (set_lock(fd(), run, 1, F_WRLCK, &busy)) return true;
    if (busy) return false;
    throw StorageError("abide.storage.run_locks",
                       "cannot lock run #" + std::to_string(run) + " in '" + path_ + "': " + std::strerror(errno));
}

void RunLocks::unlock(std::uint64_t run) noexcept {
    if (fd_ >= 0) set_lock(fd_, run, 1, F_UNLCK, nullptr);
}

std::vector<std::uint64_t> RunLocks::try_lock_all(const std::vector<std::uint64_t>& runs) {
    std::vector<std::uint64_t> locked;
    locked.reserve(runs.size());
    const int file = fd();
    for_each_stretch(runs, [&](std::uint64_t first, std::uint64_t count) {
        // All or nothing: the kernel refuses the whole stretch if another holds
        // any of it; then each run is tried alone.
        if (count > 1 && set_lock(file, first, count, F_WRLCK, nullptr)) {
            for (std::uint64_t run = first; run < first + count; ++run) locked.push_back(run);
            return;
        }
        for (std::uint64_t run = first; run < first + count; ++run)
            if (try_lock(run)) locked.push_back(run);
    });
    return locked;
}

void RunLocks::unlock_all(const std::vector<std::uint64_t>& runs) noexcept {
    if (fd_ < 0) return;
    for_each_stretch(runs, [&](std::uint64_t first, std::uint64_t count) { set_lock(fd_, first, count, F_UNLCK, nullptr); });
}

}  // namespace abide::detail
