// Fuzz target: the decoders of every stored record (src/records.hpp). These
// read bytes from the database file, which a failing disk or another program
// may have changed.
//
// Input: byte 0 chooses the decoder (low two bits: journal entry, run record,
// buffered signal, event) and, with bit 2 set, asks for a valid checksum:
// the rest of the input is then the record without its CRC-32C, which the
// target appends. Without that mode almost every mutation would stop at the
// checksum and the field decoders would never see it.
//
// Properties, for every input:
//  * the decoder returns or throws abide::FormatError: never another
//    exception, never a crash or undefined behaviour (ASan+UBSan);
//  * what decoded survives encode -> decode, and encoding that again gives
//    the same bytes (the stored form is stable after one round trip).
#include "fuzz_support.hpp"

#include "bytes.hpp"
#include "records.hpp"

#include <abide/errors.hpp>

#include <string>
#include <string_view>
#include <typeinfo>

namespace {

using namespace abide;
using namespace abide::detail;

// Arbitrary identifiers the decoders put into their messages.
constexpr std::uint64_t run_number = 7;
constexpr std::uint32_t journal_seq = 3;
constexpr std::uint64_t event_seq = 11;

struct JournalCodec {
    static constexpr std::string_view name = "journal entry";
    static JournalEntry decode(std::string_view b) { return decode_journal_entry(b, run_number, journal_seq); }
    static std::string encode(const JournalEntry& e) { return detail::encode(e); }
};
struct RunCodec {
    static constexpr std::string_view name = "run record";
    static RunRecord decode(std::string_view b) { return decode_run_record(b, run_number); }
    static std::string encode(const RunRecord& r) { return detail::encode(r); }
};
struct InboxCodec {
    static constexpr std::string_view name = "buffered signal";
    static InboxEntry decode(std::string_view b) { return decode_inbox_entry(b); }
    static std::string encode(const InboxEntry& e) { return detail::encode(e); }
};
struct EventCodec {
    static constexpr std::string_view name = "event";
    static Event decode(std::string_view b) { return decode_event(b, event_seq); }
    static std::string encode(const Event& e) { return encode_event(e); }
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

template <class C>
void check(std::string_view bytes) {
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

/// The record with its checksum appended, as ByteWriter::finish does.
std::string with_checksum(std::string_view body) {
    std::string record(body);
    put_be32(record, crc32c(body.data(), body.size()));
    return record;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t mode = data[0];
    std::string_view rest = fuzz::as_text(data + 1, size - 1);
    std::string fixed;
    if (mode & 4) {
        fixed = with_checksum(rest);
        rest = fixed;
    }
    switch (mode & 3) {
        case 0: check<JournalCodec>(rest); break;
        case 1: check<RunCodec>(rest); break;
        case 2: check<InboxCodec>(rest); break;
        default: check<EventCodec>(rest); break;
    }
    return 0;
}
