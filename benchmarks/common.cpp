#include "common.hpp"

#include <fmt/format.h>
#include <lmdb.h>

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <system_error>
#include <thread>

#ifndef ABIDE_BENCH_BUILD_TYPE
#define ABIDE_BENCH_BUILD_TYPE ""
#endif

namespace abide_bench {

// ---- options -------------------------------------------------------------------

namespace {

[[noreturn]] void usage(const std::string& program, std::string_view about,
                        std::initializer_list<std::string_view> extra_keys, int code) {
    std::ostream& out = code == 0 ? std::cout : std::cerr;
    out << program << ": " << about << "\n\n"
        << "options:\n"
           "  --quick              small sizes that run in seconds (the ctest smoke test)\n"
           "  --unsynced           Durability::unsynced (default: synced)\n"
           "  --durability=MODE    synced | meta_unsynced | unsynced\n"
           "  --reps=N             take each measurement N times and keep the better (default 2, quick 1)\n"
           "  --dir=PATH           put the databases under PATH (default: a new directory in $TMPDIR)\n"
           "  --keep               keep the databases afterwards\n"
           "  --fresh-baseline     replay the raw-LMDB baseline on an empty file instead of a copy\n"
           "                       of abide's database taken just before the measured phase\n"
           "  --no-baseline        skip the raw-LMDB baseline (to profile abide alone)\n"
           "  --json-out=FILE      also append the JSON line to FILE\n";
    for (std::string_view key : extra_keys) out << "  --" << key << "=N\n";
    std::exit(code);
}

}  // namespace

Args Args::parse(int argc, char** argv, std::string_view about, std::initializer_list<std::string_view> extra_keys) {
    Args a;
    a.program = fs::path(argv[0]).filename().string();
    bool reps_given = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::string key = arg, value;
        if (auto eq = arg.find('='); eq != std::string::npos) {
            key = arg.substr(0, eq);
            value = arg.substr(eq + 1);
        }
        if (key == "--help" || key == "-h") usage(a.program, about, extra_keys, 0);
        if (key == "--quick") {
            a.quick = true;
        } else if (key == "--unsynced") {
            a.durability = abide::Durability::unsynced;
        } else if (key == "--durability") {
            if (value == "synced") a.durability = abide::Durability::synced;
            else if (value == "meta_unsynced") a.durability = abide::Durability::meta_unsynced;
            else if (value == "unsynced") a.durability = abide::Durability::unsynced;
            else usage(a.program, about, extra_keys, 2);
        } else if (key == "--reps") {
            a.reps = std::max(1, std::atoi(value.c_str()));
            reps_given = true;
        } else if (key == "--dir") {
            a.dir = value;
        } else if (key == "--keep") {
            a.keep = true;
        } else if (key == "--fresh-baseline") {
            a.fresh_baseline = true;
        } else if (key == "--no-baseline") {
            a.no_baseline = true;
        } else if (key == "--json-out") {
            a.json_out = value;
        } else if (key.size() > 2 && key.starts_with("--") &&
                   std::find(extra_keys.begin(), extra_keys.end(), std::string_view(key).substr(2)) !=
                       extra_keys.end() &&
                   !value.empty()) {
            a.extra[key.substr(2)] = value;
        } else {
            std::cerr << a.program << ": unknown option '" << arg << "'\n";
            usage(a.program, about, extra_keys, 2);
        }
    }
    if (!reps_given) a.reps = a.quick ? 1 : 2;
    Recorder::instance().install();  // before any engine opens
    return a;
}

long long Args::number(std::string_view key, long long full, long long quick_value) const {
    if (auto it = extra.find(key); it != extra.end()) return std::atoll(it->second.c_str());
    return quick ? quick_value : full;
}

std::string_view durability_name(abide::Durability d) {
    switch (d) {
        case abide::Durability::synced: return "synced";
        case abide::Durability::meta_unsynced: return "meta_unsynced";
        case abide::Durability::unsynced: return "unsynced";
    }
    return "?";
}

// ---- time, memory, files -----------------------------------------------------------

double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

long minor_page_faults() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_minflt;
}

void Stopwatch::start() {
    cpu_ = cpu_seconds();
    wall_ = std::chrono::steady_clock::now();
}

double Stopwatch::wall() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count();
}

Elapsed Stopwatch::elapsed() const {
    Elapsed e;
    e.wall = wall();
    e.cpu = cpu_seconds() - cpu_;
    return e;
}

