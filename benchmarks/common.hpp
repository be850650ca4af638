// What every benchmark program shares: options, timing, the write recorder and
// its raw-LMDB replay (the baseline), the refund workflow, and the report
// (a readable table plus one JSON line).
//
// The baseline. While a benchmark's measured phase runs, the Recorder (through
// abide::detail::write_tap()) keeps every put and delete abide made, grouped by
// committed write transaction. A Mirror then replays exactly those
// transactions, with the same boundaries, on a raw LMDB file (the same named
// tables, MDB_NOSUBDIR, the sync flags of the durability mode: synced = none,
// meta_unsynced = MDB_NOMETASYNC, unsynced = MDB_NOSYNC), timing only the
// replay. By default the mirror file starts as a byte copy of abide's database
// taken just before the phase (fsynced before any timing), so every write hits
// the same tree and deletes find their keys; --fresh-baseline replays on an
// empty file instead.
#pragma once

#include <abide/abide.hpp>

#include "storage.hpp"  // abide::detail::write_tap, Db (from ${PROJECT_SOURCE_DIR}/src)

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct MDB_env;
struct MDB_txn;

namespace abide_bench {

using abide::json;
using Db = abide::detail::Db;
namespace fs = std::filesystem;

// ---- options -------------------------------------------------------------------

struct Args {
    std::string program;
    bool quick = false;
    abide::Durability durability = abide::Durability::synced;
    int reps = 2;               ///< each measurement is taken this often; the better one is reported
    fs::path dir;               ///< where databases go (default: a new directory under $TMPDIR)
    bool keep = false;          ///< keep the databases afterwards
    bool fresh_baseline = false;///< replay the baseline on an empty file, not on a copy of abide's
    bool no_baseline = false;   ///< skip the raw-LMDB baseline (to profile abide alone)
    std::string json_out;       ///< also append the JSON line to this file
    std::map<std::string, std::string, std::less<>> extra;

    /// Parses the common options and `extra_keys` (each `--key=value`). Prints
    /// usage and exits on --help or a bad option.
    static Args parse(int argc, char** argv, std::string_view about,
                      std::initializer_list<std::string_view> extra_keys = {});
    /// An extra numeric option, or the default for the size (quick or full).
    long long number(std::string_view key, long long full, long long quick_value) const;
};

std::string_view durability_name(abide::Durability d);

// ---- time, memory, files -----------------------------------------------------------

/// Wall time (steady_clock) and CPU time of the whole process
/// (CLOCK_PROCESS_CPUTIME_ID) since start().
struct Elapsed {
    double wall = 0;  ///< seconds
    double cpu = 0;   ///< seconds, all threads
};
class Stopwatch {
public:
    Stopwatch() { start(); }
    void start();
    Elapsed elapsed() const;
    double wall() const;

private:
    std::chrono::steady_clock::time_point wall_{};
    double cpu_ = 0;
};
double cpu_seconds();
/// Minor page faults of this process so far (getrusage). On a virtual machine
/// each costs microseconds that no instruction count shows: first touches of
/// new fiber stacks, of heap grown again after a trim, of new map pages.
long minor_page_faults();

/// An EngineOptions::clock that stands still at the time it was made until
/// advance() moves it: timers fall due when a benchmark says so.
class SteppedClock {
public:
    SteppedClock();
    /// For EngineOptions::clock; this object must outlive the engine.
    std::function<abide::TimePoint()> clock();
    void advance(std::chrono::microseconds by) { now_us_ += by.count(); }

private:
    std::atomic<std::int64_t> now_us_;
};

/// Nearest-rank percentile (p in 0..100) of the samples.
double percentile(std::vector<double> samples, double p);
double median(std::vector<double> samples);
/// VmRSS of this process, in bytes.
std::uint64_t rss_bytes();
/// RssAnon of this process, in bytes: its resident memory without the pages
/// of mapped files (LMDB's map), that is the heap and the fiber stacks.
std::uint64_t anon_rss_bytes();
/// Returns freed heap to the OS so that a later RSS reading is not setup's.
void trim_heap();
void fsync_file(const fs::path& file);

/// A directory for this run's databases, removed at the end unless --keep.
class Scratch {
public:
    explicit Scratch(const Args& args);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    /// A path inside the directory; removes an old file of that name and its lock file.
    fs::path file(const std::string& name) const;
    const fs::path& dir() const { return dir_; }

private:
    fs::path dir_;
    bool keep_;
};
void remove_database(const fs::path& file);

/// Engine options for benchmarks: the durability mode and a map large enough
/// that it never grows during a measured phase (a grown map re-applies a
/// batch, and the tap would see the aborted attempt's writes).
abide::EngineOptions engine_options(const fs::path& file, abide::Durability durability,
                                    std::size_t map_bytes = std::size_t{1} << 30);
/// The --cache-size=N option of programs that list "cache-size" among their
/// extra keys: EngineOptions::cache_size, by default the engine's own (1,024).
/// Throws for a negative number.
std::size_t cache_size_option(const Args& args);

// ---- recording abide's writes ----------------------------------------------------

struct Recording {
    enum class Op : std::uint8_t { put, append, del };  ///< append: a put with MDB_APPEND
    struct Write {
        Op op;
        Db db;
        std::uint32_t key_size;
        std::uint32_t value_size;
        std::size_t offset;  ///< key then value, in `bytes`
    };
    std::string bytes;
    std::vector<Write> writes;
    std::vector<std::size_t> txn_end;        ///< writes[txn_end[t-1] .. txn_end[t]) form transaction t
    std::vector<std::size_t> segment_begin;  ///< first transaction of each segment (Recorder::segment)
    std::size_t uncommitted = 0;             ///< writes after the last commit (should be 0)

