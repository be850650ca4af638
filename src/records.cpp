#include "records.hpp"

#include "bytes.hpp"
#include "keys.hpp"
#include "storage.hpp"

#include <abide/errors.hpp>

#include <charconv>
#include <memory>
#include <tuple>
#include <unordered_map>

namespace abide::detail {

namespace {

void check_version(const ByteReader& r) {
    if (r.version() != record_version)
        r.fail("record version " + std::to_string(r.version()) + ", this build reads " +
               std::to_string(record_version));
}

RecordName what_run(std::uint64_t run) {
    return [run] { return "run record #" + std::to_string(run); };
}

/// Whether a TimePoint can hold `us` microseconds since 1970 (about +-292 years).
bool representable(std::int64_t us) {
    static constexpr std::int64_t limit =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::duration::max()).count();
    return us <= limit && us >= -limit;
}

/// A stored time or duration in microseconds; fails unless representable.
std::int64_t time_field(ByteReader& r) {
    const std::int64_t us = r.svarint();
    if (!representable(us)) r.fail("time out of range");
    return us;
}

}  // namespace

std::string_view to_string(EntryKind k) {
    switch (k) {
        case EntryKind::step_ok: return "step";
        case EntryKind::step_error: return "step_error";
        case EntryKind::step_retry: return "step_retry";
        case EntryKind::wait: return "wait";
        case EntryKind::sleep: return "sleep";
        case EntryKind::wake: return "wake";
        case EntryKind::now: return "now";
        case EntryKind::random: return "random";
        case EntryKind::uuid: return "uuid";
    }
    return "unknown";
}

std::string_view to_string(WakeReason r) {
    switch (r) {
        case WakeReason::payload: return "payload";
        case WakeReason::timeout: return "timeout";
        case WakeReason::timer: return "timer";
        case WakeReason::cancelled: return "cancelled";
    }
    return "unknown";
}

namespace {

/// Layout 3 of a journal entry names which optional fields follow, a bit each.
enum JournalFields : std::uint8_t {
    has_wait_kind = 1,
    has_reason = 2,
    has_error = 4,
    has_signal_id = 8,
    has_attempt = 16,
    has_deadline = 32,
    all_journal_fields = 63,
};

/// `base + delta` as a stored time; fails unless both and the sum are representable.
std::int64_t time_after(ByteReader& r, std::int64_t base, std::int64_t delta) {
    if (!representable(base) || !representable(delta)) r.fail("time out of range");
    const std::int64_t sum = base + delta;  // both representable: cannot overflow
    if (!representable(sum)) r.fail("time out of range");
    return sum;
}
/// Reads a delta and returns `base + delta` (see above).
std::int64_t time_after(ByteReader& r, std::int64_t base) { return time_after(r, base, time_field(r)); }

EntryKind entry_kind(ByteReader& r) {
    const std::uint8_t kind = r.u8();
    if (kind < 1 || kind > 9) r.fail("unknown entry kind " + std::to_string(kind));
    return static_cast<EntryKind>(kind);
}

/// Layout 2 (formats 2 to 4): every field, times absolute.
JournalEntry decode_journal_layout_2(ByteReader& r) {
    JournalEntry e;
    e.kind = entry_kind(r);
    e.wait_kind = static_cast<WaitKind>(r.u8());
    e.reason = static_cast<WakeReason>(r.u8());
    e.name = r.str();
    e.value = r.str();
    e.error_type = r.str();
    e.error_message = r.str();
    e.signal_id = r.str();
    e.attempt = static_cast<std::uint32_t>(r.varint());
    e.started_us = time_field(r);
    e.finished_us = time_after(r, e.started_us);
    e.deadline_us = time_field(r);
    return e;
}

}  // namespace

namespace {

/// A record in a string of its own: `build(buffer)` encodes into a buffer
/// and returns the record, which is the buffer's start (see ByteWriter::seal).
template <class Build>
std::string own_record(const Build& build) {
    std::string out;
    out.resize(build(out).size());
    return out;
}

}  // namespace

