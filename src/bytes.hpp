// Byte-level encoding shared by every stored record and key.
//
// Keys use big-endian fixed-width integers so that LMDB's byte order is the
// scan order. Values are "version byte, fields, CRC-32C": the checksum covers
// the key the record is stored under, then every byte of the record before it,
// so a record whose key was damaged fails its check too. A record that fails
// its checksum is reported, never decoded.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>

namespace abide::detail {

std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t seed = 0);

inline void put_be64(std::string& out, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
inline void put_be32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
/// Throws FormatError: a stored key or value is too short for what it must
/// hold (only a damaged file has one).
[[noreturn]] void throw_short_bytes(std::size_t size, std::size_t needed);

/// The big-endian unsigned integer (std::uint32_t or std::uint64_t) of the
/// sizeof(T) bytes at `p`; the caller checks they are there.
template <class T>
inline T load_be(const void* p) {
    static_assert(std::is_same_v<T, std::uint32_t> || std::is_same_v<T, std::uint64_t>);
    T v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::little) {
        if constexpr (sizeof v == 8)
            v = __builtin_bswap64(v);
        else
            v = __builtin_bswap32(v);
    }
    return v;
}

inline std::uint64_t get_be64(std::string_view in, std::size_t at = 0) {
    if (in.size() < at + 8) throw_short_bytes(in.size(), at + 8);
    return load_be<std::uint64_t>(in.data() + at);
}
inline std::uint32_t get_be32(std::string_view in, std::size_t at = 0) {
    if (in.size() < at + 4) throw_short_bytes(in.size(), at + 4);
    return load_be<std::uint32_t>(in.data() + at);
}

/// A key of fixed-width fields, built without allocating.
class FixedKey {
public:
    FixedKey& u8(std::uint8_t v) {
        data_[size_++] = static_cast<char>(v);
        return *this;
    }
    FixedKey& be64(std::uint64_t v) {
        for (int shift = 56; shift >= 0; shift -= 8) data_[size_++] = static_cast<char>((v >> shift) & 0xff);
        return *this;
    }
    FixedKey& be32(std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8) data_[size_++] = static_cast<char>((v >> shift) & 0xff);
        return *this;
    }
    operator std::string_view() const noexcept { return {data_, size_}; }  // NOLINT(google-explicit-constructor)
    std::string str() const { return {data_, size_}; }

private:
    char data_[24];
    std::size_t size_ = 0;
};

/// Appends fields to a record; seal(key) or finish(key) adds the checksum.
/// Writes through a raw pointer into a buffer it grows itself: records are
/// built on every step, and per-byte string appends cost more than the
/// fields. A writer given a caller's buffer (a commit's scratch,
/// WriteContext::scratch) reuses its capacity, so a batch's thousands of
/// records do not allocate one each.
class ByteWriter {
public:
    /// Builds the record in a string of its own (finish returns it).
    explicit ByteWriter(std::uint8_t version) : out_(&own_) { begin(version); }
    /// Builds the record in `buffer`, replacing what it held.
    ByteWriter(std::uint8_t version, std::string& buffer) : out_(&buffer) { begin(version); }
    ByteWriter(const ByteWriter&) = delete;
    ByteWriter& operator=(const ByteWriter&) = delete;

    // The field writers are always inlined: a record has a dozen fields, and
    // a call for each cost more than the bytes it writes.
    [[gnu::always_inline]] void u8(std::uint8_t v) {
        reserve(1);
        (*out_)[pos_++] = static_cast<char>(v);
    }
    [[gnu::always_inline]] void varint(std::uint64_t v) {
        // Most varints (lengths, kinds, small deltas) are one byte.
        if (v < 0x80 && pos_ < out_->size()) [[likely]] {
            (*out_)[pos_++] = static_cast<char>(v);
            return;
        }
        reserve(10);
        char* p = out_->data() + pos_;
        while (v >= 0x80) {
            *p++ = static_cast<char>((v & 0x7f) | 0x80);
            v >>= 7;
        }
        *p++ = static_cast<char>(v);
        pos_ = static_cast<std::size_t>(p - out_->data());
    }
    /// Signed values (times, which may precede 1970) zig-zag encoded.
    [[gnu::always_inline]] void svarint(std::int64_t v) {
        varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
    }
    [[gnu::always_inline]] void str(std::string_view s) {
        varint(s.size());
        reserve(s.size());
        if (!s.empty()) std::memcpy(out_->data() + pos_, s.data(), s.size());
        pos_ += s.size();
    }
    /// Adds the checksum; `key`: the key the record is stored under. Returns
    /// the record: the start of the buffer (valid until the buffer's next
    /// use), which keeps its size, so that the next record need not grow it.
    std::string_view seal(std::string_view key) && {
        const std::uint32_t c = crc32c(out_->data(), pos_, crc32c(key.data(), key.size()));
        reserve(4);
        for (int shift = 24; shift >= 0; shift -= 8) (*out_)[pos_++] = static_cast<char>((c >> shift) & 0xff);
        return {out_->data(), pos_};
    }
    /// seal(key), handing over the record's string, cut to the record.
    std::string finish(std::string_view key) && {
        (void)std::move(*this).seal(key);
        out_->resize(pos_);
        return std::move(*out_);
    }

private:
    void begin(std::uint8_t version) {
        // Room to write is the string's size; a reused buffer keeps the size
        // its records needed, and only a small one is grown (and zeroed).
        if (out_->size() < 128) out_->resize(std::max<std::size_t>(out_->capacity(), 128));
        u8(version);
    }
    [[gnu::always_inline]] void reserve(std::size_t n) {
        if (pos_ + n > out_->size()) [[unlikely]]
            grow(n);
    }
    [[gnu::noinline]] void grow(std::size_t n) { out_->resize(std::max(out_->size() * 2, pos_ + n)); }
    std::string own_;
    std::string* out_;
    std::size_t pos_ = 0;
};

/// Names a record in an error message (e.g. "run record #42"); called only
/// when one is thrown, so that decoding a sound record formats nothing.
using RecordName = std::function<std::string()>;

/// Reads fields back; any overrun or checksum mismatch throws FormatError
/// naming the record. `key`: the key the record was read from (the checksum
/// covers it).
class ByteReader {
public:
    ByteReader(std::string_view record, std::string_view key, RecordName what);
    /// Reads a record without checking its checksum: only for naming what a
    /// damaged record belonged to, never for using its fields.
    static ByteReader unchecked(std::string_view record, RecordName what);
    std::uint8_t version() const { return version_; }
    std::uint8_t u8() {
        if (pos_ >= body_.size()) fail("truncated field");
        return static_cast<std::uint8_t>(body_[pos_++]);
    }
    std::uint64_t varint() {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            const std::uint8_t b = u8();
            v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        fail("overlong integer");
    }
    std::int64_t svarint() {
        std::uint64_t z = varint();
        return static_cast<std::int64_t>((z >> 1) ^ (~(z & 1) + 1));
    }
    std::string_view str();
    bool at_end() const { return pos_ == body_.size(); }
    [[noreturn]] void fail(std::string_view why) const;

private:
    ByteReader(std::string_view record, RecordName what, bool check_sum, std::string_view key);
    std::string_view body_;  // without version byte and checksum
    std::size_t pos_ = 0;
    std::uint8_t version_ = 0;
    RecordName what_;
};

}  // namespace abide::detail
