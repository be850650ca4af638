// The file format guard: newer formats are refused untouched, and a damaged
// record is reported for its run while the other runs go on.
#include "bytes.hpp"
#include "lmdb_support.hpp"
#include "records.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <lmdb.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>

using namespace abide;
using namespace std::chrono_literals;

namespace {

std::string file_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

using test::change_table;

void edit_value(const std::filesystem::path& db, const char* table, std::string_view key,
                const std::function<void(std::string&)>& edit) {
    change_table(db, table, [&](MDB_txn* txn, MDB_dbi dbi) {
        MDB_val k{key.size(), const_cast<char*>(key.data())}, v{};
        REQUIRE(mdb_get(txn, dbi, &k, &v) == 0);
        std::string value(static_cast<const char*>(v.mv_data), v.mv_size);
        edit(value);
        MDB_val nv{value.size(), value.data()};
        REQUIRE(mdb_put(txn, dbi, &k, &nv, 0) == 0);
    });
}

/// Moves the first entry whose key starts with `prefix` to the key `edit`
/// makes of its key, value unchanged: a damaged key.
void edit_key(const std::filesystem::path& db, const char* table, std::string_view prefix,
              const std::function<void(std::string&)>& edit) {
    change_table(db, table, [&](MDB_txn* txn, MDB_dbi dbi) {
        MDB_cursor* cursor = nullptr;
        REQUIRE(mdb_cursor_open(txn, dbi, &cursor) == 0);
        MDB_val k{prefix.size(), const_cast<char*>(prefix.data())}, v{};
        REQUIRE(mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE) == 0);
        std::string key(static_cast<const char*>(k.mv_data), k.mv_size);
        REQUIRE(key.starts_with(prefix));
        const std::string value(static_cast<const char*>(v.mv_data), v.mv_size);
        REQUIRE(mdb_cursor_del(cursor, 0) == 0);
        mdb_cursor_close(cursor);
        edit(key);
        MDB_val nk{key.size(), key.data()}, nv{value.size(), const_cast<char*>(value.data())};
        REQUIRE(mdb_put(txn, dbi, &nk, &nv, 0) == 0);
    });
}

std::string be64(std::uint64_t v) {
    std::string k;
    for (int shift = 56; shift >= 0; shift -= 8) k.push_back(static_cast<char>((v >> shift) & 0xff));
    return k;
}

void define_approval(Engine& engine) {
    engine
        .define("approval",
                [](Context& ctx, const std::string& who) {
                    auto d = ctx.wait_for_signal<test::Decision>("decision", 24h);
                    return d ? who + ": " + d->status : who + ": timed out";
                })
        .signal<test::Decision>("decision");
}

/// Runs "first" (#1, input "a") and, with `two`, "second" (#2, input "b"),
/// each waiting for a decision.
void park_runs(const test::TempDir& dir, const test::ManualClock& clock, bool two) {
    Engine engine(test::test_options(dir, clock));
    define_approval(engine);
    (void)engine.start("approval", std::string("a"), StartOptions{.run_id = "first"});
    if (two) (void)engine.start("approval", std::string("b"), StartOptions{.run_id = "second"});
    engine.poll();
}
void park_one_run(const test::TempDir& dir, const test::ManualClock& clock) { park_runs(dir, clock, false); }
void park_two_runs(const test::TempDir& dir, const test::ManualClock& clock) { park_runs(dir, clock, true); }

}  // namespace

TEST_CASE("a database of a newer or older format is refused and left untouched", "[storage][format]") {
    test::TempDir dir;
    test::ManualClock clock;
    {
        Engine engine(test::test_options(dir, clock));
        define_approval(engine);
        (void)engine.start("approval", std::string("a"));
    }
    // Formats 2 and later are upgraded in place (see the next test); format 1 is refused.
    const auto [version, id, advice] = GENERATE(table<unsigned, std::string, std::string>(
        {{journal_format_version + 1, "abide.storage.newer_format", "upgrade abide"},
         {1, "abide.storage.older_format", "Finish its runs with the build that wrote it"}}));
    edit_value(dir.db(), "meta", "format", [version = version](std::string& v) { v.back() = static_cast<char>(version); });
    const std::string before = file_bytes(dir.db());
    try {
        Engine engine(test::test_options(dir, clock));
        FAIL("a database of format " << version << " was opened");
    } catch (const FormatError& e) {
        CHECK(e.id() == id);
        CHECK_THAT(e.what(), Catch::Contains(advice));
    }
    CHECK(file_bytes(dir.db()) == before);
}

