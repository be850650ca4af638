// Stored record layouts (the ones older files hold too), and what verify
// makes of records that disagree with each other.
#include "bytes.hpp"
#include "keys.hpp"
#include "lmdb_support.hpp"
#include "records.hpp"
#include "reliability/fuzz/stored_json_oracle.hpp"
#include "storage.hpp"
#include "support.hpp"

#include <abide/abide.hpp>
#include <abide/errors.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace abide;
using namespace abide::detail;

namespace {

constexpr std::uint64_t seq = 41;
constexpr std::uint64_t run = 7;
constexpr std::int64_t at_us = 1'790'000'000'000'000;

constexpr std::int64_t run_created_us = at_us - 5'000'000;

/// Run 7 and, as its journal entry 2, a wait for "approve" with metadata.
EventSources sources_of_run_7() {
    EventSources s;
    s.run = [](std::uint64_t number) {
        if (number != run) throw FormatError("abide.storage.corrupt", "no such run");
        return RunFacts{"refund-T-1001", "refund_review", run_created_us};
    };
    s.entry = [](std::uint64_t number, std::uint32_t entry, std::int64_t created) {
        if (number != run || entry != 2 || created != run_created_us)
            throw FormatError("abide.storage.corrupt", "no such entry");
        JournalEntry e;
        e.kind = EntryKind::wait;
        e.wait_kind = WaitKind::suspend;
        e.name = "approve";
        e.value = R"({"amount":4900})";
        e.started_us = e.finished_us = at_us;
        e.deadline_us = at_us + 3'600'000'000;
        return e;
    };
    return s;
}

EventSources no_lookups() {
    EventSources s;
    s.run = [](std::uint64_t) -> RunFacts {
        FAIL("a layout 2 event looked its run up");
        return {};
    };
    s.entry = [](std::uint64_t, std::uint32_t, std::int64_t) -> JournalEntry {
        FAIL("a layout 2 event looked an entry up");
        return {};
    };
    return s;
}

Event suspended_event() {
    Event e;
    e.type = EventType::suspended;
    e.at = from_micros(at_us);
    e.run_id = "refund-T-1001";
    e.workflow = "refund_review";
    e.name = "approve";
    e.topic = "approve/refund-T-1001";
    e.data = json{{"amount", 4900}};
    e.deadline = from_micros(at_us + 3'600'000'000);
    return e;
}

void check_same(const Event& got, const Event& want) {
    CHECK(got.seq == seq);
    CHECK(got.type == want.type);
    CHECK(got.at == want.at);
    CHECK(got.run_id == want.run_id);
    CHECK(got.workflow == want.workflow);
    CHECK(got.name == want.name);
    CHECK(got.topic == want.topic);
    CHECK(got.data == want.data);
    CHECK(got.deadline == want.deadline);
}

}  // namespace

TEST_CASE("an event names its run by number, and decodes with the run's id and workflow", "[storage][records]") {
    const Event e = suspended_event();
    const std::string bytes = encode_event(e, {run, run_created_us}, seq);
    CHECK(bytes.find("refund-T-1001") == std::string::npos);  // neither the id nor the topic is stored
    CHECK(bytes.find("refund_review") == std::string::npos);
    std::uint64_t number = 0;
    check_same(decode_event(bytes, seq, sources_of_run_7(), &number), e);
    CHECK(number == run);

    // The run's names come from its record: an event of a missing run is an error.
    const std::string other = encode_event(e, {run + 1, run_created_us}, seq);
    CHECK_THROWS_AS(decode_event(other, seq, sources_of_run_7()), FormatError);
}

TEST_CASE("an event further from its run's creation than a time can span is stored as it was read",
          "[storage][records]") {
    // An event is stored relative to its run's creation. A damaged or foreign
    // record can hold an absolute time so far from it that the difference is
    // no representable time; written again, it must still decode.
    Event e = suspended_event();
    e.at = from_micros(-9'000'000'000'000'000);  // near the earliest TimePoint; the run was created in 2026
    const std::string bytes = encode_event(e, {run, run_created_us}, seq);
    check_same(decode_event(bytes, seq, sources_of_run_7()), e);
}

TEST_CASE("a park's event refers to its journal entry for name, deadline and data", "[storage][records]") {
    const Event e = suspended_event();  // as the engine emits it for journal entry 2
    const std::string copied = encode_event(e, {run, run_created_us}, seq);
    const std::string referring = encode_event(e, {run, run_created_us}, seq, {}, FromEntry{2, true});
    check_same(decode_event(referring, seq, sources_of_run_7()), e);
    CHECK(referring.find("approve") == std::string::npos);
    CHECK(referring.size() + e.name.size() + e.data.dump().size() < copied.size());

    // Without `data`, only the name and deadline come from the entry.
    Event step = e;
    step.type = EventType::step_completed;
    step.topic.clear();
    step.data = json{{"note", "own"}};
    check_same(decode_event(encode_event(step, {run, run_created_us}, seq, {}, FromEntry{2, false}), seq,
                            sources_of_run_7()),
               step);

    // Data from an entry needs the entry's number (flag 2 with flag 4): a
    // record with flag 4 alone is damage.
    ByteWriter w(3);
    w.u8(static_cast<std::uint8_t>(EventType::waiting));
    w.svarint(0);
    w.varint(run);
    w.str({});
    w.u8(4);
    w.str({});
    w.svarint(0);
    const std::string orphan = std::move(w).finish(event_key(seq));
    CHECK_THROWS_WITH(decode_event(orphan, seq, sources_of_run_7()), Catch::Contains("does not name"));

    // An entry that cannot be read makes the event unreadable, with a clear error.
    const std::string dangling = encode_event(e, {run, run_created_us}, seq, {}, FromEntry{3, true});
    CHECK_THROWS_WITH(decode_event(dangling, seq, sources_of_run_7()), Catch::Contains("no such entry"));
}

TEST_CASE("an event of layout 2 (a format 2 file) still decodes", "[storage][records]") {
    // Layout 2: the id, workflow and topic as strings.
    const Event e = suspended_event();
    ByteWriter w(2);
    w.u8(static_cast<std::uint8_t>(e.type));
    w.svarint(at_us);
    w.str(e.run_id);
    w.str(e.workflow);
    w.str(e.name);
    w.str(e.topic);
    w.str(e.data.dump());
    w.svarint(at_us + 3'600'000'000);
    const std::string bytes = std::move(w).finish(event_key(seq));
    std::uint64_t number = 99;
    check_same(decode_event(bytes, seq, no_lookups(), &number), e);
    CHECK(number == 0);

    // The layout that replaces it is smaller by the names it no longer repeats.
    CHECK(encode_event(e, {run, run_created_us}, seq).size() + e.run_id.size() + e.workflow.size() < bytes.size());
}

TEST_CASE("an event of an unknown layout is refused", "[storage][records]") {
    ByteWriter w(4);
    w.u8(static_cast<std::uint8_t>(EventType::completed));
    const std::string future = std::move(w).finish(event_key(seq));
    try {
        (void)decode_event(future, seq, sources_of_run_7());
        FAIL("layout 4 decoded");
    } catch (const FormatError& e) {
        CHECK_THAT(e.what(), Catch::Contains("event layout 4"));
    }
}

namespace {

constexpr std::uint32_t entry_seq = 3;
constexpr std::int64_t created_us = at_us - 5'000'000;

JournalEntry wake_entry() {
    JournalEntry e;
    e.kind = EntryKind::wake;
    e.reason = WakeReason::payload;
    e.name = "decision";
    e.value = R"({"status":"approved"})";
    e.signal_id = "approval-42";
    e.started_us = at_us;
    e.finished_us = at_us + 1500;
    return e;
}

JournalEntry retry_entry() {
    JournalEntry e;
    e.kind = EntryKind::step_retry;
    e.name = "charge";
    e.error_type = "Timeout";
    e.error_message = "the gateway did not answer";
    e.attempt = 2;
    e.started_us = at_us;
    e.finished_us = at_us + 250'000;
    e.deadline_us = at_us + 2'000'000;
    return e;
}

void check_same(const JournalEntry& got, const JournalEntry& want) {
    CHECK(got.kind == want.kind);
    CHECK(got.wait_kind == want.wait_kind);
    CHECK(got.reason == want.reason);
    CHECK(got.name == want.name);
    CHECK(got.value == want.value);
    CHECK(got.error_type == want.error_type);
    CHECK(got.error_message == want.error_message);
    CHECK(got.signal_id == want.signal_id);
    CHECK(got.attempt == want.attempt);
    CHECK(got.started_us == want.started_us);
    CHECK(got.finished_us == want.finished_us);
    CHECK(got.deadline_us == want.deadline_us);
}

/// A journal entry as formats 2 to 4 wrote it (layout 2): every field, times absolute.
std::string layout_2(const JournalEntry& e) {
    ByteWriter w(2);
    w.u8(static_cast<std::uint8_t>(e.kind));
    w.u8(static_cast<std::uint8_t>(e.wait_kind));
    w.u8(static_cast<std::uint8_t>(e.reason));
    w.str(e.name);
    w.str(e.value);
    w.str(e.error_type);
    w.str(e.error_message);
    w.str(e.signal_id);
    w.varint(e.attempt);
    w.svarint(e.started_us);
    w.svarint(e.finished_us - e.started_us);
    w.svarint(e.deadline_us);
    return std::move(w).finish(journal_key(run, entry_seq));
}

}  // namespace

TEST_CASE("a record built in a reused buffer is the record built alone, and decodes to what was encoded",
          "[storage][records]") {
    // Commits build their records in one scratch buffer; a record shorter
    // than the one before it must not carry that one's tail.
    RunRecord full;
    full.id = std::string(200, 'r');
    full.workflow = "refund_review";
    full.status = RunStatus::waiting;
    full.created_us = run_created_us;
    full.updated_us = at_us;
    full.input = R"({"ticket":"T-1001","amount":4900})";
    full.output = R"("refunded")";
    full.error = ErrorInfo{"abide.workflow.exception", "std::runtime_error", "card declined"};
    full.journal_len = 5;
    full.incarnation = 1;
    full.park = ParkState{WaitKind::signal, "approve", at_us + 3'600'000'000, at_us, 4};
    full.cancel_requested = true;
    full.cancel_reason = "customer withdrew";
    full.attempts = 2;
    RunRecord bare;
    bare.id = "r-1";
    bare.workflow = "w";
    bare.created_us = bare.updated_us = run_created_us;
    bare.input = "1";

    std::string buffer;
    for (const RunRecord* record : {&full, &bare, &full, &bare}) {
        const std::string alone = encode(*record, run);
        CHECK(encode(*record, run, buffer) == alone);
        CHECK(decode_run_record(alone, run) == *record);
    }
    const JournalEntry entry = wake_entry();
    const Event event = suspended_event();
    for (int round = 0; round < 2; ++round) {
        (void)encode(full, run, buffer);  // a longer record first
        CHECK(encode(entry, run, 3, run_created_us, buffer) == encode(entry, run, 3, run_created_us));
        (void)encode(full, run, buffer);
        CHECK(encode_event(event, {run, run_created_us}, seq, {}, {}, buffer) ==
              encode_event(event, {run, run_created_us}, seq));
    }
}

TEST_CASE("a journal entry keeps every field it uses, in fewer bytes than layout 2", "[storage][records]") {
    const JournalEntry e = GENERATE(wake_entry(), retry_entry());
    const std::string bytes = encode(e, run, entry_seq, created_us);
    check_same(decode_journal_entry(bytes, run, entry_seq, created_us), e);
    const std::string old = layout_2(e);
    check_same(decode_journal_entry(old, run, entry_seq, created_us), e);  // an older file's entry
    CHECK(bytes.size() + 8 <= old.size());
    // Times are relative to the run's creation: another base reads other times.
    CHECK(decode_journal_entry(bytes, run, entry_seq, created_us + 1).started_us == e.started_us + 1);
}

TEST_CASE("a journal entry with unknown fields or a time out of range is refused", "[storage][records]") {
    std::string bytes = encode(wake_entry(), run, entry_seq, created_us);
    // The field flags are the third byte (after the layout and the kind).
    ByteWriter w(3);
    w.u8(static_cast<std::uint8_t>(EntryKind::now));
    w.u8(64);
    const std::string unknown = std::move(w).finish(journal_key(run, entry_seq));
    CHECK_THROWS_WITH(decode_journal_entry(unknown, run, entry_seq, created_us), Catch::Contains("unknown fields"));
    const std::int64_t far = std::chrono::duration_cast<std::chrono::microseconds>(Clock::duration::max()).count();
    CHECK_THROWS_WITH(decode_journal_entry(bytes, run, entry_seq, far), Catch::Contains("out of range"));

    // Layout 2 stored times absolute, layout 3 as spans from the run's
    // creation and the entry's start: an old entry with a span no time can
    // be (only damage makes one) is refused, as layout 3 would refuse it,
    // rather than read and then written as a record that no longer decodes.
    JournalEntry early = wake_entry();
    early.started_us = early.finished_us = -(far - 1);  // created_us is in 2026
    CHECK_THROWS_WITH(decode_journal_entry(layout_2(early), run, entry_seq, created_us),
                      Catch::Contains("out of range"));
    JournalEntry late = wake_entry();
    late.started_us = late.finished_us = -(far / 2);
    late.deadline_us = far - 1;  // representable, but far - 1 + far / 2 after its start
    CHECK_THROWS_WITH(decode_journal_entry(layout_2(late), run, entry_seq, -(far / 2)),
                      Catch::Contains("out of range"));
}

TEST_CASE("an event that takes a field from its entry and stores it too is refused", "[storage][records]") {
    // Only damage makes one: the encoder stores those fields empty.
    const auto [name, data, deadline, what] = GENERATE(table<std::string, std::string, std::int64_t, std::string>(
        {{"approve", "", 0, "a name beside"}, {"", "{}", 0, "data beside"}, {"", "", 5, "a deadline beside"}}));
    ByteWriter w(3);
    w.u8(static_cast<std::uint8_t>(EventType::suspended));
    w.svarint(0);
    w.varint(run);
    w.str(name);
    w.u8(2 | 4);  // name, deadline and data from entry 2
    w.varint(2);
    w.str(data);
    w.svarint(deadline);
    const std::string bytes = std::move(w).finish(event_key(seq));
    CHECK_THROWS_WITH(decode_event(bytes, seq, sources_of_run_7()), Catch::Contains(what));
}

TEST_CASE("verify reports a wait that names a journal entry which is not a wait", "[storage][records][verify]") {
    test::TempDir dir;
    test::ManualClock clock;
    {
        Engine engine(test::test_options(dir, clock));
        engine.define("approval", [](Context& ctx, const std::string&) {
            (void)ctx.step("load", [] { return 1; });
            return ctx.wait_for_signal<int>("decision");
        }).signal<int>("decision");
        (void)engine.start("approval", std::string("a"), StartOptions{.run_id = "first"});
        engine.poll();
        REQUIRE(engine.status("first")->status == RunStatus::waiting);
    }
    REQUIRE(verify_database(dir.db()).ok());
    // Journal entry 1 (the wait) becomes a step result, checksummed as abide writes one.
    std::int64_t first_run_created_us = 0;
    test::change_table(dir.db(), "runs", [&](MDB_txn* txn, MDB_dbi dbi) {
        const FixedKey key = run_key(1);
        MDB_val k{std::string_view(key).size(), const_cast<char*>(std::string_view(key).data())}, v{};
        REQUIRE(mdb_get(txn, dbi, &k, &v) == 0);
        first_run_created_us = decode_run_record({static_cast<const char*>(v.mv_data), v.mv_size}, 1).created_us;
    });
    test::change_table(dir.db(), "journal", [&](MDB_txn* txn, MDB_dbi dbi) {
        JournalEntry step;
        step.kind = EntryKind::step_ok;
        step.name = "load";
        step.value = "1";
        step.attempt = 1;
        step.started_us = step.finished_us = first_run_created_us;
        std::string value = encode(step, 1, 1, first_run_created_us);
        const FixedKey key = journal_key(1, 1);
        MDB_val k{std::string_view(key).size(), const_cast<char*>(std::string_view(key).data())},
            v{value.size(), value.data()};
        REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
    });
    const VerifyReport report = verify_database(dir.db());
    INFO(report.to_json().dump());
    CHECK(report.damaged_runs == std::vector<std::string>{"first"});
    CHECK_THAT(report.to_json().dump(), Catch::Contains("its wait names journal entry 1, a step entry"));
}

TEST_CASE("stored JSON text parses to exactly what json::parse makes of it", "[records][payload]") {
    // parse_stored_json reads common scalars itself; it must agree with
    // json::parse on value and type (unsigned vs signed integers), and throw
    // where it throws.
    const std::vector<std::string> texts = {
        "0", "7", "-7", "123456789012345678", "-123456789012345678", "1234567890123456789",
        "18446744073709551615", "18446744073709551616", "-9223372036854775808", "-9223372036854775809",
        "1.5", "-0", "1e3", "-", "01", "-01", "+1", "1 ", " 1", "12a",
        R"("")", R"("gold")", R"("with space ~")", R"("esc\"aped")", R"("back\\slash")", R"("\u00e9")",
        "\"caf\xc3\xa9\"", "\"bad\xff\"", "\"tab\there\"", R"("unterminated)", R"(")", R"(x")",
        "\"del\x7f\"", "1e400", "-1e400",
        "true", "false", "null", "True", "nul", "truex",
        R"({"status":"approved","amount":12})", "[1,2]", "", "  ",
        // flat objects: read by the fast path, or left to json::parse
        "{}", "{ }", R"({"a":1})", R"({"a":1,"a":2})", R"({"b":2,"a":1})", R"({"":null})",
        R"({"status":"approved","reviewer_id":"u_117","reason":"receipt checked","approved_amount":4967})",
        R"({"a":true,"b":false,"c":null,"d":-5,"e":"x}"})", R"({"a":"x,y"})", R"({"a":{"b":1}})", R"({"a":[1]})",
        R"({"a":1.5})", R"({"a":-0})", R"({"a":01})", R"({"a":1,})", R"({"a" :1})", R"({"a": 1})", R"({"a":1 })",
        R"( {"a":1})", R"({"a":1}x)", R"({"a":1}})", R"({"a":1)", R"({"a"})", R"({:1})", R"({"a":})", R"({"a")",
        R"({"a\"b":1})", R"({"a":"\u00e9"})", R"({"a":"x)", R"({"a":"x"y})", R"({a:1})", "{\"k\x01\":1}", "{",
        R"({"a":1,"b")", R"({"a":1,"b":2})", R"({"a":truex})", R"({"a":nul})",
    };
    for (const std::string& text : texts) {
        INFO("text: " << text);
        CHECK(stored_json_oracle::parse_difference(text) == std::nullopt);
    }
}

TEST_CASE("stored JSON text is exactly what dump() writes, for random values", "[records][payload]") {
    // dump_stored_json writes plain scalars and flat objects itself; for
    // every value it must give dump()'s bytes, or throw what dump() throws
    // (a string that is not UTF-8).
    std::mt19937_64 random(1124);
    const std::vector<std::string> pieces = {"a", "b", "gold", " ", "~", "\"", "\\", "\n", "\x01", "\x7f",
                                             "\xc3\xa9", "\xff", "}", ",", ":", "{"};
    auto text = [&] {
        std::string s;
        for (std::size_t n = random() % 4; n > 0; --n) s += pieces[random() % (random() % 3 == 0 ? pieces.size() : 5)];
        return s;
    };
    std::function<json(int)> value = [&](int depth) -> json {
        switch (random() % (depth < 2 ? 10 : 7)) {
            case 0: return nullptr;
            case 1: return random() % 2 == 0;
            case 2: return static_cast<std::int64_t>(random());
            case 3: return static_cast<std::uint64_t>(random());
            case 4: return text();
            case 5: return std::vector<double>{0.5, -1e300, 3.0, 1e-7}[random() % 4];
            case 6: return static_cast<std::int64_t>(random() % 200) - 100;
            case 7:
            case 8: {
                json o = json::object();
                for (std::size_t n = random() % 5; n > 0; --n) o[text()] = value(depth + 1);
                return o;
            }
            default: {
                json a = json::array();
                for (std::size_t n = random() % 4; n > 0; --n) a.push_back(value(depth + 1));
                return a;
            }
        }
    };
    std::size_t failures = 0, plain = 0;
    for (int i = 0; i < 20000; ++i) {
        const json v = value(random() % 2 == 0 ? 1 : 0);
        if (const auto difference = stored_json_oracle::dump_difference(v); difference && ++failures <= 5)
            FAIL_CHECK(*difference);
        // Objects and strings that dump() writes without escapes reach the fast path.
        std::string dumped;
        if (stored_json_oracle::json_error([&] { return v.dump(); }, dumped).empty() &&
            (v.is_object() || v.is_string()) && dumped.find('\\') == std::string::npos)
            ++plain;
    }
    CHECK(failures == 0);
    CHECK(plain > 1000);  // the generator reaches the fast path
}

TEST_CASE("stored JSON text made of random tokens parses to exactly what json::parse makes of it",
          "[records][payload]") {
    // Texts near the fast paths' edges: flat objects and scalars, with a
    // stray space, comma, bracket, escape or float among them.
    const std::vector<std::string> tokens = {
        "{", "}", "{", "}", "\"a\"", "\"b\"", "\"\"", ":", ":", ",", ",", "1", "-2", "0", "01", "1.5", "-",
        "\"x\"", "\"x,}\"", "\"", "\\", "\\\"", "true", "false", "null", " ", "[", "]", "e3", "\x01", "\xc3\xa9",
    };
    std::mt19937_64 random(20261124);
    std::size_t failures = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string text;
        const std::size_t length = 1 + random() % 12;
        for (std::size_t t = 0; t < length; ++t) text += tokens[random() % tokens.size()];
        if (random() % 2 == 0) text = "{\"a\":" + text + "}";
        if (const auto difference = stored_json_oracle::parse_difference(text); difference && ++failures <= 5)
            FAIL_CHECK(*difference << "; text: " << text);
    }
    CHECK(failures == 0);
}

