// abide_io_shim: an LD_PRELOAD library that watches (record mode) or breaks
// (fault mode) the I/O a process does on ONE file, the database named by
// ABIDE_IO_FILE. See README.md beside this file for the modes and the log
// format; io_log.hpp reads the log back.
//
// What it intercepts, and why exactly these: Debian 12's liblmdb 0.9.24
// (`nm -D liblmdb.so.0`) writes its data file with pwrite (meta pages, and
// single pages), lseek + writev (runs of dirty pages in mdb_page_flush) and
// write, syncs it with fdatasync (fsync for some file systems), opens it with
// open (a second descriptor with O_DSYNC for the meta pages unless
// MDB_NOSYNC / MDB_NOMETASYNC) and never calls pwritev, openat or msync
// without MDB_WRITEMAP. ftruncate is only used by mdb_env_copy. The symbols
// LMDB does not use (pwrite64, pwritev, open64, openat, ftruncate64) are
// intercepted too so that another build of LMDB cannot slip past unseen.
//
// Rules the code keeps:
// - Every real call is made with syscall(2), never through the next symbol
//   (no dlsym): no allocation, no lock, no recursion into this shim, safe in a
//   signal handler, and the same under ASan (whose own interceptors would
//   otherwise run in between).
// - A write is logged after it returns, with the byte count it returned, so
//   a partial write logs only the bytes that reached the file.
// - A failed call (real or injected) logs nothing: it changed nothing.
// - Only descriptors whose /proc/self/fd link names the target file are
//   watched; close() forgets them, so a reused descriptor number is not.
//
// No ASan in here: the library is built without sanitizers (it is loaded
// before the sanitizer runtime, which would refuse an instrumented one).
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "io_log_format.hpp"

namespace {

using abide::io_log::RecordHeader;
using abide::io_log::RecordType;

constexpr int max_tracked_fd = 1 << 16;
constexpr unsigned char fd_tracked = 1;
constexpr unsigned char fd_synced_writes = 2;  // O_DSYNC / O_SYNC: durable when the write returns

// Which kind of call an injected fault hits.
enum class FaultKind { none, write, sync };

struct ShimState {
    bool initialised = false;
    char target[4096] = {};  // ABIDE_IO_FILE, an absolute path without symlinks
    std::size_t target_len = 0;
    int log_fd = -1;  // ABIDE_IO_RECORD, opened O_APPEND
    FaultKind fault_kind = FaultKind::none;
    std::uint64_t fault_at = 0;  // the n-th call (1-based) of fault_kind fails
    bool fault_sticky = false;   // and every later one too
    int fault_errno = EIO;       // 0: "silent", the write is dropped but reported done