namespace {

std::string status_key(RunStatus status, std::uint64_t run) { return std::string(1, static_cast<char>(status)) + be64(run); }

/// Adds a by_status entry, as format 2 kept for ready and running runs.
void add_status_entry(const std::filesystem::path& db, RunStatus status, std::uint64_t run) {
    change_table(db, "by_status", [&](MDB_txn* txn, MDB_dbi dbi) {
        const std::string key = status_key(status, run);
        std::string workflow = "approval";
        MDB_val k{key.size(), const_cast<char*>(key.data())}, v{workflow.size(), workflow.data()};
        REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
    });
}

bool has_status_entry(const std::filesystem::path& db, RunStatus status, std::uint64_t run) {
    bool found = false;
    change_table(db, "by_status", [&](MDB_txn* txn, MDB_dbi dbi) {
        const std::string key = status_key(status, run);
        MDB_val k{key.size(), const_cast<char*>(key.data())}, v{};
        found = mdb_get(txn, dbi, &k, &v) == 0;
    });
    return found;
}

std::uint32_t format_of(const std::filesystem::path& db) {
    std::uint32_t version = 0;
    edit_value(db, "meta", "format", [&](std::string& v) {
        for (std::size_t i = v.size() - 4; i < v.size(); ++i) version = (version << 8) | static_cast<unsigned char>(v[i]);
    });
    return version;
}

}  // namespace

namespace {

std::string raw_value(const std::filesystem::path& db, const char* table, const std::string& key) {
    std::string value;
    change_table(db, table, [&](MDB_txn* txn, MDB_dbi dbi) {
        MDB_val k{key.size(), const_cast<char*>(key.data())}, v{};
        REQUIRE(mdb_get(txn, dbi, &k, &v) == 0);
        value.assign(static_cast<const char*>(v.mv_data), v.mv_size);
    });
    return value;
}

/// Two steps, then a wait; its output adds up what the steps saw of the input.
void define_sizes(Engine& engine) {
    engine
        .define("sizes",
                [](Context& ctx, const std::string& doc) {
                    const auto a = ctx.step("a", [&] { return doc.size(); });
                    const auto b = ctx.step("b", [&] { return doc.size() + 1; });
                    auto d = ctx.wait_for_signal<test::Decision>("decision", 24h);
                    return std::to_string(a + b) + (d ? " " + d->status : " timed out");
                })
        .signal<test::Decision>("decision");
}

/// Makes `db` hold what formats 6 and older wrote: each run's input inside
/// its record, no inputs table (the caller sets the format).
void inline_inputs(const std::filesystem::path& db) {
    std::map<std::uint64_t, std::string> inputs;
    change_table(db, "inputs", [&](MDB_txn* txn, MDB_dbi dbi) {
        MDB_cursor* cursor = nullptr;
        REQUIRE(mdb_cursor_open(txn, dbi, &cursor) == 0);
        MDB_val k{}, v{};
        for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
            const std::uint64_t run = detail::get_be64(std::string_view(static_cast<const char*>(k.mv_data), k.mv_size));
            inputs[run] = detail::decode_run_input({static_cast<const char*>(v.mv_data), v.mv_size}, run);
        }
        mdb_cursor_close(cursor);
        REQUIRE(mdb_drop(txn, dbi, 1) == 0);  // the table goes
    });
    for (const auto& entry : inputs) {
        const std::uint64_t run = entry.first;
        edit_value(db, "runs", be64(run), [&](std::string& v) {
            detail::RunRecord record = detail::decode_run_record(v, run);
            REQUIRE(record.input.empty());
            record.input = entry.second;
            v = detail::encode(record, run);
        });
    }
}

}  // namespace

