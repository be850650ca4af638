// bench_step: what does one journaled step cost?
//
// A run executes S steps (each returns a small integer) and then waits. Measured:
//   * first execution: one poll() that runs all S steps (one commit each) up
//     to the wait; ns/step of wall time and of process CPU time
//     (CLOCK_PROCESS_CPUTIME_ID), against raw LMDB replaying the same write
//     transactions (the bytes the tap saw);
//   * the same for a run whose input is a document of 100 KiB: a step must
//     not cost more, nor write more, because the run's input is large;
//   * the same with the write tap uninstalled (what the recording costs);
//   * replay: a run with R steps, reopened with cache_size 0 and signalled; one
//     poll() re-executes the R steps from the journal and completes the run;
//     against raw LMDB reading the run's journal (one cursor pass) and
//     writing what that resume wrote;
//   * references: the step body as a plain function call, and with the JSON
//     round trip of its result.
#include "common.hpp"

#include <fmt/format.h>

#include <stdexcept>

using namespace abide_bench;

namespace {

constexpr const char* workflow = "steps";

[[gnu::noinline]] std::int64_t step_body(std::int64_t i) { return i * 31 + 7; }

std::int64_t many_steps(abide::Context& ctx, const std::int64_t& count) {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < count; ++i) sum += ctx.step("step", step_body, i);
    (void)ctx.wait_for_signal<int>("go");
    return sum;
}

constexpr const char* document_workflow = "steps_over_a_document";

void define(abide::Engine& e) {
    e.define(workflow, many_steps).signal<int>("go");
    e.define(document_workflow, [](abide::Context& ctx, const Document& doc) { return many_steps(ctx, doc.steps); })
        .signal<int>("go");
}