std::string encode(const JournalEntry& e, std::uint64_t run, std::uint32_t seq, std::int64_t base_us) {
    return own_record([&](std::string& out) { return encode(e, run, seq, base_us, out); });
}

std::string_view encode(const JournalEntry& e, std::uint64_t run, std::uint32_t seq, std::int64_t base_us,
                        std::string& buffer) {
    std::uint8_t fields = 0;
    if (e.wait_kind != WaitKind{}) fields |= has_wait_kind;
    if (e.reason != WakeReason{}) fields |= has_reason;
    if (!e.error_type.empty() || !e.error_message.empty()) fields |= has_error;
    if (!e.signal_id.empty()) fields |= has_signal_id;
    if (e.attempt != 0) fields |= has_attempt;
    if (e.deadline_us != 0) fields |= has_deadline;
    ByteWriter w(journal_record_version, buffer);
    w.u8(static_cast<std::uint8_t>(e.kind));
    w.u8(fields);
    w.str(e.name);
    w.str(e.value);
    // Times relative to the run's creation and to the entry's start: a few
    // bytes each, where absolute microseconds take eight.
    w.svarint(e.started_us - base_us);
    w.svarint(e.finished_us - e.started_us);
    if (fields & has_wait_kind) w.u8(static_cast<std::uint8_t>(e.wait_kind));
    if (fields & has_reason) w.u8(static_cast<std::uint8_t>(e.reason));
    if (fields & has_error) {
        w.str(e.error_type);
        w.str(e.error_message);
    }
    if (fields & has_signal_id) w.str(e.signal_id);
    if (fields & has_attempt) w.varint(e.attempt);
    if (fields & has_deadline) w.svarint(e.deadline_us - e.started_us);
    return std::move(w).seal(journal_key(run, seq));
}