    std::uint64_t writes = 0, syncs = 0;  // calls of each kind on the target so far
    unsigned char fds[max_tracked_fd] = {};
};

ShimState state;

long real_write(int fd, const void* buf, std::size_t n) { return syscall(SYS_write, fd, buf, n); }

bool same_text(const char* a, const char* b, std::size_t n) { return std::memcmp(a, b, n) == 0; }

// Parses ABIDE_IO_FAIL = <write|sync>:<n>[:<EIO|ENOSPC|silent>[:sticky]]. A
// malformed value is reported on stderr and aborts: a fault run that injects
// nothing would pass silently.
void parse_fault(const char* spec) {
    const char* p = spec;
    if (std::strncmp(p, "write:", 6) == 0) {
        state.fault_kind = FaultKind::write;
        p += 6;
    } else if (std::strncmp(p, "sync:", 5) == 0) {
        state.fault_kind = FaultKind::sync;
        p += 5;
    } else {
        goto bad;
    }
    {
        char* end = nullptr;
        state.fault_at = std::strtoull(p, &end, 10);
        if (end == p || state.fault_at == 0) goto bad;
        p = end;
    }
    if (*p == ':') {
        ++p;
        if (std::strncmp(p, "EIO", 3) == 0) {
            state.fault_errno = EIO;
            p += 3;
        } else if (std::strncmp(p, "ENOSPC", 6) == 0) {
            state.fault_errno = ENOSPC;
            p += 6;
        } else if (std::strncmp(p, "silent", 6) == 0) {
            state.fault_errno = 0;  // a lying disk: for harnesses to prove they notice lost writes
            p += 6;
        } else {
            goto bad;
        }
        if (std::strcmp(p, ":sticky") == 0) {
            state.fault_sticky = true;
            p += 7;
        }
    }
    if (*p == '\0') return;
bad:
    static const char message[] =
        "abide_io_shim: ABIDE_IO_FAIL must be <write|sync>:<n>[:<EIO|ENOSPC|silent>[:sticky]]\n";
    real_write(2, message, sizeof message - 1);
    std::abort();
}

// Reads the environment once. The shim is configured before the program
// runs (a constructor), and lazily in case another library's constructor
// touches a file first.
void initialise() {
    if (state.initialised) return;
    state.initialised = true;
    if (const char* target = std::getenv("ABIDE_IO_FILE")) {
        state.target_len = std::strlen(target);
        if (state.target_len >= sizeof state.target) state.target_len = 0;
        std::memcpy(state.target, target, state.target_len);
    }
    if (const char* log = std::getenv("ABIDE_IO_RECORD"))
        state.log_fd = static_cast<int>(
            syscall(SYS_openat, AT_FDCWD, log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (const char* fault = std::getenv("ABIDE_IO_FAIL")) parse_fault(fault);
}

__attribute__((constructor)) void initialise_at_load() { initialise(); }

bool watched(int fd) { return fd >= 0 && fd < max_tracked_fd && (state.fds[fd] & fd_tracked); }

// After a successful open: watch the descriptor if it names the target.
void maybe_track(int fd, int flags) {
    initialise();
    if (fd < 0 || fd >= max_tracked_fd || state.target_len == 0) return;
    char link[32] = "/proc/self/fd/";
    std::size_t at = std::strlen(link);
    char digits[12];
    int count = 0;
    for (unsigned v = static_cast<unsigned>(fd); count == 0 || v != 0; v /= 10) digits[count++] = char('0' + v % 10);
    while (count > 0) link[at++] = digits[--count];
    link[at] = '\0';
    char resolved[sizeof state.target];
    const long len = syscall(SYS_readlink, link, resolved, sizeof resolved);
    state.fds[fd] = 0;
    // abide creates a new database as "<target>.creating-<pid>" and links it
    // into place once whole: its writes are the target's first ones.
    static const char creating[] = ".creating-";
    const bool is_target = len == static_cast<long>(state.target_len) && same_text(resolved, state.target, state.target_len);
    const bool is_new_target = len > static_cast<long>(state.target_len + sizeof creating - 1) &&
                               same_text(resolved, state.target, state.target_len) &&
                               same_text(resolved + state.target_len, creating, sizeof creating - 1);
    if (is_target || is_new_target)
        state.fds[fd] = static_cast<unsigned char>(fd_tracked | ((flags & O_DSYNC) ? fd_synced_writes : 0));
}

// Writes all of `iov` to the log, resuming after partial writes.
void log_all(struct iovec* iov, int count) {
    while (count > 0) {
        long n = syscall(SYS_writev, state.log_fd, iov, count);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;  // the harness sees a short log and reports it
        }
        while (count > 0 && static_cast<std::size_t>(n) >= iov->iov_len) {
            n -= static_cast<long>(iov->iov_len);
            ++iov;
            --count;
        }
        if (count > 0) {
            iov->iov_base = static_cast<char*>(iov->iov_base) + n;
            iov->iov_len -= static_cast<std::size_t>(n);
        }
    }
}

// Logs one record whose payload is the first `bytes` bytes of `data`.
void log_record(RecordType type, std::uint64_t offset, const struct iovec* data, int data_count, std::size_t bytes) {
    if (state.log_fd < 0) return;
    RecordHeader header{};
    header.type = static_cast<std::uint32_t>(type);
    header.length = static_cast<std::uint32_t>(bytes);
    header.offset = offset;
    constexpr int max_parts = 1025;
    struct iovec parts[max_parts];
    parts[0] = {&header, sizeof header};
    int count = 1;
    for (int i = 0; i < data_count && bytes > 0 && count < max_parts; ++i) {
        const std::size_t take = data[i].iov_len < bytes ? data[i].iov_len : bytes;
        parts[count++] = {data[i].iov_base, take};
        bytes -= take;
    }
    log_all(parts, count);
}

// True when this call of `kind` on the target must not happen: it fails with
// errno set, or with a "silent" fault (errno 0) it is reported done.
bool inject_fault(FaultKind kind) {
    initialise();
    std::uint64_t& counter = kind == FaultKind::write ? state.writes : state.syncs;
    const std::uint64_t nth = __atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST);
    if (state.fault_kind != kind) return false;
    if (nth == state.fault_at || (state.fault_sticky && nth > state.fault_at)) {
        if (state.fault_errno != 0) errno = state.fault_errno;
        return true;
    }
    return false;
}

long current_offset(int fd) { return syscall(SYS_lseek, fd, 0, SEEK_CUR); }

// The common path of every write flavour: fault, real call, log.
// `offset` < 0 means "at the file position" (write, writev).
ssize_t watched_write(int fd, const struct iovec* iov, int iovcnt, long offset, bool positional) {
    if (inject_fault(FaultKind::write)) {
        if (state.fault_errno != 0) return -1;
        ssize_t all = 0;
        for (int i = 0; i < iovcnt; ++i) all += static_cast<ssize_t>(iov[i].iov_len);
        return all;
    }
    const long at = positional ? offset : current_offset(fd);
    long n;
    if (positional)
        n = syscall(SYS_pwritev, fd, iov, iovcnt, static_cast<unsigned long>(offset), 0UL);
    else
        n = syscall(SYS_writev, fd, iov, iovcnt);
    if (n > 0) {
        const RecordType type = (state.fds[fd] & fd_synced_writes) ? RecordType::synced_write : RecordType::write;
        log_record(type, static_cast<std::uint64_t>(at), iov, iovcnt, static_cast<std::size_t>(n));
    }
    return n;
}

ssize_t watched_sync(int fd, long call) {
    if (inject_fault(FaultKind::sync)) return state.fault_errno != 0 ? -1 : 0;
    const long rc = syscall(call, fd);
    if (rc == 0) log_record(RecordType::sync, 0, nullptr, 0, 0);
    return rc;
}

int open_with(int dirfd, const char* path, int flags, va_list args) {
    mode_t mode = 0;
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) mode = static_cast<mode_t>(va_arg(args, int));
    const int fd = static_cast<int>(syscall(SYS_openat, dirfd, path, flags, mode));
    if (fd >= 0) maybe_track(fd, flags);
    return fd;
}

}  // namespace

