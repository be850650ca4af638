#include "harness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <thread>

namespace abide::harness {

ScratchDir::ScratchDir(std::string_view prefix, const fs::path& parent) {
    std::string tmpl = (parent / (std::string(prefix) + "-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
}

ScratchDir::~ScratchDir() {
    if (const char* keep = std::getenv("ABIDE_KEEP_DIRS"); keep && std::string_view(keep) == "1") {
        std::cerr << "kept " << path_ << "\n";
        return;
    }
    std::error_code ec;
    fs::remove_all(path_, ec);
}

Process::Process(const std::vector<std::string>& argv, const fs::path& log, const std::vector<std::string>& env,
                 bool own_group)
    : own_group_(own_group) {
    // Everything the child needs is built before fork: after it, only
    // async-signal-safe calls until exec.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // `env` replaces inherited variables of the same name (getenv would
    // otherwise find the inherited one first).
    auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
        const std::string_view inherited(*e);
        bool replaced = false;
        for (const std::string& mine : env) replaced = replaced || name_of(mine) == name_of(inherited);
        if (!replaced) env_strings.emplace_back(inherited);
    }
    env_strings.insert(env_strings.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open log " + log.string());
    pid_ = ::fork();
    if (pid_ < 0) {
        ::close(fd);
        throw std::runtime_error("fork failed");
    }
    if (pid_ == 0) {
        if (own_group) ::setpgid(0, 0);
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
        ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    ::close(fd);
    // Also in the parent, so that the group exists before any kill_hard().
    if (own_group) ::setpgid(pid_, pid_);
}

Process::~Process() {
    if (pid_ > 0) {
        send_kill();
        ::waitpid(pid_, nullptr, 0);
    }
}

void Process::send_kill() const { ::kill(own_group_ ? -pid_ : pid_, SIGKILL); }

int Process::decode(int status) {
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool Process::kill_hard() {
    if (pid_ <= 0) return false;
    send_kill();
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

int Process::wait() {
    if (pid_ <= 0) return -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    return decode(status);
}

int Process::try_wait() {
    if (pid_ <= 0) return -1;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return -1;
    return decode(status);
}

int Process::wait_for(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        if (int code = try_wait(); code >= 0) return code;
        if (std::chrono::steady_clock::now() > deadline) {
            kill_hard();
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

void die_with_parent() {
    const pid_t parent = ::getppid();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::raise(SIGKILL);  // the parent died before the prctl
}

int run_to_end(const std::vector<std::string>& argv, const fs::path& log, const std::vector<std::string>& env,
               int timeout_ms) {
    Process p(argv, log, env);
    return p.wait_for(timeout_ms);
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void append_line(const fs::path& path, std::string_view line) {
    const std::string text = std::string(line) + "\n";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + path.string());
    const ssize_t n = ::write(fd, text.data(), text.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size())) throw std::runtime_error("cannot append to " + path.string());
}

std::vector<std::string> read_lines(const fs::path& path) {
    const std::string text = read_text(path);
    std::vector<std::string> lines;
    std::size_t begin = 0;
    for (std::size_t nl; (nl = text.find('\n', begin)) != std::string::npos; begin = nl + 1)
        lines.push_back(text.substr(begin, nl - begin));
    return lines;
}

std::string tail(const fs::path& path, std::size_t bytes) {
    std::string text = read_text(path);
    return text.size() > bytes ? "..." + text.substr(text.size() - bytes) : text;
}

Flags::Flags(int argc, char** argv, const std::vector<std::string>& required,
             const std::vector<std::string>& optional, std::string_view usage)
    : usage_(usage) {
    auto known = [&](const std::string& name) {
        return std::find(required.begin(), required.end(), name) != required.end() ||
               std::find(optional.begin(), optional.end(), name) != optional.end();
    };
    for (int i = 1; i < argc; i += 2) {
        const std::string name = argv[i];
        if (!known(name)) usage_error("unknown option " + name);
        if (i + 1 >= argc) usage_error(name + " needs a value");
        values_[name] = argv[i + 1];
    }
    for (const std::string& name : required)
        if (!values_.count(name)) usage_error(name + " is required");
}

void Flags::usage_error(const std::string& what) const {
    std::cerr << "error: " << what << "\n" << usage_;
    std::exit(2);
}

std::string Flags::text(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
}

std::uint64_t Flags::number(const std::string& name, std::uint64_t fallback) const {
    auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0') usage_error(name + ": not a whole number: " + it->second);
    return n;
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    if (*end != '\0') throw std::runtime_error(std::string(name) + " must be a whole number, not '" + v + "'");
    return n;
}

std::uint64_t seed_from_env(std::string_view harness) {
    const std::uint64_t seed = env_number("ABIDE_SEED", std::random_device{}() * 0x100000000ull + std::random_device{}());
    std::cout << harness << ": seed " << seed << " (rerun with ABIDE_SEED=" << seed << ")" << std::endl;
    return seed;
}

void Tally::fail(const std::string& case_name, const std::string& detail) {
    ++failed_;
    std::cout << "FAILED " << harness_ << " / " << case_name << " (seed " << seed_ << ", rerun with ABIDE_SEED="
              << seed_ << "):\n"
              << detail << std::endl;
}

int Tally::finish() const {
    std::cout << harness_ << ": " << passed_ << " passed, " << failed_ << " failed";
    if (failed_ != 0) std::cout << " (seed " << seed_ << ")";
    std::cout << std::endl;
    return failed_ == 0 ? 0 : 1;
}

}  // namespace abide::harness