JournalEntry decode_journal_entry(std::string_view bytes, std::uint64_t run, std::uint32_t seq, std::int64_t base_us) {
    ByteReader r(bytes, journal_key(run, seq),
                 [run, seq] { return "journal entry " + std::to_string(seq) + " of run #" + std::to_string(run); });
    if (r.version() == record_version) {
        JournalEntry e = decode_journal_layout_2(r);
        if (!r.at_end()) r.fail("trailing bytes");
        // Layout 3 (which every rewrite uses) stores these times as spans and
        // refuses a span that is no time: so is an old entry with one (only
        // damage makes it), rather than read and rewritten as a record that
        // no longer decodes.
        if (!representable(base_us) || !representable(e.started_us - base_us) ||
            (e.deadline_us != 0 && !representable(e.deadline_us - e.started_us)))
            r.fail("time out of range");
        return e;
    }
    if (r.version() != journal_record_version)
        r.fail("journal entry layout " + std::to_string(r.version()) + ", this build reads " +
               std::to_string(record_version) + " and " + std::to_string(journal_record_version));
    if (!representable(base_us)) r.fail("its run's creation time is out of range");
    JournalEntry e;
    e.kind = entry_kind(r);
    const std::uint8_t fields = r.u8();
    if (fields & ~all_journal_fields) r.fail("unknown fields " + std::to_string(fields));
    e.name = r.str();
    e.value = r.str();
    e.started_us = time_after(r, base_us);
    e.finished_us = time_after(r, e.started_us);
    if (fields & has_wait_kind) e.wait_kind = static_cast<WaitKind>(r.u8());
    if (fields & has_reason) e.reason = static_cast<WakeReason>(r.u8());
    if (fields & has_error) {
        e.error_type = r.str();
        e.error_message = r.str();
    }
    if (fields & has_signal_id) e.signal_id = r.str();
    if (fields & has_attempt) e.attempt = static_cast<std::uint32_t>(r.varint());
    if (fields & has_deadline) e.deadline_us = time_after(r, e.started_us);
    if (!r.at_end()) r.fail("trailing bytes");
    return e;
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// The integer `text` is, if it is one json::parse reads as such (no leading
/// zeros, at most 18 digits: never out of range); non-negative ones are
/// unsigned there, negative ones signed.
std::optional<json> plain_integer(std::string_view text) {
    const bool negative = !text.empty() && text[0] == '-';
    const std::string_view digits = text.substr(negative ? 1 : 0);
    if (digits.empty() || digits.size() > 18 || (digits[0] == '0' && digits.size() > 1)) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : digits) {
        if (!is_digit(c)) return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (negative) return v == 0 ? std::nullopt : std::optional<json>(-static_cast<std::int64_t>(v));
    return json(v);
}

/// True if `text` is printable ASCII without quotes or backslashes: a string
/// or key that JSON text holds as it is, with nothing to escape or decode.
bool plain_text(std::string_view text) {
    for (char c : text)
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
    return true;
}

/// The string `text` is, if it is a quoted plain_text (nothing json::parse
/// would decode or refuse).
std::optional<json> plain_string(std::string_view text) {
    if (text.size() < 2 || text.front() != '"' || text.back() != '"') return std::nullopt;
    const std::string_view inner = text.substr(1, text.size() - 2);
    if (!plain_text(inner)) return std::nullopt;
    return json(std::string(inner));
}

/// The scalar `text` is, if it is one of the plain forms above or a literal.
std::optional<json> plain_scalar(std::string_view text) {
    if (text == "true") return true;
    if (text == "false") return false;
    if (text == "null") return nullptr;
    if (!text.empty() && (text[0] == '-' || is_digit(text[0]))) return plain_integer(text);
    if (!text.empty() && text[0] == '"') return plain_string(text);
    return std::nullopt;
}

/// The object `text` is, if it is written the way dump() writes a flat
/// object: {"key":scalar,...} with no whitespace, keys of printable ASCII
/// without escapes, each key once, and values plain_scalar reads. Anything
/// else (nesting, whitespace, escapes, floats, a repeated key, an error) is
/// left to json::parse.
std::optional<json> plain_object(std::string_view text) {
    if (text.size() < 2 || text.front() != '{' || text.back() != '}') return std::nullopt;
    json object = json::object();
    if (text.size() == 2) return object;
    std::size_t at = 1;  // the next member's opening quote
    for (;;) {
        if (text[at] != '"') return std::nullopt;
        const std::size_t key_end = text.find('"', at + 1);
        if (key_end == std::string_view::npos || key_end + 1 >= text.size() || text[key_end + 1] != ':')
            return std::nullopt;
        const std::string_view key = text.substr(at + 1, key_end - at - 1);
        if (!plain_text(key)) return std::nullopt;
        const std::size_t value_at = key_end + 2;
        // A plain string value ends at its next quote; any other at the next ',' or '}'.
        std::size_t value_end = value_at < text.size() && text[value_at] == '"' ? text.find('"', value_at + 1) + 1
                                                                               : text.find_first_of(",}", value_at);
        if (value_end == 0 || value_end == std::string_view::npos || value_end >= text.size()) return std::nullopt;
        auto value = plain_scalar(text.substr(value_at, value_end - value_at));
        if (!value) return std::nullopt;
        if (!object.emplace(std::string(key), std::move(*value)).second) return std::nullopt;
        if (text[value_end] == '}') return value_end + 1 == text.size() ? std::optional<json>(std::move(object))
                                                                         : std::nullopt;
        if (text[value_end] != ',') return std::nullopt;
        at = value_end + 1;
    }
}

/// Appends dump() of `value` if it is a plain scalar (as plain_scalar reads
/// them); false, appending nothing, otherwise.
bool append_plain_scalar(std::string& out, const json& value) {
    switch (value.type()) {
        case json::value_t::null: out += "null"; return true;
        case json::value_t::boolean: out += value.get<bool>() ? "true" : "false"; return true;
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: {
            char digits[24];
            const auto end = value.is_number_unsigned()
                                 ? std::to_chars(digits, digits + sizeof digits, value.get<std::uint64_t>()).ptr
                                 : std::to_chars(digits, digits + sizeof digits, value.get<std::int64_t>()).ptr;
            out.append(digits, end);
            return true;
        }
        case json::value_t::string: {
            const auto& s = value.get_ref<const std::string&>();
            if (!plain_text(s)) return false;
            out += '"';
            out += s;
            out += '"';
            return true;
        }
        default: return false;
    }
}

}  // namespace

