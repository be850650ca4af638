#include "run_locks.hpp"

#include <abide/errors.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace abide::detail {

namespace {

bool set_lock(int fd, std::uint64_t run, short type, bool* busy) {
    struct flock lock {};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_start = static_cast<off_t>(run);
    lock.l_len = 1;
    if (::fcntl(fd, F_OFD_SETLK, &lock) == 0) return true;
    if (busy) *busy = errno == EAGAIN || errno == EACCES;
    return false;
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
    if (set_lock(fd(), run, F_WRLCK, &busy)) return true;
    if (busy) return false;
    throw StorageError("abide.storage.run_locks",
                       "cannot lock run #" + std::to_string(run) + " in '" + path_ + "': " + std::strerror(errno));
}

void RunLocks::unlock(std::uint64_t run) noexcept {
    if (fd_ >= 0) set_lock(fd_, run, F_UNLCK, nullptr);
}

}  // namespace abide::detail
