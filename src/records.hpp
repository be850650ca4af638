// The stored records: runs, journal entries, buffered signals, events.
// docs/journal-format.md describes the same layout for people; change both
// together, and bump the record version on any change to a field list.
#pragma once

#include <abide/types.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace abide::detail {

/// 2: the checksum covers the record's key (1: the record alone).
inline constexpr std::uint8_t record_version = 2;
/// Run records without an input field (format 7: the input is in the inputs
/// table). A build that reads only layout 2 then refuses them as damaged
/// instead of reading their runs as having no input. Runs started before
/// format 7 keep their input, and with it layout 2.
inline constexpr std::uint8_t run_record_version = 3;

/// Microseconds since the Unix epoch: how every time is stored.
inline std::int64_t to_micros(TimePoint t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
inline TimePoint from_micros(std::int64_t us) {
    return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(us)));
}

enum class EntryKind : std::uint8_t {
    step_ok = 1,     ///< a step's result (value)
    step_error = 2,  ///< a step's final failure
    step_retry = 3,  ///< a failed attempt with a retry scheduled at deadline; parks the run
    wait = 4,        ///< wait_for_signal or suspend (wait_kind), with metadata/data; parks the run
    sleep = 5,       ///< parks the run until deadline
    wake = 6,        ///< ends the park entry before it (reason, payload)
    now = 7,
    random = 8,
    uuid = 9,
};
std::string_view to_string(EntryKind);

enum class WakeReason : std::uint8_t { payload = 1, timeout = 2, timer = 3, cancelled = 4 };
std::string_view to_string(WakeReason);

/// One journal position. Which fields matter depends on kind; unused ones
/// are empty and cost a byte each.
struct JournalEntry {
    EntryKind kind{};
    WaitKind wait_kind{};        // wait
    WakeReason reason{};         // wake
    std::string name;            // step name, signal name, step key
    std::string value;           // JSON text: result, payload, metadata, now/random/uuid
    std::string error_type;      // step_error, step_retry
    std::string error_message;   // step_error, step_retry; cancel reason for wake(cancelled)
    std::string signal_id;       // wake(payload)
    std::uint32_t attempt = 0;   // step_ok, step_error, step_retry
    std::int64_t started_us = 0;
    std::int64_t finished_us = 0;
    std::int64_t deadline_us = 0;  // 0: none

    bool parks() const {
        return kind == EntryKind::wait || kind == EntryKind::sleep || kind == EntryKind::step_retry;
    }
};

/// Journal entries are written in layout 3: optional fields only when set,
/// times relative to the run's creation (`base_us`, RunRecord::created_us)
/// and to the entry's start. Layout 2 entries of older files are still read.
inline constexpr std::uint8_t journal_record_version = 3;
std::string encode(const JournalEntry&, std::uint64_t run, std::uint32_t seq, std::int64_t base_us);
/// The same record built in `buffer` (see ByteWriter), valid until its next use.
std::string_view encode(const JournalEntry&, std::uint64_t run, std::uint32_t seq, std::int64_t base_us,
                        std::string& buffer);
JournalEntry decode_journal_entry(std::string_view bytes, std::uint64_t run, std::uint32_t seq, std::int64_t base_us);

/// What a park entry shows while the run waits (RunInfo::waiting.data, the
/// park's event data), as JSON text: the wait's metadata or suspend data, or
/// for a retry's backoff the attempt and its error.
std::string wait_data(const JournalEntry& park);

/// The run's current park, mirrored from its last journal entry so that
/// signal delivery and timers need not read the journal. The wait's data is
/// not mirrored (it can be large): queries read it from the park entry.
struct ParkState {
    WaitKind kind{};
    std::string name;
    std::int64_t deadline_us = 0;  // 0: none
    std::int64_t since_us = 0;
    std::uint32_t seq = 0;       // journal position of the park entry
    bool operator==(const ParkState&) const = default;
};

struct RunRecord {
    std::string id;
    std::string workflow;
    RunStatus status = RunStatus::ready;
    std::int64_t created_us = 0;
    std::int64_t updated_us = 0;
    /// JSON text, only in runs started before format 7 (layout 2 records);
    /// newer ones have none here and keep the input in the inputs table.
    std::string input;
    std::string output;  // JSON text, when completed
    std::optional<ErrorInfo> error;
    std::uint32_t journal_len = 0;
    /// Bumped by retry(); an in-memory fiber of an older incarnation is stale.
    std::uint32_t incarnation = 0;
    std::optional<ParkState> park;
    bool cancel_requested = false;
    std::string cancel_reason;
    /// Executions begun (claimed, durably counted before any code ran) since
    /// the run last committed progress. Above 1, earlier ones were cut short:
    /// the process died. Reset by every commit of the run's own progress.
    std::uint32_t attempts = 0;
    bool operator==(const RunRecord&) const = default;
};

std::string encode(const RunRecord&, std::uint64_t number);
/// The same record built in `buffer` (see ByteWriter), valid until its next use.
std::string_view encode(const RunRecord&, std::uint64_t number, std::string& buffer);
RunRecord decode_run_record(std::string_view bytes, std::uint64_t run_number);