    std::size_t transactions() const { return txn_end.size(); }
    std::uint64_t commits() const { return txn_end.size(); }
    std::size_t puts() const;
    std::size_t dels() const;
};

/// The process-wide recorder behind abide::detail::write_tap(). install() sets
/// the tap (before any engine opens); it records only between start() and stop().
class Recorder {
public:
    static Recorder& instance();
    /// Sets the tap (idempotent). uninstall() clears it: abide then pays no tap
    /// call at all. Call both only while no engine is writing.
    void install();
    void uninstall();
    void start();
    /// Marks a segment boundary: the next transaction begins a new segment
    /// (for per-run latencies of the replay). Call between operations.
    void segment();
    Recording stop();
    /// Commits seen since start(), so far.
    std::uint64_t commits() const;

private:
    Recorder() = default;
    void observe(abide::detail::WriteTap::Op op, Db db, std::string_view key, std::string_view value);

    mutable std::mutex mutex_;
    bool recording_ = false;
    Recording rec_;
};

/// A phase measured on twin engines that start from the same state: first
/// on `recorded`, untimed, with the write tap recording (its transactions are
/// what the baseline replays); then on `timed` with no tap installed at all,
/// timed, so that abide's figure excludes the benchmark's own recording.
/// `phase(engine, timed)` runs the phase and returns its seconds.
struct TwinResult {
    double seconds = 0;   ///< the timed run
    Recording recording;  ///< the recorded run's writes
};
template <class Phase>
TwinResult run_twin(abide::Engine& recorded, abide::Engine& timed, Phase&& phase) {
    Recorder& recorder = Recorder::instance();
    recorder.start();
    (void)phase(recorded, false);
    TwinResult out;
    out.recording = recorder.stop();
    recorder.uninstall();
    try {
        out.seconds = phase(timed, true);
    } catch (...) {
        recorder.install();
        throw;
    }
    recorder.install();
    return out;
}

// ---- raw LMDB: the baseline --------------------------------------------------------

struct Replay {
    double wall = 0;                      ///< seconds for all transactions
    double cpu = 0;
    std::vector<double> segment_seconds;  ///< per Recorder::segment, when there are segments
    std::size_t missing_deletes = 0;      ///< deletes of keys absent from the mirror (fresh files only)
};

/// A raw LMDB file with abide's named tables, opened as the durability mode
/// says. Also used for the read-only references (open time, first key, scans).
class Mirror {
public:
    /// Takes the durability, --fresh-baseline and --no-baseline from `args`.
    Mirror(fs::path file, const Args& args);
    ~Mirror();
    Mirror(const Mirror&) = delete;
    Mirror& operator=(const Mirror&) = delete;

