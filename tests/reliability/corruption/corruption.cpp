// Corruption harness: damages a real abide journal in every page and checks
// that a host following abide's discipline for a suspicious file
// (verify_database first; open it only if the check did not crash) never
// crashes, never reads a silently wrong value, is told which runs are
// damaged, and still completes every other run.
//
// 1. The reference database (workload.hpp) is written once. A host process
//    observes an undamaged copy twice: the first observation is the
//    reference, the second must equal it (the host is deterministic) and be
//    judged sound (the oracle accepts the truth).
// 2. The oracle is calibrated: a wrong value slipped into a copy of the
//    reference must be judged silently wrong, and accepted once verify names
//    its run.
// 3. Damaged images, each one case: for every 4096-byte page, bytes XORed
//    with a seeded non-zero mask at fixed offsets (page header fields, LMDB's
//    meta fields, the middle, the end) and at seeded random offsets; every
//    page zeroed; the file truncated at page boundaries and mid-page. Each
//    image is observed by a host child process (never in this process: LMDB
//    may crash on it); a crash or hang of that host is a failure (a crash of
//    verify_database's own child is reported by it, and the host refuses).
//    The oracle (oracle.hpp) judges what it read against the reference.
// 4. Newer and foreign files (the format version bumped, random bytes, an
//    LMDB file of another program) must be refused by both verify_database
//    and the Engine, their bytes unchanged.
//
// Size: ABIDE_CORRUPTION_RANDOM_OFFSETS seeded offsets per page (default 2),
// ABIDE_CORRUPTION_ROUNDS rounds of them with fresh masks (default 1),
// ABIDE_CORRUPTION_JOBS host processes at a time (default 2);
// ABIDE_CORRUPTION_ONLY=<text> runs only the images whose description holds
// it (with ABIDE_KEEP_DIRS=1 to keep them). Long mode:
// ABIDE_CORRUPTION_RANDOM_OFFSETS=16 ABIDE_CORRUPTION_ROUNDS=4.
#include "harness.hpp"
#include "oracle.hpp"
#include "workload.hpp"

#include <lmdb.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>

namespace {

using namespace abide;
using namespace abide::harness;
using abide::corruption::Verdict;

constexpr std::size_t page_size = 4096;
constexpr int host_timeout_ms = 120'000;

// ---- damage ------------------------------------------------------------

/// One way to damage the reference file.
struct Damage {
    enum class Kind { flip, zero_page, truncate } kind{};
    std::size_t page = 0;
    std::size_t offset = 0;  ///< flip: byte within the page
    std::uint8_t mask = 0;   ///< flip: XORed into the byte (never 0)
    std::size_t length = 0;  ///< truncate: the new file length

