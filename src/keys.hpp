// Keys of the storage layout (storage.hpp lists the tables). Every key is
// built here, so that a record's checksum, which covers its key, and the code
// that stores the record agree on the key's bytes.
#pragma once

#include "bytes.hpp"

#include <abide/types.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace abide::detail {

inline FixedKey run_key(std::uint64_t run) { return FixedKey().be64(run); }

inline FixedKey journal_key(std::uint64_t run, std::uint32_t seq) { return FixedKey().be64(run).be32(seq); }

inline FixedKey event_key(std::uint64_t seq) { return FixedKey().be64(seq); }

inline std::string waits_key(std::string_view name, std::uint64_t run) {
    std::string k(name);
    k.push_back('\0');
    put_be64(k, run);
    return k;
}

/// Where a run of this status is indexed: ready and running runs (the ones
/// a poll executes) in the ready set, every other status in the status index
/// under status_key. A run moving between ready and running touches neither.
inline bool in_ready_set(RunStatus status) { return status == RunStatus::ready || status == RunStatus::running; }

inline FixedKey status_key(RunStatus status, std::uint64_t run) {
    return FixedKey().u8(static_cast<std::uint8_t>(status)).be64(run);
}

inline FixedKey timer_key(std::int64_t deadline_us, std::uint64_t run, std::uint32_t seq) {
    return FixedKey().be64(static_cast<std::uint64_t>(deadline_us)).be64(run).be32(seq);
}
inline constexpr std::size_t timer_key_size = 20;

/// The inbox keys of one run's buffered signals of one kind and name; the key
/// of each adds the sequence number of the event that announced it.
inline std::string inbox_prefix(std::uint64_t run, WaitKind kind, std::string_view name) {
    std::string k = run_key(run).str();
    k.push_back(static_cast<char>(kind));
    k.append(name);
    k.push_back('\0');
    return k;
}

inline std::string signal_id_key(std::uint64_t run, std::string_view signal_id) {
    std::string k = run_key(run).str();
    k.append(signal_id);
    return k;
}

}  // namespace abide::detail
