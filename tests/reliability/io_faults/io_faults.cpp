// I/O-fault harness: fails the N-th write and, separately, the N-th sync of
// abide's LMDB file for every N the reference workload makes (abide_io_shim,
// fault mode), then checks what a host sees and what survives:
//
//   faulted  (child, under the shim): runs the workload until an engine call
//            throws. It must be an abide::StorageError with an
//            "abide.storage." id and a message; never a crash, another type,
//            or silence. It then writes what the engine still reports.
//   recover  (child, no faults): opens the database. What it finds must be
//            exactly what the faulted engine reported (the last successful
//            commit: same runs, journals, event log end as the events the
//            faulted host was told about), hold every acknowledged call, and
//            then finish every run with the outcome of an unfaulted run.
//   in-process (child, under the shim): after the error, retries with the
//            same Engine, then destroys and reopens it in the same process if
//            it keeps failing (MDB_PANIC), and finishes the runs.
//
// The step log (one line per body execution, with the pid) is the effect
// ledger: a body the faulted process ran at journal position p means every
// entry before p was committed (the workflow never went past an uncommitted
// result); the recovering process re-runs a body only if its result was not
// committed; no body runs twice in one process.
//
// Then a real full disk (a small tmpfs; SKIPPED if mount is not permitted)
// and a tiny initial map grown by two processes at once.
//
// Size: ABIDE_IO_FAULTS_PLANS workload plans of ABIDE_IO_FAULTS_RUNS runs
// (CI: 1 plan of 3 runs, every N); ABIDE_IO_FAULTS_TINY_RUNS runs per process
// in the tiny-map case (CI: 150).
#include "harness.hpp"
#include "io_log.hpp"
#include "workload.hpp"

#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <thread>
#include <typeinfo>

#include "common/ledger.hpp"

namespace {

using namespace abide;
using namespace abide::harness;
using abide::io_test::Plan;
using abide::io_test::PlanClock;

io_test::World world_in(const fs::path& dir) { return {dir / "steps.log", dir / "payments.txt"}; }

void write_json(const fs::path& path, const json& j) { std::ofstream(path) << j.dump(); }

json read_json(const fs::path& path) {
    const std::string text = read_text(path);
    if (text.empty()) throw std::runtime_error(path.string() + " is empty: the child wrote no result");
    return json::parse(text);
}

// What a child reports about an exception it caught.
json describe_error(const std::exception& e) {
    json j = {{"what", e.what()}, {"type", typeid(e).name()}, {"storage_error", false}, {"id", ""}};
    if (const auto* storage = dynamic_cast<const StorageError*>(&e)) {
        j["storage_error"] = true;
        j["id"] = storage->id();
    } else if (const auto* error = dynamic_cast<const Error*>(&e)) {
        j["id"] = error->id();
    }
    return j;
}

// Child arguments, the same for every mode: <mode> <db> <dir> <plan seed> <runs> <result.json>
struct ChildArgs {
    fs::path db, dir, result;
    Plan plan;
    explicit ChildArgs(const std::vector<std::string>& a)
        : db(a.at(1)), dir(a.at(2)), result(a.at(5)),
          plan(io_test::make_plan(io_test::parse_number(a.at(3)), static_cast<int>(io_test::parse_number(a.at(4))))) {}
};

// The faulted host: the plan, then finishing it, until the first error.
struct FaultedRun {
    PlanClock clock;
    std::uint64_t last_event_seen = 0;  // from on_event: the commits this host was told about
    json acked = {{"runs", json::object()}, {"last_event_seq", 0}};  // the state after the last call that returned
    std::unique_ptr<Engine> engine;
    std::optional<json> error;