double percentile(std::vector<double> samples, double p) {
    std::erase_if(samples, [](double v) { return !std::isfinite(v); });
    if (samples.empty()) return std::nan("");
    std::sort(samples.begin(), samples.end());
    const double rank = std::ceil(p / 100.0 * static_cast<double>(samples.size()));
    std::size_t index = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
    return samples[std::min(index, samples.size() - 1)];
}

double median(std::vector<double> samples) { return percentile(std::move(samples), 50); }

SteppedClock::SteppedClock()
    : now_us_(std::chrono::duration_cast<std::chrono::microseconds>(abide::Clock::now().time_since_epoch()).count()) {}

std::function<abide::TimePoint()> SteppedClock::clock() {
    return [this] { return abide::TimePoint(std::chrono::microseconds(now_us_.load())); };
}

namespace {

/// A "Name:   123 kB" line of /proc/self/status, in bytes (0 if absent).
std::uint64_t status_bytes(std::string_view field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':')
            return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
    return 0;
}

}  // namespace

std::uint64_t rss_bytes() { return status_bytes("VmRSS"); }

std::uint64_t anon_rss_bytes() { return status_bytes("RssAnon"); }

void trim_heap() { malloc_trim(0); }

void fsync_file(const fs::path& file) {
    int fd = ::open(file.c_str(), O_RDONLY);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "opening " + file.string());
    ::fsync(fd);
    ::close(fd);
}

void remove_database(const fs::path& file) {
    std::error_code ec;
    fs::remove(file, ec);
    fs::remove(fs::path(file.string() + "-lock"), ec);
}

