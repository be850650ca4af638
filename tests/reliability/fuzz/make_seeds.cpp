// Writes the seed corpora of the fuzz targets: real records encoded by the
// engine's own encoders, real signal payloads, real command lines. The files
// are kept in the repository; rerun this after a change to the record format
// or to the command's verbs, then replay and fuzz again.
//
// usage: abide_fuzz_make_seeds tests/reliability/fuzz/corpus
#include "record_keys.hpp"
#include "records.hpp"

#include <abide/abide.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace abide;
using namespace abide::detail;
using namespace abide::fuzz_records;

void write_file(const fs::path& path, std::string_view bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

// ---- records: byte 0 is the fuzz_records mode (see fuzz_records.cpp) ----------

/// Two seeds per record: as stored (checksum included), and without its
/// checksum for the mode in which the target appends a valid one.
void write_record(const fs::path& dir, const std::string& name, Decoder kind, const std::string& record) {
    write_file(dir / (name + ".stored"), std::string(1, static_cast<char>(kind)) + record);
    write_file(dir / (name + ".body"),
               std::string(1, static_cast<char>(kind | checksum_appended)) + record.substr(0, record.size() - 4));
}

constexpr std::int64_t t0 = 1'700'000'000'000'000;  // microseconds: 2023-11-14

/// Stored JSON text, as replay reads it: the plain forms and a few that are not.
void write_stored_json(const fs::path& dir) {
    const std::pair<const char*, const char*> texts[] = {
        {"decision", R"({"status":"approved","reviewer_id":"u_123","reason":"ok","approved_amount":4900})"},
        {"metadata", R"({"amount":4900,"risk":5,"ticket_id":"T-1001","tier":"gold"})"},
        {"empty-object", "{}"},
        {"string", R"("refunded rf_7")"},
        {"integer", "-4900"},
        {"literal", "true"},
        {"nested", R"({"a":{"b":[1,2.5,null]},"c":"é"})"},
        {"spaced", R"({ "a" : 1 })"},
    };
    for (const auto& [name, text] : texts)
        write_file(dir / (std::string("json-") + name), std::string(1, static_cast<char>(stored_json)) + text);
}

void write_records(const fs::path& dir) {
    write_stored_json(dir);

    JournalEntry step;
    step.kind = EntryKind::step_ok;
    step.name = "load_ticket";
    step.value = "4900";
    step.attempt = 1;
    step.started_us = t0;
    step.finished_us = t0 + 1200;
    write_record(dir, "journal-step", journal_entry, encode(step, run_number, journal_seq, created_us));

    JournalEntry failed = step;
    failed.kind = EntryKind::step_error;
    failed.value.clear();
    failed.error_type = "std::runtime_error";
    failed.error_message = "payments service unavailable";
    failed.attempt = 3;
    write_record(dir, "journal-step-error", journal_entry, encode(failed, run_number, journal_seq, created_us));

    JournalEntry wait;
    wait.kind = EntryKind::wait;
    wait.wait_kind = WaitKind::signal;
    wait.name = "refund_decision";
    wait.value = R"({"ticket_id":"T-1001","amount":4900})";
    wait.started_us = t0 + 2000;
    wait.finished_us = t0 + 2000;
    wait.deadline_us = t0 + 7LL * 24 * 3600 * 1'000'000;
    write_record(dir, "journal-wait", journal_entry, encode(wait, run_number, journal_seq, created_us));

    JournalEntry wake;
    wake.kind = EntryKind::wake;
    wake.reason = WakeReason::payload;
    wake.name = "refund_decision";
    wake.value = R"({"status":"approved","reviewer_id":"u_123","reason":"ok","approved_amount":4900})";
    wake.signal_id = "approval-42";
    wake.started_us = t0 + 5000;
    wake.finished_us = t0 + 5000;
    write_record(dir, "journal-wake", journal_entry, encode(wake, run_number, journal_seq, created_us));

    JournalEntry now;
    now.kind = EntryKind::now;
    now.value = std::to_string(t0 - 5);  // before 1970 is allowed: zig-zag
    write_record(dir, "journal-now", journal_entry, encode(now, run_number, journal_seq, created_us));

    RunRecord waiting;
    waiting.id = "refund-T-1001";
    waiting.workflow = "refund_review";
    waiting.status = RunStatus::waiting;
    waiting.created_us = t0;
    waiting.updated_us = t0 + 2000;
    waiting.input = R"("T-1001")";
    waiting.journal_len = 2;
    waiting.park = ParkState{WaitKind::signal, "refund_decision", wait.deadline_us, t0 + 2000, 1};
    write_record(dir, "run-waiting", run_record, encode(waiting, run_number));

    RunRecord failed_run = waiting;
    failed_run.status = RunStatus::failed;
    failed_run.park.reset();
    failed_run.error = ErrorInfo{"abide.replay.nondeterminism", "abide::NondeterminismError", "journal position 1"};
    failed_run.incarnation = 2;
    write_record(dir, "run-failed", run_record, encode(failed_run, run_number));

    RunRecord completed = waiting;
    completed.status = RunStatus::completed;
    completed.park.reset();
    completed.output = R"("refunded rcpt-1")";
    completed.cancel_requested = true;
    completed.cancel_reason = "customer withdrew";
    write_record(dir, "run-completed", run_record, encode(completed, run_number));

    InboxEntry buffered{"approval-42", R"({"status":"approved"})", t0 + 3000, true};
    write_record(dir, "inbox-validated", inbox_entry, encode(buffered, inbox_key()));
    InboxEntry unvalidated{"", R"([1,2,3])", t0 + 4000, false};
    write_record(dir, "inbox-unvalidated", inbox_entry, encode(unvalidated, inbox_key()));

    auto make_event = [](EventType type, std::int64_t at_us, std::string run_id, std::string workflow) {
        Event e;
        e.type = type;
        e.at = from_micros(at_us);
        e.run_id = std::move(run_id);
        e.workflow = std::move(workflow);
        return e;
    };
    Event suspended = make_event(EventType::suspended, t0 + 2000, "review-D-1", "document_review");
    suspended.name = "approve";
    suspended.topic = "approve/review-D-1";
    suspended.data = json{{"document", "D-1"}, {"pages", 12}, {"score", 0.75}};
    suspended.deadline = from_micros(t0 + 3600LL * 1'000'000);
    write_record(dir, "event-suspended", event, encode_event(suspended, {run_number, created_us}, event_seq));
    write_record(dir, "event-completed", event,
                 encode_event(make_event(EventType::completed, t0 + 9000, "refund-T-1001", "refund_review"),
                              {run_number, created_us}, event_seq));
    // A park event refers to its journal entry for its name, deadline and data.
    Event waiting_event = make_event(EventType::waiting, t0 + 2000, "refund-T-1001", "refund_review");
    write_record(dir, "event-waiting-from-entry", event,
                 encode_event(waiting_event, {run_number, created_us}, event_seq, {}, FromEntry{journal_seq, true}));
    write_record(dir, "signal-id-accepted", signal_id_mark,
                 encode_signal_id(SignalIdMark::accepted, run_number, signal_id));
    write_record(dir, "signal-id-too-late", signal_id_mark,
                 encode_signal_id(SignalIdMark::too_late, run_number, signal_id));
    std::string buffer;
    write_record(dir, "run-input", run_input,
                 std::string(encode_run_input(R"({"ticket":"T-1001","amount":4900})", run_number, buffer)));
}

// ---- signal payloads: the JSON text as a host receives it -------------------------

void write_payloads(const fs::path& dir) {
    const std::vector<std::pair<std::string, std::string>> payloads = {
        {"approved", R"({"status":"approved","reviewer_id":"u_123","reason":"ok","approved_amount":4900})"},
        {"rejected-spaced", "{ \"status\" : \"rejected\", \"reviewer_id\" : \"u_7\",\n  \"reason\" : \"outside the "
                            "window\", \"approved_amount\" : 0 }"},
        {"unicode", R"({"status":"approved","reviewer_id":"u_\u00e9","reason":"ok \ud83d\ude00","approved_amount":1})"},
        {"extra-field", R"({"status":"approved","reviewer_id":"u","reason":"r","approved_amount":5,"note":[1,{"a":null}]})"},
        {"missing-field", R"({"status":"approved","reviewer_id":"u_123","reason":"ok"})"},
        {"wrong-type", R"({"status":"approved","reviewer_id":"u_123","reason":"ok","approved_amount":"4900"})"},
        {"negative-amount", R"({"status":"approved","reviewer_id":"u","reason":"r","approved_amount":-9223372036854775808})"},
        {"not-an-object", R"(["approved","u_123","ok",4900])"},
        {"not-json", R"({"status":"approved",)"},
        {"string", R"("approved")"},
        {"null", "null"},
        {"empty", ""},
        {"huge", R"({"status":"approved","reviewer_id":"u","reason":")" + std::string(300, 'x') +
                     R"(","approved_amount":1})"},
        {"deep", std::string(400, '[') + std::string(400, ']')},
        {"float-amount", R"({"status":"approved","reviewer_id":"u","reason":"r","approved_amount":49.5})"},
    };
    for (const auto& [name, text] : payloads) write_file(dir / (name + ".json"), text);
}