    EngineOptions options(const ChildArgs& args) {
        EngineOptions o = io_test::engine_options(args.db, Durability::synced, clock);
        o.on_event = [this](const Event& e) { last_event_seen = std::max(last_event_seen, e.seq); };
        return o;
    }
    // Runs until an engine call throws; true if one did.
    bool run_until_error(const ChildArgs& args) {
        try {
            engine = std::make_unique<Engine>(options(args));
            io_test::define_workflows(*engine, world_in(args.dir));
            acked = io_test::snapshot(*engine);
            for (const io_test::Op& op : args.plan.ops) {
                (void)io_test::apply(*engine, clock, op);
                acked = io_test::snapshot(*engine);
            }
            const std::string differs = io_test::finish_plan(*engine, clock, args.plan);
            if (!differs.empty()) error = json{{"what", "no error, but: " + differs}, {"storage_error", false}};
        } catch (const std::exception& e) {
            error = describe_error(e);
        }
        return error.has_value();
    }
};

// ---- children ----------------------------------------------------------------

int faulted_main(const ChildArgs& args) {
    FaultedRun run;
    json result = {{"error", nullptr}, {"pid", ::getpid()}};
    if (run.run_until_error(args)) {
        result["error"] = *run.error;
        result["acked"] = run.acked;
        result["last_event_seen"] = run.last_event_seen;
        try {
            if (!run.engine) throw std::runtime_error("the Engine was never constructed");
            result["view"] = io_test::snapshot(*run.engine);
        } catch (const std::exception& e) {
            result["view_error"] = describe_error(e);
        }
    }
    write_json(args.result, result);
    return 0;
}

int recover_main(const ChildArgs& args) {
    PlanClock clock;
    json result;
    try {
        Engine engine(io_test::engine_options(args.db, Durability::synced, clock));
        io_test::define_workflows(engine, world_in(args.dir));
        result["opened"] = io_test::snapshot(engine);
        write_json(args.result, result);  // kept even if finishing crashes
        result["differs"] = io_test::finish_plan(engine, clock, args.plan);
    } catch (const std::exception& e) {
        result["error"] = describe_error(e);
    }
    write_json(args.result, result);
    return 0;
}

// After the error: what the same Engine does next, then what a new Engine in
// the same process does, then finish the runs.
int in_process_main(const ChildArgs& args) {
    FaultedRun run;
    json result = {{"error", nullptr}};
    if (run.run_until_error(args)) {
        result["error"] = *run.error;
        json& same = result["same_engine"] = json::array();
        for (int attempt = 0; attempt < 2 && run.engine; ++attempt) {
            try {
                (void)run.engine->poll();
                same.push_back("ok");
                break;
            } catch (const std::exception& e) {
                same.push_back(describe_error(e)["id"]);
            }
        }
        const bool recovered_in_place = !same.empty() && same.back() == "ok";
        try {
            if (!recovered_in_place) {
                run.engine.reset();  // closes the LMDB environment
                run.engine = std::make_unique<Engine>(run.options(args));
                io_test::define_workflows(*run.engine, world_in(args.dir));
                result["reopened"] = true;
            }
            result["differs"] = io_test::finish_plan(*run.engine, run.clock, args.plan);
        } catch (const std::exception& e) {
            result["finish_error"] = describe_error(e);
        }
    }
    write_json(args.result, result);
    return 0;
}

// Full disk, in the tmpfs `args.dir`: commits a plan, fills the disk, starts
// runs with big inputs until a commit fails, checks the failure and that
// nothing committed is lost, frees the space and finishes everything.
int full_disk_main(const ChildArgs& args) {
    PlanClock clock;
    json result;
    try {
        Engine engine(io_test::engine_options(args.db, Durability::synced, clock));
        io_test::define_workflows(engine, world_in(args.dir / "world"));
        for (const io_test::Op& op : args.plan.ops) (void)io_test::apply(engine, clock, op);
        const json before = io_test::snapshot(engine);
        const fs::path filler = args.dir / "filler";
        {
            // Leave about 256 KiB, so that some big starts still fit.
            struct statvfs fs_stats {};
            ::statvfs(args.dir.c_str(), &fs_stats);
            const std::uint64_t free_bytes = std::uint64_t{fs_stats.f_bavail} * fs_stats.f_frsize;
            std::ofstream fill(filler, std::ios::binary);
            const std::string block(4096, 'x');
            for (std::uint64_t left = free_bytes > (256 << 10) ? free_bytes - (256 << 10) : 0; left >= block.size();
                 left -= block.size())
                fill.write(block.data(), static_cast<std::streamsize>(block.size()));
        }
        const std::string big_input(48 << 10, 'b');
        int started = 0;
        json committed = before;
        for (; started < 400; ++started) {
            try {
                (void)engine.start_json("review", big_input, {.run_id = "big-" + std::to_string(started)});
                committed = io_test::snapshot(engine);
            } catch (const std::exception& e) {
                result["error"] = describe_error(e);
                break;
            }
        }
        result["started_before_full"] = started;
        const json after_error = io_test::snapshot(engine);
        result["lost"] = io_test::missing_from(committed, after_error);
        fs::remove(filler);
        // Space is back: the same Engine takes the failed start again.
        (void)engine.start_json("review", big_input, {.run_id = "big-" + std::to_string(started)});
        result["differs"] = io_test::finish_plan(engine, clock, args.plan);
    } catch (const std::exception& e) {
        result["unexpected"] = describe_error(e);
    }
    write_json(args.result, result);
    return 0;
}

// One of two processes growing a tiny map at once: starts `runs` batch runs
// of its own (prefix `args.dir` name), polls them, reads the other's runs.
int tiny_map_main(const std::vector<std::string>& a) {
    const fs::path db = a.at(1), result_path = a.at(2);
    const std::string prefix = a.at(3), other = a.at(4);
    const int runs = static_cast<int>(io_test::parse_number(a.at(5)));
    PlanClock clock;
    json result = {{"ok", false}};
    try {
        EngineOptions o = io_test::engine_options(db, Durability::unsynced, clock);
        o.map_size = std::size_t{64} << 10;
        Engine engine(o);
        fs::create_directories(db.parent_path() / prefix);
        io_test::define_workflows(engine, world_in(db.parent_path() / prefix));
        std::size_t seen_other = 0;
        for (int i = 0; i < runs; ++i) {
            (void)engine.start(std::string("batch"), std::int64_t{i},
                               {.run_id = prefix + "-" + std::to_string(i) + std::string(200, 'p')});
            if (i % 4 == 0) (void)engine.poll();
            RunQuery q;
            q.limit = 1000;
            std::size_t now_seen = 0;
            for (const RunInfo& r : engine.list_runs(q))
                if (r.id.rfind(other, 0) == 0) ++now_seen;
            seen_other = std::max(seen_other, now_seen);
        }
        // Both processes poll the one database, so the other may be running
        // some of these runs (locked, status running): a poll here then does
        // nothing at once. Wait for every run to be finished by either, with a
        // deadline, rather than for a number of polls.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (engine.stats().ready + engine.stats().running > 0 && std::chrono::steady_clock::now() < deadline)
            if (engine.poll().runs_advanced == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::string wrong;
        for (int i = 0; i < runs; ++i) {
            const std::string id = prefix + "-" + std::to_string(i) + std::string(200, 'p');
            const auto info = engine.status(id);
            if (!info || info->status != RunStatus::completed || info->output != json(std::int64_t{i} * 6))
                wrong += id.substr(0, id.size() - 200) + " ";
        }
        result = {{"ok", wrong.empty()}, {"wrong", wrong}, {"map_bytes", engine.stats().map_bytes},
                  {"seen_other", seen_other}};
    } catch (const std::exception& e) {
        result["error"] = describe_error(e);
    }
    write_json(result_path, result);
    return 0;
}

// ---- the harness -------------------------------------------------------------

class Harness {
public:
    Harness(fs::path self, std::uint64_t seed) : self_(std::move(self)), tally_("io_faults", seed) {}

    // Every write and every sync of one plan, each failed once.
    void sweep(std::uint64_t plan_seed, int runs) {
        const std::string label = "plan " + std::to_string(plan_seed) + "/" + std::to_string(runs);
        const io_log::CallCounts counts = reference_counts(plan_seed, runs);
        std::cout << label << ": the reference run makes " << counts.writes << " writes (" << counts.synced_writes
                  << " O_DSYNC meta-page writes) and " << counts.syncs << " syncs" << std::endl;
        for (std::size_t n = 1; n <= counts.writes; ++n) one_fault(plan_seed, runs, "write:" + std::to_string(n));
        for (std::size_t n = 1; n <= counts.syncs; ++n) one_fault(plan_seed, runs, "sync:" + std::to_string(n));
        // ENOSPC, and faults that never stop, on a few positions.
        for (std::size_t n : {std::size_t{1}, counts.writes / 2, counts.writes})
            one_fault(plan_seed, runs, "write:" + std::to_string(n) + ":ENOSPC");
        one_fault(plan_seed, runs, "sync:" + std::to_string(counts.syncs / 2) + ":EIO:sticky");
    }

    // The checks must be able to fail: a disk that drops writes and says they
    // were done ("silent" faults) must be caught somewhere.
    void calibrate(std::uint64_t plan_seed, int runs) {
        const io_log::CallCounts counts = reference_counts(plan_seed, runs);
        std::size_t caught = 0, tried = 0;
        // A lying disk can leave a file LMDB loops on: a hang counts as caught.
        for (std::size_t n = 1; n <= counts.writes; n += 6, ++tried)
            if (!fault_problems(plan_seed, runs, "write:" + std::to_string(n) + ":silent", 10'000).empty()) ++caught;
        std::cout << "calibration: " << caught << " of " << tried << " silently dropped writes were caught" << std::endl;
        tally_.check(caught > 0, "calibration (silently dropped writes)",
                     [] { return std::string("no silently dropped write was noticed: the checks cannot fail"); });
    }

    void full_disk();
    void tiny_map(int runs);
    int finish() {
        std::cout << "in-process after the error: " << same_engine_recovered_ << " cases went on with the same Engine, "
                  << reopened_ << " needed a new Engine (the same one kept failing: "
                  << panic_ids_.size() << " distinct ids:";
        for (const auto& id : panic_ids_) std::cout << " " << id;
        std::cout << "), " << reopen_recovered_ << " of those finished after reopening" << std::endl;
        return tally_.finish();
    }

private:
    std::vector<std::string> child_argv(const std::string& mode, const fs::path& db, const fs::path& dir,
                                        std::uint64_t plan_seed, int runs, const fs::path& result) const {
        return {self_.string(), mode, db.string(), dir.string(), std::to_string(plan_seed), std::to_string(runs),
                result.string()};
    }

    io_log::CallCounts reference_counts(std::uint64_t plan_seed, int runs) {
        ScratchDir dir("abide-io-faults-ref");
        const fs::path db = dir / "db", log = dir / "io.log", result = dir / "result.json";
        const int code = run_to_end(child_argv("faulted", db, dir.path(), plan_seed, runs, result), dir / "out",
                                    io_test::shim_environment(ABIDE_IO_SHIM_PATH, db, "ABIDE_IO_RECORD=" + log.string()));
        const json r = read_json(result);
        if (code != 0 || !r["error"].is_null())
            throw std::runtime_error("the unfaulted reference run failed (exit " + std::to_string(code) + "): " +
                                     r.dump() + tail(dir / "out"));
        return io_log::count_calls(io_log::read_log(log));
    }

    void one_fault(std::uint64_t plan_seed, int runs, const std::string& fault) {
        const std::string problems = fault_problems(plan_seed, runs, fault) + in_process_problems(plan_seed, runs, fault);
        tally_.check(problems.empty(), "fault " + fault + " (plan " + std::to_string(plan_seed) + ")",
                     [&] { return problems; });
    }

    // The faulted host, then a recovering one: "" or what went wrong.
    std::string fault_problems(std::uint64_t plan_seed, int runs, const std::string& fault,
                               int timeout_ms = 120'000) {
        ScratchDir dir("abide-io-faults");
        const fs::path db = dir / "db", out = dir / "out";
        const auto faulted_env = io_test::shim_environment(ABIDE_IO_SHIM_PATH, db, "ABIDE_IO_FAIL=" + fault);
        const int faulted_code =
            run_to_end(child_argv("faulted", db, dir.path(), plan_seed, runs, dir / "faulted.json"), out, faulted_env,
                       timeout_ms);
        const int recover_code =
            run_to_end(child_argv("recover", db, dir.path(), plan_seed, runs, dir / "recover.json"), out, {}, timeout_ms);
        std::string problems;
        try {
            problems = check_fault(dir, faulted_code, recover_code);
        } catch (const std::exception& e) {
            problems = std::string("unreadable child result: ") + e.what() + "\n";
        }
        return problems.empty() ? problems : problems + "child output:\n" + tail(out);
    }

    // The same fault handled inside one process: "" or what went wrong.
    std::string in_process_problems(std::uint64_t plan_seed, int runs, const std::string& fault) {
        std::string problems;
        ScratchDir again("abide-io-faults-inproc");
        const fs::path db2 = again / "db";
        const int in_process_code =
            run_to_end(child_argv("in-process", db2, again.path(), plan_seed, runs, again / "result.json"), again / "out",
                       io_test::shim_environment(ABIDE_IO_SHIM_PATH, db2, "ABIDE_IO_FAIL=" + fault));
        try {
            problems += check_in_process(in_process_code, read_json(again / "result.json"),
                                         fault.ends_with(":sticky"));
        } catch (const std::exception& e) {
            problems += std::string("in-process: unreadable result: ") + e.what() + "\n" + tail(again / "out");
        }
        return problems;
    }

    std::string check_fault(const ScratchDir& dir, int faulted_code, int recover_code) {
        std::string problems;
        if (faulted_code != 0) return "the faulted host died (exit " + std::to_string(faulted_code) + ")\n";
        if (recover_code != 0) return "the recovering host died (exit " + std::to_string(recover_code) + ")\n";
        const json faulted = read_json(dir / "faulted.json");
        const json recovered = read_json(dir / "recover.json");
        const json& error = faulted["error"];
        if (error.is_null()) return "the fault surfaced nowhere: every engine call succeeded\n";
        if (!error["storage_error"].get<bool>() || error["id"].get<std::string>().rfind("abide.storage.", 0) != 0)
            problems += "the failure was not a StorageError with an abide.storage id: " + error.dump() + "\n";
        if (recovered.contains("error"))
            return problems + "reopening without faults failed: " + recovered["error"].dump() + "\n";
        const json& opened = recovered["opened"];
        if (faulted.contains("view") && faulted["view"] != opened)
            problems += "the reopened state differs from what the faulted engine reported after the error\n  engine: " +
                        faulted["view"].dump().substr(0, 1500) + "\n  reopened: " + opened.dump().substr(0, 1500) + "\n";
        if (opened["last_event_seq"].get<std::uint64_t>() != faulted["last_event_seen"].get<std::uint64_t>())
            problems += "the reopened event log ends at " + opened["last_event_seq"].dump() +
                        " but the faulted host was told of events up to " + faulted["last_event_seen"].dump() +
                        " (a commit it was not told of, or one it was told of that is gone)\n";
        if (const std::string missing = io_test::missing_from(faulted["acked"], opened); !missing.empty())
            problems += "acknowledged state lost:\n" + missing;
        if (const std::string differs = recovered.value("differs", std::string("never finished")); !differs.empty())
            problems += "after reopening the runs did not finish like an unfaulted run:\n" + differs;
        problems += check_effects(dir / "steps.log", opened, faulted["pid"].get<long>());
        return problems;
    }

    // The step log against the journal the recovering host opened.
    static std::string check_effects(const fs::path& steplog, const json& opened, long faulted_pid) {
        std::string problems;
        const std::vector<examples::StepRun> executions = examples::read_step_log(steplog);
        std::map<std::pair<std::string, long>, int> per_key_and_pid;
        for (const examples::StepRun& e : executions) {
            const std::uint32_t position = static_cast<std::uint32_t>(std::stoul(e.key.substr(e.key.rfind(':') + 1)));
            if (++per_key_and_pid[{e.key, e.pid}] > 1)
                problems += "step " + e.key + " ran twice in process " + std::to_string(e.pid) + "\n";
            const json* run = opened["runs"].contains(e.run_id) ? &opened["runs"][e.run_id] : nullptr;
            bool committed = false;
            for (const json& entry : run ? (*run)["entries"] : json::array())
                if (entry["seq"] == position && entry["kind"] == "step") committed = true;
            if (e.pid == faulted_pid) {
                if (!run || (*run)["journal_entries"].get<std::uint32_t>() < position)
                    problems += "the faulted host ran step " + e.key + " although journal entries before it were "
                                "not committed: the workflow went past an uncommitted result\n";
            } else if (committed) {
                problems += "the recovering host ran step " + e.key + " again although its result was committed\n";
            }
        }
        return problems;
    }

    std::string check_in_process(int code, const json& r, bool sticky) {
        if (code != 0) return "in-process: the host died (exit " + std::to_string(code) + ")\n";
        if (r["error"].is_null()) return "in-process: the fault surfaced nowhere\n";
        std::string problems;
        if (sticky) {
            // The disk keeps failing: every later call must fail the same clear way.
            const json& e = r.value("finish_error", json{{"storage_error", false}});
            if (!e["storage_error"].get<bool>())
                problems += "in-process: a disk that keeps failing was not reported as a StorageError: " + e.dump() + "\n";
        } else if (r.contains("finish_error"))
            problems += "in-process: after the error the host could not go on: " + r["finish_error"].dump() + "\n";
        else if (const std::string d = r.value("differs", std::string("?")); !d.empty())
            problems += "in-process: the runs did not finish like an unfaulted run:\n" + d;
        if (sticky) return problems;
        if (r.value("reopened", false)) {
            ++reopened_;
            for (const json& id : r["same_engine"]) panic_ids_.insert(id.get<std::string>());
            if (problems.empty()) ++reopen_recovered_;
        } else {
            ++same_engine_recovered_;
        }
        return problems;
    }

    fs::path self_;
    Tally tally_;
    std::size_t same_engine_recovered_ = 0, reopened_ = 0, reopen_recovered_ = 0;
    std::set<std::string> panic_ids_;
};

// Mounts a small tmpfs for the life of the object; always unmounts.
class TmpfsMount {
public:
    TmpfsMount(const fs::path& dir, const std::string& size) : dir_(dir) {
        fs::create_directories(dir_);
        mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
        if (!mounted_) error_ = std::strerror(errno);
    }
    ~TmpfsMount() {
        if (mounted_ && ::umount2(dir_.c_str(), 0) != 0)
            std::cout << "io_faults: could not unmount " << dir_ << ": " << std::strerror(errno) << std::endl;
    }
    TmpfsMount(const TmpfsMount&) = delete;
    TmpfsMount& operator=(const TmpfsMount&) = delete;
    bool mounted() const { return mounted_; }
    const std::string& error() const { return error_; }

private:
    fs::path dir_;
    bool mounted_ = false;
    std::string error_;
};

void Harness::full_disk() {
    ScratchDir dir("abide-io-faults-disk");
    const fs::path mnt = dir / "tmpfs";
    // 4 MiB, not 2: the filler leaves the same 256 KiB whatever the size, but
    // after it is removed the database must fit what finishing needs. The big
    // runs suspend with their 48 KiB input as the suspend data, so the journal
    // and the event log take it again, beside the input's own record: the file
    // grows by more than a MiB with no reader at all. And LMDB cannot reuse pages
    // freed after the oldest live snapshot, nor ever shrinks the file: when the
    // reader's snapshot lasts across the last commits (a reader descheduled
    // under CPU load) it reaches ~2 MiB, a full 2 MiB tmpfs again, and the
    // retried commits (and a later reopen) failed with EIO. 4 MiB leaves
    // ~1.5 MiB to spare even then.
    TmpfsMount tmpfs(mnt, "4m");
    if (!tmpfs.mounted()) {
        std::cout << "SKIPPED io_faults / full disk: mount -t tmpfs is not permitted here (" << tmpfs.error()
                  << "); counted as neither passed nor failed" << std::endl;
        return;
    }
    const fs::path db = mnt / "db", stop = dir / "stop";
    fs::create_directories(mnt / "world");
    // A second process keeps the database open and reads it throughout.
    Process reader({self_.string(), "reader", db.string(), stop.string(), (dir / "reader.json").string()}, dir / "out");
    const int code = run_to_end(child_argv("full-disk", db, mnt, 7, 3, dir / "result.json"), dir / "out");
    std::ofstream(stop) << "stop";
    const int reader_code = reader.wait_for(60'000);
    std::string problems;
    try {
        const json r = read_json(dir / "result.json");
        if (code != 0) problems += "the host died (exit " + std::to_string(code) + ")\n";
        if (r.contains("unexpected")) problems += "an unexpected failure: " + r["unexpected"].dump() + "\n";
        if (!r.contains("error"))
            problems += "the disk never filled up: no start failed\n";
        else if (!r["error"]["storage_error"].get<bool>() || r["error"]["id"] != "abide.storage.io")
            problems += "the full disk was not reported as abide.storage.io: " + r["error"].dump() + "\n";
        if (!r.value("lost", std::string()).empty()) problems += "committed state lost:\n" + r["lost"].get<std::string>();
        if (const std::string d = r.value("differs", std::string("never finished")); !d.empty())
            problems += "after freeing space the runs did not finish:\n" + d;
        if (problems.empty())
            std::cout << "full disk: " << r["started_before_full"] << " big runs started, then: "
                      << r["error"]["what"].get<std::string>() << std::endl;
    } catch (const std::exception& e) {
        problems += std::string("no result: ") + e.what() + "\n";
    }
    try {
        const json r = read_json(dir / "reader.json");
        if (reader_code != 0 || r.contains("error") || r["reads"].get<int>() == 0)
            problems += "the second process could not read the database throughout: " + r.dump() + "\n";
    } catch (const std::exception& e) {
        problems += std::string("the second process left no result: ") + e.what() + "\n";
    }
    // Reopened by a new process, it reads back whole.
    const int reopen = run_to_end(child_argv("recover", db, mnt / "world", 7, 3, dir / "reopen.json"), dir / "out");
    if (reopen != 0 || read_json(dir / "reopen.json").contains("error"))
        problems += "reopening after the full disk failed: " + read_text(dir / "reopen.json") + "\n";
    tally_.check(problems.empty(), "full disk (tmpfs)", [&] { return problems + tail(dir / "out"); });
}

void Harness::tiny_map(int runs) {
    ScratchDir dir("abide-io-faults-map");
    const fs::path db = dir / "db";
    auto writer = [&](const std::string& me, const std::string& other) {
        return std::make_unique<Process>(std::vector<std::string>{self_.string(), "tiny-map", db.string(),
                                                                  (dir / (me + ".json")).string(), me, other,
                                                                  std::to_string(runs)},
                                         dir / "out");
    };
    auto a = writer("alpha", "beta");
    auto b = writer("beta", "alpha");
    const int code_a = a->wait_for(300'000), code_b = b->wait_for(300'000);
    std::string problems;
    for (const auto& [me, code] : {std::pair{std::string("alpha"), code_a}, std::pair{std::string("beta"), code_b}}) {
        try {
            const json r = read_json(dir / (me + ".json"));
            if (code != 0 || !r.value("ok", false))
                problems += me + " (exit " + std::to_string(code) + "): " + r.dump() + "\n";
            else
                std::cout << "tiny map: " << me << " finished " << runs << " runs, map grew from 64 KiB to "
                          << r["map_bytes"].get<std::uint64_t>() / 1024 << " KiB, saw up to " << r["seen_other"]
                          << " runs of the other process" << std::endl;
        } catch (const std::exception& e) {
            problems += me + " left no result (exit " + std::to_string(code) + "): " + e.what() + "\n";
        }
    }
    tally_.check(problems.empty(), "tiny initial map, two processes", [&] { return problems + tail(dir / "out"); });
}

// The second process of the full-disk case: reads everything until told to stop.
int reader_main(const std::vector<std::string>& a) {
    const fs::path db = a.at(1), stop = a.at(2), result_path = a.at(3);
    json result = {{"reads", 0}};
    try {
        PlanClock clock;
        Engine engine(io_test::engine_options(db, Durability::synced, clock));
        int reads = 0;
        while (!fs::exists(stop)) {
            (void)io_test::snapshot(engine, io_test::Writers::others);
            ++reads;
            ::usleep(2000);
        }
        result["reads"] = reads;
    } catch (const std::exception& e) {
        result["error"] = describe_error(e);
    }
    write_json(result_path, result);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        const std::string mode = args.empty() ? "" : args[0];
        if (mode == "faulted") return faulted_main(ChildArgs(args));
        if (mode == "recover") return recover_main(ChildArgs(args));
        if (mode == "in-process") return in_process_main(ChildArgs(args));
        if (mode == "full-disk") return full_disk_main(ChildArgs(args));
        if (mode == "tiny-map") return tiny_map_main(args);
        if (mode == "reader") return reader_main(args);
        if (!mode.empty()) {
            std::cerr << "usage: io_faults   (the harness; children: faulted, recover, in-process, full-disk, "
                         "tiny-map, reader)\n";
            return 2;
        }
        const std::uint64_t seed = seed_from_env("io_faults");
        Harness harness(fs::canonical("/proc/self/exe"), seed);
        const std::uint64_t plans = env_number("ABIDE_IO_FAULTS_PLANS", 1);
        const int runs = static_cast<int>(env_number("ABIDE_IO_FAULTS_RUNS", 3));
        for (std::uint64_t p = 0; p < plans; ++p) harness.sweep(seed + p, runs);
        harness.calibrate(seed, runs);
        harness.full_disk();
        harness.tiny_map(static_cast<int>(env_number("ABIDE_IO_FAULTS_TINY_RUNS", 150)));
        return harness.finish();
    } catch (const std::exception& e) {
        std::cerr << "io_faults: " << e.what() << "\n";
        return 3;
    }
}
