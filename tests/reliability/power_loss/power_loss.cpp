// Power-loss harness: records every write and sync abide's LMDB file sees
// while the reference workload runs (abide_io_shim, record mode), then builds
// crash images (io_log.hpp: writes before the last sync kept, later ones kept,
// dropped or torn at 512-byte granularity, seeded) and checks each one in a
// child process, because LMDB may crash on a damaged file:
//
//   1. it opens, and every run, trace, event and the stats read back;
//   2. every commit acknowledged before the cut is there: the state the
//      workload read after its last acknowledged call (runs, journals,
//      finished outputs, the event log) and every accepted signal;
//   3. the host can go on: it replays the plan, delivers every signal, polls
//      and moves the clock until every run ends with its expected output.
//
// The workload writes each acknowledgement into the shim's log (abide_io_note)
// right after the engine call returned, so acknowledgements and writes are in
// one ordered stream: an acknowledgement before the cut was given after every
// write of its commit had returned.
//
// Calibration: the same with Durability::unsynced (MDB_NOSYNC) must be
// reported broken (lost acknowledged commits or unreadable images), else the
// harness cannot see a failure and fails itself.
//
// Size: ABIDE_POWER_LOSS_IMAGES (default 1000, synced images), over
// ABIDE_POWER_LOSS_RECORDINGS workload recordings (default 4); the
// calibration checks ABIDE_POWER_LOSS_CALIBRATION images (default 100).
// Long mode: e.g. ABIDE_POWER_LOSS_IMAGES=20000 ABIDE_POWER_LOSS_RECORDINGS=40.
#include "harness.hpp"
#include "io_log.hpp"
#include "workload.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>

