// crash_sweep: kills sweep_host at every named crash point of abide, once and
// then a second time during recovery, and checks that each case, run again to
// its end, finishes exactly as an uninterrupted run does.
//
// 1. Reference: sweep_host runs uninterrupted. Its outcome (statuses, outputs,
//    errors, traces and events without timestamps, the payments ledger) is
//    the expected one, and its crash log lists the points it passed, P of
//    them. The enumeration is whatever the log shows, so points added to
//    abide later are swept without changing this file.
// 2. Single crashes: for every n in 1..P, a fresh case runs with
//    ABIDE_CRASH_AT=n and must die of SIGKILL at the n-th point of the
//    reference (the host is deterministic); then the host runs again, without
//    a crash, to its end.
// 3. Second crashes: for a chosen set of first points n (every point name at
//    least once, the rest spread evenly; all of them in long mode), the state
//    left by the crash at n is copied and the recovery is killed at its m-th
//    point, for a few m (1, 2, a seeded one in the middle, the last, and one
//    of the point name cut least so far; every m in long mode); then the
//    host runs to its end.
//
// Every finished case is checked against the reference:
//   * lost steps: a step entry of a reference trace missing or different;
//   * re-run steps: a step body (idempotency key and attempt) that ran again
//     after a run of it was followed, in the same process, by a commit; the
//     host polls on one thread, so the first commit after a body is the one
//     that journals its result;
//   * duplicate effects: a ledger key or payment reference paid twice;
//   * any other difference in the outcome.
// 4. Calibration: the same checks on a host that pays one charge outside
//    ctx.step (sweep_host --break-journal) must find re-runs and duplicates;
//    if they do not, the oracles are blind and the sweep fails.
//
// Size, from the environment:
//   ABIDE_SWEEP_MODE=long     every double crash: second crashes after every
//                             first point at every point of its recovery
//                             (about 68,000 cases with one copy);
//   ABIDE_SWEEP_COPIES=N      copies of the reference runs (default 1; more
//                             points, larger poll rounds);
//   ABIDE_SWEEP_SYNCED=1      synced commits (default: unsynced, as durable
//                             against SIGKILL and several times faster);
//   ABIDE_SWEEP_FIRSTS=N      first points that get second crashes (default
//                             48; 0 = all);
//   ABIDE_SWEEP_SECONDS=N     second points per first point (default 5; 0 =
//                             every point of the recovery);
//   ABIDE_SWEEP_JOBS=N        cases run at once (default 2);
//   ABIDE_SEED                the seed of the middle second points.
#include "case_dir.hpp"
#include "harness.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
namespace harness = abide::harness;
using abide::sweep::CaseDir;

constexpr int died_of_sigkill = 128 + SIGKILL;
constexpr int host_timeout_ms = 120'000;

struct Config {
    std::uint64_t copies = 1;
    bool synced = false;
    std::uint64_t jobs = 2;
    std::uint64_t firsts = 48;  ///< first points with second crashes; 0: all
    std::uint64_t seconds = 5;  ///< second points per first point; 0: all
    std::uint64_t seed = 0;

    static Config from_env() {
        Config c;
        const char* mode = std::getenv("ABIDE_SWEEP_MODE");
        if (mode && std::string_view(mode) == "long") {
            c.firsts = 0;
            c.seconds = 0;
        } else if (mode && *mode) {
            throw std::runtime_error("ABIDE_SWEEP_MODE is 'long' or unset, not '" + std::string(mode) + "'");
        }
        c.copies = std::max<std::uint64_t>(1, harness::env_number("ABIDE_SWEEP_COPIES", c.copies));
        c.synced = harness::env_number("ABIDE_SWEEP_SYNCED", c.synced ? 1 : 0) != 0;
        c.jobs = std::max<std::uint64_t>(1, harness::env_number("ABIDE_SWEEP_JOBS", c.jobs));
        c.firsts = harness::env_number("ABIDE_SWEEP_FIRSTS", c.firsts);
        c.seconds = harness::env_number("ABIDE_SWEEP_SECONDS", c.seconds);
        return c;
    }
};