Scratch::Scratch(const Args& args) : keep_(args.keep) {
    fs::path parent = args.dir.empty() ? fs::temp_directory_path() : args.dir;
    fs::create_directories(parent);
    std::string pattern = (parent / ("abide-bench-" + args.program + "-XXXXXX")).string();
    if (!mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    dir_ = pattern;
}

Scratch::~Scratch() {
    if (keep_) {
        std::cout << "databases kept in " << dir_.string() << "\n";
        return;
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

fs::path Scratch::file(const std::string& name) const {
    fs::path p = dir_ / name;
    remove_database(p);
    return p;
}

abide::EngineOptions engine_options(const fs::path& file, abide::Durability durability, std::size_t map_bytes) {
    abide::EngineOptions o;
    o.path = file;
    o.durability = durability;
    o.map_size = map_bytes;
    return o;
}

std::size_t cache_size_option(const Args& args) {
    const auto fallback = static_cast<long long>(abide::EngineOptions{}.cache_size);
    const long long n = args.number("cache-size", fallback, fallback);
    if (n < 0) throw std::runtime_error("--cache-size is a number of runs, 0 or more");
    return static_cast<std::size_t>(n);
}

// ---- recording abide's writes ----------------------------------------------------

std::size_t Recording::puts() const {
    return static_cast<std::size_t>(
        std::count_if(writes.begin(), writes.end(), [](const Write& w) { return w.op != Op::del; }));
}

std::size_t Recording::dels() const { return writes.size() - puts(); }

Recorder& Recorder::instance() {
    static Recorder recorder;
    return recorder;
}

void Recorder::install() {
    auto& tap = abide::detail::write_tap();
    if (tap.observe) return;
    tap.observe = [this](abide::detail::WriteTap::Op op, Db db, std::string_view key, std::string_view value) {
        observe(op, db, key, value);
    };
}

void Recorder::uninstall() { abide::detail::write_tap().observe = nullptr; }

void Recorder::start() {
    std::lock_guard lock(mutex_);
    rec_ = Recording{};
    rec_.bytes.reserve(std::size_t{1} << 20);
    recording_ = true;
}

void Recorder::segment() {
    std::lock_guard lock(mutex_);
    rec_.segment_begin.push_back(rec_.txn_end.size());
}

Recording Recorder::stop() {
    std::lock_guard lock(mutex_);
    recording_ = false;
    const std::size_t committed = rec_.txn_end.empty() ? 0 : rec_.txn_end.back();
    rec_.uncommitted = rec_.writes.size() - committed;
    rec_.writes.resize(committed);
    return std::exchange(rec_, Recording{});
}

std::uint64_t Recorder::commits() const {
    std::lock_guard lock(mutex_);
    return rec_.txn_end.size();
}

void Recorder::observe(abide::detail::WriteTap::Op op, Db db, std::string_view key, std::string_view value) {
    // abide calls the tap from inside its single write transaction; the lock
    // only orders successive leaders' transactions for this object.
    std::lock_guard lock(mutex_);
    if (!recording_) return;
    if (op == abide::detail::WriteTap::Op::commit) {
        rec_.txn_end.push_back(rec_.writes.size());
        return;
    }
    if (op == abide::detail::WriteTap::Op::abort) {
        // The batch is re-applied: forget this attempt's writes.
        const std::size_t first = rec_.txn_end.empty() ? 0 : rec_.txn_end.back();
        if (first < rec_.writes.size()) rec_.bytes.resize(rec_.writes[first].offset);
        rec_.writes.resize(first);
        return;
    }
    using Tap = abide::detail::WriteTap::Op;
    const Recording::Op recorded = op == Tap::put      ? Recording::Op::put
                                   : op == Tap::append ? Recording::Op::append
                                                       : Recording::Op::del;
    Recording::Write w{recorded, db,
                       static_cast<std::uint32_t>(key.size()), static_cast<std::uint32_t>(value.size()),
                       rec_.bytes.size()};
    rec_.bytes.append(key);
    rec_.bytes.append(value);
    rec_.writes.push_back(w);
}

// ---- raw LMDB ----------------------------------------------------------------------

namespace {

std::atomic<std::size_t> total_missing_deletes{0};

// The table names of src/storage.cpp, in abide::detail::Db order.
constexpr std::array<const char*, 12> table_names = {"meta",   "runs",  "run_ids", "journal",   "inbox",  "signal_ids",
                                                     "timers", "ready", "waits",   "by_status", "events", "inputs"};
static_assert(static_cast<std::size_t>(Db::count_) == table_names.size(),
              "abide's tables changed: update table_names in benchmarks/common.cpp");

void check(int rc, const std::string& doing) {
    if (rc != 0) throw std::runtime_error("raw LMDB: " + doing + ": " + mdb_strerror(rc));
}

MDB_val val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

unsigned sync_flags(abide::Durability d) {
    switch (d) {
        case abide::Durability::synced: return 0;
        case abide::Durability::meta_unsynced: return MDB_NOMETASYNC;
        case abide::Durability::unsynced: return MDB_NOSYNC;
    }
    return 0;
}

std::size_t map_for(const fs::path& file) {
    std::error_code ec;
    const std::uintmax_t size = fs::exists(file, ec) ? fs::file_size(file, ec) : 0;
    return std::max<std::size_t>(std::size_t{16} << 30, static_cast<std::size_t>(size) * 2);
}

struct ReadTxn {
    explicit ReadTxn(MDB_env* env) { check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "beginning a read"); }
    ~ReadTxn() { mdb_txn_abort(txn); }
    ReadTxn(const ReadTxn&) = delete;
    ReadTxn& operator=(const ReadTxn&) = delete;
    MDB_txn* txn = nullptr;
};

struct RawCursor {
    RawCursor(MDB_txn* txn, unsigned dbi) { check(mdb_cursor_open(txn, dbi, &cursor), "opening a cursor"); }
    ~RawCursor() { mdb_cursor_close(cursor); }
    RawCursor(const RawCursor&) = delete;
    RawCursor& operator=(const RawCursor&) = delete;
    MDB_cursor* cursor = nullptr;
};

}  // namespace

Mirror::Mirror(fs::path file, const Args& args)
    : file_(std::move(file)), durability_(args.durability), fresh_(args.fresh_baseline), disabled_(args.no_baseline) {}

Mirror::~Mirror() {
    close();
    if (!file_.empty()) remove_database(file_);
}

void Mirror::close() {
    if (env_) mdb_env_close(env_);
    env_ = nullptr;
    dbis_.clear();
}

void Mirror::open(bool create) {
    check(mdb_env_create(&env_), "creating the environment");
    mdb_env_set_maxdbs(env_, static_cast<MDB_dbi>(table_names.size() + 2));
    mdb_env_set_mapsize(env_, map_for(file_));
    int rc = mdb_env_open(env_, file_.c_str(), MDB_NOSUBDIR | sync_flags(durability_), 0644);
    if (rc != 0) {
        mdb_env_close(env_);
        env_ = nullptr;
        check(rc, "opening " + file_.string());
    }
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, 0, &txn), "beginning the table transaction");
    for (const char* name : table_names) {
        MDB_dbi dbi = 0;
        rc = mdb_dbi_open(txn, name, create ? MDB_CREATE : 0, &dbi);
        // The tables' key order as abide sets it (the same order as LMDB's
        // default, compared faster), so that the baseline is not slowed by a
        // setting abide does not have.
        if (rc == 0) rc = mdb_set_compare(txn, dbi, abide::detail::compare_keys);
        if (rc != 0) {
            mdb_txn_abort(txn);
            check(rc, std::string("opening table ") + name);
        }
        dbis_.push_back(dbi);
    }
    check(mdb_txn_commit(txn), "committing the tables");
}