namespace {

using namespace abide;
using namespace abide::harness;
using abide::io_test::Plan;
using abide::io_test::PlanClock;

constexpr int runs_per_plan = 9;

// Exit codes of the verify child.
enum VerifyExit : int {
    verified = 0,
    lost_acknowledged = 10,  // an acknowledged commit or signal is missing
    unreadable = 11,         // opening or reading the image failed
    cannot_continue = 12,    // the host could not finish the runs
};

io_test::World world_in(const fs::path& dir) { return {dir / "steps.log", dir / "payments.txt"}; }

Durability parse_durability(const std::string& name) {
    if (name == "synced") return Durability::synced;
    if (name == "meta_unsynced") return Durability::meta_unsynced;
    if (name == "unsynced") return Durability::unsynced;
    throw std::runtime_error("durability must be synced, meta_unsynced or unsynced, not " + name);
}

// ---- child: the workload under the shim ----------------------------------
// argv: workload <db> <synced|meta_unsynced|unsynced> <plan seed> <dir>
int workload_main(const std::vector<std::string>& args) {
    using Note = int (*)(const char*, std::size_t);
    const auto note = reinterpret_cast<Note>(::dlsym(RTLD_DEFAULT, "abide_io_note"));
    if (!note) {
        std::cerr << "workload: abide_io_note not found; run it under abide_io_shim\n";
        return 2;
    }
    const Plan plan = io_test::make_plan(io_test::parse_number(args.at(3)), runs_per_plan);
    PlanClock clock;
    Engine engine(io_test::engine_options(args.at(1), parse_durability(args.at(2)), clock));
    io_test::define_workflows(engine, world_in(args.at(4)));
    for (const io_test::Op& op : plan.ops) {
        const auto outcome = io_test::apply(engine, clock, op);
        // The call returned: acknowledge it, with the state it left (read-only,
        // so the note adds no write between the call and its acknowledgement).
        json ack = {{"op", op.describe()}, {"state", io_test::snapshot(engine)}};
        if (outcome && (*outcome == SignalOutcome::delivered || *outcome == SignalOutcome::buffered))
            ack["signal"] = {{"run", op.run}, {"name", op.name}, {"id", op.id},
                             {"resume", op.kind == io_test::Op::Kind::resume}, {"payload", op.payload}};
        const std::string text = ack.dump();
        if (note(text.data(), text.size()) != 0) return 2;
    }
    return 0;
}

// ---- child: one crash image --------------------------------------------------
// argv: verify <image> <expectations.json> <plan seed> <dir>
int verify_main(const std::vector<std::string>& args) {
    const json expected = json::parse(read_text(args.at(2)));
    const Plan plan = io_test::make_plan(io_test::parse_number(args.at(3)), runs_per_plan);
    PlanClock clock;
    std::unique_ptr<Engine> engine;
    json state;
    try {
        // Unsynced: the image is a scratch copy, and continuing must be quick.
        engine = std::make_unique<Engine>(io_test::engine_options(args.at(1), Durability::unsynced, clock));
        io_test::define_workflows(*engine, world_in(args.at(4)));
        state = io_test::snapshot(*engine);
    } catch (const std::exception& e) {
        std::cout << "unreadable: " << e.what() << "\n";
        return unreadable;
    }
    if (!expected["state"].is_null()) {
        if (const std::string missing = io_test::missing_from(expected["state"], state); !missing.empty()) {
            std::cout << "lost acknowledged commits (after '" << expected["op"].get<std::string>() << "'):\n"
                      << missing;
            return lost_acknowledged;
        }
    }
    try {
        for (const json& s : expected["signals"]) {
            const std::string payload = s["payload"].dump();
            const SignalResult r = s["resume"].get<bool>()
                                       ? engine->resume(s["run"].get<std::string>(), s["name"].get<std::string>(),
                                                        payload, s["id"].get<std::string>())
                                       : engine->signal(s["run"].get<std::string>(), s["name"].get<std::string>(),
                                                        payload, s["id"].get<std::string>());
            if (r.accepted()) {
                std::cout << "lost acknowledged signal " << s.dump() << ": sent again it was "
                          << to_string(r.outcome) << "\n";
                return lost_acknowledged;
            }
        }
        if (const std::string differs = io_test::finish_plan(*engine, clock, plan); !differs.empty()) {
            std::cout << "cannot finish the runs:\n" << differs;
            return cannot_continue;
        }
        (void)io_test::snapshot(*engine);
    } catch (const std::exception& e) {
        std::cout << "cannot continue: " << e.what() << "\n";
        return cannot_continue;
    }
    return verified;
}

// ---- the harness -------------------------------------------------------------

struct Recording {
    std::vector<io_log::Record> records;
    fs::path dir;
};

// Runs the workload under the shim in record mode; throws if it fails.
Recording record_workload(const fs::path& self, const ScratchDir& scratch, const std::string& name,
                          const std::string& durability, std::uint64_t plan_seed) {
    Recording rec;
    rec.dir = scratch / name;
    fs::create_directories(rec.dir);
    const fs::path db = rec.dir / "workload.db", log = rec.dir / "io.log", out = rec.dir / "workload.out";
    const int code = run_to_end(
        {self.string(), "workload", db.string(), durability, std::to_string(plan_seed), rec.dir.string()},
        out, io_test::shim_environment(ABIDE_IO_SHIM_PATH, db, "ABIDE_IO_RECORD=" + log.string()), 120'000);
    if (code != 0)
        throw std::runtime_error("the workload " + name + " exited with " + std::to_string(code) + ":\n" + tail(out));
    rec.records = io_log::read_log(log);
    return rec;
}

// What the image must hold: the last acknowledgement before the cut and the
// signals accepted up to there.
json expectations(const std::vector<io_log::Record>& records, std::size_t cut) {
    json expected = {{"op", ""}, {"state", nullptr}, {"signals", json::array()}};
    for (std::size_t i = 0; i < cut; ++i) {
        if (records[i].type != io_log::RecordType::note) continue;
        json ack = json::parse(records[i].payload);
        expected["op"] = ack["op"];
        expected["state"] = std::move(ack["state"]);
        if (ack.contains("signal")) expected["signals"].push_back(ack["signal"]);
    }
    return expected;
}

struct Tallies {
    std::size_t images = 0, verified = 0, lost = 0, unreadable = 0, crashed = 0, stuck = 0;
    std::size_t durable = 0, kept = 0, dropped = 0, torn = 0;
    std::string first_failure;
    bool broken() const { return lost + unreadable + crashed + stuck > 0; }
};

// One image being verified by a child.
struct PendingImage {
    std::unique_ptr<Process> child;
    fs::path image, expect, log;
    std::string name;
};

// Verifies `count` crash images of `rec`, two children at a time. Calls
// on_result(name, exit code, child output) for each.
template <class OnResult>
void verify_images(const fs::path& self, const Recording& rec, std::uint64_t plan_seed, std::size_t count,
                   std::mt19937_64& rng, Tallies& tallies, OnResult&& on_result) {
    std::deque<PendingImage> pending;
    auto reap_oldest = [&] {
        PendingImage p = std::move(pending.front());
        pending.pop_front();
        const int code = p.child->wait_for(60'000);
        on_result(p.name, code, read_text(p.log));
        fs::remove(p.image);
        fs::remove(fs::path(p.image.string() + "-lock"));
        fs::remove(p.expect);
        fs::remove(p.log);
    };
    const std::size_t positions = rec.records.size() + 1;
    // Before the file got its name, the Engine constructor was creating it.
    std::size_t created = rec.records.size();
    for (std::size_t i = 0; i < rec.records.size() && created == rec.records.size(); ++i)
        if (rec.records[i].type == io_log::RecordType::created) created = i;
    for (std::size_t k = 0; k < count; ++k) {
        // Stratified over the log, so every stretch of it is cut somewhere.
        const std::size_t cut = std::min(rec.records.size(), k * positions / count + rng() % (positions / count + 1));
        const io_log::CrashImage image = io_log::build_crash_image(rec.records, cut, rng);
        tallies.durable += image.durable;
        tallies.kept += image.kept;
        tallies.dropped += image.dropped;
        tallies.torn += image.torn;
        PendingImage p;
        p.name = rec.dir.filename().string() + " cut " + std::to_string(cut) + "/" + std::to_string(rec.records.size()) +
                 " (durable " + std::to_string(image.durable) + ", kept " + std::to_string(image.kept) + ", dropped " +
                 std::to_string(image.dropped) + ", torn " + std::to_string(image.torn) + ")" +
                 (cut <= created ? " [cut while the Engine constructor was creating the file]" : "");
        p.image = rec.dir / ("image-" + std::to_string(k) + ".db");
        p.expect = rec.dir / ("image-" + std::to_string(k) + ".json");
        p.log = rec.dir / ("image-" + std::to_string(k) + ".out");
        if (image.exists) std::ofstream(p.image, std::ios::binary) << image.bytes;
        std::ofstream(p.expect) << expectations(rec.records, cut).dump();
        // Step bodies the continuing host runs leave marks in a scratch world.
        const fs::path world = rec.dir / ("world-" + std::to_string(k % 2));
        fs::create_directories(world);
        p.child = std::make_unique<Process>(std::vector<std::string>{self.string(), "verify", p.image.string(),
                                                                     p.expect.string(), std::to_string(plan_seed),
                                                                     world.string()},
                                            p.log);
        pending.push_back(std::move(p));
        ++tallies.images;
        if (pending.size() >= 2) reap_oldest();
    }
    while (!pending.empty()) reap_oldest();
}

void classify(Tallies& t, int code, const std::string& name, const std::string& output) {
    switch (code) {
        case verified: ++t.verified; return;
        case lost_acknowledged: ++t.lost; break;
        case unreadable: ++t.unreadable; break;
        case cannot_continue: ++t.stuck; break;
        default: ++t.crashed; break;  // a signal (LMDB assertion, segfault) or a hang
    }
    if (t.first_failure.empty()) t.first_failure = name + " (exit " + std::to_string(code) + "): " + output;
}

void print_tallies(const std::string& what, const Tallies& t) {
    std::cout << what << ": " << t.images << " images, " << t.verified << " verified, " << t.lost
              << " lost acknowledged commits, " << t.unreadable << " unreadable, " << t.crashed
              << " crashed the reader, " << t.stuck << " could not continue; unsynced writes kept " << t.kept
              << ", dropped " << t.dropped << ", torn " << t.torn << std::endl;
}

int harness_main(const fs::path& self) {
    const std::uint64_t seed = seed_from_env("power_loss");
    const std::size_t images = env_number("ABIDE_POWER_LOSS_IMAGES", 1000);
    const std::size_t recordings = std::max<std::uint64_t>(1, env_number("ABIDE_POWER_LOSS_RECORDINGS", 4));
    const std::size_t calibration_images = env_number("ABIDE_POWER_LOSS_CALIBRATION", 100);
    // For experiments only: another durability for the main images (e.g.
    // meta_unsynced, which must then fail).
    const char* durability_env = std::getenv("ABIDE_POWER_LOSS_DURABILITY");
    const std::string durability = durability_env && *durability_env ? durability_env : "synced";
    Tally tally("power_loss", seed);
    ScratchDir scratch("abide-power-loss");
    std::mt19937_64 rng(seed);

    Tallies synced;
    for (std::size_t r = 0; r < recordings; ++r) {
        const std::uint64_t plan_seed = seed + r;
        const Recording rec = record_workload(self, scratch, durability + "-" + std::to_string(r), durability, plan_seed);
        const auto counts = io_log::count_calls(rec.records);
        std::cout << "recording " << r << ": " << rec.records.size() << " records, " << counts.writes << " writes ("
                  << counts.synced_writes << " O_DSYNC), " << counts.syncs << " syncs" << std::endl;
        const std::size_t share = images / recordings + (r < images % recordings ? 1 : 0);
        verify_images(self, rec, plan_seed, share, rng, synced,
                      [&](const std::string& name, int code, const std::string& output) {
                          classify(synced, code, name, output);
                          tally.check(code == verified, name, [&] { return output; });
                      });
    }
    print_tallies(durability + " (abide's default is synced)", synced);

    // Calibration: the harness must see MDB_NOSYNC lose data.
    Tallies nosync;
    const Recording rec = record_workload(self, scratch, "unsynced", "unsynced", seed);
    verify_images(self, rec, seed, calibration_images, rng, nosync,
                  [&](const std::string& name, int code, const std::string& output) {
                      classify(nosync, code, name, output);
                  });
    print_tallies("calibration, Durability::unsynced (must be broken)", nosync);
    tally.check(nosync.broken(), "calibration", [&] {
        return "with Durability::unsynced (MDB_NOSYNC) every crash image verified: the harness cannot see "
               "lost commits";
    });
    if (nosync.broken()) std::cout << "calibration: first failure seen: " << nosync.first_failure.substr(0, 800) << "\n";
    return tally.finish();
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (!args.empty() && args[0] == "workload") return workload_main(args);
        if (!args.empty() && args[0] == "verify") return verify_main(args);
        if (!args.empty()) {
            std::cerr << "usage: power_loss   (the harness; children: workload, verify)\n";
            return 2;
        }
        return harness_main(fs::canonical("/proc/self/exe"));
    } catch (const std::exception& e) {
        std::cerr << "power_loss: " << e.what() << "\n";
        return 3;
    }
}