    std::string kind_name() const {
        switch (kind) {
            case Kind::flip: return "flip";
            case Kind::zero_page: return "zero page";
            case Kind::truncate: return "truncate";
        }
        return "?";
    }
    std::string describe() const {
        std::ostringstream out;
        switch (kind) {
            case Kind::flip:
                out << "flip page " << page << " offset " << offset << " (file byte " << page * page_size + offset
                    << ") ^ 0x" << std::hex << std::setw(2) << std::setfill('0') << int{mask};
                break;
            case Kind::zero_page: out << "zero page " << page; break;
            case Kind::truncate: out << "truncate to " << length << " bytes"; break;
        }
        return out.str();
    }
    std::string apply(std::string bytes) const {
        switch (kind) {
            case Kind::flip: bytes[page * page_size + offset] ^= static_cast<char>(mask); break;
            case Kind::zero_page:
                std::fill_n(bytes.begin() + static_cast<std::ptrdiff_t>(page * page_size),
                            std::min(page_size, bytes.size() - page * page_size), '\0');
                break;
            case Kind::truncate: bytes.resize(length); break;
        }
        return bytes;
    }
};

// Fixed offsets in every page: the LMDB page header (page number, flags,
// lower and upper free-space bounds), the first node pointers / the meta
// page's magic and version, the meta page's last page number and
// transaction id (which choose the current snapshot), the middle (often free
// space), the end (the first record a leaf page stored).
constexpr std::size_t fixed_offsets[] = {0, 3, 10, 12, 14, 16, 20, 136, 144, 2048, 4095};

std::vector<Damage> plan_damage(std::size_t file_size, std::size_t random_offsets, std::size_t rounds,
                                std::mt19937_64& rng) {
    const std::size_t pages = (file_size + page_size - 1) / page_size;
    auto mask = [&] { return static_cast<std::uint8_t>(1 + rng() % 255); };
    std::vector<Damage> plan;
    for (std::size_t page = 0; page < pages; ++page) {
        const std::size_t in_page = std::min(page_size, file_size - page * page_size);
        for (std::size_t round = 0; round < rounds; ++round) {
            for (std::size_t offset : fixed_offsets)
                if (offset < in_page && (round == 0 || offset >= 2048))  // header bytes: one mask is enough
                    plan.push_back({Damage::Kind::flip, page, offset, mask(), 0});
            for (std::size_t k = 0; k < random_offsets; ++k)
                plan.push_back({Damage::Kind::flip, page, rng() % in_page, mask(), 0});
        }
        plan.push_back({Damage::Kind::zero_page, page, 0, 0, 0});
    }
    // Truncations: at page boundaries (one page, the meta pages only, half,
    // all but the last page) and mid-page (inside the meta page, the last
    // page, and seeded ones). An empty file is not among them: abide treats
    // it as a new database, by design.
    std::vector<std::size_t> lengths = {100, page_size, 2 * page_size, pages / 2 * page_size,
                                        (pages - 1) * page_size, file_size - 1, file_size - page_size / 2};
    for (std::size_t k = 0; k < 2 * rounds; ++k) lengths.push_back(1 + rng() % (file_size - 1));
    std::sort(lengths.begin(), lengths.end());
    lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
    for (std::size_t length : lengths)
        if (length > 0 && length < file_size) plan.push_back({Damage::Kind::truncate, length / page_size, 0, 0, length});
    return plan;
}

// ---- files of others ------------------------------------------------------

void lmdb_check(int rc, const char* doing) {
    if (rc != 0) throw std::runtime_error(std::string(doing) + ": " + mdb_strerror(rc));
}

/// Opens `path` with the LMDB C API (as another program, or a newer abide,
/// would), runs `edit` in one write transaction, commits, and removes the
/// lock file it made.
void edit_with_lmdb(const fs::path& path, const std::function<void(MDB_txn*)>& edit) {
    MDB_env* env = nullptr;
    lmdb_check(mdb_env_create(&env), "mdb_env_create");
    mdb_env_set_maxdbs(env, 32);
    mdb_env_set_mapsize(env, std::size_t{64} << 20);
    try {
        lmdb_check(mdb_env_open(env, path.c_str(), MDB_NOSUBDIR, 0644), "mdb_env_open");
        MDB_txn* txn = nullptr;
        lmdb_check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
        edit(txn);
        lmdb_check(mdb_txn_commit(txn), "mdb_txn_commit");
    } catch (...) {
        mdb_env_close(env);
        throw;
    }
    mdb_env_close(env);
    fs::remove(path.string() + "-lock");
}

void put(MDB_txn* txn, const char* table, std::string key, std::string value) {
    MDB_dbi dbi = 0;
    lmdb_check(mdb_dbi_open(txn, table, 0, &dbi), "mdb_dbi_open");
    MDB_val k{key.size(), key.data()}, v{value.size(), value.data()};
    lmdb_check(mdb_put(txn, dbi, &k, &v, 0), "mdb_put");
}

/// abide's format record is "abide-journal" + a big-endian version: a newer
/// abide writes a higher one.
void bump_format_version(const fs::path& db) {
    edit_with_lmdb(db, [](MDB_txn* txn) {
        MDB_dbi meta = 0;
        lmdb_check(mdb_dbi_open(txn, "meta", 0, &meta), "mdb_dbi_open meta");
        std::string key = "format";
        MDB_val k{key.size(), key.data()}, v{};
        lmdb_check(mdb_get(txn, meta, &k, &v), "mdb_get format");
        std::string value(static_cast<const char*>(v.mv_data), v.mv_size);
        value.back() = static_cast<char>(value.back() + 1);
        put(txn, "meta", key, value);
    });
}

/// Another program's LMDB file: one key in the main database, no abide tables.
void write_foreign_lmdb(const fs::path& path) {
    edit_with_lmdb(path, [](MDB_txn* txn) { put(txn, nullptr, "customer:17", "someone else's data"); });
}

// ---- the host children ----------------------------------------------------

bool keep_dirs() {
    const char* keep = std::getenv("ABIDE_KEEP_DIRS");
    return keep && std::string_view(keep) == "1";
}

/// One image observed by a host child.
struct HostJob {
    std::string name;
    std::string kind;
    fs::path dir;
    std::unique_ptr<Process> child;
};

/// What came back from a host child: its exit code and, when it wrote one,
/// its observation.
struct HostResult {
    int code = -1;
    std::optional<json> observation;
    std::string verify;  ///< what verify_database said, written before the host opened the file
    std::string log_tail;
};

/// Runs host children on images, `jobs` at a time, and hands each result to
/// `on_result` in the order started. Each job's directory is removed after
/// its result is handled unless ABIDE_KEEP_DIRS=1.
class HostPool {
public:
    HostPool(fs::path self, std::int64_t clock_us, std::size_t jobs)
        : self_(std::move(self)), clock_us_(clock_us), jobs_(std::max<std::size_t>(1, jobs)) {}