void Mirror::seed(const fs::path& abide_database) {
    if (disabled_) return;
    close();
    remove_database(file_);
    if (!fresh_) {
        fs::copy_file(abide_database, file_, fs::copy_options::overwrite_existing);
        fsync_file(file_);  // so the first timed synced commit does not flush the copy
    }
    open(true);
    if (fresh_) fsync_file(file_);
}

Replay Mirror::replay(const Recording& rec) {
    if (disabled_) {
        Replay none;
        none.wall = none.cpu = std::nan("");
        none.segment_seconds.assign(rec.segment_begin.size(), std::nan(""));
        return none;
    }
    if (!env_) throw std::logic_error("Mirror::replay before seed");
    using clock = std::chrono::steady_clock;
    const std::size_t n = rec.transactions();
    std::vector<clock::time_point> stamps(n + 1);
    Replay out;
    std::size_t w = 0;
    const double cpu0 = cpu_seconds();
    const clock::time_point t0 = clock::now();
    for (std::size_t t = 0; t < n; ++t) {
        stamps[t] = clock::now();
        MDB_txn* txn = nullptr;
        check(mdb_txn_begin(env_, nullptr, 0, &txn), "beginning a write");
        for (; w < rec.txn_end[t]; ++w) {
            const Recording::Write& write = rec.writes[w];
            MDB_val k = val(std::string_view(rec.bytes).substr(write.offset, write.key_size));
            const unsigned dbi = dbis_[static_cast<std::size_t>(write.db)];
            int rc = 0;
            if (write.op != Recording::Op::del) {
                MDB_val v = val(std::string_view(rec.bytes).substr(write.offset + write.key_size, write.value_size));
                rc = mdb_put(txn, dbi, &k, &v, write.op == Recording::Op::append ? MDB_APPEND : 0);
            } else {
                rc = mdb_del(txn, dbi, &k, nullptr);
                if (rc == MDB_NOTFOUND) {
                    ++out.missing_deletes;
                    rc = 0;
                }
            }
            if (rc != 0) {
                mdb_txn_abort(txn);
                check(rc, "replaying a write");
            }
        }
        check(mdb_txn_commit(txn), "committing a replayed transaction");
    }
    const clock::time_point t1 = clock::now();
    stamps[n] = t1;
    out.wall = std::chrono::duration<double>(t1 - t0).count();
    out.cpu = cpu_seconds() - cpu0;
    total_missing_deletes += out.missing_deletes;
    const auto& seg = rec.segment_begin;
    for (std::size_t s = 0; s < seg.size(); ++s) {
        const std::size_t end = s + 1 < seg.size() ? seg[s + 1] : n;
        out.segment_seconds.push_back(std::chrono::duration<double>(stamps[end] - stamps[seg[s]]).count());
    }
    return out;
}

std::optional<std::string> Mirror::get(Db db, std::string_view key) {
    if (disabled_) return std::string(8, '\0');
    ReadTxn r(env_);
    MDB_val k = val(key), v{};
    int rc = mdb_get(r.txn, dbis_[static_cast<std::size_t>(db)], &k, &v);
    if (rc == MDB_NOTFOUND) return std::nullopt;
    check(rc, "reading");
    return std::string(view(v));
}

void Mirror::first_keys(std::initializer_list<Db> tables) {
    if (disabled_) return;
    ReadTxn r(env_);
    for (Db db : tables) {
        RawCursor c(r.txn, dbis_[static_cast<std::size_t>(db)]);
        MDB_val k{}, v{};
        int rc = mdb_cursor_get(c.cursor, &k, &v, MDB_FIRST);
        if (rc != 0 && rc != MDB_NOTFOUND) check(rc, "reading a first key");
    }
}

std::size_t Mirror::scan(Db db, std::string_view prefix, std::size_t limit) {
    if (disabled_) return 0;
    ReadTxn r(env_);
    RawCursor c(r.txn, dbis_[static_cast<std::size_t>(db)]);
    MDB_val k = val(prefix), v{};
    std::size_t bytes = 0, count = 0;
    for (int rc = mdb_cursor_get(c.cursor, &k, &v, MDB_SET_RANGE); rc == 0 && count < limit;
         rc = mdb_cursor_get(c.cursor, &k, &v, MDB_NEXT)) {
        if (!view(k).starts_with(prefix)) break;
        bytes += k.mv_size + v.mv_size;
        ++count;
    }
    return bytes;
}

