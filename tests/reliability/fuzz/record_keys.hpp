// The keys the records fuzz target reads its records from, and under which
// make_seeds encodes the seed records (a record's checksum covers its key).
#pragma once

#include "bytes.hpp"
#include "keys.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace abide::fuzz_records {

/// Byte 0 of an input: bits 0-2 choose the decoder, bit 3 asks the target to
/// append a valid checksum to the rest. stored_json: the rest is JSON text
/// for parse_stored_json and dump_stored_json (no checksum).
enum Decoder : char {
    journal_entry = 0,
    run_record = 1,
    inbox_entry = 2,
    event = 3,
    signal_id_mark = 4,
    stored_json = 5,
    run_input = 6
};
inline constexpr char checksum_appended = 8;

inline constexpr std::uint64_t run_number = 7;
inline constexpr std::uint32_t journal_seq = 3;
/// The creation time of run_number, which journal entries' times are relative to.
inline constexpr std::int64_t created_us = 1'790'000'000'000'000;
inline constexpr std::uint64_t event_seq = 11;
inline constexpr std::string_view signal_id = "approval-42";

inline std::string inbox_key() {
    std::string key = detail::inbox_prefix(run_number, WaitKind::signal, "decision");
    detail::put_be64(key, event_seq);
    return key;
}

}  // namespace abide::fuzz_records