extern "C" {

/// Appends a note (the workload's acknowledgements) to the log, in order with
/// the writes and syncs. The workload finds it with dlsym; 0 on success.
__attribute__((visibility("default"))) int abide_io_note(const char* text, std::size_t length) {
    initialise();
    if (state.log_fd < 0) return -1;
    struct iovec data = {const_cast<char*>(text), length};
    log_record(RecordType::note, 0, &data, 1, length);
    return 0;
}

int open(const char* path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    const int fd = open_with(AT_FDCWD, path, flags, args);
    va_end(args);
    return fd;
}

int open64(const char* path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    const int fd = open_with(AT_FDCWD, path, flags, args);
    va_end(args);
    return fd;
}

int openat(int dirfd, const char* path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    const int fd = open_with(dirfd, path, flags, args);
    va_end(args);
    return fd;
}

int close(int fd) {
    if (fd >= 0 && fd < max_tracked_fd) state.fds[fd] = 0;
    return static_cast<int>(syscall(SYS_close, fd));
}

ssize_t pwrite(int fd, const void* buf, std::size_t n, off_t offset) {
    if (!watched(fd)) return syscall(SYS_pwrite64, fd, buf, n, offset);
    struct iovec one = {const_cast<void*>(buf), n};
    return watched_write(fd, &one, 1, offset, true);
}

ssize_t pwrite64(int fd, const void* buf, std::size_t n, off_t offset) { return pwrite(fd, buf, n, offset); }

ssize_t write(int fd, const void* buf, std::size_t n) {
    if (!watched(fd)) return real_write(fd, buf, n);
    struct iovec one = {const_cast<void*>(buf), n};
    return watched_write(fd, &one, 1, 0, false);
}

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
    if (!watched(fd)) return syscall(SYS_writev, fd, iov, iovcnt);
    return watched_write(fd, iov, iovcnt, 0, false);
}

ssize_t pwritev(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
    if (!watched(fd)) return syscall(SYS_pwritev, fd, iov, iovcnt, static_cast<unsigned long>(offset), 0UL);
    return watched_write(fd, iov, iovcnt, offset, true);
}

int fdatasync(int fd) {
    if (!watched(fd)) return static_cast<int>(syscall(SYS_fdatasync, fd));
    return static_cast<int>(watched_sync(fd, SYS_fdatasync));
}

int fsync(int fd) {
    if (!watched(fd)) return static_cast<int>(syscall(SYS_fsync, fd));
    return static_cast<int>(watched_sync(fd, SYS_fsync));
}

int ftruncate(int fd, off_t length) {
    const int rc = static_cast<int>(syscall(SYS_ftruncate, fd, length));
    if (rc == 0 && watched(fd)) log_record(RecordType::truncate, static_cast<std::uint64_t>(length), nullptr, 0, 0);
    return rc;
}

int ftruncate64(int fd, off_t length) { return ftruncate(fd, length); }

// The moment a newly created database appears at the target's name.
int link(const char* from, const char* to) {
    initialise();
    const int rc = static_cast<int>(syscall(SYS_link, from, to));
    if (rc == 0 && state.target_len != 0 && std::strlen(to) == state.target_len &&
        same_text(to, state.target, state.target_len))
        log_record(RecordType::created, 0, nullptr, 0, 0);
    return rc;
}

}  // extern "C"