// ---- the crash log ------------------------------------------------------------------

/// One execution of a step body, as the crash log shows it.
struct BodyRun {
    std::string key;  ///< "<idempotency key> <attempt>"
    std::size_t process;  ///< index into CrashLog::points
    bool committed;       ///< a commit.after followed it in the same process
};

/// A case's crash log, split at each "host start" line: the points each
/// host process passed, in order, and the step bodies they ran.
struct CrashLog {
    std::vector<std::vector<std::string>> points;  ///< per process
    std::vector<BodyRun> bodies;

    static CrashLog read(const fs::path& file) {
        CrashLog log;
        std::istringstream in(harness::read_text(file));
        std::vector<std::size_t> uncommitted;  // bodies of the current process not yet followed by a commit
        for (std::string line; std::getline(in, line);) {
            if (line == abide::sweep::host_start_line) {
                log.points.emplace_back();
                uncommitted.clear();
            } else if (line.starts_with(abide::sweep::point_prefix) && !log.points.empty()) {
                std::string name = line.substr(abide::sweep::point_prefix.size());
                if (name == "commit.after") {
                    for (std::size_t b : uncommitted) log.bodies[b].committed = true;
                    uncommitted.clear();
                }
                log.points.back().push_back(std::move(name));
            } else if (line.starts_with(abide::sweep::body_prefix) && !log.points.empty()) {
                uncommitted.push_back(log.bodies.size());
                log.bodies.push_back({line.substr(abide::sweep::body_prefix.size()), log.points.size() - 1, false});
            }
        }
        return log;
    }

    /// Bodies that ran again after an earlier run of theirs was committed.
    std::vector<std::string> reruns_after_commit() const {
        std::vector<std::string> found;
        std::set<std::string> journaled;
        for (const BodyRun& b : bodies) {
            if (journaled.count(b.key))
                found.push_back(b.key + " (in process " + std::to_string(b.process + 1) + ")");
            if (b.committed) journaled.insert(b.key);
        }
        return found;
    }
};

// ---- running the host ---------------------------------------------------------------

class Host {
public:
    Host(fs::path program, const Config& config) : program_(std::move(program)), config_(config) {}

    /// Runs the host on `dir`, killed where `crash_at` says if given (an
    /// ABIDE_CRASH_AT value: "<n>" or "<name>:<k>"); its exit code, or 128 +
    /// the signal that ended it.
    int run(const CaseDir& dir, std::optional<std::string> crash_at, bool break_journal = false) const {
        std::vector<std::string> argv = {program_.string(), "--dir", dir.root.string(), "--copies",
                                         std::to_string(config_.copies)};
        if (!config_.synced) argv.emplace_back("--unsynced");
        if (break_journal) argv.emplace_back("--break-journal");
        std::vector<std::string> env = {"ABIDE_CRASH_LOG=" + dir.crash_log().string()};
        if (crash_at) env.push_back("ABIDE_CRASH_AT=" + *crash_at);
        return harness::run_to_end(argv, dir.host_output(), env, host_timeout_ms);
    }

private:
    fs::path program_;
    const Config& config_;
};

// ---- checking a finished case ---------------------------------------------------------

/// What the reference run established.
struct Reference {
    json outcome;
    std::vector<std::string> points;  ///< the n-th point the host passes is points[n-1]
};

/// What one finished case broke, by oracle.
struct Findings {
    std::size_t lost_steps = 0, reruns = 0, duplicates = 0;
    std::size_t other = 0;  ///< 1 if the outcome differs in a way the counters above do not explain
    std::vector<std::string> details;

    bool clean() const { return lost_steps + reruns + duplicates + other == 0; }
    void note(std::size_t& counter, std::size_t n, const std::string& what) {
        if (n == 0) return;
        counter += n;
        details.push_back(what);
    }
};

