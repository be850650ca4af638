// Fuzz target: the decoders of every stored record (src/records.hpp). These
// read bytes from the database file, which a failing disk or another program
// may have changed.
//
// Input: byte 0 chooses the decoder (low three bits: 0 journal entry, 1 run
// record, 2 buffered signal, 3 event, 4 signal id, 5 stored JSON text, 6 run
// input; 7 none) and, with bit
// 3 set, asks for a valid checksum: the rest of the input is then the record
// without its CRC-32C, which the target appends (computed over the codec's key
// and the record, as ByteWriter::finish does). Without that mode almost every
// mutation would stop at the checksum and the field decoders would never see
// it.
//
// Properties, for every input:
//  * the decoder returns or throws abide::FormatError: never another
//    exception, never a crash or undefined behaviour (ASan+UBSan);
//  * what decoded survives encode -> decode, and encoding that again gives
//    the same bytes (the stored form is stable after one round trip);
//  * stored JSON text: parse_stored_json gives exactly json::parse's value
//    (type and dump() included) or throws its exception (id and message),
//    and dump_stored_json of that value gives exactly dump()'s bytes.
#include "fuzz_support.hpp"

#include "record_keys.hpp"
#include "records.hpp"
#include "stored_json_oracle.hpp"

#include <abide/errors.hpp>

#include <string>
#include <string_view>
#include <typeinfo>

namespace {

using namespace abide;
using namespace abide::detail;

using namespace abide::fuzz_records;

struct JournalCodec {
    static constexpr std::string_view name = "journal entry";
    static std::string key() { return journal_key(run_number, journal_seq).str(); }
    static JournalEntry decode(std::string_view b) { return decode_journal_entry(b, run_number, journal_seq, created_us); }
    static std::string encode(const JournalEntry& e) { return detail::encode(e, run_number, journal_seq, created_us); }
};
struct RunCodec {
    static constexpr std::string_view name = "run record";
    static std::string key() { return run_key(run_number).str(); }
    static RunRecord decode(std::string_view b) { return decode_run_record(b, run_number); }
    static std::string encode(const RunRecord& r) { return detail::encode(r, run_number); }
};
struct InboxCodec {
    static constexpr std::string_view name = "buffered signal";
    static std::string key() { return inbox_key(); }
    static InboxEntry decode(std::string_view b) { return decode_inbox_entry(b, inbox_key()); }
    static std::string encode(const InboxEntry& e) { return detail::encode(e, inbox_key()); }
};
struct EventCodec {
    static constexpr std::string_view name = "event";
    static std::string key() { return event_key(event_seq).str(); }
    /// Every run number has the same facts and every entry number the same
    /// entry, so that re-encoding (under run_number) and decoding again is
    /// stable.
    static EventSources sources() {
        EventSources s;
        s.run = [](std::uint64_t) { return RunFacts{"fuzz-run", "fuzz-workflow", created_us}; };
        s.entry = [](std::uint64_t, std::uint32_t, std::int64_t) {
            JournalEntry e;
            e.kind = EntryKind::wait;
            e.wait_kind = WaitKind::signal;
            e.name = "decision";
            e.value = R"({"amount":4900})";
            e.started_us = e.finished_us = created_us + 1000;
            e.deadline_us = created_us + 3'600'000'000;
            return e;
        };
        return s;
    }
    static Event decode(std::string_view b) { return decode_event(b, event_seq, sources()); }
    static std::string encode(const Event& e) { return encode_event(e, {run_number, created_us}, event_seq); }
};
struct SignalIdCodec {
    static constexpr std::string_view name = "signal id";
    static std::string key() { return signal_id_key(run_number, signal_id); }
    static SignalIdMark decode(std::string_view b) { return decode_signal_id(b, run_number, signal_id); }
    static std::string encode(SignalIdMark m) { return encode_signal_id(m, run_number, signal_id); }
};

struct RunInputCodec {
    static constexpr std::string_view name = "run input";
    static std::string key() { return run_key(run_number).str(); }
    static std::string decode(std::string_view b) { return decode_run_input(b, run_number); }
    static std::string encode(const std::string& input) {
        std::string buffer;
        return std::string(encode_run_input(input, run_number, buffer));
    }
};

/// Decodes `bytes` with C; true if it decoded, false on FormatError. Any
/// other exception breaks the property.
template <class C, class Record>
bool decode_or_format_error(std::string_view bytes, Record& out, std::string_view stage) {
    try {
        out = C::decode(bytes);
        return true;
    } catch (const FormatError&) {
        return false;
    } catch (const std::exception& e) {
        fuzz::fail(std::string(C::name) + " decoder (" + std::string(stage) + ") threw " + typeid(e).name() +
                   " instead of abide::FormatError: " + e.what() + "; record: " + fuzz::excerpt(bytes));
    }
}

/// The record with its checksum appended, as ByteWriter::finish does.
template <class C>
std::string with_checksum(std::string_view body) {
    const std::string key = C::key();
    std::string record(body);
    put_be32(record, crc32c(body.data(), body.size(), crc32c(key.data(), key.size())));
    return record;
}

template <class C>
void check(std::string_view input, bool append_checksum) {
    const std::string fixed = append_checksum ? with_checksum<C>(input) : std::string();
    const std::string_view bytes = append_checksum ? std::string_view(fixed) : input;
    decltype(C::decode(bytes)) first;
    if (!decode_or_format_error<C>(bytes, first, "input")) return;
    const std::string once = C::encode(first);
    decltype(C::decode(bytes)) second;
    fuzz::require(decode_or_format_error<C>(once, second, "re-encoded"), [&] {
        return std::string(C::name) + " that decoded does not decode after encode: " + fuzz::excerpt(once);
    });
    const std::string twice = C::encode(second);
    fuzz::require(once == twice, [&] {
        return std::string(C::name) + " is not stable after a round trip:\n  once:  " + fuzz::excerpt(once) +
               "\n  twice: " + fuzz::excerpt(twice);
    });
}

void check_stored_json(std::string_view text) {
    const auto difference = stored_json_oracle::parse_difference(text);
    fuzz::require(!difference, [&] { return *difference + ": " + fuzz::excerpt(text); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t mode = data[0];
    const std::string_view rest = fuzz::as_text(data + 1, size - 1);
    const bool append_checksum = (mode & checksum_appended) != 0;
    switch (mode & 7) {
        case journal_entry: check<JournalCodec>(rest, append_checksum); break;
        case run_record: check<RunCodec>(rest, append_checksum); break;
        case inbox_entry: check<InboxCodec>(rest, append_checksum); break;
        case event: check<EventCodec>(rest, append_checksum); break;
        case signal_id_mark: check<SignalIdCodec>(rest, append_checksum); break;
        case stored_json: check_stored_json(rest); break;
        case run_input: check<RunInputCodec>(rest, append_checksum); break;
        default: break;
    }
    return 0;
}