    using OnResult = std::function<void(const std::string& name, const std::string& kind, const HostResult&)>;

    /// Writes `bytes` as the image in `dir` (made here) and starts a host on it.
    void start(std::string name, std::string kind, const fs::path& dir, const std::string& bytes, const OnResult& done) {
        fs::create_directories(dir);
        std::ofstream(dir / "image.db", std::ios::binary) << bytes;
        // The host writes to image.db; a kept directory also holds the image
        // as it was damaged, to reproduce a failure from.
        if (keep_dirs()) std::ofstream(dir / "damaged.db", std::ios::binary) << bytes;
        HostJob job{std::move(name), std::move(kind), dir, nullptr};
        job.child = std::make_unique<Process>(std::vector<std::string>{self_.string(), "host", (dir / "image.db").string(),
                                                                        (dir / "observation.json").string(),
                                                                        std::to_string(clock_us_)},
                                              dir / "host.log");
        running_.push_back(std::move(job));
        if (running_.size() >= jobs_) reap_oldest(done);
    }
    void drain(const OnResult& done) {
        while (!running_.empty()) reap_oldest(done);
    }

private:
    void reap_oldest(const OnResult& done) {
        HostJob job = std::move(running_.front());
        running_.pop_front();
        HostResult result;
        result.code = job.child->wait_for(host_timeout_ms);
        if (result.code == 0) {
            try {
                result.observation = json::parse(read_text(job.dir / "observation.json"));
            } catch (const json::exception&) {
            }
        }
        result.verify = read_text(job.dir / "observation.json.verify");
        result.log_tail = tail(job.dir / "host.log", 2000);
        done(job.name, job.kind, result);
        if (!keep_dirs()) fs::remove_all(job.dir);
    }