bool is_step_entry(const json& entry) { return entry.value("kind", "").starts_with("step"); }

std::size_t count_lost_steps(const json& expected, const json& actual, std::vector<std::string>& which) {
    std::size_t lost = 0;
    for (const auto& [run, trace] : expected["runs"].items()) {
        const json* entries = actual["runs"].contains(run) ? &actual["runs"][run]["entries"] : nullptr;
        for (const json& e : trace["entries"]) {
            if (!is_step_entry(e)) continue;
            const std::size_t seq = e["seq"].get<std::size_t>();
            if (entries && seq < entries->size() && (*entries)[seq] == e) continue;
            ++lost;
            which.push_back(run + " #" + std::to_string(seq) + " " + e.value("name", ""));
        }
    }
    return lost;
}

/// Ledger lines are "key amount receipt reference": a key or a reference
/// twice is an effect made twice.
std::size_t count_duplicate_effects(const json& ledger, std::vector<std::string>& which) {
    std::map<std::string, int> keys, references;
    for (const json& line : ledger) {
        std::istringstream in(line.get<std::string>());
        std::string key, amount, receipt, reference;
        in >> key >> amount >> receipt >> reference;
        ++keys[key];
        ++references[reference];
    }
    std::size_t duplicates = 0;
    for (const auto* counts : {&keys, &references})
        for (const auto& [what, n] : *counts)
            if (n > 1) {
                duplicates += static_cast<std::size_t>(n - 1);
                which.push_back(what + " x" + std::to_string(n));
            }
    return duplicates;
}

std::string join(const std::vector<std::string>& items, std::size_t max = 8) {
    std::string out;
    for (std::size_t i = 0; i < items.size() && i < max; ++i) out += (i ? ", " : "") + items[i];
    if (items.size() > max) out += ", ... (" + std::to_string(items.size()) + " in all)";
    return out;
}

Findings check_outcome(const Reference& ref, const CaseDir& dir, const CrashLog& log) {
    Findings f;
    if (!fs::exists(dir.outcome())) {
        f.note(f.other, 1, "no outcome.json: the host did not finish");
        return f;
    }
    const json actual = json::parse(harness::read_text(dir.outcome()));
    std::vector<std::string> lost, duplicated;
    const std::size_t lost_steps = count_lost_steps(ref.outcome, actual, lost);
    f.note(f.lost_steps, lost_steps, "lost or changed steps: " + join(lost));
    const std::vector<std::string> reruns = log.reruns_after_commit();
    f.note(f.reruns, reruns.size(), "step bodies re-run after their result was committed: " + join(reruns));
    const std::size_t duplicates = count_duplicate_effects(actual["ledger"], duplicated);
    f.note(f.duplicates, duplicates, "duplicate effects: " + join(duplicated));
    if (actual != ref.outcome && f.clean()) {
        const json patch = json::diff(ref.outcome, actual);
        std::vector<std::string> ops;
        for (const json& op : patch) ops.push_back(op.dump());
        f.note(f.other, 1, "outcome differs from the reference (JSON patch): " + join(ops, 5));
    }
    return f;
}

// ---- the cases ------------------------------------------------------------------------

/// One case and what failed in it.
struct CaseResult {
    std::string name;
    std::string point;           ///< the point this case crashed at: its only or its second crash
    bool second_crash = false;
    std::vector<std::string> failures;
    Findings findings;
    std::vector<std::string> recovery_points;  ///< the points of the run after the last crash
};

class Sweep {
public:
    Sweep(const Host& host, const Reference& ref, const fs::path& root) : host_(host), ref_(ref), root_(root) {}

    /// Crash at the n-th point of a fresh run, then finish. Keeps the state
    /// after the crash in `snapshot` if given, for second crashes.
    CaseResult single(std::size_t n, const fs::path* snapshot) const {
        CaseResult r;
        r.name = "crash at point " + std::to_string(n) + " (" + ref_.points[n - 1] + ")";
        r.point = ref_.points[n - 1];
        const CaseDir dir{root_ / ("single-" + std::to_string(n))};
        fs::create_directories(dir.root);
        if (crash(dir, n, ref_.points, r) && snapshot) fs::copy(dir.root, *snapshot, fs::copy_options::recursive);
        finish(dir, r);
        return r;
    }