std::size_t Mirror::list_waiting(std::string_view name, std::size_t limit) {
    if (disabled_) return 0;
    ReadTxn r(env_);
    RawCursor c(r.txn, dbis_[static_cast<std::size_t>(Db::waits)]);
    std::string prefix(name);
    prefix.push_back('\0');
    MDB_val k = val(prefix), v{};
    std::size_t bytes = 0, count = 0;
    for (int rc = mdb_cursor_get(c.cursor, &k, &v, MDB_SET_RANGE); rc == 0 && count < limit;
         rc = mdb_cursor_get(c.cursor, &k, &v, MDB_NEXT)) {
        std::string_view key = view(k);
        if (!key.starts_with(prefix)) break;
        bytes += run_bytes(r.txn, key.substr(prefix.size(), 8));
        ++count;
    }
    return bytes;
}

std::size_t Mirror::get_run(std::string_view run_id) {
    if (disabled_) return 0;
    ReadTxn r(env_);
    MDB_val id = val(run_id), number{};
    if (mdb_get(r.txn, dbis_[static_cast<std::size_t>(Db::run_ids)], &id, &number) != 0) return 0;
    return run_bytes(r.txn, view(number));
}

std::size_t Mirror::run_bytes(MDB_txn* txn, std::string_view run_key) {
    MDB_val run = val(run_key), record{}, input{};
    std::size_t bytes = 0;
    if (mdb_get(txn, dbis_[static_cast<std::size_t>(Db::runs)], &run, &record) == 0) bytes += record.mv_size;
    if (mdb_get(txn, dbis_[static_cast<std::size_t>(Db::inputs)], &run, &input) == 0) bytes += input.mv_size;
    return bytes;
}

double Mirror::open_seconds(const fs::path& file) {
    Stopwatch sw;
    MDB_env* env = nullptr;
    check(mdb_env_create(&env), "creating the environment");
    mdb_env_set_maxdbs(env, static_cast<MDB_dbi>(table_names.size() + 2));
    mdb_env_set_mapsize(env, map_for(file));
    int rc = mdb_env_open(env, file.c_str(), MDB_NOSUBDIR, 0644);
    if (rc != 0) {
        mdb_env_close(env);
        check(rc, "opening " + file.string());
    }
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "beginning a read");
    for (const char* name : table_names) {
        MDB_dbi dbi = 0;
        check(mdb_dbi_open(txn, name, 0, &dbi), std::string("opening table ") + name);
    }
    check(mdb_txn_commit(txn), "ending the read");
    const double seconds = sw.wall();
    mdb_env_close(env);
    return seconds;
}

// ---- the refund workload ------------------------------------------------------------

namespace {

std::int64_t ticket_amount(const std::string& ticket) {
    std::uint64_t h = 1469598103934665603ULL;
    for (char c : ticket) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    return static_cast<std::int64_t>(1000 + h % 90000);
}

std::string refund_review(abide::Context& ctx, const std::string& ticket) {
    const auto amount = ctx.step("load_ticket", [&] { return ticket_amount(ticket); });
    const auto tier = ctx.step("load_customer", [&] { return std::string(amount % 3 == 0 ? "gold" : "standard"); });
    const auto risk = ctx.step("score_risk", [&] { return static_cast<int>(amount % 97); });
    auto decision = ctx.wait_for_signal<Decision>(refund_signal, std::chrono::hours(7 * 24),
                                                  RefundRequest{ticket, amount, tier, risk});
    if (!decision) return "timed_out";
    if (decision->status != "approved") return "not_approved";
    const auto receipt =
        ctx.step("issue_refund", [&](abide::StepContext& s) { return "rf_" + s.idempotency_key(); });
    return "refunded " + receipt;
}

}  // namespace

void define_refund(abide::Engine& engine) {
    engine.define(refund_workflow, refund_review).signal<Decision>(refund_signal);
}

std::string ticket_id(std::size_t i) { return fmt::format("T-{:07}", i); }

std::string refund_run_id(const std::string& prefix, std::size_t i) { return fmt::format("{}{:07}", prefix, i); }

abide::StartRequest refund_start(std::size_t i, const std::string& run_id) {
    abide::StartRequest r;
    r.workflow = refund_workflow;
    r.input = ticket_id(i);
    r.options.run_id = run_id;
    return r;
}

std::string decision_text(std::size_t i) {
    return fmt::format(R"({{"status":"approved","reviewer_id":"u_{}","reason":"receipt checked","approved_amount":{}}})",
                       100 + i % 17, 4900 + i % 100);
}

json decision_json(std::size_t i) { return json::parse(decision_text(i)); }

