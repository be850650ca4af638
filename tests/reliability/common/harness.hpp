// What every reliability harness shares: child processes it can kill, a
// scratch directory, the seed and the size of a run, and the tally that ends
// in the "N passed, N failed" line CI reads.
//
// A harness is an ordinary program (not a Catch2 test): it runs many cases,
// keeps going after a failed one, prints each failure with the seed that
// reproduces it, and exits 1 if any case failed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace abide::harness {

namespace fs = std::filesystem;

/// A fresh directory, removed at the end unless ABIDE_KEEP_DIRS=1 (to look at
/// a failure's files). It is made in `parent` (by default the temporary
/// directory, $TMPDIR or /tmp).
class ScratchDir {
public:
    explicit ScratchDir(std::string_view prefix, const fs::path& parent = fs::temp_directory_path());
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const fs::path& path() const { return path_; }
    fs::path operator/(std::string_view name) const { return path_ / name; }

private:
    fs::path path_;
};

/// A child process (fork/exec). stdout and stderr are appended to `log`;
/// `env` entries ("NAME=value") are added to the inherited environment,
/// replacing inherited variables of the same name.
/// The destructor kills and reaps it, so an early return leaks no process.
///
/// With `own_group`, the child leads a new process group and kill_hard() and
/// the destructor SIGKILL the whole group: a child that runs programs of its
/// own (a signaller running the `abide` command) dies with them, so none of
/// them is left writing while the harness checks.
class Process {
public:
    Process(const std::vector<std::string>& argv, const fs::path& log, const std::vector<std::string>& env = {},
            bool own_group = false);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0; }
    /// SIGKILL, then reap. True if the process was still running (it died of
    /// this SIGKILL, not on its own before).
    bool kill_hard();
    /// Waits for the end; the exit code, or 128 + the signal that killed it.
    int wait();
    /// Like wait(), but gives up after `timeout_ms`: then kills it and returns -1.
    int wait_for(int timeout_ms);
    /// The exit code (or 128 + signal) if the process has ended, else -1. Reaps it.
    int try_wait();

private:
    int decode(int status);
    void send_kill() const;
    pid_t pid_ = -1;
    bool own_group_ = false;
};

/// For a program that a harness starts and kills: SIGKILL this process when
/// the harness dies (a ctest timeout kills only the harness), so that no host
/// started by a dead harness polls forever. Call it first thing in main().
void die_with_parent();

/// Runs argv to its end; the exit code (or 128 + signal), or -1 after timeout_ms.
int run_to_end(const std::vector<std::string>& argv, const fs::path& log, const std::vector<std::string>& env = {},
               int timeout_ms = 60'000);

std::string read_text(const fs::path& path);
/// Appends `line` and a newline with one write(2) on an O_APPEND descriptor,
/// so that a writer killed at any instant leaves whole lines only and
/// processes appending to one file never interleave within a line. Not
/// synced: it survives a killed process, not a power cut.
void append_line(const fs::path& path, std::string_view line);
/// The complete lines of a file (none if it is missing); a last line without
/// its newline is ignored.
std::vector<std::string> read_lines(const fs::path& path);
/// The last `bytes` of a file, for failure messages.
std::string tail(const fs::path& path, std::size_t bytes = 3000);

/// The "--name value" pairs of a harness program's command line (the programs
/// a harness starts, and the harness itself). Every name in `required` must
/// be given, and only names in `required` or `optional`; otherwise prints the
/// problem and `usage` to stderr and exits with status 2.
class Flags {
public:
    Flags(int argc, char** argv, const std::vector<std::string>& required, const std::vector<std::string>& optional,
          std::string_view usage);
    /// The value of `name`, or `fallback` if it was not given.
    std::string text(const std::string& name, const std::string& fallback = {}) const;
    /// The value of `name` as a whole number (exits with status 2 if it is not one).
    std::uint64_t number(const std::string& name, std::uint64_t fallback) const;

private:
    [[noreturn]] void usage_error(const std::string& what) const;
    std::map<std::string, std::string> values_;
    std::string usage_;
};

/// A number from the environment, or `fallback` when unset. Harnesses read
/// their size this way (e.g. ABIDE_TORTURE_KILLS) so that CI runs a bounded
/// size and a nightly run sets a larger one.
std::uint64_t env_number(const char* name, std::uint64_t fallback);

/// The run's seed: ABIDE_SEED if set, else a fresh one. Printed at the start.
std::uint64_t seed_from_env(std::string_view harness);

/// Counts cases; failures keep their detail and the seed that reproduces them.
class Tally {
public:
    Tally(std::string harness, std::uint64_t seed) : harness_(std::move(harness)), seed_(seed) {}
    void pass() { ++passed_; }
    /// Prints the failure at once (with the seed and how to rerun).
    void fail(const std::string& case_name, const std::string& detail);
    /// pass() if `ok`, else fail(case_name, detail()).
    template <class Detail>
    void check(bool ok, const std::string& case_name, Detail&& detail) {
        if (ok)
            pass();
        else
            fail(case_name, detail());
    }
    std::uint64_t passed() const { return passed_; }
    std::uint64_t failed() const { return failed_; }
    /// Prints "<harness>: N passed, N failed" (and the seed if any failed);
    /// returns the process exit code: 0 if none failed, else 1.
    int finish() const;

private:
    std::string harness_;
    std::uint64_t seed_;
    std::uint64_t passed_ = 0;
    std::uint64_t failed_ = 0;
};

}  // namespace abide::harness