    /// From the state a crash at first_n left (`snapshot`), crash the recovery
    /// at its m-th point, then finish. `recovery` lists the recovery's points.
    CaseResult second(std::size_t first_n, const fs::path& snapshot, const std::vector<std::string>& recovery,
                      std::size_t m) const {
        CaseResult r;
        r.name = "crash at point " + std::to_string(first_n) + " (" + ref_.points[first_n - 1] +
                 "), then at point " + std::to_string(m) + " of the recovery (" + recovery[m - 1] + ")";
        r.point = recovery[m - 1];
        r.second_crash = true;
        const CaseDir dir{root_ / ("double-" + std::to_string(first_n) + "-" + std::to_string(m))};
        fs::copy(snapshot, dir.root, fs::copy_options::recursive);
        crash(dir, m, recovery, r);
        finish(dir, r);
        return r;
    }

private:
    /// Runs with a crash at the n-th point; it must die of SIGKILL there, at
    /// the point `expected` names (the host is deterministic).
    bool crash(const CaseDir& dir, std::size_t n, const std::vector<std::string>& expected, CaseResult& r) const {
        const int code = host_.run(dir, std::to_string(n));
        const CrashLog log = CrashLog::read(dir.crash_log());
        const std::vector<std::string> points = log.points.empty() ? std::vector<std::string>{} : log.points.back();
        if (code != died_of_sigkill) {
            r.failures.push_back("ABIDE_CRASH_AT=" + std::to_string(n) + " did not kill the host (exit " +
                                 std::to_string(code) + " after " + std::to_string(points.size()) +
                                 " points): the enumeration does not match the host\n" +
                                 harness::tail(dir.host_output(), 1500));
            return false;
        }
        if (points.size() != n || points.back() != expected[n - 1]) {
            r.failures.push_back("the host died at point " + std::to_string(points.size()) + " (" +
                                 (points.empty() ? "none" : points.back()) + "), expected point " +
                                 std::to_string(n) + " (" + expected[n - 1] + "): the host is not deterministic");
        }
        return true;
    }

    void finish(const CaseDir& dir, CaseResult& r) const {
        const int code = host_.run(dir, std::nullopt);
        if (code != 0) {
            r.failures.push_back("the run after the crash exited " + std::to_string(code) + "\n" +
                                 harness::tail(dir.host_output(), 1500));
            return;
        }
        const CrashLog log = CrashLog::read(dir.crash_log());
        r.recovery_points = log.points.back();
        r.findings = check_outcome(ref_, dir, log);
        for (const std::string& d : r.findings.details) r.failures.push_back(d);
        if (r.failures.empty()) {
            std::error_code ec;  // a passed case's files are of no more use
            fs::remove_all(dir.root, ec);
        }
    }

    const Host& host_;
    const Reference& ref_;
    fs::path root_;
};

/// Runs `count` tasks on `jobs` threads; task i's result lands in slot i.
template <class Task>
std::vector<CaseResult> run_parallel(std::size_t count, std::uint64_t jobs, Task task) {
    std::vector<CaseResult> results(count);
    std::atomic<std::size_t> next{0};
    std::mutex print;
    std::vector<std::thread> workers;
    for (std::uint64_t j = 0; j < jobs; ++j)
        workers.emplace_back([&] {
            for (std::size_t i; (i = next.fetch_add(1)) < count;) {
                try {
                    results[i] = task(i);
                } catch (const std::exception& e) {
                    results[i].name = "case " + std::to_string(i);
                    results[i].failures.push_back(std::string("the harness failed: ") + e.what());
                }
                if ((i + 1) % 100 == 0) {
                    std::lock_guard lock(print);
                    std::cout << "  ... " << (i + 1) << " of " << count << " cases started" << std::endl;
                }
            }
        });
    for (std::thread& w : workers) w.join();
    return results;
}