void start_waiting_runs(abide::Engine& engine, const std::string& prefix, std::size_t first, std::size_t count,
                        std::size_t window) {
    std::vector<abide::StartRequest> batch;
    for (std::size_t begin = first; begin < first + count; begin += window) {
        const std::size_t end = std::min(first + count, begin + window);
        batch.clear();
        for (std::size_t i = begin; i < end; ++i) batch.push_back(refund_start(i, refund_run_id(prefix, i)));
        (void)engine.start_batch(batch);
        std::size_t waiting = 0;
        for (;;) {
            auto r = engine.poll();
            waiting += r.waiting;
            if (r.runs_advanced == 0) break;
        }
        if (waiting != end - begin)
            throw std::runtime_error(fmt::format("setup: {} of {} runs reached their wait", waiting, end - begin));
    }
}

Resume resume_against_mirror(abide::Engine& engine, Mirror& mirror, const Args& args, const std::string& run,
                             int read_reps) {
    Recorder& recorder = Recorder::instance();
    recorder.start();
    auto sent = engine.signal(run, "go", 1);
    mirror.replay(recorder.stop());  // untimed: keeps the mirror in step
    if (sent.outcome != abide::SignalOutcome::delivered)
        throw std::runtime_error("resume " + run + ": " + sent.message);

    Resume out;
    recorder.start();
    Stopwatch sw;
    auto r = engine.poll();
    out.abide = sw.elapsed();
    Recording rec = recorder.stop();
    if (r.completed != 1) throw std::runtime_error("resume " + run + ": the run did not complete");
    out.writes = mirror.replay(rec);
    out.commits = rec.commits();

    auto number = mirror.get(Db::run_ids, run);
    if (!number && !args.fresh_baseline) throw std::runtime_error("the mirror lacks run " + run);
    for (int i = 0; number && i < read_reps; ++i) {
        Stopwatch scan;
        out.journal_bytes = mirror.scan(Db::journal, *number, SIZE_MAX);
        const Elapsed e = scan.elapsed();
        if (!out.journal_read || e.wall < out.journal_read->wall) out.journal_read = e;
    }
    return out;
}

Concurrent decide_concurrently(abide::Engine& engine, const std::string& prefix, std::size_t n,
                               std::size_t signalers, std::size_t pollers) {
    std::atomic<bool> go{false};
    std::atomic<std::size_t> refused{0}, completed{0}, polls{0};
    std::vector<std::thread> threads;
    auto wait_for_go = [&] {
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    };
    struct Call {
        std::string run, payload, id;
    };
    std::vector<Call> calls;  // built before the clock starts
    calls.reserve(n);
    for (std::size_t i = 0; i < n; ++i) calls.push_back({refund_run_id(prefix, i), decision_text(i), fmt::format("d-{}", i)});
    for (std::size_t t = 0; t < signalers; ++t)
        threads.emplace_back([&, t] {
            wait_for_go();
            for (std::size_t i = t; i < n; i += signalers) {
                auto s = engine.signal(calls[i].run, refund_signal, calls[i].payload, calls[i].id);
                if (s.outcome != abide::SignalOutcome::delivered) refused.fetch_add(1);
            }
        });
    std::atomic<double> finished{0};
    Stopwatch sw;
    for (std::size_t p = 0; p < pollers; ++p)
        threads.emplace_back([&] {
            wait_for_go();
            while (completed.load() + refused.load() < n) {
                auto r = engine.poll();
                polls.fetch_add(1);
                if (r.completed > 0 && completed.fetch_add(r.completed) + r.completed >= n) finished.store(sw.wall());
                if (r.runs_advanced == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
        });
    sw.start();
    go.store(true, std::memory_order_release);
    for (auto& t : threads) t.join();
    Concurrent out;
    out.seconds = finished.load() > 0 ? finished.load() : sw.wall();
    out.polls = polls.load();
    if (refused.load() != 0) throw std::runtime_error(fmt::format("{} concurrent signals were refused", refused.load()));
    if (completed.load() != n)
        throw std::runtime_error(fmt::format("{} of {} concurrently decided runs completed", completed.load(), n));
    return out;
}

double drive_window(abide::Engine& engine, std::size_t runs, std::size_t window, std::size_t threads,
                    const std::vector<std::size_t>& chunk_sizes, const std::function<void(std::size_t)>& submit,
                    const std::function<std::size_t(const abide::PollResult&)>& finished) {
    std::mutex admit;            // guards next_chunk and in_flight together
    std::size_t next_chunk = 0;  // the next chunk to hand out
    std::size_t in_flight = 0;   // submitted, not yet through the phase
    std::atomic<std::size_t> through{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> workers;
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto worker = [&] {
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        try {
            while (through.load() < runs) {
                std::optional<std::size_t> chunk;
                {
                    std::lock_guard lock(admit);
                    if (next_chunk < chunk_sizes.size() && in_flight + chunk_sizes[next_chunk] <= window) {
                        chunk = next_chunk++;
                        in_flight += chunk_sizes[*chunk];
                    }
                }
                if (chunk) submit(*chunk);
                const abide::PollResult r = engine.poll();
                // A run that fails or is put aside never goes through: stop, or the threads would poll forever.
                if (r.failed + r.cancelled + r.quarantined > 0 || !r.problems.empty())
                    throw std::runtime_error(fmt::format("a poll failed {}, cancelled {} and quarantined {} runs{}{}",
                                                         r.failed, r.cancelled, r.quarantined,
                                                         r.problems.empty() ? "" : ": ",
                                                         r.problems.empty() ? "" : r.problems.front()));
                const std::size_t n = finished(r);
                if (n > 0) {
                    std::lock_guard lock(admit);
                    in_flight -= n;
                }
                through.fetch_add(n);
                if (!chunk && r.runs_advanced == 0) std::this_thread::yield();
            }
        } catch (...) {
            std::lock_guard lock(failure_mutex);
            if (!failure) failure = std::current_exception();
            through.store(runs);  // stops the other threads
        }
    };
    for (std::size_t t = 0; t < threads; ++t) workers.emplace_back(worker);
    Stopwatch sw;
    go.store(true, std::memory_order_release);
    for (auto& t : workers) t.join();
    const double seconds = sw.wall();
    if (failure) std::rethrow_exception(failure);
    if (through.load() != runs)
        throw std::runtime_error(fmt::format("{} of {} runs went through the phase", through.load(), runs));
    return seconds;
}

// ---- the report -----------------------------------------------------------------------

namespace {

std::string read_first(const char* file, std::string_view field) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.starts_with(field)) continue;
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
    }
    return "unknown";
}

std::string loadavg() {
    std::ifstream in("/proc/loadavg");
    std::string one, five, fifteen;
    in >> one >> five >> fifteen;
    return one + " " + five + " " + fifteen;
}

std::string utc_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string group_thousands(std::string digits) {
    std::string out;
    const std::size_t start = digits[0] == '-' ? 1 : 0;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > start && (digits.size() - i) % 3 == 0) out.push_back(',');
        out.push_back(digits[i]);
    }
    return out;
}