TEST_CASE("a format 2 to 6 file is upgraded in place by the first engine that opens it", "[storage][format]") {
    test::TempDir dir;
    test::ManualClock clock;
    park_two_runs(dir, clock);  // #1 and #2 wait
    {
        Engine engine(test::test_options(dir, clock));
        define_approval(engine);
        (void)engine.start("approval", std::string("c"), StartOptions{.run_id = "third"});  // #3, ready
    }
    const std::uint32_t old_format = GENERATE(2u, 3u, 4u, 5u, 6u);
    // Format 2 also listed ready and running runs in by_status. (Its events,
    // of an older layout, are read as they are: test_records.cpp.)
    if (old_format == 2) add_status_entry(dir.db(), RunStatus::ready, 3);
    inline_inputs(dir.db());  // as formats before 7 stored them
    edit_value(dir.db(), "meta", "format", [&](std::string& v) { v.back() = static_cast<char>(old_format); });
    REQUIRE(format_of(dir.db()) == old_format);

    // Read-only opens (verify, `abide check`) cannot upgrade: refused, the file unchanged.
    const std::string before = file_bytes(dir.db());
    const VerifyReport refused = verify_database(dir.db());
    CHECK(refused.unreadable);
    CHECK_THAT(refused.to_json().dump(), Catch::Contains("Open it once with an Engine"));
    CHECK(file_bytes(dir.db()) == before);

    {
        Engine engine(test::test_options(dir, clock));
        define_approval(engine);
        CHECK(engine.stats().ready == 1);
        CHECK(engine.stats().waiting == 2);
        CHECK(engine.list_runs({.status = RunStatus::ready}).size() == 1);
        engine.poll();
        CHECK(engine.stats().waiting == 3);
    }
    CHECK(format_of(dir.db()) == journal_format_version);
    CHECK_FALSE(has_status_entry(dir.db(), RunStatus::ready, 3));
    CHECK(has_status_entry(dir.db(), RunStatus::waiting, 3));
    const VerifyReport report = verify_database(dir.db());
    CHECK(report.ok());
}

TEST_CASE("verify reports a ready or running run listed in the status index", "[storage][format][verify]") {
    test::TempDir dir;
    test::ManualClock clock;
    {
        Engine engine(test::test_options(dir, clock));
        define_approval(engine);
        (void)engine.start("approval", std::string("a"), StartOptions{.run_id = "first"});  // #1, ready
    }
    REQUIRE(verify_database(dir.db()).ok());
    CHECK_FALSE(has_status_entry(dir.db(), RunStatus::ready, 1));
    const RunStatus listed = GENERATE(RunStatus::ready, RunStatus::running);
    add_status_entry(dir.db(), listed, 1);
    const VerifyReport report = verify_database(dir.db());
    CHECK_FALSE(report.ok());
    CHECK_THAT(report.to_json().dump(), Catch::Contains("a status only the ready set holds"));
}

/// Every entry of an abide table, key to value (in LMDB's order: bytes, unsigned).
std::map<std::string, std::string> table_entries(const std::filesystem::path& db, const char* table) {
    std::map<std::string, std::string> entries;
    change_table(db, table, [&](MDB_txn* txn, MDB_dbi dbi) {
        MDB_cursor* cursor = nullptr;
        REQUIRE(mdb_cursor_open(txn, dbi, &cursor) == 0);
        MDB_val k{}, v{};
        for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT))
            entries.emplace(std::string(static_cast<const char*>(k.mv_data), k.mv_size),
                            std::string(static_cast<const char*>(v.mv_data), v.mv_size));
        mdb_cursor_close(cursor);
    });
    return entries;
}

/// The keys of the timers table, in order.
std::vector<std::string> timer_keys(const std::filesystem::path& db) {
    std::vector<std::string> keys;
    for (const auto& entry : table_entries(db, "timers")) keys.push_back(entry.first);
    return keys;
}

