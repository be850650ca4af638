// bench_waiting: what do a million runs waiting for approval cost?
//
// Setup (untimed): N refund runs (default 1,000,000) are started with
// start_batch + poll until each waits for its decision, using
// Durability::unsynced for setup speed; a 1,000-run database is made the same
// way for comparison (first, so that the big setup's heap is not in its
// reading). Both are closed and fsynced. Read at the end of each setup, with
// its engine still open: the fibers its cache keeps (Stats::cached_runs) and
// the process's anonymous memory (RssAnon: heap and stacks, not LMDB's map),
// which the cache's bound must keep the same for 1,000 and 1,000,000 parked
// runs. Then the same reading for 1,000 runs whose input is a document of
// 100 KiB, parked and all cached: each should hold its input once, in what
// the workflow decoded (the engine keeps no text or JSON copy of it).
// Measured (the durability mode applies from here on):
//   * time to open each database (Engine construction): abide scans nothing
//     at open, so both should take the same time; raw LMDB's open as reference;
//   * process RSS (VmRSS) before and after open, and after the queries;
//   * bytes on disk per waiting run (file size / N);
//   * list_runs(waiting_for = "refund_decision", limit 100): the 100 oldest
//     waiting approvals; status() of one run; the first call after open and
//     the best of repeated calls; raw LMDB doing the same reads as reference;
//   * delivering one decision and polling that run to completion, against raw
//     LMDB replaying the same write transactions.
#include "common.hpp"

#include <fmt/format.h>

#include <iostream>
#include <stdexcept>

using namespace abide_bench;