/// The value of stored JSON text (a step's result, a run's input, a
/// payload): exactly what json::parse returns, and throws, for it. Replay
/// parses every recorded result and payload again, and most are scalars or
/// flat objects as dump() writes them (a decision), so integers, strings of
/// printable ASCII without escapes, true, false, null, and objects of those
/// with plain keys are read without the general parser.
json parse_stored_json(std::string_view text);
/// The JSON text abide stores for `value`: exactly value.dump(), and throws
/// what it throws. The forms parse_stored_json reads itself are written
/// without nlohmann's serializer; anything else goes to dump().
std::string dump_stored_json(const json& value);

/// A signal or resume kept until a wait consumes it.
struct InboxEntry {
    std::string signal_id;
    std::string payload;  // JSON text
    std::int64_t received_us = 0;
    /// False when written by a process that lacks the workflow's definition;
    /// the host validates it before a wait consumes it.
    bool validated = true;
};

/// `key`: its inbox key (keys.hpp, inbox_prefix plus the event's number).
std::string encode(const InboxEntry&, std::string_view key);
InboxEntry decode_inbox_entry(std::string_view bytes, std::string_view key);

/// What a signal_ids entry remembers of a signal id, so that a resend gets
/// the same answer.
enum class SignalIdMark : std::uint8_t {
    accepted = 1,  ///< delivered or buffered
    too_late = 2,  ///< refused: it came after its wait's deadline
};
/// The record also holds the run's number, which its key holds too: when the
/// key is damaged, the check can still name the run the id belonged to.
std::string encode_signal_id(SignalIdMark, std::uint64_t run, std::string_view signal_id);
SignalIdMark decode_signal_id(std::string_view bytes, std::uint64_t run, std::string_view signal_id);
/// The run number a signal_ids record holds, read without trusting the
/// checksum (for naming the run in a report); nullopt if unreadable.
std::optional<std::uint64_t> signal_id_owner(std::string_view bytes);

/// Events are written in layout 3: the run is named by its number, not by
/// its id and workflow name, which every event used to repeat (layout 2,
/// still read); the time is relative to the run's creation; an event that
/// tells of a journal entry (a step's result, a park) refers to the entry for
/// its name, deadline and data instead of copying them. A topic is a flag: it
/// is always "{name}/{run_id}".
inline constexpr std::uint8_t event_record_version = 3;

/// The run an event belongs to, as its stored form needs it.
struct EventRun {
    std::uint64_t number = 0;
    std::int64_t created_us = 0;
};
/// The journal entry an event tells of: the event's name and deadline are
/// the entry's and, with `data`, its data is the entry's wait_data.
struct FromEntry {
    std::uint32_t seq = 0;
    bool data = false;
};

/// `data_json` overrides event.data when not empty.
std::string encode_event(const Event&, const EventRun& run, std::uint64_t seq, std::string_view data_json = {},
                         std::optional<FromEntry> from = {});
/// The same record built in `buffer` (see ByteWriter), valid until its next use.
std::string_view encode_event(const Event&, const EventRun& run, std::uint64_t seq, std::string_view data_json,
                              std::optional<FromEntry> from, std::string& buffer);

/// What decoding an event reads besides the event: its run's id, workflow
/// and creation time, and the journal entry it refers to. Each throws
/// FormatError if there is no such run or entry.
struct RunFacts {
    std::string id;
    std::string workflow;
    std::int64_t created_us = 0;
};
struct EventSources {
    std::function<RunFacts(std::uint64_t run)> run;
    std::function<JournalEntry(std::uint64_t run, std::uint32_t seq, std::int64_t created_us)> entry;
};
/// `run`, if given, receives the run's number (0 for a layout 2 event, which
/// holds the id instead).
Event decode_event(std::string_view bytes, std::uint64_t seq, const EventSources& sources, std::uint64_t* run = nullptr);

class Txn;
/// Journal entry `seq` of run #`run` (created at `created_us`), read in
/// `txn`; FormatError if it is missing or damaged.
JournalEntry read_journal_entry(const Txn& txn, std::uint64_t run, std::uint32_t seq, std::int64_t created_us);

/// A run's input (JSON text), stored once when the run starts: apart from
/// the run's record, which every step rewrites, so that a step costs the same
/// whatever the size of the input.
std::string_view encode_run_input(std::string_view input, std::uint64_t run, std::string& buffer);
std::string decode_run_input(std::string_view bytes, std::uint64_t run);
/// The input of run #`run` as JSON text, read in `txn`: from `record` if it
/// holds it (layout 2, runs started before format 7), else from the inputs
/// table. FormatError if it is missing or damaged.
std::string read_run_input(const Txn& txn, std::uint64_t run, const RunRecord& record);
/// EventSources reading records in `txn` (which must outlive them), each run once.
EventSources event_sources_in(const Txn& txn);

/// Public view of a stored run; `park_entry`: its park's journal entry when
/// it waits (for the wait's data).
/// `input`: the run's input as JSON text (read_run_input).
RunInfo to_run_info(const RunRecord&, std::string_view input, const JournalEntry* park_entry);

}  // namespace abide::detail