TEST_CASE("a timer entry that is not its run's wait's own is deleted when due and wakes nothing",
          "[storage][format][timer]") {
    test::TempDir dir;
    test::ManualClock clock;
    park_one_run(dir, clock);
    const std::vector<std::string> own = timer_keys(dir.db());
    REQUIRE(own.size() == 1);  // deadline (be64), run (be64), park entry (be32)
    std::uint64_t deadline = 0;
    for (int i = 0; i < 8; ++i) deadline = deadline << 8 | static_cast<unsigned char>(own[0][i]);
    // Two strays, due an hour before the wait's deadline: the same park
    // entry with another deadline, and the same deadline for another entry.
    std::string other_deadline = be64(deadline - 3'600'000'000) + own[0].substr(8);
    std::string other_entry = other_deadline;
    other_entry.back() = static_cast<char>(other_entry.back() + 5);
    change_table(dir.db(), "timers", [&](MDB_txn* txn, MDB_dbi dbi) {
        for (std::string* key : {&other_deadline, &other_entry}) {
            MDB_val k{key->size(), key->data()}, v{0, nullptr};
            REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
        }
    });
    clock.advance(23h + 30min);  // the strays are due, the wait's own timer is not
    {
        Engine engine(test::test_options(dir, clock));
        define_approval(engine);
        CHECK(engine.poll().timers_fired == 0);
        test::waiting_on(engine, "first", WaitKind::signal, "decision");
    }
    CHECK(timer_keys(dir.db()) == own);
    CHECK(verify_database(dir.db()).ok());
    clock.advance(1h);
    {
        Engine engine(test::test_options(dir, clock));
        define_approval(engine);
        CHECK(engine.poll().timers_fired == 1);
        CHECK(test::completed_output<std::string>(engine, "first") == "a: timed out");
    }
    CHECK(timer_keys(dir.db()).empty());
}

TEST_CASE("a run listed in the ready index that is not ready or has no record is reported, not run",
          "[storage][format]") {
    test::TempDir dir;
    test::ManualClock clock;
    park_two_runs(dir, clock);
    change_table(dir.db(), "ready", [&](MDB_txn* txn, MDB_dbi dbi) {
        for (std::uint64_t run : {1, 7}) {  // #1 "first" waits for a decision; there is no #7
            std::string key = be64(run);
            MDB_val k{key.size(), key.data()}, v{0, nullptr};
            REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
        }
    });
    Engine engine(test::test_options(dir, clock));
    define_approval(engine);
    const PollResult r = engine.poll();
    CHECK(r.runs_advanced == 0);
    REQUIRE(r.problems.size() == 2);
    CHECK_THAT(r.problems[0], Catch::Contains("'first'") && Catch::Contains("is in the ready set but is waiting") &&
                                  Catch::Contains("abide check"));
    CHECK_THAT(r.problems[1], Catch::Contains("run #7 is in the ready set but has no record") &&
                                  Catch::Contains("abide check"));
    test::waiting_on(engine, "first", WaitKind::signal, "decision");
    test::waiting_on(engine, "second", WaitKind::signal, "decision");
}

TEST_CASE("starting an id whose index names a missing record is refused as damage; the batch's other starts are made",
          "[storage][format][start]") {
    test::TempDir dir;
    test::ManualClock clock;
    park_one_run(dir, clock);
    change_table(dir.db(), "run_ids", [&](MDB_txn* txn, MDB_dbi dbi) {
        const std::string id = "ghost", number = be64(7);  // there is no run #7
        MDB_val k{id.size(), const_cast<char*>(id.data())}, v{number.size(), const_cast<char*>(number.data())};
        REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
    });
    Engine engine(test::test_options(dir, clock));
    define_approval(engine);
    const std::vector<StartRequest> starts{{"approval", std::string("g"), StartOptions{.run_id = "ghost"}},
                                           {"approval", std::string("n"), StartOptions{.run_id = "new"}}};
    try {
        (void)engine.start_batch(starts);
        FAIL("the damaged id was started");
    } catch (const FormatError& e) {
        CHECK_THAT(e.what(), Catch::Contains("run 'ghost' is indexed but its record #7 is missing"));
    }
    CHECK_THROWS_AS(engine.status("ghost"), FormatError);  // left as it was
    CHECK(engine.status("new"));
    CHECK(engine.poll().waiting == 1);
    CHECK(engine.list_runs().size() == 2);
}

TEST_CASE("a damaged last key in runs or events makes no run or event number repeat", "[storage][format]") {
    // New runs and events take the number after the last 8-byte key of
    // their table. A damaged last key (9 bytes of 0xff, sorting after every
    // number) is stepped over; the new entries go in below it, and nothing
    // stored before is replaced.
    test::TempDir dir;
    test::ManualClock clock;
    park_one_run(dir, clock);  // run #1 "first", and its events
    const std::map<std::string, std::string> events_before = table_entries(dir.db(), "events");
    const std::string stray(9, '\xff');
    for (const char* table : {"runs", "events"})
        change_table(dir.db(), table, [&](MDB_txn* txn, MDB_dbi dbi) {
            MDB_val k{stray.size(), const_cast<char*>(stray.data())}, v{0, nullptr};
            REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
        });
    {
        Engine engine(test::test_options(dir, clock));
        define_approval(engine);
        (void)engine.start("approval", std::string("b"), StartOptions{.run_id = "second"});
        REQUIRE(engine.signal("first", "decision", test::Decision{"approved", "u1", "ok", 1}).outcome ==
                SignalOutcome::delivered);
        CHECK(engine.poll().completed == 1);
        CHECK(test::completed_output<std::string>(engine, "first") == "a: approved");
        test::waiting_on(engine, "second", WaitKind::signal, "decision");
    }
    const auto runs = table_entries(dir.db(), "runs");
    CHECK(runs.size() == 3);  // #1, #2 and the stray
    CHECK(runs.count(be64(2)) == 1);
    const auto events = table_entries(dir.db(), "events");
    for (const auto& [key, value] : events_before) {
        INFO("event key " << key.size() << " bytes");
        REQUIRE(events.count(key) == 1);
        CHECK(events.at(key) == value);  // not replaced
    }
    CHECK(events.size() > events_before.size() + 1);
    CHECK(events.count(stray) == 1);
}

TEST_CASE("a record under a damaged key fails its checksum, and verify names the run it belonged to",
          "[storage][format][verify]") {
    test::TempDir dir;
    test::ManualClock clock;
    park_two_runs(dir, clock);
    {
        Engine engine(test::test_options(dir, clock, 0));
        define_approval(engine);
        REQUIRE(engine.signal("first", "decision", test::approved(), "sig-1").outcome == SignalOutcome::delivered);
        // "first" is ready now, no longer waiting: a second decision is buffered.
        REQUIRE(engine.signal("first", "decision", test::approved(), "sig-2").outcome == SignalOutcome::buffered);
    }
    REQUIRE(verify_database(dir.db()).ok());

    std::vector<std::string> named;
    SECTION("the run number in a signal id's key") {
        edit_key(dir.db(), "signal_ids", be64(1) + "sig-1", [](std::string& k) { k[7] = 9; });
        named = {"first", "#9"};
    }
    SECTION("the id in a signal id's key") {
        edit_key(dir.db(), "signal_ids", be64(1) + "sig-1", [](std::string& k) { k.back() = '7'; });
        named = {"first"};
    }
    SECTION("the kind byte of a buffered signal's key") {
        edit_key(dir.db(), "inbox", be64(1), [](std::string& k) { k[8] = static_cast<char>(WaitKind::suspend); });
        named = {"first"};
    }
    const VerifyReport report = verify_database(dir.db());
    INFO(report.to_json().dump());
    std::vector<std::string> damaged = report.damaged_runs;
    std::sort(damaged.begin(), damaged.end());
    std::sort(named.begin(), named.end());
    CHECK(damaged == named);
    REQUIRE_FALSE(report.problems.empty());
    CHECK_THAT(report.problems.front(), Catch::Contains("checksum mismatch"));
}

TEST_CASE("a damaged run record is reported for that run while other runs complete", "[storage][format]") {
    test::TempDir dir;
    test::ManualClock clock;
    park_two_runs(dir, clock);
    // Run numbers follow creation order: "first" is #1. Flip one byte of its
    // record (not the checksum), as a failing disk would.
    edit_value(dir.db(), "runs", be64(1), [](std::string& v) { v[v.size() / 2] ^= 0x5a; });

    Engine engine(test::test_options(dir, clock, 0));
    define_approval(engine);
    try {
        (void)engine.status("first");
        FAIL("a damaged record was decoded");
    } catch (const FormatError& e) {
        CHECK(e.id() == "abide.storage.corrupt");
        CHECK_THAT(e.what(), Catch::Contains("run record #1") && Catch::Contains("checksum"));
    }
    CHECK_THROWS_AS(engine.signal("first", "decision", test::approved()), FormatError);

    REQUIRE(engine.signal("second", "decision", test::approved()).outcome == SignalOutcome::delivered);
    auto polled = engine.poll();
    CHECK(polled.completed == 1);
    CHECK(polled.problems.empty());
    CHECK(engine.result<std::string>("second") == "b: approved");
}

TEST_CASE("a damaged journal entry is reported by poll and the other runs go on", "[storage][format]") {
    test::TempDir dir;
    test::ManualClock clock;
    park_two_runs(dir, clock);
    // Run #1's first journal entry is its wait.
    edit_value(dir.db(), "journal", be64(1) + std::string(4, '\0'), [](std::string& v) { v[2] ^= 0x01; });

    Engine engine(test::test_options(dir, clock, 0));
    define_approval(engine);
    REQUIRE(engine.signal("first", "decision", test::approved()).outcome == SignalOutcome::delivered);
    REQUIRE(engine.signal("second", "decision", test::approved()).outcome == SignalOutcome::delivered);
    auto polled = engine.poll();
    CHECK(polled.completed == 1);
    REQUIRE(polled.problems.size() == 1);
    CHECK_THAT(polled.problems[0], Catch::Contains("journal entry 0 of run #1") && Catch::Contains("damaged"));
    CHECK(engine.result<std::string>("second") == "b: approved");
    CHECK(test::status_of(engine, "first") == RunStatus::ready);  // left as it was, for an operator
}

TEST_CASE("verify_database finds a sound file sound and names the runs a damaged file harms", "[storage][format][verify]") {
    test::TempDir dir;
    test::ManualClock clock;
    park_two_runs(dir, clock);
    const std::string before = file_bytes(dir.db());
    VerifyReport sound = verify_database(dir.db());
    INFO(sound.to_json().dump());
    CHECK(sound.ok());
    CHECK(sound.runs == 2);
    CHECK(sound.journal_entries == 2);
    CHECK(sound.events > 0);

    edit_value(dir.db(), "journal", be64(1) + std::string(4, '\0'), [](std::string& v) { v[2] ^= 0x01; });
    VerifyReport damaged = verify_database(dir.db());
    INFO(damaged.to_json().dump());
    CHECK_FALSE(damaged.ok());
    CHECK(damaged.damaged_runs == std::vector<std::string>{"first"});
    // The entry, and the park event that refers to it for its name and data.
    REQUIRE(damaged.problems.size() == 2);
    CHECK_THAT(damaged.problems[0], Catch::Contains("run 'first' (#1)") && Catch::Contains("checksum"));
    CHECK_THAT(damaged.problems[1], Catch::Contains("run 'first' (#1): its event") && Catch::Contains("checksum"));

    // An index that disagrees with its run is found too: drop run #2 from the
    // waits index, as a lost write would.
    change_table(dir.db(), "waits", [](MDB_txn* txn, MDB_dbi dbi) {
        std::string key = std::string("decision") + '\0' + be64(2);
        MDB_val k{key.size(), key.data()};
        REQUIRE(mdb_del(txn, dbi, &k, nullptr) == 0);
    });
    VerifyReport both = verify_database(dir.db());
    CHECK(both.damaged_runs == std::vector<std::string>{"first", "second"});
    CHECK(std::count_if(both.problems.begin(), both.problems.end(), [](const std::string& p) {
              return p.find("run 'second' (#2): missing from the waits index") != std::string::npos;
          }) == 1);
    (void)before;
}

TEST_CASE("verify_database reports missing, foreign and mangled files without touching them", "[storage][format][verify]") {
    test::TempDir dir;
    CHECK_THAT(verify_database(dir.path() / "none.db").problems.at(0), Catch::Contains("does not exist"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "none.db"));

    const auto text = dir.path() / "notes.txt";
    std::ofstream(text) << std::string(20000, 'x');
    const VerifyReport foreign = verify_database(text);
    REQUIRE_FALSE(foreign.ok());
    CHECK(file_bytes(text) == std::string(20000, 'x'));

    // Every page's header mangled: LMDB cannot read it; the check says so
    // (from its child process) instead of crashing this one.
    test::ManualClock clock;
    park_two_runs(dir, clock);
    std::string bytes = file_bytes(dir.db());
    for (std::size_t page = 0; page * 4096 < bytes.size(); ++page)
        for (std::size_t i = 0; i < 64 && page * 4096 + i < bytes.size(); ++i) bytes[page * 4096 + i] = '\x5a';
    std::ofstream(dir.db(), std::ios::binary | std::ios::trunc) << bytes;
    const VerifyReport mangled = verify_database(dir.db());
    INFO(mangled.to_json().dump());
    REQUIRE_FALSE(mangled.ok());
    CHECK(file_bytes(dir.db()) == bytes);
}


TEST_CASE("a run's input is stored once, apart from the record each step rewrites", "[storage][format]") {
    test::TempDir dir;
    test::ManualClock clock;
    const std::string doc(100 * 1024, 'x');
    {
        Engine engine(test::test_options(dir, clock));
        define_sizes(engine);
        (void)engine.start("sizes", doc, StartOptions{.run_id = "big"});
        engine.poll();
        REQUIRE(engine.status("big")->status == RunStatus::waiting);
    }
    // The record, rewritten at the start, at each step and at the wait,
    // holds none of the input's 100 KiB; the input was stored once.
    const std::string record = raw_value(dir.db(), "runs", be64(1));
    CHECK(record.size() < 256);
    CHECK(record[0] == detail::run_record_version);
    CHECK(raw_value(dir.db(), "inputs", be64(1)).size() > doc.size());
    // Another engine, with nothing cached, replays the run from the stored input.
    {
        Engine engine(test::test_options(dir, clock));
        define_sizes(engine);
        CHECK(engine.status("big")->input == json(doc));
        REQUIRE(engine.signal("big", "decision", test::approved()).outcome == SignalOutcome::delivered);
        engine.poll();
        CHECK(engine.result<std::string>("big") == std::to_string(2 * doc.size() + 1) + " approved");
    }
    const VerifyReport report = verify_database(dir.db());
    INFO(report.to_json().dump());
    CHECK(report.ok());
}

TEST_CASE("runs of a format 6 file keep their input in their record and go on after the upgrade", "[storage][format]") {
    test::TempDir dir;
    test::ManualClock clock;
    {
        Engine engine(test::test_options(dir, clock));
        define_sizes(engine);
        (void)engine.start("sizes", std::string("abc"), StartOptions{.run_id = "old"});
        engine.poll();
    }
    inline_inputs(dir.db());
    edit_value(dir.db(), "meta", "format", [](std::string& v) { v.back() = 6; });
    {
        Engine engine(test::test_options(dir, clock));
        define_sizes(engine);
        CHECK(engine.status("old")->input == json("abc"));
        (void)engine.start("sizes", std::string("defgh"), StartOptions{.run_id = "new"});
        engine.poll();
        REQUIRE(engine.signal("old", "decision", test::approved()).outcome == SignalOutcome::delivered);
        REQUIRE(engine.signal("new", "decision", test::approved()).outcome == SignalOutcome::delivered);
        engine.poll();
        CHECK(engine.result<std::string>("old") == "7 approved");
        CHECK(engine.result<std::string>("new") == "11 approved");
    }
    CHECK(format_of(dir.db()) == journal_format_version);
    // The old run's record keeps its input, and layout 2, through its steps;
    // the new run's record has none (layout 3, which older builds refuse).
    const std::string old_record = raw_value(dir.db(), "runs", be64(1));
    CHECK(old_record[0] == detail::record_version);
    CHECK_FALSE(detail::decode_run_record(old_record, 1).input.empty());
    const std::string new_record = raw_value(dir.db(), "runs", be64(2));
    CHECK(new_record[0] == detail::run_record_version);
    CHECK(detail::decode_run_record(new_record, 2).input.empty());
    const VerifyReport report = verify_database(dir.db());
    INFO(report.to_json().dump());
    CHECK(report.ok());
}

TEST_CASE("a run whose stored input is missing or damaged is reported and not run; the others go on",
          "[storage][format][verify]") {
    test::TempDir dir;
    test::ManualClock clock;
    {
        Engine engine(test::test_options(dir, clock));
        define_sizes(engine);
        (void)engine.start("sizes", std::string("first input"), StartOptions{.run_id = "first"});
        (void)engine.start("sizes", std::string("second input"), StartOptions{.run_id = "second"});
    }
    const bool missing = GENERATE(true, false);
    if (missing)
        change_table(dir.db(), "inputs", [](MDB_txn* txn, MDB_dbi dbi) {
            const std::string key = be64(1);
            MDB_val k{key.size(), const_cast<char*>(key.data())};
            REQUIRE(mdb_del(txn, dbi, &k, nullptr) == 0);
        });
    else
        edit_value(dir.db(), "inputs", be64(1), [](std::string& v) { v[v.size() / 2] ^= 0x20; });

    const VerifyReport report = verify_database(dir.db());
    INFO(report.to_json().dump());
    CHECK(report.damaged_runs == std::vector<std::string>{"first"});
    REQUIRE(report.problems.size() == 1);
    CHECK_THAT(report.problems[0],
               Catch::Contains("run 'first' (#1)") &&
                   Catch::Contains(missing ? "its input is missing from the inputs table" : "checksum"));

    Engine engine(test::test_options(dir, clock));
    define_sizes(engine);
    const PollResult polled = engine.poll();
    REQUIRE(polled.problems.size() == 1);
    CHECK_THAT(polled.problems[0], Catch::Contains(missing ? "has no input record" : "checksum"));
    CHECK(engine.status("second")->status == RunStatus::waiting);
    // Its record is sound and says ready; what status() would show of it is not.
    CHECK(engine.stats().ready == 1);
    CHECK_THROWS_WITH(engine.status("first"), Catch::Contains(missing ? "has no input record" : "checksum"));
}

TEST_CASE("a format 7 file without its inputs table is refused as damaged and left untouched", "[storage][format]") {
    test::TempDir dir;
    test::ManualClock clock;
    park_one_run(dir, clock);
    change_table(dir.db(), "inputs", [](MDB_txn* txn, MDB_dbi dbi) { REQUIRE(mdb_drop(txn, dbi, 1) == 0); });
    const std::string before = file_bytes(dir.db());
    CHECK_THROWS_WITH(Engine(test::test_options(dir, clock)), Catch::Contains("lacks its 'inputs' table"));
    const VerifyReport report = verify_database(dir.db());
    CHECK(report.unreadable);
    CHECK_THAT(report.to_json().dump(), Catch::Contains("lacks its 'inputs' table"));
    CHECK(file_bytes(dir.db()) == before);
}