namespace {

constexpr std::size_t map_bytes = std::size_t{8} << 30;
constexpr double mib = 1024.0 * 1024.0;

void expect(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

/// What making a database of waiting runs cost, read before its engine closed.
struct Setup {
    double seconds = 0;
    /// Parked fibers the engine kept, and the process's anonymous memory
    /// (heap and fiber stacks, not LMDB's map): the cache's bound under load.
    std::uint64_t cached_runs = 0;
    double anon_rss_mib = 0;
};

Setup create(const fs::path& db, std::size_t runs) {
    Stopwatch sw;
    Setup setup;
    {
        abide::Engine engine(engine_options(db, abide::Durability::unsynced, map_bytes));
        define_refund(engine);
        const std::size_t chunk = 100000;
        for (std::size_t first = 0; first < runs; first += chunk) {
            start_waiting_runs(engine, "a-", first, std::min(chunk, runs - first), 8192);
            if (runs > chunk)
                std::cout << fmt::format("setup: {} of {} runs waiting ({:.0f} s)", std::min(runs, first + chunk),
                                         runs, sw.wall())
                          << std::endl;
        }
        setup.cached_runs = engine.stats().cached_runs;
        trim_heap();
        setup.anon_rss_mib = static_cast<double>(anon_rss_bytes()) / mib;
    }
    fsync_file(db);
    setup.seconds = sw.wall();
    return setup;
}

constexpr std::size_t document_runs = 1000;

/// The anonymous memory (MiB) of the process with document_runs runs parked
/// in one engine's cache, each holding a document of document_bytes.
double parked_documents_mib(const fs::path& db) {
    abide::Engine engine(engine_options(db, abide::Durability::unsynced, map_bytes));
    engine.define("document_review", [](abide::Context& ctx, const Document& doc) {
              const auto decision = ctx.wait_for_signal<Decision>(refund_signal, std::chrono::hours(7 * 24));
              return doc.id + (decision ? ": " + decision->status : ": timed out");
          })
        .signal<Decision>(refund_signal);
    std::vector<abide::StartRequest> batch(document_runs);
    for (std::size_t i = 0; i < document_runs; ++i) {
        batch[i].workflow = "document_review";
        batch[i].input = Document{fmt::format("doc-{}", i), 0, std::string(document_bytes, 'x')};
    }
    (void)engine.start_batch(batch);
    batch.clear();
    batch.shrink_to_fit();
    std::size_t waiting = 0;
    for (abide::PollResult r = engine.poll(); r.runs_advanced > 0; r = engine.poll()) waiting += r.waiting;
    expect(waiting == document_runs && engine.stats().cached_runs == document_runs,
           "documents: every run must park and stay cached");
    trim_heap();
    return static_cast<double>(anon_rss_bytes()) / mib;
}

double open_seconds(const Args& args, const fs::path& db) {
    Stopwatch sw;
    abide::Engine engine(engine_options(db, args.durability, map_bytes));
    return sw.wall();
}

template <class F>
std::pair<double, double> first_and_best(int repeats, F&& f) {
    Stopwatch sw;
    f();
    const double first = sw.wall();
    double best = first;
    for (int i = 0; i < repeats; ++i) {
        sw.start();
        f();
        best = std::min(best, sw.wall());
    }
    return {first, best};
}

void measure(const Args& args, const fs::path& big, const fs::path& small, std::size_t n, std::size_t small_n,
             Mirror& mirror, Report& report) {
    // ---- open time: best of 5, alternating ----
    double open_big = 1e9, open_small = 1e9, open_raw = 1e9;
    for (int i = 0; i < 5; ++i) {
        open_big = std::min(open_big, open_seconds(args, big));
        open_small = std::min(open_small, open_seconds(args, small));
        open_raw = std::min(open_raw, Mirror::open_seconds(big));
    }
    const std::string ns = fmt::format("{}", n);
    report.add("open_ms", "open a database of " + ns + " waiting runs", "ms", Better::lower, open_big * 1e3,
               open_raw * 1e3);
    report.add("open_small_ms", "open a database of " + std::to_string(small_n) + " waiting runs", "ms",
               Better::lower, open_small * 1e3);

    // ---- open once more, then the queries ----
    trim_heap();
    const double rss_before = static_cast<double>(rss_bytes()) / mib;
    auto options = engine_options(big, args.durability, map_bytes);
    abide::Engine engine(options);
    define_refund(engine);
    const double rss_open = static_cast<double>(rss_bytes()) / mib;

    std::vector<abide::RunInfo> inbox;
    auto [list_first, list_best] = first_and_best(20, [&] {
        inbox = engine.list_runs({.waiting_for = std::string(refund_signal), .limit = 100});
    });
    expect(inbox.size() == 100, fmt::format("list_runs returned {} runs", inbox.size()));
    const std::string probe = refund_run_id("a-", n / 2);
    std::optional<abide::RunInfo> info;
    auto [status_first, status_best] = first_and_best(20, [&] { info = engine.status(probe); });
    expect(info && info->status == abide::RunStatus::waiting, "status: the probed run is not waiting");

    // ---- one decision, polled to completion ----
    const std::string oldest = inbox.front().id;
    Recorder::instance().start();
    Stopwatch sw;
    auto sent = engine.signal(oldest, refund_signal, decision_text(0), "decision-" + oldest);
    auto r = engine.poll();
    const double deliver = sw.wall();
    Recording rec = Recorder::instance().stop();
    expect(sent.outcome == abide::SignalOutcome::delivered, "signal: " + sent.message);
    expect(r.completed == 1, "the decided run did not complete");
    const double rss_after = static_cast<double>(rss_bytes()) / mib;
    const Replay base = mirror.replay(rec);

    // ---- raw LMDB doing the same reads (after the RSS readings) ----
    auto [raw_list_first, raw_list_best] = first_and_best(20, [&] { (void)mirror.list_waiting(refund_signal, 100); });
    auto [raw_status_first, raw_status_best] = first_and_best(20, [&] { (void)mirror.get_run(probe); });
    (void)raw_list_first;
    (void)raw_status_first;

    report.add("list_100_first_ms", "list the 100 oldest waiting approvals, first call", "ms", Better::lower,
               list_first * 1e3);
    report.add("list_100_ms", "list the 100 oldest waiting approvals, best of 20", "ms", Better::lower,
               list_best * 1e3, raw_list_best * 1e3);
    report.add("status_first_us", "status() of one run, first call", "us", Better::lower, status_first * 1e6);
    report.add("status_us", "status() of one run, best of 20", "us", Better::lower, status_best * 1e6,
               raw_status_best * 1e6);
    report.add("decide_one_ms", "deliver one decision + poll it to completion", "ms", Better::lower, deliver * 1e3,
               base.wall * 1e3);
    report.add("decide_one_commits", "deliver one decision + poll: commits", "commits", Better::lower,
               static_cast<double>(rec.commits()));
    report.add("rss_before_open_mib", "process RSS before open", "MiB", Better::lower, rss_before);
    report.add("rss_open_mib", "process RSS after open", "MiB", Better::lower, rss_open);
    report.add("rss_queries_mib", "process RSS after the queries and the decision", "MiB", Better::lower, rss_after);
}

int body(int argc, char** argv) {
    Args args = Args::parse(argc, argv, "a million runs waiting for approval: open, memory, disk, inbox queries",
                            {"runs"});
    const auto n = static_cast<std::size_t>(args.number("runs", 1'000'000, 10'000));
    const std::size_t small_n = 1000;
    Report report("waiting", "runs waiting for approval", args);
    report.param("runs", n);
    report.param("small_runs", small_n);
    Scratch scratch(args);
    const fs::path big = scratch.file("waiting.db");
    const fs::path small = scratch.file("waiting-1000.db");
    std::cout << fmt::format("setup: creating {} waiting runs with Durability::unsynced ...", n) << std::endl;
    // The documents first, then the small one: a reading must not include
    // what a bigger setup left in the heap.
    const double documents_mib = parked_documents_mib(scratch.file("documents.db"));
    const Setup setup_small = create(small, small_n);
    const Setup setup = create(big, n);
    const double setup_big = setup.seconds;
    report.param("setup_seconds", setup_big);
    report.add("setup_cached_runs", "fibers cached after parking " + std::to_string(n) + " runs through one engine",
               "runs", Better::lower, static_cast<double>(setup.cached_runs));
    report.add("setup_anon_rss_mib", "anonymous memory then (heap and stacks, not the map), engine open", "MiB",
               Better::lower, setup.anon_rss_mib);
    report.add("setup_anon_rss_small_mib",
               "the same after parking " + std::to_string(small_n) + " runs, in the same process before it", "MiB",
               Better::lower, setup_small.anon_rss_mib);
    report.add("documents_anon_rss_mib",
               fmt::format("anonymous memory with {} parked runs whose input is {} KiB, all cached", document_runs,
                           document_bytes / 1024),
               "MiB", Better::lower, documents_mib);
    const double disk = static_cast<double>(fs::file_size(big));
    report.add("bytes_per_run", "bytes on disk per waiting run (" + std::to_string(n) + " runs)", "bytes",
               Better::lower, disk / static_cast<double>(n));
    report.add("bytes_per_run_small", "bytes on disk per waiting run (1000 runs)", "bytes", Better::lower,
               static_cast<double>(fs::file_size(small)) / static_cast<double>(small_n));
    report.param("file_mib", disk / mib);

    Mirror mirror(scratch.file("waiting-baseline.db"), args);
    mirror.seed(big);  // untimed; every later write is replayed on it, so it stays in step
    trim_heap();
    for (int rep = 0; rep < args.reps; ++rep) measure(args, big, small, n, small_n, mirror, report);
    report.note(fmt::format("the {} runs were created with start_batch + poll using Durability::unsynced for setup "
                            "speed ({:.0f} s), then fsynced; the measurements use the durability shown",
                            n, setup_big));
    report.note("open, list and status rows have raw-LMDB reads as baseline (same keys, one read transaction); "
                "the decision row replays abide's write transactions");
    report.note("the page cache is warm (setup just wrote the file): these are not cold-disk figures");
    report.print();
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_main(body, argc, argv); }