TEST_CASE("the tables' key order is LMDB's default order, for keys of every length up to 24 bytes",
          "[storage][keys]") {
    // LMDB's own default comparison (mdb_cmp on a table opened without a
    // comparator) is the reference: every program that opens the file
    // without compare_keys orders keys that way.
    test::TempDir dir;
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    REQUIRE(mdb_env_open(env, (dir.path() / "order.db").c_str(), MDB_NOSUBDIR, 0644) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0);
    MDB_dbi dbi = 0;
    REQUIRE(mdb_dbi_open(txn, nullptr, 0, &dbi) == 0);

    std::mt19937_64 rng(Catch::rngSeed());
    // Few byte values, so that keys share long prefixes; the extremes and the
    // sign bit's neighbours catch a signed or a little-endian comparison.
    const unsigned char bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
    auto random_key = [&](std::size_t size) {
        std::string k(size, '\0');
        for (char& c : k) c = static_cast<char>(bytes[rng() % sizeof bytes]);
        return k;
    };
    auto sign = [](int v) { return (v > 0) - (v < 0); };
    std::size_t less = 0, equal = 0, prefixes = 0;
    for (int i = 0; i < 200'000; ++i) {
        std::string a = random_key(rng() % 25), b;
        switch (rng() % 3) {
            case 0: b = random_key(rng() % 25); break;
            case 1: b = a.substr(0, rng() % (a.size() + 1)) + random_key(rng() % 9); break;  // a prefix of a, extended
            default:  // a with one byte changed
                b = a;
                if (!b.empty()) b[rng() % b.size()] = static_cast<char>(bytes[rng() % sizeof bytes]);
        }
        MDB_val x{a.size(), a.data()}, y{b.size(), b.data()};
        const int expected = sign(mdb_cmp(txn, dbi, &x, &y));
        if (sign(compare_keys(&x, &y)) != expected || sign(compare_keys(&y, &x)) != -expected) {
            auto hex = [](const std::string& k) {
                std::string out;
                for (unsigned char c : k) out += fmt::format("{:02x}", c);
                return out;
            };
            FAIL("compare_keys orders " << hex(a) << " and " << hex(b) << " unlike LMDB (" << expected << ")");
        }
        less += expected < 0;
        equal += expected == 0;
        prefixes += expected != 0 && (a.starts_with(b) || b.starts_with(a));
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    CHECK(less > 1'000);      // the generator makes pairs in either order
    CHECK(equal > 1'000);     // equal keys
    CHECK(prefixes > 1'000);  // and keys that are strict prefixes of others
}
