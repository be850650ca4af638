#include "lmdb_pages.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace abide::detail {

namespace {

// LMDB 0.9 on-disk layout (mdb.c), little-endian, 64-bit pgno_t/txnid_t:
//   page header (16 bytes): pgno u64 @0, pad u16 @8, flags u16 @10,
//                           lower u16 @12, upper u16 @14 (overflow: page count u32 @12);
//   node pointers: u16 offsets from the page start, from @16 up to `lower`;
//   node (8 bytes + key + data): lo u16, hi u16, flags u16, ksize u16;
//       leaf: data size lo|hi<<16; branch: child pgno lo|hi<<16|flags<<32;
//   meta page (pages 0 and 1): magic u32 @16, version u32 @20, then two
//       MDB_db records (free list @40, main @88), last_pg u64 @136, txnid u64 @144;
//   MDB_db (48 bytes): pad u32 (page size, in the free list's), flags u16,
//       depth u16, branch_pages, leaf_pages, overflow_pages, entries, root (u64 each).
constexpr std::size_t header_size = 16;
constexpr std::size_t node_size = 8;
constexpr std::uint16_t p_branch = 0x01, p_leaf = 0x02, p_overflow = 0x04, p_meta = 0x08;
constexpr std::uint16_t f_bigdata = 0x01, f_subdata = 0x02;
constexpr std::uint32_t meta_magic = 0xBEEFC0DE;
constexpr std::uint64_t no_page = ~std::uint64_t{0};
constexpr std::uint16_t integer_keys = 0x08;  // MDB_INTEGERKEY: keys compare as native integers

std::uint16_t u16(const char* p) {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
std::uint32_t u32(const char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
std::uint64_t u64(const char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

struct DbRecord {
    std::uint16_t flags = 0, depth = 0;
    std::uint64_t branch_pages = 0, leaf_pages = 0, overflow_pages = 0, entries = 0, root = no_page;
};

DbRecord read_db(const char* p) {
    DbRecord d;
    d.flags = u16(p + 4);
    d.depth = u16(p + 6);
    d.branch_pages = u64(p + 8);
    d.leaf_pages = u64(p + 16);
    d.overflow_pages = u64(p + 24);
    d.entries = u64(p + 32);
    d.root = u64(p + 40);
    return d;
}

class Walker {
public:
    Walker(std::string_view file, std::size_t page_size, std::uint64_t last_pg)
        : file_(file), page_size_(page_size), last_pg_(last_pg), seen_(last_pg + 1, false) {}

    std::vector<std::string> problems;

    /// Walks one table's tree and compares what it found with its record.
    void walk_table(const std::string& name, const DbRecord& db, bool is_main) {
        if (db.root == no_page) {
            if (db.entries != 0 || db.depth != 0) problem(name, db.root, "an empty tree with entries or depth");
            return;
        }
        Counts counts;
        walk(name, db, db.root, 1, is_main, counts);
        if (counts.entries != db.entries || counts.branch != db.branch_pages || counts.leaf != db.leaf_pages ||
            counts.overflow != db.overflow_pages)
            problem(name, db.root,
                    fmt::format("the table's record says {} entries in {}/{}/{} branch/leaf/overflow pages; the tree "
                                "holds {} in {}/{}/{}",
                                db.entries, db.branch_pages, db.leaf_pages, db.overflow_pages, counts.entries,
                                counts.branch, counts.leaf, counts.overflow));
    }

private:
    struct Counts {
        std::uint64_t entries = 0, branch = 0, leaf = 0, overflow = 0;
    };

    void problem(const std::string& table, std::uint64_t pgno, const std::string& what) {
        problems.push_back(fmt::format("{} page {}: {}", table, pgno, what));
    }

    /// The page's bytes, or nothing (with a problem) if it cannot be a page of this commit.
    const char* page(const std::string& table, std::uint64_t pgno, std::uint64_t count = 1) {
        if (pgno < 2 || pgno > last_pg_ || last_pg_ - pgno + 1 < count ||
            (pgno + count) * page_size_ > file_.size()) {
            problem(table, pgno, "a reference past the end of the data (or to a meta page)");
            return nullptr;
        }
        for (std::uint64_t i = 0; i < count; ++i) {
            if (seen_[pgno + i]) {
                problem(table, pgno + i, "referenced twice");
                return nullptr;
            }
            seen_[pgno + i] = true;
        }
        const char* p = file_.data() + pgno * page_size_;
        if (u64(p) != pgno) {
            problem(table, pgno, fmt::format("its header names page {}", u64(p)));
            return nullptr;
        }
        return p;
    }

    void walk(const std::string& table, const DbRecord& db, std::uint64_t pgno, std::uint16_t depth, bool is_main,
              Counts& counts) {
        const char* p = page(table, pgno);
        if (!p) return;
        const std::uint16_t flags = u16(p + 10), lower = u16(p + 12), upper = u16(p + 14);
        const bool branch = flags == p_branch, leaf = flags == p_leaf;
        if (!branch && !leaf) return problem(table, pgno, fmt::format("flags {:#x}, not a branch or leaf page", flags));
        if (lower < header_size || lower > upper || upper > page_size_ || (lower - header_size) % 2 != 0)
            return problem(table, pgno, fmt::format("bounds lower {} upper {} do not fit a page", lower, upper));
        const std::size_t keys = (lower - header_size) / 2;
        if (keys == 0) return problem(table, pgno, "no entries");
        if (branch && depth >= db.depth) return problem(table, pgno, "a branch page below the tree's depth");
        if (leaf && depth != db.depth)
            return problem(table, pgno, fmt::format("a leaf at depth {}, the tree's depth is {}", depth, db.depth));
        ++(branch ? counts.branch : counts.leaf);
        if (!nodes_tile(p, keys, upper, branch))
            return problem(table, pgno, "its nodes do not fill the node area exactly (a node offset or size is damaged)");
        std::optional<std::string_view> previous;
        for (std::size_t i = 0; i < keys; ++i) {
            const std::uint16_t off = u16(p + header_size + 2 * i);
            if (off < upper || off + node_size > page_size_)
                return problem(table, pgno, fmt::format("node {} at offset {}, outside the node area", i, off));
            const char* node = p + off;
            const std::uint16_t lo = u16(node), hi = u16(node + 2), nflags = u16(node + 4), ksize = u16(node + 6);
            if (off + node_size + ksize > page_size_)
                return problem(table, pgno, fmt::format("node {}: its key runs past the page", i));
            const std::string_view key(node + node_size, ksize);
            // Key order (a branch page's first key is implicit). Tables with
            // integer keys compare natively; theirs are not checked.
            if (!(branch && i == 0) && !(db.flags & integer_keys)) {
                if (previous && !(*previous < key))
                    return problem(table, pgno, fmt::format("node {}: keys out of order", i));
                previous = key;
            }
            if (branch) {
                const std::uint64_t child = lo | (std::uint64_t{hi} << 16) | (std::uint64_t{nflags} << 32);
                walk(table, db, child, static_cast<std::uint16_t>(depth + 1), is_main, counts);
                continue;
            }
            ++counts.entries;
            const std::uint32_t dsize = lo | (std::uint32_t{hi} << 16);
            if (nflags & ~(f_bigdata | f_subdata))
                return problem(table, pgno, fmt::format("node {}: flags {:#x}", i, nflags));
            if (nflags & f_bigdata) {
                if (off + node_size + ksize + 8 > page_size_)
                    return problem(table, pgno, fmt::format("node {}: its data runs past the page", i));
                const char* data = overflow(table, u64(node + node_size + ksize), dsize, counts);
                if (data && collect_free_lists_) collect_free_list(key, std::string_view(data, dsize));
                continue;
            }
            if (off + node_size + ksize + dsize > page_size_)
                return problem(table, pgno, fmt::format("node {}: its data runs past the page", i));
            if (collect_free_lists_) collect_free_list(key, std::string_view(node + node_size + ksize, dsize));
            if (nflags & f_subdata) {
                if (!is_main || dsize != 48)
                    return problem(table, pgno, fmt::format("node {}: a sub-table where none can be", i));
                walk_table(std::string(key), read_db(node + node_size + ksize), false);
            }
        }
    }

    /// LMDB keeps a page's nodes packed from `upper` to the end of the page
    /// (2-byte aligned, compacted on delete), so sorted by offset each node
    /// must start where the previous one ends.
    bool nodes_tile(const char* p, std::size_t keys, std::uint16_t upper, bool branch) const {
        std::vector<std::pair<std::size_t, std::size_t>> nodes;  // offset, size
        nodes.reserve(keys);
        for (std::size_t i = 0; i < keys; ++i) {
            const std::size_t off = u16(p + header_size + 2 * i);
            if (off < upper || off + node_size > page_size_) return false;
            const char* node = p + off;
            const std::size_t ksize = u16(node + 6);
            std::size_t size = node_size + ksize;
            if (!branch) size += (u16(node + 4) & f_bigdata) ? 8 : (u16(node) | (std::size_t{u16(node + 2)} << 16));
            nodes.emplace_back(off, size + (size & 1));
        }
        std::sort(nodes.begin(), nodes.end());
        std::size_t at = upper;
        for (const auto& [off, size] : nodes) {
            if (off != at) return false;
            at += size;
        }
        return at == page_size_;
    }

    /// A large value's pages; returns its bytes, or nothing if damaged.
    const char* overflow(const std::string& table, std::uint64_t pgno, std::uint32_t dsize, Counts& counts) {
        const std::uint64_t needed = (header_size + dsize + page_size_ - 1) / page_size_;
        if (pgno < 2 || pgno > last_pg_) {
            problem(table, pgno, "a large value's pages past the end of the data");
            return nullptr;
        }
        const char* p = file_.data() + pgno * page_size_;
        if (pgno * page_size_ + header_size > file_.size() || u16(p + 10) != p_overflow || u32(p + 12) < needed) {
            problem(table, pgno, "a large value's first page is not an overflow page of its size");
            return nullptr;
        }
        if (!page(table, pgno, u32(p + 12))) return nullptr;
        counts.overflow += u32(p + 12);
        return p + header_size;
    }

public:
    /// The free list's values (lists of reusable pages), gathered while
    /// walking it, checked by check_free_lists once every tree was walked.
    bool collect_free_lists_ = false;
    std::uint64_t snapshot_ = 0;  // the commit being checked

    /// Each list: a count, then that many page numbers, descending, each a
    /// page of the file that no tree uses. A bad one would make LMDB hand out
    /// a page in use, or one past the end, at the next write.
    void check_free_lists() {
        const std::string table = "LMDB's free-page list";
        for (std::string_view list : free_lists_) {
            if (list.size() < 8 || list.size() % 8 != 0 || u64(list.data()) != list.size() / 8 - 1) {
                problems.push_back(fmt::format("{}: a list of {} bytes that does not hold its own count", table,
                                               list.size()));
                continue;
            }
            std::uint64_t previous = no_page;
            for (std::size_t i = 1; i < list.size() / 8; ++i) {
                const std::uint64_t pgno = u64(list.data() + 8 * i);
                if (pgno < 2 || pgno > last_pg_ || pgno >= previous || seen_[pgno]) {
                    problems.push_back(fmt::format("{}: lists page {}, which is in use, out of order or past the end",
                                                   table, pgno));
                    break;
                }
                previous = pgno;
            }
        }
    }

private:
    /// Lists freed by commits after the snapshot (a host writing meanwhile)
    /// may name pages the snapshot still uses: only older ones are checked.
    void collect_free_list(std::string_view key, std::string_view list) {
        if (key.size() == 8 && u64(key.data()) <= snapshot_) free_lists_.push_back(list);
    }

    std::vector<std::string_view> free_lists_;
    std::string_view file_;
    std::size_t page_size_;
    std::uint64_t last_pg_;
    std::vector<bool> seen_;
};

}  // namespace

std::vector<std::string> check_lmdb_pages(std::string_view file, std::uint64_t txnid) {
    std::vector<std::string> problems;
    if (file.size() < 2 * 4096) return {fmt::format("the file is {} bytes, shorter than its two meta pages", file.size())};
    const std::size_t page_size = u32(file.data() + 40);  // the free list's pad holds the page size
    if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) != 0 || file.size() < 2 * page_size)
        return {fmt::format("meta page 0 gives page size {}", page_size)};
    // Both meta pages: LMDB opens the one with the larger transaction id, and
    // the two always hold consecutive commits. Anything else means a meta page
    // is damaged and LMDB may have opened an older commit without a word.
    const char* metas[2] = {file.data(), file.data() + page_size};
    for (int m = 0; m < 2; ++m) {
        const char* p = metas[m];
        if (u64(p) != static_cast<std::uint64_t>(m) || u16(p + 10) != p_meta || u32(p + 16) != meta_magic ||
            u32(p + 20) != 1)
            problems.push_back(fmt::format("meta page {}: not an LMDB meta page of data format 1", m));
    }
    if (!problems.empty()) return problems;
    const std::uint64_t t0 = u64(metas[0] + 144), t1 = u64(metas[1] + 144);
    if ((t0 > t1 ? t0 - t1 : t1 - t0) != 1)
        return {fmt::format("the meta pages hold commits {} and {}, which are not consecutive: one is damaged and the "
                            "newest commits may be lost",
                            t0, t1)};
    const char* meta = t0 == txnid ? metas[0] : t1 == txnid ? metas[1] : nullptr;
    if (!meta)
        return {fmt::format("neither meta page holds commit {}, the one LMDB opened (commits {} and {})", txnid, t0, t1)};
    const std::uint64_t last_pg = u64(meta + 136);
    if ((last_pg + 1) * page_size > file.size())
        return {fmt::format("the newest commit uses {} pages; the file holds {}", last_pg + 1, file.size() / page_size)};
    Walker walker(file, page_size, last_pg);
    walker.collect_free_lists_ = true;
    walker.snapshot_ = txnid;
    walker.walk_table("LMDB's free-page list", read_db(meta + 40), false);
    walker.collect_free_lists_ = false;
    walker.walk_table("LMDB's table of tables", read_db(meta + 88), true);
    walker.check_free_lists();
    return std::move(walker.problems);
}

}  // namespace abide::detail