std::string number(double v) {
    const double a = std::fabs(v);
    if (a == 0) return "0";
    if (a >= 1000) return group_thousands(fmt::format("{:.0f}", v));
    if (a >= 100) return fmt::format("{:.0f}", v);
    if (a >= 10) return fmt::format("{:.1f}", v);
    if (a >= 1) return fmt::format("{:.2f}", v);
    return fmt::format("{:.3g}", v);
}

json machine() {
    utsname u{};
    uname(&u);
    return json{{"nproc", sysconf(_SC_NPROCESSORS_ONLN)},
                {"cpu", read_first("/proc/cpuinfo", "model name")},
                {"kernel", std::string(u.sysname) + " " + u.release},
                {"loadavg_at_end", loadavg()}};
}

std::string build_type() {
    std::string b = ABIDE_BENCH_BUILD_TYPE;
    return b.empty() ? "none (CMAKE_BUILD_TYPE empty: no optimisation flags)" : b;
}

}  // namespace

Report::Report(std::string bench, std::string title, const Args& args)
    : bench_(std::move(bench)), title_(std::move(title)), args_(args) {}

void Report::param(const std::string& key, json value) { params_[key] = std::move(value); }

void Report::note(std::string text) { notes_.push_back(std::move(text)); }

void Report::merge(std::vector<Figure>& list, Figure f) {
    auto better = [&](double a, double b) { return f.better == Better::higher ? std::max(a, b) : std::min(a, b); };
    for (Figure& old : list) {
        if (old.id != f.id) continue;
        old.abide = better(old.abide, f.abide);
        if (f.baseline) old.baseline = old.baseline ? better(*old.baseline, *f.baseline) : *f.baseline;
        return;
    }
    list.push_back(std::move(f));
}

void Report::add(Figure figure) {
    if (args_.no_baseline || (figure.baseline && !std::isfinite(*figure.baseline))) figure.baseline.reset();
    merge(figures_, std::move(figure));
}

void Report::add(std::string id, std::string label, std::string unit, Better better, double abide,
                 std::optional<double> baseline) {
    add(Figure{std::move(id), std::move(label), std::move(unit), better, abide, baseline});
}

void Report::reference(std::string id, std::string label, std::string unit, Better better, double value) {
    if (args_.no_baseline) return;  // the references read the baseline's file
    merge(references_, Figure{std::move(id), std::move(label), std::move(unit), better, value, std::nullopt});
}