    /// Starts the mirror from abide's database as it is now (a byte copy,
    /// fsynced; abide must be idle), or from an empty file with
    /// --fresh-baseline. Untimed.
    void seed(const fs::path& abide_database);
    /// Replays the recorded transactions; only this is timed. With
    /// --no-baseline nothing happens and the times are NaN (the report drops them).
    Replay replay(const Recording& recording);

    // Read-only references (on whatever the mirror holds now; with
    // --no-baseline they read nothing).
    std::optional<std::string> get(Db db, std::string_view key);
    /// One read transaction that reads the first key of each table.
    void first_keys(std::initializer_list<Db> tables);
    /// One read transaction: up to `limit` entries of `db` whose key starts
    /// with `prefix`; returns their total key+value bytes.
    std::size_t scan(Db db, std::string_view prefix, std::size_t limit);
    /// One read transaction: the first `limit` keys of `waits` for `name`, and
    /// each one's run record and input (what list_runs(waiting_for) has to read).
    std::size_t list_waiting(std::string_view name, std::size_t limit);
    /// One read transaction: run_ids[id], then runs[run#] and inputs[run#] (what status() reads).
    std::size_t get_run(std::string_view run_id);
    /// Seconds to open a raw LMDB environment on `file` and its named tables.
    static double open_seconds(const fs::path& file);

    const fs::path& file() const { return file_; }

private:
    void open(bool create);
    void close();
    /// The bytes of the record and the input of the run keyed `run_key`, read in `txn`.
    std::size_t run_bytes(MDB_txn* txn, std::string_view run_key);