/// First points that get second crashes: one hit of every point name (its
/// middle hit), then evenly spread ones, `wanted` in all (0: every point).
std::vector<std::size_t> choose_firsts(const std::vector<std::string>& points, std::uint64_t wanted) {
    std::set<std::size_t> chosen;
    if (wanted == 0 || wanted >= points.size()) {
        for (std::size_t n = 1; n <= points.size(); ++n) chosen.insert(n);
        return {chosen.begin(), chosen.end()};
    }
    std::map<std::string, std::vector<std::size_t>> hits;
    for (std::size_t n = 1; n <= points.size(); ++n) hits[points[n - 1]].push_back(n);
    for (const auto& [name, ns] : hits) chosen.insert(ns[ns.size() / 2]);
    for (std::size_t i = 0; chosen.size() < wanted; ++i) chosen.insert(1 + i * points.size() / wanted);
    return {chosen.begin(), chosen.end()};
}

/// Second points in a recovery that passes `recovery`, `wanted` of them (0:
/// all): 1, 2, one drawn from the middle, the last, then a hit of the point
/// name least often cut so far (`cut` counts them), then drawn ones.
std::vector<std::size_t> choose_seconds(const std::vector<std::string>& recovery, std::uint64_t wanted,
                                        std::mt19937_64& rng, std::map<std::string, std::size_t>& cut) {
    const std::size_t count = recovery.size();
    std::set<std::size_t> chosen;
    auto draw = [&](std::size_t lo, std::size_t hi) { return std::uniform_int_distribution<std::size_t>(lo, hi)(rng); };
    if (wanted == 0 || wanted >= count) {
        for (std::size_t m = 1; m <= count; ++m) chosen.insert(m);
    } else {
        for (std::size_t m : {std::size_t{1}, std::size_t{2}, draw(count / 4 + 1, (3 * count) / 4), count})
            if (chosen.size() < wanted) chosen.insert(m);
        if (chosen.size() < wanted) {
            std::map<std::string, std::vector<std::size_t>> hits;
            for (std::size_t m = 1; m <= count; ++m) hits[recovery[m - 1]].push_back(m);
            const auto rarest = std::min_element(hits.begin(), hits.end(),
                                                 [&](const auto& a, const auto& b) { return cut[a.first] < cut[b.first]; });
            chosen.insert(rarest->second[draw(0, rarest->second.size() - 1)]);
        }
        while (chosen.size() < wanted) chosen.insert(draw(1, count));
    }
    for (std::size_t m : chosen) ++cut[recovery[m - 1]];
    return {chosen.begin(), chosen.end()};
}

/// Crashes tested and failed per point name, for the table.
struct PointTally {
    std::size_t first = 0, second = 0, failed = 0;
};

void print_table(const std::map<std::string, PointTally>& table, const std::vector<std::string>& reference_points) {
    std::map<std::string, std::size_t> hits;
    for (const std::string& p : reference_points) ++hits[p];
    std::cout << "\n" << std::left << std::setw(24) << "point" << std::right << std::setw(10) << "hits/run"
              << std::setw(14) << "1st crashes" << std::setw(14) << "2nd crashes" << std::setw(9) << "failed"
              << "\n";
    PointTally total;
    for (const auto& [name, t] : table) {
        std::cout << std::left << std::setw(24) << name << std::right << std::setw(10) << hits[name] << std::setw(14)
                  << t.first << std::setw(14) << t.second << std::setw(9) << t.failed << "\n";
        total.first += t.first;
        total.second += t.second;
        total.failed += t.failed;
    }
    std::cout << std::left << std::setw(24) << "all" << std::right << std::setw(10) << reference_points.size()
              << std::setw(14) << total.first << std::setw(14) << total.second << std::setw(9) << total.failed
              << "\n\n";
}

