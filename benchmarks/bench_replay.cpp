// bench_replay: how fast does a run resume from its journal?
//
// Runs with 10, 100, 1,000 and 10,000 steps wait for a signal. The database is
// closed and reopened with cache_size 0 (no fiber in memory), a signal is
// delivered (untimed), and one poll() is timed: it reads the run's journal,
// re-executes the workflow from the top against it, and completes the run.
// Reported per size: journal entries per second (the run has steps + 2
// entries: the steps, the wait and its wake), wall and CPU, the median over
// several runs; against raw LMDB reading the run's journal (one cursor pass)
// and replaying what that resume wrote (its single commit).
#include "common.hpp"

#include <fmt/format.h>

#include <stdexcept>

using namespace abide_bench;

namespace {

constexpr const char* workflow = "steps";

std::int64_t step_body(std::int64_t i) { return i * 31 + 7; }

std::int64_t many_steps(abide::Context& ctx, const std::int64_t& count) {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < count; ++i) sum += ctx.step("step", step_body, i);
    (void)ctx.wait_for_signal<int>("go");
    return sum;
}

void expect(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what);
}

struct Size {
    std::size_t steps;
    std::size_t runs;
};

std::string run_id(std::size_t steps, std::size_t k) { return fmt::format("r{}-{}", steps, k); }

void measure(const Args& args, const Scratch& scratch, const std::vector<Size>& sizes, Report& report) {
    const fs::path db = scratch.file("replay.db");
    // Setup (untimed): every run, all advancing together, unsynced; then fsynced.
    {
        abide::Engine setup(engine_options(db, abide::Durability::unsynced));
        setup.define(workflow, many_steps).signal<int>("go");
        std::vector<abide::StartRequest> starts;
        for (const Size& z : sizes)
            for (std::size_t k = 0; k < z.runs; ++k)
                starts.push_back({workflow, static_cast<std::int64_t>(z.steps), {.run_id = run_id(z.steps, k)}});
        (void)setup.start_batch(starts);
        expect(setup.poll().waiting == starts.size(), "setup: not every run reached its wait");
    }
    fsync_file(db);

    auto options = engine_options(db, args.durability);
    options.cache_size = 0;
    abide::Engine engine(options);
    engine.define(workflow, many_steps).signal<int>("go");
    Mirror mirror(scratch.file("replay-baseline.db"), args);
    mirror.seed(db);

    for (const Size& z : sizes) {
        const double entries = static_cast<double>(z.steps + 2);
        std::vector<double> wall, cpu, base_wall, raw_read;
        for (std::size_t k = 0; k < z.runs; ++k) {
            const std::string id = run_id(z.steps, k);
            const Resume resume = resume_against_mirror(engine, mirror, args, id, 1);
            const Elapsed& t = resume.abide;
            const Replay& base = resume.writes;
            wall.push_back(entries / t.wall);
            cpu.push_back(entries / t.cpu);
            // The baseline is the read side of the resume plus its writes.
            const double read = resume.journal_read ? resume.journal_read->wall : 0;
            if (resume.journal_read) raw_read.push_back(entries / read);
            base_wall.push_back(entries / (read + base.wall));
        }
        const std::string s = std::to_string(z.steps);
        const std::string label = "resume a run of " + s + " steps (" + std::to_string(z.steps + 2) + " entries)";
        report.add("replay_" + s, label, "entries/s", Better::higher, median(wall), median(base_wall));
        report.add("replay_" + s + "_cpu", label + ", CPU time", "entries/s", Better::higher, median(cpu));
        report.add("replay_" + s + "_ms", label + ", time", "ms", Better::lower, entries / median(wall) * 1e3,
                   entries / median(base_wall) * 1e3);
        if (!raw_read.empty())
            report.reference("raw_read_" + s, "raw LMDB cursor read of a " + s + "-step journal", "entries/s",
                             Better::higher, median(raw_read));
    }
}

int body(int argc, char** argv) {
    Args args = Args::parse(argc, argv, "resuming runs of 10 to 10,000 journal entries after a reopen (cache_size 0)",
                            {"runs"});
    const long long scale = args.number("runs", 1, 1);  // multiplies the runs per size
    std::vector<Size> sizes;
    if (args.quick) {
        sizes = {{10, 3}, {100, 3}, {1000, 2}, {10000, 1}};
    } else {
        sizes = {{10, 20}, {100, 20}, {1000, 10}, {10000, 4}};
    }
    for (Size& z : sizes) z.runs *= static_cast<std::size_t>(std::max(1LL, scale));
    Report report("replay", "resuming a run from its journal after reopening with cache_size 0", args);
    json runs = json::object();
    for (const Size& z : sizes) runs[std::to_string(z.steps)] = z.runs;
    report.param("runs_per_size", runs);
    Scratch scratch(args);
    for (int rep = 0; rep < args.reps; ++rep) measure(args, scratch, sizes, report);
    report.note("each figure is the median over the runs of that size (then the better of the repetitions)");
    report.note("the runs were created with Durability::unsynced (setup only) and fsynced before reopening");
    report.note("a resume is the journal read, the re-execution and one commit (the completion); the baseline is "
                "raw LMDB reading the same journal entries plus replaying that commit, so small runs are bounded by "
                "the commit and large ones by the re-execution");
    report.print();
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_main(body, argc, argv); }