    fs::path self_;
    std::int64_t clock_us_;
    std::size_t jobs_;
    std::deque<HostJob> running_;
};

std::string host_failure(const HostResult& r) {
    const std::string how = r.code == -1    ? "hung (killed after " + std::to_string(host_timeout_ms / 1000) + " s)"
                            : r.code > 128 ? "crashed (signal " + std::to_string(r.code - 128) + ")"
                            : r.code != 0  ? "exited " + std::to_string(r.code)
                                           : "wrote no observation";
    const std::string verify = r.verify.empty() ? std::string("(it crashed before the check returned)") : r.verify;
    return "the host process " + how + "; verify_database had said: " + verify.substr(0, 1500) +
           "\n  its output:\n" + r.log_tail;
}

// ---- the summary ----------------------------------------------------------

struct Counts {
    std::size_t cases = 0, failed = 0, detected = 0, refused = 0, reported = 0, sound = 0;
    std::size_t wrong_behind_warning = 0, verify_missed = 0, blocked = 0;
    void add(const Verdict& v, bool passed) {
        ++cases;
        failed += passed ? 0 : 1;
        detected += v.detected_by_verify ? 1 : 0;
        refused += v.handling == Verdict::Handling::refused ? 1 : 0;
        reported += v.handling == Verdict::Handling::reported ? 1 : 0;
        sound += v.handling == Verdict::Handling::sound ? 1 : 0;
        wrong_behind_warning += v.wrong_values_behind_warning;
        verify_missed += v.runs_verify_missed;
        blocked += v.runs_blocked;
    }
};

void print_summary(const std::map<std::string, Counts>& by_kind) {
    Counts total;
    const auto row = [](const std::string& name, const Counts& c) {
        std::cout << std::left << std::setw(12) << name << std::right << std::setw(7) << c.cases << std::setw(8)
                  << c.failed << std::setw(10) << c.detected << std::setw(9) << c.refused << std::setw(10)
                  << c.reported << std::setw(8) << c.sound << std::setw(12) << c.wrong_behind_warning
                  << std::setw(10) << c.verify_missed << std::setw(9) << c.blocked << "\n";
    };
    std::cout << "\n"
              << std::left << std::setw(12) << "damage" << std::right << std::setw(7) << "cases" << std::setw(8)
              << "failed" << std::setw(10) << "verify" << std::setw(9) << "refused" << std::setw(10) << "reported"
              << std::setw(8) << "sound" << std::setw(12) << "warned-val" << std::setw(10) << "v-missed" << std::setw(9) << "blocked" << "\n";
    for (const auto& [kind, c] : by_kind) {
        row(kind, c);
        total.cases += c.cases;
        total.failed += c.failed;
        total.detected += c.detected;
        total.refused += c.refused;
        total.reported += c.reported;
        total.sound += c.sound;
        total.wrong_behind_warning += c.wrong_behind_warning;
        total.verify_missed += c.verify_missed;
        total.blocked += c.blocked;
    }
    row("total", total);
    std::cout << "verify: verify_database reported a problem. refused: not opened (the check found it unreadable) or refused "
                 "by the Engine.\nreported: opened, damage reported (by verify, an error or a poll). sound: opened, "
                 "nothing reported, every value right (unused bytes hit).\nwarned-val: values returned without an "
                 "error for runs verify had named. v-missed: runs the engine reported that verify did not name.\nblocked: runs "
                 "left unfinished, with a clear error, by damage verify reported in a table all runs share.\n"
              << std::endl;
}

// ---- the harness ----------------------------------------------------------

std::string read_bytes(const fs::path& path) { return read_text(path); }

/// The oracle must reject a wrong value nobody reported, and accept it once
/// verify names the run: else it could not see the failures it exists for.
void calibrate_oracle(const json& reference, Tally& tally) {
    json wrong = reference;
    wrong["before"]["order-1"]["result"]["value"] = "charged nothing";
    const Verdict silent = corruption::judge(reference, wrong);
    tally.check(!silent.failures.empty(), "oracle calibration: a silently wrong result",
                [] { return std::string("the oracle accepted a wrong result that nobody reported"); });
    wrong["verify"]["damaged_runs"].push_back("order-1");
    wrong["verify"]["problems"].push_back("run 'order-1' (#7): checksum mismatch");
    const Verdict warned = corruption::judge(reference, wrong);
    tally.check(warned.failures.empty() && warned.wrong_values_behind_warning == 1,
                "oracle calibration: a wrong result of a run verify named",
                [&] { return "the oracle rejected it: " + json(warned.failures).dump(); });
    wrong = reference;
    wrong["after"]["nap-2"]["value"]["status"] = "waiting";
    tally.check(!corruption::judge(reference, wrong).failures.empty(), "oracle calibration: an unfinished run",
                [] { return std::string("the oracle accepted a run nobody reported that did not finish"); });
}

/// Observes an undamaged copy twice; returns the reference observation, or
/// nothing (after recording the failure) if the host is not sound on it.
std::optional<json> observe_reference(const fs::path& self, const fs::path& scratch, const std::string& bytes,
                                      std::int64_t clock_us, Tally& tally) {
    std::vector<json> seen;
    HostPool pool(self, clock_us, 1);
    for (int copy = 0; copy < 2; ++copy)
        pool.start("undamaged copy " + std::to_string(copy), "undamaged", scratch / ("undamaged-" + std::to_string(copy)),
                   bytes, [&](const std::string& name, const std::string&, const HostResult& r) {
                       tally.check(r.observation.has_value(), name, [&] { return host_failure(r); });
                       if (r.observation) seen.push_back(*r.observation);
                   });
    pool.drain([](const std::string&, const std::string&, const HostResult&) {});
    if (seen.size() != 2) return std::nullopt;
    const json& reference = seen[0];
    std::string broken;
    if (!reference["verify"]["problems"].empty()) broken += "verify_database: " + reference["verify"].dump() + "\n";
    for (const auto& [id, after] : reference["after"].items())
        if (!after.contains("value") || after["value"].value("status", "") != "completed")
            broken += "run " + id + " did not complete: " + after.dump() + "\n";
    if (!reference["poll_problems"].empty() || !reference["poll_errors"].empty())
        broken += "polls: " + reference["poll_problems"].dump() + " " + reference["poll_errors"].dump() + "\n";
    if (seen[1] != reference) broken += "a second host read something else from the same undamaged file\n";
    const Verdict self_check = corruption::judge(reference, seen[1]);
    if (self_check.handling != Verdict::Handling::sound || !self_check.failures.empty())
        broken += "the oracle does not judge the undamaged copy sound: " + json(self_check.failures).dump() + "\n";
    tally.check(broken.empty(), "reference", [&] { return broken; });
    if (!broken.empty()) return std::nullopt;
    std::cout << "reference: " << reference["after"].size() << " runs completed by the host, "
              << reference["tables"]["events"]["value"].size() << " events before it went on" << std::endl;
    return reference;
}

/// Newer and foreign files: refused by verify_database and the Engine, and
/// left byte for byte as they were.
void check_foreign_files(const fs::path& self, const fs::path& scratch, const std::string& reference_bytes,
                         std::int64_t clock_us, std::mt19937_64& rng, Tally& tally) {
    struct Foreign {
        std::string name;
        std::string expected_id;  // the Engine's error id
        std::string bytes;
    };
    std::vector<Foreign> files;
    {
        const fs::path db = scratch / "newer.db";
        std::ofstream(db, std::ios::binary) << reference_bytes;
        bump_format_version(db);
        files.push_back({"newer format", "abide.storage.newer_format", read_bytes(db)});
    }
    {
        std::string noise(3 * page_size, '\0');
        for (char& c : noise) c = static_cast<char>(rng());
        files.push_back({"random bytes", "abide.storage.foreign_file", noise});
    }
    {
        const fs::path db = scratch / "foreign.db";
        write_foreign_lmdb(db);
        files.push_back({"foreign LMDB file", "abide.storage.foreign_file", read_bytes(db)});
    }
    HostPool pool(self, clock_us, 1);
    for (const Foreign& f : files) {
        const fs::path dir = scratch / ("foreign-" + std::to_string(&f - files.data()));
        pool.start(f.name, "foreign", dir, f.bytes, [&](const std::string& name, const std::string&, const HostResult& r) {
            std::string broken;
            if (!r.observation) {
                broken = host_failure(r);
            } else {
                const json& obs = *r.observation;
                if (obs["verify"]["problems"].empty()) broken += "verify_database found it sound\n";
                const bool refused_by_check = obs.contains("refused");
                const std::string open_error =
                    obs.contains("open_error") ? obs["open_error"].value("error", std::string()) : std::string();
                if (!refused_by_check && !open_error.starts_with("[" + f.expected_id + "]"))
                    broken += "the Engine did not refuse it with " + f.expected_id + ": " + obs.dump().substr(0, 600) +
                              "\n";
            }
            if (read_bytes(dir / "image.db") != f.bytes) broken += "the file was modified\n";
            tally.check(broken.empty(), name + " refused untouched", [&] { return broken; });
            std::cout << name << ": " << (broken.empty() ? "refused untouched" : "FAILED") << std::endl;
        });
        pool.drain([](const std::string&, const std::string&, const HostResult&) {});
    }
}

int harness_main(const fs::path& self) {
    const std::uint64_t seed = seed_from_env("corruption");
    const std::size_t random_offsets = env_number("ABIDE_CORRUPTION_RANDOM_OFFSETS", 2);
    const std::size_t rounds = std::max<std::uint64_t>(1, env_number("ABIDE_CORRUPTION_ROUNDS", 1));
    const std::size_t jobs = env_number("ABIDE_CORRUPTION_JOBS", 2);
    Tally tally("corruption", seed);
    ScratchDir scratch("abide-corruption");
    std::mt19937_64 rng(seed);

    // Written in this process: the file is sound, and nothing damaged is ever
    // opened here.
    const std::int64_t clock_us = corruption::build_reference(scratch / "reference.db");
    const std::string bytes = read_bytes(scratch / "reference.db");
    std::cout << "reference database: " << bytes.size() << " bytes, " << (bytes.size() + page_size - 1) / page_size
              << " pages, " << corruption::planned_runs().size() << " runs" << std::endl;
    const std::optional<json> reference = observe_reference(self, scratch.path(), bytes, clock_us, tally);
    if (!reference) return tally.finish();
    calibrate_oracle(*reference, tally);

    const std::vector<Damage> plan = plan_damage(bytes.size(), random_offsets, rounds, rng);
    std::cout << plan.size() << " damaged images, " << jobs << " at a time" << std::endl;
    std::map<std::string, Counts> by_kind;
    HostPool pool(self, clock_us, jobs);
    const auto judge_image = [&](const std::string& name, const std::string& kind, const HostResult& r) {
        if (!r.observation) {
            by_kind[kind].add(Verdict{}, false);
            tally.fail(name, host_failure(r));
            return;
        }
        const Verdict v = corruption::judge(*reference, *r.observation);
        by_kind[kind].add(v, v.failures.empty());
        tally.check(v.failures.empty(), name, [&] {
            std::string detail;
            constexpr std::size_t shown = 4;
            for (std::size_t i = 0; i < v.failures.size() && i < shown; ++i) detail += "  " + v.failures[i] + "\n";
            if (v.failures.size() > shown)
                detail += "  ... and " + std::to_string(v.failures.size() - shown) + " more like these\n";
            return detail + "  verify_database said: " + r.observation->at("verify").dump().substr(0, 1500);
        });
    };
    // ABIDE_CORRUPTION_ONLY=<text>: only the images whose description
    // contains it (to rerun one failure; with ABIDE_KEEP_DIRS=1 its image stays).
    const char* only = std::getenv("ABIDE_CORRUPTION_ONLY");
    for (std::size_t i = 0; i < plan.size(); ++i)
        if (!only || plan[i].describe().find(only) != std::string::npos)
            pool.start(plan[i].describe(), plan[i].kind_name(), scratch / ("case-" + std::to_string(i)), plan[i].apply(bytes),
                   judge_image);
    pool.drain(judge_image);
    print_summary(by_kind);

    check_foreign_files(self, scratch.path(), bytes, clock_us, rng, tally);
    return tally.finish();
}

// argv: host <image> <observation.json> <clock_us>
// Writes what verify_database said to <observation.json>.verify first, then
// the whole observation.
int host_main(const std::vector<std::string>& args) {
    const fs::path out = args.at(2);
    const json obs = corruption::observe(args.at(1), std::stoll(args.at(3)), [&](const json& verify) {
        std::ofstream(out.string() + ".verify") << verify.dump();
    });
    std::ofstream(out) << obs.dump();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (!args.empty() && args[0] == "host") return host_main(args);
        if (!args.empty()) {
            std::cerr << "usage: abide_corruption (no arguments; see the environment variables in its source)\n";
            return 2;
        }
        return harness_main(fs::canonical("/proc/self/exe"));
    } catch (const std::exception& e) {
        std::cerr << "corruption: " << e.what() << "\n";
        return 2;
    }
}