json parse_stored_json(std::string_view text) {
    if (!text.empty() && text[0] == '{') {
        if (auto o = plain_object(text)) return std::move(*o);
    } else if (auto v = plain_scalar(text)) {
        return std::move(*v);
    }
    return json::parse(text);
}

std::string dump_stored_json(const json& value) {
    std::string out;
    if (value.is_object()) {
        out += '{';
        for (const auto& [key, member] : value.get_ref<const json::object_t&>()) {
            if (!plain_text(key)) return value.dump();
            if (out.size() > 1) out += ',';
            out += '"';
            out += key;
            out += "\":";
            if (!append_plain_scalar(out, member)) return value.dump();
        }
        out += '}';
        return out;
    }
    return append_plain_scalar(out, value) ? out : value.dump();
}

std::string encode(const RunRecord& run, std::uint64_t number) {
    return own_record([&](std::string& out) { return encode(run, number, out); });
}

std::string_view encode(const RunRecord& run, std::uint64_t number, std::string& buffer) {
    const bool inline_input = !run.input.empty();
    ByteWriter w(inline_input ? record_version : run_record_version, buffer);
    w.str(run.id);
    w.str(run.workflow);
    w.u8(static_cast<std::uint8_t>(run.status));
    w.svarint(run.created_us);
    w.svarint(run.updated_us);
    if (inline_input) w.str(run.input);
    w.str(run.output);
    w.u8(run.error ? 1 : 0);
    if (run.error) {
        w.str(run.error->id);
        w.str(run.error->type);
        w.str(run.error->message);
    }
    w.varint(run.journal_len);
    w.varint(run.incarnation);
    w.u8(run.park ? 1 : 0);
    if (run.park) {
        w.u8(static_cast<std::uint8_t>(run.park->kind));
        w.str(run.park->name);
        w.str({});  // formerly a copy of the wait's data; see docs/journal-format.md
        w.svarint(run.park->deadline_us);
        w.svarint(run.park->since_us);
        w.varint(run.park->seq);
    }
    w.u8(run.cancel_requested ? 1 : 0);
    w.str(run.cancel_reason);
    w.varint(run.attempts);
    return std::move(w).seal(run_key(number));
}

RunRecord decode_run_record(std::string_view bytes, std::uint64_t run_number) {
    ByteReader r(bytes, run_key(run_number), what_run(run_number));
    if (r.version() != record_version && r.version() != run_record_version)
        r.fail("run record layout " + std::to_string(r.version()) + ", this build reads " +
               std::to_string(record_version) + " and " + std::to_string(run_record_version));
    RunRecord run;
    run.id = r.str();
    run.workflow = r.str();
    std::uint8_t status = r.u8();
    if (status < 1 || status > 7) r.fail("unknown status " + std::to_string(status));
    run.status = static_cast<RunStatus>(status);
    run.created_us = time_field(r);
    run.updated_us = time_field(r);
    if (r.version() == record_version) run.input = r.str();
    run.output = r.str();
    if (r.u8()) {
        ErrorInfo e;
        e.id = r.str();
        e.type = r.str();
        e.message = r.str();
        run.error = std::move(e);
    }
    run.journal_len = static_cast<std::uint32_t>(r.varint());
    run.incarnation = static_cast<std::uint32_t>(r.varint());
    if (r.u8()) {
        ParkState p;
        std::uint8_t kind = r.u8();
        if (kind < 1 || kind > 4) r.fail("unknown wait kind " + std::to_string(kind));
        p.kind = static_cast<WaitKind>(kind);
        p.name = r.str();
        (void)r.str();  // a format 2 copy of the wait's data, read from the park entry instead
        p.deadline_us = time_field(r);
        p.since_us = time_field(r);
        p.seq = static_cast<std::uint32_t>(r.varint());
        run.park = std::move(p);
    }
    run.cancel_requested = r.u8() != 0;
    run.cancel_reason = r.str();
    run.attempts = static_cast<std::uint32_t>(r.varint());
    if (!r.at_end()) r.fail("trailing bytes");
    return run;
}