void expect(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

double ns_per(double seconds, std::size_t n) { return seconds * 1e9 / static_cast<double>(n); }

void plain_calls(Report& report, bool quick) {
    const std::int64_t n = quick ? 2'000'000 : 50'000'000;
    std::int64_t acc = 0;
    Stopwatch sw;
    for (std::int64_t i = 0; i < n; ++i) {
        acc += step_body(i);
        asm volatile("" : "+r"(acc));
    }
    report.reference("plain_call_ns", "step body as a plain function call", "ns/call", Better::lower,
                     ns_per(sw.wall(), static_cast<std::size_t>(n)));
    const std::int64_t m = quick ? 100'000 : 2'000'000;
    sw.start();
    for (std::int64_t i = 0; i < m; ++i) {
        const std::string text = abide::codec<std::int64_t>::encode(step_body(i)).dump();
        acc += abide::json::parse(text).get<std::int64_t>();
        asm volatile("" : "+r"(acc));
    }
    report.reference("plain_call_json_ns", "plain call + JSON encode/dump/parse/decode of the result", "ns/call",
                     Better::lower, ns_per(sw.wall(), static_cast<std::size_t>(m)));
}

struct FirstRun {
    Elapsed time;
    Recording rec;
};

/// One poll that runs `steps` steps of a fresh run up to its wait; with
/// `document`, the run's input also holds a document of document_bytes.
FirstRun first_execution(const Args& args, const fs::path& db, std::size_t steps, Mirror* mirror,
                         bool document = false) {
    abide::Engine engine(engine_options(db, args.durability));
    define(engine);
    const auto count = static_cast<std::int64_t>(steps);
    if (document)
        (void)engine.start(document_workflow, Document{"first", count, std::string(document_bytes, 'x')},
                           {.run_id = "first"});
    else
        (void)engine.start(workflow, count, {.run_id = "first"});
    if (mirror) {
        mirror->seed(db);
        Recorder::instance().start();
    }
    Stopwatch sw;
    auto r = engine.poll();
    FirstRun out{sw.elapsed(), {}};
    if (mirror) out.rec = Recorder::instance().stop();
    expect(r.waiting == 1, "first execution: the run did not reach its wait");
    return out;
}

void measure(const Args& args, const Scratch& scratch, std::size_t steps, std::size_t replay_steps, Report& report) {
    Recorder& recorder = Recorder::instance();
    const std::string s = std::to_string(steps);
    // ---- first execution, recorded ----
    {
        const fs::path db = scratch.file("step.db");
        Mirror mirror(scratch.file("step-baseline.db"), args);
        FirstRun run = first_execution(args, db, steps, &mirror);
        Replay base = mirror.replay(run.rec);
        report.add("first_ns_per_step", "step, first execution (" + s + " steps, one poll)", "ns/step", Better::lower,
                   ns_per(run.time.wall, steps), ns_per(base.wall, steps));
        report.add("first_cpu_ns_per_step", "step, first execution: CPU time", "ns/step", Better::lower,
                   ns_per(run.time.cpu, steps), ns_per(base.cpu, steps));
        report.add("first_commits_per_step", "step, first execution: commits per step", "commits", Better::lower,
                   static_cast<double>(run.rec.commits()) / static_cast<double>(steps));
        report.add("first_bytes_per_step", "step, first execution: bytes written per step", "bytes", Better::lower,
                   static_cast<double>(run.rec.bytes.size()) / static_cast<double>(steps));
    }
    // ---- first execution of a run whose input holds a document ----
    {
        Mirror mirror(scratch.file("document-baseline.db"), args);
        FirstRun run = first_execution(args, scratch.file("document.db"), steps, &mirror, true);
        Replay base = mirror.replay(run.rec);
        report.add("document_ns_per_step", "step, first execution, the run's input 100 KiB", "ns/step",
                   Better::lower, ns_per(run.time.wall, steps), ns_per(base.wall, steps));
        report.add("document_bytes_per_step", "step, first execution, the run's input 100 KiB: bytes written per step",
                   "bytes", Better::lower, static_cast<double>(run.rec.bytes.size()) / static_cast<double>(steps));
    }
    // ---- first execution with the tap uninstalled ----
    {
        recorder.uninstall();
        FirstRun run = first_execution(args, scratch.file("step-untapped.db"), steps, nullptr);
        recorder.install();
        report.add("first_ns_per_step_untapped", "step, first execution, write tap uninstalled", "ns/step",
                   Better::lower, ns_per(run.time.wall, steps));
    }
    // ---- replay: reopen with cache_size 0, signal, one poll ----
    {
        const fs::path db = scratch.file("replay.db");
        {
            abide::Engine setup(engine_options(db, abide::Durability::unsynced));
            define(setup);
            (void)setup.start(workflow, static_cast<std::int64_t>(replay_steps), {.run_id = "replayed"});
            expect(setup.poll().waiting == 1, "replay setup: the run did not reach its wait");
        }
        fsync_file(db);
        auto options = engine_options(db, args.durability);
        options.cache_size = 0;
        abide::Engine engine(options);
        define(engine);
        Mirror mirror(scratch.file("replay-baseline.db"), args);
        mirror.seed(db);
        const Resume resume = resume_against_mirror(engine, mirror, args, "replayed", 5);
        const Elapsed& t = resume.abide;
        const Replay& base = resume.writes;
        const Elapsed read = resume.journal_read.value_or(Elapsed{});
        const double read_wall = read.wall, read_cpu = read.cpu;
        const std::string rs = std::to_string(replay_steps);
        report.add("replay_ns_per_step", "step, replay (" + rs + " steps, cache_size 0, one poll)", "ns/step",
                   Better::lower, ns_per(t.wall, replay_steps), ns_per(read_wall + base.wall, replay_steps));
        report.add("replay_cpu_ns_per_step", "step, replay: CPU time", "ns/step", Better::lower,
                   ns_per(t.cpu, replay_steps), ns_per(read_cpu + base.cpu, replay_steps));
        report.add("replay_commits", "step, replay: commits for the whole resume", "commits", Better::lower,
                   static_cast<double>(resume.commits));
        if (resume.journal_read)
            report.reference("raw_journal_read_ns_per_entry", "raw LMDB cursor read of the run's journal",
                             "ns/entry", Better::lower, ns_per(read_wall, replay_steps + 2));
        report.reference("raw_resume_commit_us", "raw LMDB replay of the resume's write transaction", "us",
                         Better::lower, base.wall * 1e6);
        if (resume.journal_bytes > 0)
            report.param("journal_bytes_per_entry",
                         static_cast<double>(resume.journal_bytes) / static_cast<double>(replay_steps + 2));
    }
}

int body(int argc, char** argv) {
    Args args = Args::parse(argc, argv, "the cost of a journaled step: first execution and replay",
                            {"steps", "replay-steps"});
    const bool synced = args.durability != abide::Durability::unsynced;
    const auto steps = static_cast<std::size_t>(args.number("steps", synced ? 1000 : 20000, synced ? 100 : 1000));
    const auto replay_steps = static_cast<std::size_t>(args.number("replay-steps", 20000, 1000));
    Report report("step", "the cost of one journaled step", args);
    report.param("steps", steps);
    report.param("replay_steps", replay_steps);
    Scratch scratch(args);
    for (int rep = 0; rep < args.reps; ++rep) {
        measure(args, scratch, steps, replay_steps, report);
        plain_calls(report, args.quick);
    }
    report.note("first execution commits once per step, so under synced durability a step costs a synced commit");
    report.note("the replayed run was created with Durability::unsynced (setup only) and fsynced before reopening");
    report.note("first-execution baseline: raw LMDB replaying the step transactions the tap recorded");
    report.note("replay baseline: raw LMDB reading the run's journal (one cursor pass) plus replaying the resume's "
                "one write transaction (the completion), which abide's replay rows include too");
    report.print();
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_main(body, argc, argv); }
