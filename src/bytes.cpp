#include "bytes.hpp"

#include <abide/errors.hpp>

#include <array>
#include <atomic>
#include <cstring>

namespace abide::detail {

void throw_short_bytes(std::size_t size, std::size_t needed) {
    throw FormatError("abide.storage.corrupt",
                      "a stored key or value is " + std::to_string(size) + " bytes where " + std::to_string(needed) +
                          " were expected; the database file is damaged. Run `abide check` to see what else is");
}

namespace {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8 tables.
using crc_tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr crc_tables make_tables() {
    crc_tables t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        t[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i)
        for (std::size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    return t;
}

constexpr crc_tables tables = make_tables();

}  // namespace

namespace {

std::uint32_t crc32c_portable(const void* data, std::size_t size, std::uint32_t seed) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint32_t c = ~seed;
    while (size >= 8) {
        std::uint32_t lo = c ^ (static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
                                static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24);
        c = tables[7][lo & 0xff] ^ tables[6][(lo >> 8) & 0xff] ^ tables[5][(lo >> 16) & 0xff] ^
            tables[4][lo >> 24] ^ tables[3][p[4]] ^ tables[2][p[5]] ^ tables[1][p[6]] ^ tables[0][p[7]];
        p += 8;
        size -= 8;
    }
    while (size--) c = (c >> 8) ^ tables[0][(c ^ *p++) & 0xff];
    return ~c;
}

#if defined(__x86_64__)
// The SSE 4.2 crc32 instruction computes the same CRC-32C, 8 bytes a cycle.
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const void* data, std::size_t size, std::uint32_t seed) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t c = ~seed;
    while (size >= 8) {
        std::uint64_t chunk;
        std::memcpy(&chunk, p, 8);
        c = __builtin_ia32_crc32di(c, chunk);
        p += 8;
        size -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c);
    while (size--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

using crc_function = std::uint32_t (*)(const void*, std::size_t, std::uint32_t);

std::uint32_t crc32c_first(const void* data, std::size_t size, std::uint32_t seed);

// The implementation for this CPU, chosen at the first call (crc32c_first),
// in any thread: a function-local static would check its guard at every
// call, and records take two calls each. Constant-initialized, so it is
// usable from any other static initializer.
std::atomic<crc_function> chosen_crc32c{crc32c_first};

std::uint32_t crc32c_first(const void* data, std::size_t size, std::uint32_t seed) {
    crc_function pick = crc32c_portable;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) pick = crc32c_sse42;
#endif
    chosen_crc32c.store(pick, std::memory_order_relaxed);  // every thread picks the same
    return pick(data, size, seed);
}

}  // namespace

std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t seed) {
    return chosen_crc32c.load(std::memory_order_relaxed)(data, size, seed);
}

ByteReader::ByteReader(std::string_view record, std::string_view key, RecordName what)
    : ByteReader(record, std::move(what), true, key) {}

ByteReader ByteReader::unchecked(std::string_view record, RecordName what) {
    return ByteReader(record, std::move(what), false, {});
}

ByteReader::ByteReader(std::string_view record, RecordName what, bool check_sum, std::string_view key)
    : what_(std::move(what)) {
    if (record.size() < 5) fail("shorter than a record can be");
    std::uint32_t stored = get_be32(record, record.size() - 4);
    if (check_sum && crc32c(record.data(), record.size() - 4, crc32c(key.data(), key.size())) != stored)
        fail("checksum mismatch: the record or its key was changed");
    version_ = static_cast<std::uint8_t>(record[0]);
    body_ = record.substr(1, record.size() - 5);
}

std::string_view ByteReader::str() {
    std::uint64_t n = varint();
    if (n > body_.size() - pos_) fail("string runs past the record");
    std::string_view s = body_.substr(pos_, n);
    pos_ += n;
    return s;
}

void ByteReader::fail(std::string_view why) const {
    throw FormatError("abide.storage.corrupt",
                      what_() + " is damaged (" + std::string(why) +
                          "); the database file was modified outside abide or the disk is failing. "
                          "Restore it from a backup; other runs are unaffected");
}

}  // namespace abide::detail
