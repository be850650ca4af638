#include "io_log.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace abide::io_log {

std::vector<Record> read_log(const std::filesystem::path& log) {
    std::ifstream in(log, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the I/O log " + log.string());
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    std::vector<Record> records;
    std::size_t at = 0;
    while (at < text.size()) {
        RecordHeader header{};
        if (text.size() - at < sizeof header)
            throw std::runtime_error("the I/O log " + log.string() + " ends inside a record header");
        std::copy_n(text.data() + at, sizeof header, reinterpret_cast<char*>(&header));
        at += sizeof header;
        if (header.type < static_cast<std::uint32_t>(RecordType::write) ||
            header.type > static_cast<std::uint32_t>(RecordType::created))
            throw std::runtime_error("the I/O log " + log.string() + " has a record of unknown type " +
                                     std::to_string(header.type));
        if (text.size() - at < header.length)
            throw std::runtime_error("the I/O log " + log.string() + " ends inside a record");
        records.push_back({static_cast<RecordType>(header.type), header.offset, text.substr(at, header.length)});
        at += header.length;
    }
    return records;
}

CallCounts count_calls(const std::vector<Record>& records) {
    CallCounts counts;
    for (const Record& r : records) {
        if (r.is_write()) ++counts.writes;
        if (r.type == RecordType::synced_write) ++counts.synced_writes;
        if (r.type == RecordType::sync) ++counts.syncs;
    }
    return counts;
}

namespace {

void write_at(std::string& file, std::uint64_t offset, std::string_view bytes) {
    if (file.size() < offset + bytes.size()) file.resize(offset + bytes.size(), '\0');
    std::copy(bytes.begin(), bytes.end(), file.begin() + static_cast<std::ptrdiff_t>(offset));
}

// Writes a random subset of the record's sectors (sectors are aligned to the
// file, as the disk sees them, not to the write).
void write_torn(std::string& file, const Record& r, std::mt19937_64& rng) {
    std::uint64_t at = r.offset;
    const std::uint64_t end = r.offset + r.payload.size();
    while (at < end) {
        const std::uint64_t sector_end = std::min(end, (at / sector_size + 1) * sector_size);
        if (rng() & 1) write_at(file, at, std::string_view(r.payload).substr(at - r.offset, sector_end - at));
        at = sector_end;
    }
}

}  // namespace

CrashImage build_crash_image(const std::vector<Record>& records, std::size_t cut, std::mt19937_64& rng) {
    CrashImage image;
    for (std::size_t i = 0; i < records.size(); ++i)
        if (records[i].type == RecordType::created) {
            image.exists = cut > i;  // cut before the link: there is no file at the name yet
            break;
        }
    if (!image.exists) return image;
    std::size_t durable_before = 0;  // records before this index were covered by a sync
    for (std::size_t i = 0; i < cut; ++i)
        if (records[i].type == RecordType::sync) durable_before = i;
    enum Fate { keep, drop, tear };
    for (std::size_t i = 0; i <= cut && i < records.size(); ++i) {
        const Record& r = records[i];
        if (r.type != RecordType::truncate && !r.is_write()) continue;
        const bool in_flight = i == cut;
        const bool durable = !in_flight && (i < durable_before || r.type == RecordType::synced_write);
        Fate fate = keep;
        if (durable)
            ++image.durable;
        else if (in_flight)
            fate = (rng() & 1) ? drop : tear;  // it never returned: not whole
        else
            fate = static_cast<Fate>(rng() % 3);
        if (r.type == RecordType::truncate) {
            if (fate == keep) image.bytes.resize(r.offset, '\0');  // a truncate is whole or not at all
            continue;
        }
        if (!durable) ++(fate == keep ? image.kept : fate == drop ? image.dropped : image.torn);
        if (fate == keep) write_at(image.bytes, r.offset, r.payload);
        if (fate == tear) write_torn(image.bytes, r, rng);
    }
    return image;
}

}  // namespace abide::io_log