std::optional<double> Report::ratio(const Figure& f) {
    if (!f.baseline || *f.baseline <= 0 || f.abide <= 0) return std::nullopt;
    return f.better == Better::higher ? f.abide / *f.baseline : *f.baseline / f.abide;
}

void Report::print() const {
    const json m = machine();
    std::string out;
    out += fmt::format("\n== bench_{}: {}\n", bench_, title_);
    out += fmt::format("{} | {} x {} | {} | build {} | durability {} | {} | best of {}\n", utc_now(),
                       m["nproc"].get<long>(), m["cpu"].get<std::string>(), m["kernel"].get<std::string>(),
                       build_type(), durability_name(args_.durability), args_.quick ? "quick sizes" : "full sizes",
                       args_.reps);
    if (args_.no_baseline)
        out += "baseline: skipped (--no-baseline)\n";
    else
        out += fmt::format("baseline: raw LMDB replaying abide's recorded write transactions on {}\n",
                           args_.fresh_baseline ? "an empty file" : "a copy of abide's database taken before the phase");
    std::string params;
    for (const auto& [k, v] : params_.items()) params += fmt::format("{}{}={}", params.empty() ? "" : ", ", k, v.dump());
    if (!params.empty()) out += "params: " + params + "\n";
    if (std::string(ABIDE_BENCH_BUILD_TYPE) != "Release")
        out += "WARNING: not a Release build; these timings say little about abide's speed\n";

    std::size_t w = 6;
    for (const auto& f : figures_) w = std::max(w, f.label.size());
    for (const auto& f : references_) w = std::max(w, f.label.size());
    if (!figures_.empty()) {
        out += fmt::format("\n{:<{}}  {:>10}  {:>13}  {:>13}  {:>12}\n", "figure", w, "unit", "abide", "raw LMDB",
                           "abide/LMDB");
        for (const auto& f : figures_) {
            auto r = ratio(f);
            out += fmt::format("{:<{}}  {:>10}  {:>13}  {:>13}  {:>12}\n", f.label, w, f.unit, number(f.abide),
                               f.baseline ? number(*f.baseline) : "-",
                               r ? fmt::format("{:.2f}{}", *r, *r < 0.70 ? " <70%" : "     ") : "-");
        }
        out += "(abide/LMDB: abide's speed as a fraction of the baseline's; <70% marks rows below 0.70)\n";
    }
    if (!references_.empty()) {
        out += fmt::format("\n{:<{}}  {:>10}  {:>13}\n", "reference (not abide's figure)", w, "unit", "value");
        for (const auto& f : references_)
            out += fmt::format("{:<{}}  {:>10}  {:>13}\n", f.label, w, f.unit, number(f.abide));
    }
    std::vector<std::string> notes = notes_;
    if (const std::size_t missing = total_missing_deletes.load())
        notes.push_back(fmt::format("{} replayed deletes found no key in the baseline file (it started empty)", missing));
    for (const auto& n : notes) out += "note: " + n + "\n";

    json j;
    j["bench"] = bench_;
    j["title"] = title_;
    j["date"] = utc_now();
    j["machine"] = m;
    j["build_type"] = ABIDE_BENCH_BUILD_TYPE;
    j["durability"] = durability_name(args_.durability);
    j["quick"] = args_.quick;
    j["reps"] = args_.reps;
    j["baseline_file"] = args_.no_baseline ? "none" : args_.fresh_baseline ? "fresh" : "copy";
    j["params"] = params_;
    j["figures"] = json::array();
    for (const auto& f : figures_) {
        json e{{"id", f.id}, {"label", f.label}, {"unit", f.unit},
               {"better", f.better == Better::higher ? "higher" : "lower"}, {"abide", f.abide}};
        if (f.baseline) e["baseline"] = *f.baseline;
        if (auto r = ratio(f)) e["ratio"] = *r;
        j["figures"].push_back(std::move(e));
    }
    j["references"] = json::array();
    for (const auto& f : references_)
        j["references"].push_back(json{{"id", f.id}, {"label", f.label}, {"unit", f.unit}, {"value", f.abide}});
    j["notes"] = notes;
    const std::string line = j.dump();
    std::cout << out << "\n" << line << std::endl;
    if (!args_.json_out.empty()) {
        std::ofstream file(args_.json_out, std::ios::app);
        file << line << "\n";
    }
}

int run_main(int (*body)(int, char**), int argc, char** argv) {
    try {
        return body(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << std::endl;
        return 1;
    }
}

}  // namespace abide_bench
