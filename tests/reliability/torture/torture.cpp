// The kill -9 torture (Jepsen style): a host runs a seeded mix of many
// concurrent runs of four workflows (workload.hpp) while a separate signaller
// process answers them (with duplicates, strays, malformed and late answers,
// through the API and the `abide` command); the driver kills both with
// SIGKILL at a random instant, checks every invariant from outside
// (oracle.hpp), starts them again, and repeats. At the end a host that is not
// killed finishes every run, and every run must have ended as its plan says.
//
// One case per host lifetime (start, run, kill, check) plus the final one.
//
//   ABIDE_SEED=N               repeat a run (the seed is printed at the start)
//   ABIDE_TORTURE_KILLS=N      how many kills (default 1000, or --kills N)
//   ABIDE_TORTURE_IN_FLIGHT=N  unfinished runs the host keeps (default 100)
//   ABIDE_TORTURE_BREAK=...    a deliberately broken host (workload.hpp), to
//                              see the oracle catch it
//   ABIDE_TORTURE_DIR=DIR      where the scratch directory goes (default /dev/shm)
//   ABIDE_KEEP_DIRS=1          keep the scratch directory
#include "harness.hpp"
#include "oracle.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#if !defined(ABIDE_TORTURE_HOST_PATH) || !defined(ABIDE_TORTURE_SIGNALLER_PATH) || !defined(ABIDE_CLI_PATH)
#error "the build passes the paths of the torture host, the signaller and the abide command"
#endif