std::string encode(const InboxEntry& e, std::string_view key) {
    ByteWriter w(record_version);
    w.str(e.signal_id);
    w.str(e.payload);
    w.svarint(e.received_us);
    w.u8(e.validated ? 1 : 0);
    return std::move(w).finish(key);
}

InboxEntry decode_inbox_entry(std::string_view bytes, std::string_view key) {
    ByteReader r(bytes, key, [key]() -> std::string {
        return key.size() >= 8 ? "a buffered signal of run #" + std::to_string(get_be64(key)) : "a buffered signal";
    });
    check_version(r);
    InboxEntry e;
    e.signal_id = r.str();
    e.payload = r.str();
    e.received_us = time_field(r);
    e.validated = r.u8() != 0;
    if (!r.at_end()) r.fail("trailing bytes");
    return e;
}

namespace {

/// The flags byte of a layout 3 event.
enum EventFlags : std::uint8_t {
    has_topic = 1,         ///< the topic is "{name}/{run_id}"
    from_entry = 2,        ///< name and deadline are those of journal entry `seq` (stored next)
    data_from_entry = 4,   ///< data is that entry's wait_data
    at_relative = 8,       ///< `at` counts from the run's creation
    all_event_flags = 15,
};

}  // namespace

std::string encode_event(const Event& ev, const EventRun& run, std::uint64_t seq, std::string_view data_json,
                         std::optional<FromEntry> from) {
    return own_record([&](std::string& out) { return encode_event(ev, run, seq, data_json, from, out); });
}

std::string_view encode_event(const Event& ev, const EventRun& run, std::uint64_t seq, std::string_view data_json,
                              std::optional<FromEntry> from, std::string& buffer) {
    // `at` counts from the run's creation (fewer bytes), unless that span is
    // no representable time: only an absolute `at` read from a damaged or
    // foreign record is that far off, and it is stored as it was read.
    const std::int64_t at_us = to_micros(ev.at);
    const bool relative = representable(at_us - run.created_us);  // both representable: cannot overflow
    std::uint8_t flags = relative ? at_relative : 0;
    if (!ev.topic.empty()) flags |= has_topic;
    if (from) flags |= from_entry;
    if (from && from->data) flags |= data_from_entry;
    ByteWriter w(event_record_version, buffer);
    w.u8(static_cast<std::uint8_t>(ev.type));
    w.svarint(relative ? at_us - run.created_us : at_us);
    w.varint(run.number);
    w.str(from ? std::string_view() : std::string_view(ev.name));
    w.u8(flags);
    if (from) w.varint(from->seq);
    if (flags & data_from_entry)
        w.str({});
    else if (!data_json.empty())
        w.str(data_json);
    else
        w.str(ev.data.is_null() ? std::string() : dump_stored_json(ev.data));
    w.svarint(ev.deadline && !from ? to_micros(*ev.deadline) : 0);
    return std::move(w).seal(event_key(seq));
}