/// Runs the host uninterrupted in `dir`: the outcome and the points passed.
std::optional<Reference> run_reference(const Host& host, const CaseDir& dir, bool break_journal,
                                       harness::Tally& tally, const std::string& name) {
    fs::create_directories(dir.root);
    const int code = host.run(dir, std::nullopt, break_journal);
    if (code != 0 || !fs::exists(dir.outcome())) {
        tally.fail(name, "the uninterrupted host exited " + std::to_string(code) + "\n" +
                             harness::tail(dir.host_output()));
        return std::nullopt;
    }
    Reference ref{json::parse(harness::read_text(dir.outcome())), CrashLog::read(dir.crash_log()).points.at(0)};
    // The oracles must hold without a crash, or they prove nothing with one.
    std::vector<std::string> which;
    if (count_duplicate_effects(ref.outcome["ledger"], which) != 0) {
        tally.fail(name, "the uninterrupted run already pays twice: " + join(which));
        return std::nullopt;
    }
    if (auto reruns = CrashLog::read(dir.crash_log()).reruns_after_commit(); !reruns.empty()) {
        tally.fail(name, "the uninterrupted run already runs step bodies twice: " + join(reruns));
        return std::nullopt;
    }
    tally.pass();
    return ref;
}

/// Calibration: with one charge made outside ctx.step, crashes must be
/// reported as re-run steps and duplicate effects. It crashes after every
/// commit ("commit.after:<k>", the by-name form of ABIDE_CRASH_AT): one of
/// them falls after the commit that follows the charge and before its run
/// completes, where a replay charges again.
void calibrate(const Host& host, const fs::path& root, std::uint64_t jobs, harness::Tally& tally) {
    const std::string name = "calibration: a charge outside ctx.step is caught";
    const CaseDir ref_dir{root / "calibration-reference"};
    auto ref = run_reference(host, ref_dir, true, tally, name + " (reference)");
    if (!ref) return;
    const std::size_t crashes =
        static_cast<std::size_t>(std::count(ref->points.begin(), ref->points.end(), "commit.after"));
    auto results = run_parallel(crashes, jobs, [&](std::size_t i) {
        CaseResult r;
        const std::string at = "commit.after:" + std::to_string(i + 1);
        const CaseDir dir{root / ("calibration-" + std::to_string(i + 1))};
        fs::create_directories(dir.root);
        if (host.run(dir, at, true) != died_of_sigkill) r.failures.push_back("no crash at " + at);
        if (host.run(dir, std::nullopt, true) != 0) r.failures.push_back("no finish after a crash at " + at);
        r.findings = check_outcome(*ref, dir, CrashLog::read(dir.crash_log()));
        return r;
    });
    std::size_t reruns = 0, duplicates = 0;
    std::vector<std::string> problems;
    for (const CaseResult& r : results) {
        reruns += r.findings.reruns;
        duplicates += r.findings.duplicates;
        problems.insert(problems.end(), r.failures.begin(), r.failures.end());
    }
    std::cout << "calibration: " << crashes << " crashes of a host that pays outside ctx.step: " << reruns
              << " re-run steps and " << duplicates << " duplicate effects found (expected: some of each)"
              << std::endl;
    tally.check(problems.empty() && reruns > 0 && duplicates > 0, name, [&] {
        return "re-runs " + std::to_string(reruns) + ", duplicates " + std::to_string(duplicates) + "; " +
               join(problems, 3);
    });
}

}  // namespace