namespace {

namespace fs = std::filesystem;
namespace harness = abide::harness;
namespace torture = abide::torture;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct Options {
    std::uint64_t kills = 1000;
    std::uint64_t in_flight = 100;
    int any_instant_ms = 150;  ///< the "any instant" kill lands within this long after the start
    int final_timeout_s = 240;
};

Options parse(int argc, char** argv) {
    const harness::Flags f(argc, argv, {}, {"--kills", "--in-flight", "--any-instant-ms"},
                           "usage: abide_torture [--kills N] [--in-flight N] [--any-instant-ms M]\n");
    Options o;
    // The environment (the long mode) overrides the command line (the CI size).
    o.kills = harness::env_number("ABIDE_TORTURE_KILLS", f.number("--kills", o.kills));
    o.in_flight = harness::env_number("ABIDE_TORTURE_IN_FLIGHT", f.number("--in-flight", o.in_flight));
    o.any_instant_ms = static_cast<int>(f.number("--any-instant-ms", static_cast<std::uint64_t>(o.any_instant_ms)));
    return o;
}

std::size_t lines_in(const fs::path& p) {
    const std::string text = harness::read_text(p);
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

std::string mib(std::uint64_t bytes) {
    std::ostringstream s;
    s.precision(2);
    s << std::fixed << static_cast<double>(bytes) / (1 << 20) << " MiB";
    return s.str();
}

/// Where the scratch directory goes: ABIDE_TORTURE_DIR, else /dev/shm when
/// there is one. A kill -9 leaves the page cache intact, so for this harness a
/// tmpfs behaves like a disk whose syncs cost nothing: the same files survive
/// every kill, and a 2-core machine shared with builds fits 1,000 kills in
/// CI time. Losing unsynced writes is the power-loss harness's subject.
fs::path scratch_parent() {
    if (const char* dir = std::getenv("ABIDE_TORTURE_DIR"); dir && *dir) return dir;
    std::error_code ec;
    if (fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
    return fs::temp_directory_path();
}

/// The scratch directory's files.
struct Files {
    harness::ScratchDir dir{"abide-torture", scratch_parent()};
    fs::path db = dir / "torture.db", ledger = dir / "ledger.txt", done = dir / "signaller-done.txt",
             host_log = dir / "host.log", signaller_log = dir / "signaller.log";
    torture::HostLifetime lifetime(std::uint64_t k) const {
        return {dir / ("steps-" + std::to_string(k) + ".txt"), dir / ("acks-" + std::to_string(k) + ".txt")};
    }
};

/// How the driver picks the instant of a kill.
enum class KillAt { any_instant, body_running, after_answers };
const char* const kill_at_names[] = {"at any instant", "while a step body runs", "after the signaller answered"};

class Driver {
public:
    Driver(const Options& o, std::uint64_t seed) : o_(o), seed_(seed), rng_(seed), oracle_(f_.db, f_.ledger, seed) {}

    int run() {
        harness::Tally tally("torture", seed_);
        const auto began = SteadyClock::now();
        std::cout << "torture: " << o_.kills << " kills, " << o_.in_flight << " runs in flight (ABIDE_TORTURE_KILLS, "
                  << "ABIDE_TORTURE_IN_FLIGHT), in " << f_.dir.path().string() << std::endl;
        std::uint64_t first_size = 0;
        const std::uint64_t every = std::max<std::uint64_t>(1, o_.kills / 10);
        for (std::uint64_t k = 0; k < o_.kills; ++k) {
            const torture::HostLifetime life = f_.lifetime(k);
            std::vector<std::string> broken = live_and_kill(k, life);
            const auto check_began = SteadyClock::now();
            for (std::string& b : oracle_.check(life)) broken.push_back(std::move(b));
            checking_ += SteadyClock::now() - check_began;
            tally.check(broken.empty(), "kill " + std::to_string(k + 1), [&] { return describe(broken); });
            if (k == 0) first_size = oracle_.figures().file_bytes;
            release_quarantined();
            forget(life, broken.empty());
            if ((k + 1) % every == 0) progress(k + 1, began);
        }
        const torture::HostLifetime last = f_.lifetime(o_.kills);
        std::vector<std::string> broken = finish_every_run(last);
        for (std::string& b : oracle_.check_final(last)) broken.push_back(std::move(b));
        tally.check(broken.empty(), "every run ends as planned", [&] { return describe(broken); });
        report(first_size, began);
        return tally.finish();
    }

private:
    int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

    std::vector<std::string> host_argv(const torture::HostLifetime& life, std::uint64_t max_runs) {
        std::vector<std::string> argv{ABIDE_TORTURE_HOST_PATH, "--db",   f_.db.string(),       "--ledger",
                                      f_.ledger.string(),      "--steplog", life.steplog.string(), "--seed",
                                      std::to_string(seed_),   "--in-flight", std::to_string(o_.in_flight),
                                      // Half the hosts keep no fibers: every resume replays its journal.
                                      "--cache-size",          uniform(0, 1) ? "1024" : "0"};
        if (max_runs) argv.insert(argv.end(), {"--max-runs", std::to_string(max_runs)});
        return argv;
    }

    std::vector<std::string> signaller_argv(const torture::HostLifetime& life) const {
        return {ABIDE_TORTURE_SIGNALLER_PATH, "--db",    f_.db.string(),   "--acks",    life.acks.string(),
                "--done",                     f_.done.string(), "--cli", ABIDE_CLI_PATH, "--scratch",
                f_.dir.path().string()};
    }

    /// Starts a host and a signaller, waits for the kill instant, kills both.
    /// Returns what went wrong with the processes themselves.
    std::vector<std::string> live_and_kill(std::uint64_t k, const torture::HostLifetime& life) {
        fs::remove(f_.host_log);
        fs::remove(f_.signaller_log);
        const bool signaller_first = uniform(0, 1) == 1;
        std::optional<harness::Process> host, signaller;
        auto start_signaller = [&] { signaller.emplace(signaller_argv(life), f_.signaller_log, std::vector<std::string>{}, true); };
        if (signaller_first) start_signaller();
        host.emplace(host_argv(life, 0), f_.host_log);
        if (!signaller_first) start_signaller();

        const auto at = static_cast<KillAt>(uniform(0, 9) < 3 ? 0 : uniform(0, 4) < 4 ? 1 : 2);
        ++kills_by_mode_[static_cast<int>(at)];
        // A host first recovers (runs that died running execute alone, one
        // commit each), so most kills wait for some work to happen first.
        const auto give_up = SteadyClock::now() + 2s;
        auto wait_for_lines = [&](const fs::path& p, std::size_t n) {
            while (lines_in(p) < n && SteadyClock::now() < give_up && host->try_wait() < 0)
                std::this_thread::sleep_for(300us);
        };
        switch (at) {
            case KillAt::any_instant:  // including while it opens the database and recovers
                std::this_thread::sleep_for(std::chrono::milliseconds(uniform(0, o_.any_instant_ms)));
                break;
            case KillAt::body_running:  // just after the n-th body starts: before or after its effect, before its commit
                wait_for_lines(life.steplog, static_cast<std::size_t>(uniform(1, 25)));
                std::this_thread::sleep_for(std::chrono::microseconds(uniform(0, 2000)));
                break;
            case KillAt::after_answers:  // the host is taking answers in while more arrive
                wait_for_lines(life.acks, static_cast<std::size_t>(uniform(1, 10)));
                std::this_thread::sleep_for(std::chrono::microseconds(uniform(0, 20000)));
                break;
        }
        std::vector<std::string> broken;
        auto kill = [&](harness::Process& p, const char* who, const fs::path& log) {
            if (const int code = p.try_wait(); code >= 0)
                broken.push_back(std::string(who) + " ended on its own with status " + std::to_string(code) +
                                 " before kill " + std::to_string(k + 1) + ":\n" + harness::tail(log));
            else
                p.kill_hard();
        };
        if (uniform(0, 1) == 1) {
            kill(*host, "the host", f_.host_log);
            kill(*signaller, "the signaller", f_.signaller_log);
        } else {
            kill(*signaller, "the signaller", f_.signaller_log);
            kill(*host, "the host", f_.host_log);
        }
        report_errors_in(f_.host_log, "the host", broken);
        report_errors_in(f_.signaller_log, "the signaller", broken);
        return broken;
    }

    /// The host and the signaller print nothing but errors: their own, or a
    /// sanitizer's (which may still be printing when the kill lands, so the
    /// process did not end on its own).
    static void report_errors_in(const fs::path& log, const char* who, std::vector<std::string>& broken) {
        const std::string text = harness::read_text(log);
        for (std::string_view mark : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                                      "abide_torture_host:", "abide_torture_signaller:"})
            if (text.find(mark) != std::string::npos) {
                broken.push_back(std::string(who) + " reported an error:\n" + harness::tail(log));
                return;
            }
    }

    /// Releases every quarantined run with `abide release`, as an operator
    /// would once the cause is known: here the cause is the kills.
    void release_quarantined() {
        for (const std::string& run : oracle_.quarantined()) {
            const fs::path out = f_.dir / "release.out";
            const int code = harness::run_to_end({ABIDE_CLI_PATH, "--db", f_.db.string(), "release", run}, out);
            if (code != 0) throw std::runtime_error("abide release " + run + " exited with " + std::to_string(code) +
                                                    ":\n" + harness::read_text(out));
            oracle_.released(run);
            ++released_;
        }
    }

    /// A host that is not killed (and starts no new runs) and a signaller,
    /// until the signaller has answered every run and seen it finish.
    std::vector<std::string> finish_every_run(const torture::HostLifetime& life) {
        fs::remove(f_.host_log);
        fs::remove(f_.signaller_log);
        const std::uint64_t runs = oracle_.figures().runs;
        harness::Process host(host_argv(life, runs), f_.host_log);
        harness::Process signaller(signaller_argv(life), f_.signaller_log, {}, true);
        const auto give_up = SteadyClock::now() + std::chrono::seconds(o_.final_timeout_s);
        auto next_quarantine_look = SteadyClock::now() + 500ms;
        std::vector<std::string> broken;
        for (;;) {
            const auto done = harness::read_lines(f_.done);
            if (std::set<std::string>(done.begin(), done.end()).size() >= runs) break;
            if (SteadyClock::now() >= next_quarantine_look) {  // released as between kills
                for (std::string& b : oracle_.check_new_quarantines()) broken.push_back(std::move(b));
                const std::uint64_t released_before = released_;
                release_quarantined();
                released_at_end_ += released_ - released_before;
                next_quarantine_look = SteadyClock::now() + 500ms;
            }
            if (host.try_wait() >= 0 || signaller.try_wait() >= 0 || SteadyClock::now() > give_up) {
                broken.push_back("the last host and signaller did not finish every run (" + std::to_string(done.size()) +
                                 " of " + std::to_string(runs) + " done); host:\n" + harness::tail(f_.host_log) +
                                 "\nsignaller:\n" + harness::tail(f_.signaller_log));
                break;
            }
            std::this_thread::sleep_for(50ms);
        }
        signaller.kill_hard();
        host.kill_hard();
        return broken;
    }

    std::string describe(const std::vector<std::string>& broken) const {
        std::string text = "broken invariants:";
        for (std::size_t i = 0; i < broken.size() && i < 20; ++i) text += "\n  " + broken[i];
        if (broken.size() > 20) text += "\n  ... and " + std::to_string(broken.size() - 20) + " more";
        return text + "\nlast host's output:\n" + harness::tail(f_.host_log, 1500) + "\nlast signaller's output:\n" +
               harness::tail(f_.signaller_log, 1500);
    }

    /// A lifetime's logs are read once; a failed one's stay for ABIDE_KEEP_DIRS.
    void forget(const torture::HostLifetime& life, bool passed) {
        if (!passed) return;
        fs::remove(life.steplog);
        fs::remove(life.acks);
    }

    void progress(std::uint64_t kills, SteadyClock::time_point began) const {
        const auto& g = oracle_.figures();
        std::cout << "torture: " << kills << " kills, " << seconds_since(began) << " s: " << g.runs << " runs started, "
                  << g.runs - g.finished << " unfinished, " << g.body_executions << " step bodies run, "
                  << g.killed_mid_step << " kills with a body in flight, database " << mib(g.file_bytes) << std::endl;
    }

    static double seconds_since(SteadyClock::time_point t) {
        return std::chrono::duration<double>(SteadyClock::now() - t).count();
    }

    void report(std::uint64_t first_size, SteadyClock::time_point began) const {
        const auto& g = oracle_.figures();
        std::cout << "torture: " << o_.kills << " kills in " << seconds_since(began) << " s, "
                  << std::chrono::duration<double>(checking_).count() << " s of it checking (";
        for (int m = 0; m < 3; ++m) std::cout << (m ? ", " : "") << kills_by_mode_[m] << " " << kill_at_names[m];
        std::cout << "); " << g.killed_mid_step << " left a step body uncommitted; " << g.runs << " runs, "
                  << g.body_executions << " step bodies run (" << g.reran_bodies << " again after a kill), "
                  << g.effects << " effects; " << g.quarantines << " quarantines of runs the kills hit "
                  << torture::quarantine_after << " times in a row (" << released_ << " released, " << released_at_end_
                  << " of them in the last lifetime)\n";
        std::cout << "torture: answers by purpose and outcome:";
        for (const auto& [what, n] : g.acks) std::cout << " [" << what << "] " << n;
        std::cout << "\ntorture: database file " << mib(first_size) << " after the first kill, " << mib(g.file_bytes)
                  << " at the end (largest " << mib(g.max_file_bytes) << "; bound for " << g.runs << " runs "
                  << mib(torture::Oracle::file_bound(g.runs)) << ", " << (g.runs ? g.file_bytes / g.runs : 0)
                  << " bytes per run)" << std::endl;
    }

    Options o_;
    std::uint64_t seed_;
    std::mt19937_64 rng_;
    Files f_;
    torture::Oracle oracle_;
    std::uint64_t kills_by_mode_[3] = {0, 0, 0};
    std::uint64_t released_ = 0;
    std::uint64_t released_at_end_ = 0;  ///< by finish_every_run: the last kill was a run's quarantine_after-th
    SteadyClock::duration checking_{};
};

}  // namespace

int main(int argc, char** argv) try {
    const Options o = parse(argc, argv);
    const std::uint64_t seed = harness::seed_from_env("torture");
    return Driver(o, seed).run();
} catch (const std::exception& e) {
    std::cerr << "abide_torture: " << e.what() << "\n";
    return 1;
}