    fs::path file_;
    abide::Durability durability_;
    bool fresh_;
    bool disabled_;
    MDB_env* env_ = nullptr;
    std::vector<unsigned> dbis_;
};

/// One resume of `run`, parked in wait_for_signal("go") (an int), measured
/// against the mirror: the signal (untimed; its writes are replayed so the
/// mirror stays in step), then one timed poll that must complete the run,
/// whose writes are the baseline; and raw LMDB reading the run's journal in
/// one cursor pass, best of `read_reps` (the read side of the resume; nothing
/// when the mirror lacks the run, as with --fresh-baseline).
struct Resume {
    Elapsed abide;                       ///< the poll
    Replay writes;                       ///< the poll's writes on raw LMDB
    std::uint64_t commits = 0;           ///< the poll's commits
    std::optional<Elapsed> journal_read;
    std::size_t journal_bytes = 0;       ///< key+value bytes of the journal read
};
Resume resume_against_mirror(abide::Engine& engine, Mirror& mirror, const Args& args, const std::string& run,
                             int read_reps);

// ---- a run over a large input ------------------------------------------------------

/// A run's input that carries a document (bench_step, bench_waiting): what
/// a run costs must not grow with it once the run has started.
struct Document {
    std::string id;
    std::int64_t steps = 0;
    std::string text;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Document, id, steps, text)
inline constexpr std::size_t document_bytes = 100 * 1024;

// ---- the refund workload ------------------------------------------------------------

struct Decision {
    std::string status, reviewer_id, reason;
    std::int64_t approved_amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Decision, status, reviewer_id, reason, approved_amount)

inline constexpr const char* refund_workflow = "refund_review";
inline constexpr const char* refund_signal = "refund_decision";

/// The wait's metadata, typed: the approval inbox shows it as
/// {"amount","risk","ticket_id","tier"}.
struct RefundRequest {
    std::string ticket_id;
    std::int64_t amount = 0;
    std::string tier;
    int risk = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RefundRequest, ticket_id, amount, tier, risk)

/// The refund workload: three steps (load the ticket, the customer, a risk
/// score), wait_for_signal<Decision>("refund_decision", 7 days, RefundRequest),
/// then for an approval the "issue_refund" step, and completion.
void define_refund(abide::Engine& engine);
std::string ticket_id(std::size_t i);
abide::StartRequest refund_start(std::size_t i, const std::string& run_id);
std::string refund_run_id(const std::string& prefix, std::size_t i);
/// The decision as JSON text (as an HTTP body would bring it) and as JSON.
std::string decision_text(std::size_t i);
json decision_json(std::size_t i);

/// Starts runs [first, first+count) with start_batch in windows of `window`,
/// polling after each, until every one waits. Throws if one does not.
void start_waiting_runs(abide::Engine& engine, const std::string& prefix, std::size_t first, std::size_t count,
                        std::size_t window);

struct Concurrent {
    double seconds = 0;      ///< from releasing the threads until every run completed
    std::size_t polls = 0;   ///< poll() calls, all pollers together
};
/// Decides runs [0, n) of `prefix` (waiting refund runs): `signalers` threads
/// call signal() one decision at a time (thread t takes runs t, t+signalers,
/// ...) while `pollers` threads call poll() until every run has completed
/// (an idle poll sleeps 50 us). Run it under run_twin to record its writes.
Concurrent decide_concurrently(abide::Engine& engine, const std::string& prefix, std::size_t n,
                               std::size_t signalers, std::size_t pollers);

/// `threads` host threads drive one phase of `runs` runs with at most
/// `window` in flight, the way a service's worker threads would: a thread
/// takes the next of the prepared chunks when the window has room for it and
/// hands its index to `submit` (start_batch or signal_batch of that chunk),
/// then polls; `finished(poll result)` says how many runs that poll took
/// through the phase (waiting, or completed), which frees their room. Every
/// thread polls until all `runs` are through. Returns the seconds from
/// releasing the threads until then; throws if a poll fails, cancels or
/// quarantines a run or reports a problem.
double drive_window(abide::Engine& engine, std::size_t runs, std::size_t window, std::size_t threads,
                    const std::vector<std::size_t>& chunk_sizes, const std::function<void(std::size_t)>& submit,
                    const std::function<std::size_t(const abide::PollResult&)>& finished);

// ---- the report -----------------------------------------------------------------------

enum class Better { higher, lower };

/// One figure with abide's value and, when there is one, the baseline's.
struct Figure {
    std::string id;     ///< JSON key, snake_case
    std::string label;  ///< table row
    std::string unit;
    Better better = Better::higher;
    double abide = 0;
    std::optional<double> baseline;
};

class Report {
public:
    Report(std::string bench, std::string title, const Args& args);
    void param(const std::string& key, json value);
    void note(std::string text);
    /// Adds a figure; adding the same id again (another repetition) keeps the
    /// better abide value and the better baseline value.
    void add(Figure figure);
    void add(std::string id, std::string label, std::string unit, Better better, double abide,
             std::optional<double> baseline = std::nullopt);
    /// A number that is not abide's (a plain function call, a raw read), shown
    /// in its own table. Same merging.
    void reference(std::string id, std::string label, std::string unit, Better better, double value);
    /// abide's speed as a fraction of the baseline's (1 = as fast), or nothing.
    static std::optional<double> ratio(const Figure& f);
    /// Prints the table and the JSON line (and appends it to --json-out).
    void print() const;

private:
    static void merge(std::vector<Figure>& list, Figure figure);
    std::string bench_, title_;
    const Args& args_;
    json params_ = json::object();
    std::vector<std::string> notes_;
    std::vector<Figure> figures_, references_;
};

/// Common main() wrapper: prints an exception and returns 1.
int run_main(int (*body)(int, char**), int argc, char** argv);

}  // namespace abide_bench