int main() {
    // The crash variables are for the host processes this program starts, one
    // by one; inherited by all of them they would kill every one.
    ::unsetenv("ABIDE_CRASH_AT");
    ::unsetenv("ABIDE_CRASH_LOG");
    const auto started = std::chrono::steady_clock::now();
    Config config = Config::from_env();
    config.seed = harness::seed_from_env("crash_sweep");
    harness::Tally tally("crash_sweep", config.seed);
    std::cout << "crash_sweep: " << config.copies << " cop" << (config.copies == 1 ? "y" : "ies")
              << " of the reference runs, " << (config.synced ? "synced" : "unsynced") << " commits, "
              << config.jobs << " jobs" << std::endl;

    const harness::ScratchDir root("abide-crash-sweep");
    const Host host(SWEEP_HOST_PATH, config);

    auto reference = run_reference(host, CaseDir{root / "reference"}, false, tally, "uninterrupted reference run");
    if (!reference) return tally.finish();
    const std::vector<std::string>& points = reference->points;
    std::cout << "reference: " << points.size() << " crash points passed" << std::endl;

    // Past the last point the host must finish normally: the enumeration is complete.
    {
        const CaseDir dir{root / "past-the-end"};
        fs::create_directories(dir.root);
        const int code = host.run(dir, std::to_string(points.size() + 1));
        tally.check(code == 0, "no crash point after the last one enumerated",
                    [&] { return "ABIDE_CRASH_AT=" + std::to_string(points.size() + 1) + " exited " + std::to_string(code); });
    }

    const Sweep sweep(host, *reference, root.path());
    const std::vector<std::size_t> firsts = choose_firsts(points, config.firsts);
    const std::set<std::size_t> keep_snapshot(firsts.begin(), firsts.end());
    auto snapshot_of = [&](std::size_t n) { return root / ("after-crash-" + std::to_string(n)); };

    std::cout << "single crashes: " << points.size() << std::endl;
    std::vector<CaseResult> results = run_parallel(points.size(), config.jobs, [&](std::size_t i) {
        const std::size_t n = i + 1;
        const fs::path snapshot = snapshot_of(n);
        return sweep.single(n, keep_snapshot.count(n) ? &snapshot : nullptr);
    });

    // Second crashes, where the first one left a snapshot and a recovery to cut.
    std::mt19937_64 rng(config.seed);
    struct SecondCase {
        std::size_t first, m;
        const std::vector<std::string>* recovery;
    };
    std::vector<SecondCase> seconds;
    std::map<std::string, std::size_t> cut;
    std::size_t possible = 0;
    for (const CaseResult& first : results) possible += first.recovery_points.size();
    for (std::size_t n : firsts) {
        const CaseResult& first = results[n - 1];
        if (!first.failures.empty() || !fs::exists(snapshot_of(n))) continue;
        for (std::size_t m : choose_seconds(first.recovery_points, config.seconds, rng, cut))
            seconds.push_back({n, m, &first.recovery_points});
    }
    std::cout << "second crashes: " << seconds.size() << " after " << firsts.size() << " first points (of "
              << possible << " possible)" << std::endl;
    std::vector<CaseResult> second_results = run_parallel(seconds.size(), config.jobs, [&](std::size_t i) {
        const SecondCase& c = seconds[i];
        return sweep.second(c.first, snapshot_of(c.first), *c.recovery, c.m);
    });

    std::map<std::string, PointTally> table;
    for (const std::string& p : points) table[p];
    Findings total;
    auto record = [&](const std::vector<CaseResult>& cases) {
        for (const CaseResult& r : cases) {
            PointTally& t = table[r.point];
            ++(r.second_crash ? t.second : t.first);
            t.failed += r.failures.empty() ? 0 : 1;
            total.lost_steps += r.findings.lost_steps;
            total.reruns += r.findings.reruns;
            total.duplicates += r.findings.duplicates;
            total.other += r.findings.other;
            tally.check(r.failures.empty(), r.name, [&] { return join(r.failures, 10); });
        }
    };
    record(results);
    record(second_results);
    print_table(table, points);
    std::cout << "lost steps " << total.lost_steps << ", steps re-run after their result was journaled "
              << total.reruns << ", duplicate effects " << total.duplicates << ", cases with other differences "
              << total.other
              << std::endl;

    calibrate(host, root.path(), config.jobs, tally);
    const auto seconds_taken = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
    std::cout << "took " << seconds_taken.count() << " s" << std::endl;
    return tally.finish();
}