Event decode_event(std::string_view bytes, std::uint64_t seq, const EventSources& sources, std::uint64_t* run) {
    ByteReader r(bytes, event_key(seq), [seq] { return "event " + std::to_string(seq); });
    if (r.version() != record_version && r.version() != event_record_version)
        r.fail("event layout " + std::to_string(r.version()) + ", this build reads " + std::to_string(record_version) +
               " and " + std::to_string(event_record_version));
    const bool layout_3 = r.version() == event_record_version;
    Event ev;
    ev.seq = seq;
    const std::uint8_t type = r.u8();
    if (type < 1 || type > static_cast<std::uint8_t>(EventType::released)) r.fail("unknown event type " + std::to_string(type));
    ev.type = static_cast<EventType>(type);
    const std::int64_t at = time_field(r);
    std::optional<JournalEntry> entry;
    std::uint8_t flags = 0;
    if (layout_3) {
        const std::uint64_t number = r.varint();
        if (run) *run = number;
        ev.name = r.str();
        flags = r.u8();
        if (flags & ~all_event_flags) r.fail("unknown flags " + std::to_string(flags));
        if ((flags & data_from_entry) && !(flags & from_entry)) r.fail("data from an entry it does not name");
        const std::uint32_t entry_seq = (flags & from_entry) ? static_cast<std::uint32_t>(r.varint()) : 0;
        RunFacts facts = sources.run(number);
        ev.run_id = std::move(facts.id);
        ev.workflow = std::move(facts.workflow);
        ev.at = from_micros((flags & at_relative) ? time_after(r, facts.created_us, at) : at);
        if (flags & from_entry) {
            if (!ev.name.empty()) r.fail("a name beside the entry that supplies it");
            entry = sources.entry(number, entry_seq, facts.created_us);
            ev.name = entry->name;
        }
        if (flags & has_topic) ev.topic = ev.name + "/" + ev.run_id;
    } else {
        if (run) *run = 0;
        ev.at = from_micros(at);
        ev.run_id = r.str();
        ev.workflow = r.str();
        ev.name = r.str();
        ev.topic = r.str();
    }
    std::string data(r.str());
    if (flags & data_from_entry) {
        if (!data.empty()) r.fail("data beside the entry that supplies it");
        data = wait_data(*entry);
    }
    if (!data.empty()) {
        try {
            ev.data = parse_stored_json(data);
        } catch (const json::exception& e) {
            r.fail(std::string("data is not JSON: ") + e.what());
        }
    }
    std::int64_t deadline = time_field(r);
    if (flags & from_entry) {
        if (deadline != 0) r.fail("a deadline beside the entry that supplies it");
        deadline = entry->deadline_us;
    }
    if (deadline != 0) ev.deadline = from_micros(deadline);
    if (!r.at_end()) r.fail("trailing bytes");
    return ev;
}

EventSources event_sources_in(const Txn& txn) {
    auto known = std::make_shared<std::unordered_map<std::uint64_t, RunFacts>>();
    EventSources sources;
    sources.run = [&txn, known](std::uint64_t run) {
        if (auto it = known->find(run); it != known->end()) return it->second;
        const auto raw = txn.get(Db::runs, run_key(run));
        if (!raw)
            throw FormatError("abide.storage.corrupt",
                              "an event names run #" + std::to_string(run) +
                                  ", which does not exist; the file is damaged. Run `abide check`");
        RunRecord record = decode_run_record(*raw, run);
        return known->emplace(run, RunFacts{std::move(record.id), std::move(record.workflow), record.created_us})
            .first->second;
    };
    sources.entry = [&txn](std::uint64_t run, std::uint32_t seq, std::int64_t created_us) {
        return read_journal_entry(txn, run, seq, created_us);
    };
    return sources;
}