// ---- command lines: $ABIDE_DB, then argv[1..], NUL-separated -----------------------

void write_command_lines(const fs::path& dir) {
    const std::vector<std::pair<std::string, std::vector<std::string>>> lines = {
        {"runs", {"", "--db", "refunds.db", "runs", "--status", "waiting", "--limit", "50", "--json"}},
        {"runs-env", {"refunds.db", "runs", "--waiting-for=refund_decision", "--after", "refund-T-1050"}},
        {"show", {"", "--db", "refunds.db", "show", "refund-T-1001", "--json"}},
        {"trace", {"refunds.db", "trace", "refund-T-1001"}},
        {"signal",
         {"", "--db", "refunds.db", "signal", "refund-T-1001", "refund_decision", "--id", "approval-42", "--data",
          R"({"status":"approved","reviewer_id":"u_123","reason":"ok","approved_amount":4900})"}},
        {"signal-file", {"", "--db", "refunds.db", "signal", "refund-T-1001", "refund_decision", "--data", "@decision.json"}},
        {"signal-bad-json", {"", "--db", "refunds.db", "signal", "refund-T-1001", "refund_decision", "--data", "{"}},
        {"resume-stdin", {"docs.db", "resume", "review-D-1", "approve", "--data=@-", "--json"}},
        {"cancel", {"", "--db", "refunds.db", "cancel", "refund-T-1001", "--reason", "customer withdrew"}},
        {"events", {"", "--db", "refunds.db", "events", "--after", "120", "--limit", "10", "--follow", "--json"}},
        {"stats", {"refunds.db", "stats", "--json"}},
        {"help", {"", "signal", "--help"}},
        {"help-verb", {"", "help", "events"}},
        {"version", {"", "--version"}},
        {"end-of-options", {"", "--db", "x.db", "show", "--", "--json"}},
        {"twice", {"", "--db", "a.db", "--db", "b.db", "runs", "--limit", "0"}},
    };
    for (const auto& [name, parts] : lines) {
        std::string bytes;
        for (std::size_t i = 0; i < parts.size(); ++i) bytes += (i ? std::string(1, '\0') : std::string()) + parts[i];
        write_file(dir / name, bytes);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: abide_fuzz_make_seeds CORPUS_DIR (tests/reliability/fuzz/corpus)\n";
        return 2;
    }
    const fs::path corpus = argv[1];
    for (const char* target : {"records", "signal_payload", "cli_args"}) fs::create_directories(corpus / target);
    write_records(corpus / "records");
    write_payloads(corpus / "signal_payload");
    write_command_lines(corpus / "cli_args");
    std::cout << "seeds written under " << corpus << "\n";
    return 0;
}
