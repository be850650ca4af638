#include "common/ledger.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace examples {
namespace {

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path) {
    throw std::system_error(errno, std::generic_category(), what + " " + path.string());
}

/// An open file descriptor holding an flock until it is closed.
class LockedFd {
public:
    LockedFd(const std::filesystem::path& path, int flags, int lock) {
        fd_ = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
        if (fd_ < 0) fail("cannot open", path);
        while (::flock(fd_, lock) != 0)
            if (errno != EINTR) fail("cannot lock", path);
    }
    ~LockedFd() { ::close(fd_); }  // closing releases the lock
    LockedFd(const LockedFd&) = delete;
    LockedFd& operator=(const LockedFd&) = delete;
    int fd() const { return fd_; }

private:
    int fd_ = -1;
};

std::string read_all(int fd, const std::filesystem::path& path) {
    std::string text;
    char buf[8192];
    if (::lseek(fd, 0, SEEK_SET) < 0) fail("cannot seek", path);
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot read", path);
        if (n == 0) return text;
        text.append(buf, static_cast<std::size_t>(n));
    }
}

/// Complete lines only: a tail without '\n' is a write a crash cut short.
std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t begin = 0;
    for (std::size_t nl; (nl = text.find('\n', begin)) != std::string::npos; begin = nl + 1)
        out.push_back(text.substr(begin, nl - begin));
    return out;
}

void write_all(int fd, std::string_view data, const std::filesystem::path& path) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot write", path);
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::vector<std::string> fields(const std::string& line, std::size_t max) {
    std::vector<std::string> out;
    std::istringstream in(line);
    std::string f;
    while (out.size() + 1 < max && in >> f) out.push_back(f);
    std::string rest;
    std::getline(in >> std::ws, rest);
    if (!rest.empty()) out.push_back(rest);
    return out;
}

}  // namespace

AppendOnceFile::AppendOnceFile(std::filesystem::path path) : path_(std::move(path)) {}

std::optional<std::string> AppendOnceFile::append_once(std::string_view key,
                                                       const std::function<std::string(std::size_t)>& make_rest) const {
    LockedFd f(path_, O_RDWR | O_CREAT | O_APPEND, LOCK_EX);
    const std::string text = read_all(f.fd(), path_);
    const std::string prefix = std::string(key) + " ";
    const std::vector<std::string> existing = split_lines(text);
    for (const std::string& line : existing)
        if (line.compare(0, prefix.size(), prefix) == 0) return line.substr(prefix.size());
    // Cut off a torn tail so the new line starts on a line of its own.
    const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (complete != text.size() && ::ftruncate(f.fd(), static_cast<off_t>(complete)) != 0)
        fail("cannot truncate", path_);
    write_all(f.fd(), prefix + make_rest(existing.size()) + "\n", path_);
    // Only a synced line is a promise: the caller reports success after this.
    if (::fsync(f.fd()) != 0) fail("cannot fsync", path_);
    return std::nullopt;
}

std::vector<std::string> AppendOnceFile::lines() const {
    if (!std::filesystem::exists(path_)) return {};
    LockedFd f(path_, O_RDONLY, LOCK_SH);
    return split_lines(read_all(f.fd(), path_));
}

std::string PaymentsLedger::pay(std::string_view key, std::int64_t amount, std::string_view reference) const {
    std::string receipt;
    auto existing = file_.append_once(key, [&](std::size_t paid_before) {
        receipt = "re_" + std::to_string(1001 + paid_before);
        return std::to_string(amount) + " " + receipt + " " + std::string(reference);
    });
    if (!existing) return receipt;
    return fields(*existing, 3).at(1);  // the original receipt
}

std::vector<Payment> PaymentsLedger::payments() const {
    std::vector<Payment> out;
    for (const std::string& line : file_.lines()) {
        auto f = fields(line, 4);
        if (f.size() != 4) throw std::runtime_error("malformed ledger line: " + line);
        out.push_back({f[0], std::stoll(f[1]), f[2], f[3]});
    }
    return out;
}

std::size_t PaymentsLedger::count(std::string_view key) const {
    std::size_t n = 0;
    for (const Payment& p : payments()) n += p.key == key;
    return n;
}

std::size_t PaymentsLedger::count_for(std::string_view reference) const {
    std::size_t n = 0;
    for (const Payment& p : payments()) n += p.reference == reference;
    return n;
}

void append_step_run(const std::filesystem::path& path, const StepRun& run) {
    LockedFd f(path, O_WRONLY | O_CREAT | O_APPEND, LOCK_EX);
    write_all(f.fd(),
              run.run_id + " " + run.step + " " + run.key + " " + std::to_string(run.attempt) + " " +
                  std::to_string(run.pid) + "\n",
              path);
}

std::vector<StepRun> read_step_log(const std::filesystem::path& path) {
    std::vector<StepRun> out;
    if (!std::filesystem::exists(path)) return out;
    LockedFd f(path, O_RDONLY, LOCK_SH);
    for (const std::string& line : split_lines(read_all(f.fd(), path))) {
        auto x = fields(line, 5);
        if (x.size() != 5) throw std::runtime_error("malformed step log line: " + line);
        out.push_back({x[0], x[1], x[2], static_cast<std::uint32_t>(std::stoul(x[3])), std::stol(x[4])});
    }
    return out;
}

void write_file_atomically(const std::filesystem::path& path, std::string_view text) {
    const std::filesystem::path tmp = path.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << text;
        if (!out.flush()) throw std::runtime_error("cannot write " + tmp.string());
    }
    std::filesystem::rename(tmp, path);
}

}  // namespace examples