std::string read_run_input(const Txn& txn, std::uint64_t run, const RunRecord& record) {
    if (!record.input.empty()) return record.input;  // a layout 2 record holds it
    const auto raw = txn.get(Db::inputs, run_key(run));
    if (!raw)
        throw FormatError("abide.storage.corrupt", "run '" + record.id + "' (#" + std::to_string(run) +
                                                       ") has no input record: its input is missing from the inputs "
                                                       "table; the file is damaged. Run `abide check`");
    return decode_run_input(*raw, run);
}

JournalEntry read_journal_entry(const Txn& txn, std::uint64_t run, std::uint32_t seq, std::int64_t created_us) {
    const auto raw = txn.get(Db::journal, journal_key(run, seq));
    if (!raw)
        throw FormatError("abide.storage.corrupt", "journal entry " + std::to_string(seq) + " of run #" +
                                                       std::to_string(run) +
                                                       " is missing; the file is damaged. Run `abide check`");
    return decode_journal_entry(*raw, run, seq, created_us);
}

std::string encode_signal_id(SignalIdMark mark, std::uint64_t run, std::string_view signal_id) {
    ByteWriter w(record_version);
    w.u8(static_cast<std::uint8_t>(mark));
    w.varint(run);
    return std::move(w).finish(signal_id_key(run, signal_id));
}

SignalIdMark decode_signal_id(std::string_view bytes, std::uint64_t run, std::string_view signal_id) {
    ByteReader r(bytes, signal_id_key(run, signal_id), [run, signal_id] {
        return "the record of signal id '" + std::string(signal_id) + "' of run #" + std::to_string(run);
    });
    check_version(r);
    const std::uint8_t mark = r.u8();
    if (mark < 1 || mark > 2) r.fail("unknown mark " + std::to_string(mark));
    if (r.varint() != run) r.fail("it names another run");
    if (!r.at_end()) r.fail("trailing bytes");
    return static_cast<SignalIdMark>(mark);
}

std::string_view encode_run_input(std::string_view input, std::uint64_t run, std::string& buffer) {
    ByteWriter w(record_version, buffer);
    w.str(input);
    return std::move(w).seal(run_key(run));
}

std::string decode_run_input(std::string_view bytes, std::uint64_t run) {
    ByteReader r(bytes, run_key(run), [run] { return "the input of run #" + std::to_string(run); });
    check_version(r);
    std::string input(r.str());
    if (!r.at_end()) r.fail("trailing bytes");
    return input;
}

std::optional<std::uint64_t> signal_id_owner(std::string_view bytes) {
    try {
        ByteReader r = ByteReader::unchecked(bytes, [] { return std::string("a signal id record"); });
        (void)r.u8();  // the mark
        return r.varint();
    } catch (const FormatError&) {
        return std::nullopt;
    }
}

std::string wait_data(const JournalEntry& park) {
    if (park.kind == EntryKind::step_retry)
        return dump_stored_json(json{{"attempt", park.attempt}, {"error", park.error_message}});
    return park.value;
}

RunInfo to_run_info(const RunRecord& run, std::string_view input, const JournalEntry* park_entry) {
    RunInfo info;
    info.id = run.id;
    info.workflow = run.workflow;
    info.status = run.status;
    info.created = from_micros(run.created_us);
    info.updated = from_micros(run.updated_us);
    info.input = input.empty() ? json() : parse_stored_json(input);
    if (run.status == RunStatus::completed) info.output = run.output.empty() ? json() : parse_stored_json(run.output);
    info.error = run.error;
    if (run.park && run.status == RunStatus::waiting) {
        WaitInfo w;
        w.kind = run.park->kind;
        w.name = run.park->name;
        const std::string data = park_entry ? wait_data(*park_entry) : std::string();
        w.data = data.empty() ? json::object() : parse_stored_json(data);
        if (run.park->deadline_us != 0) w.deadline = from_micros(run.park->deadline_us);
        w.since = from_micros(run.park->since_us);
        info.waiting = std::move(w);
    }
    info.journal_entries = run.journal_len;
    return info;
}

}  // namespace abide::detail
