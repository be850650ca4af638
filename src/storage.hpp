// The storage layer: the only code that calls LMDB.
//
// Layout (one LMDB file, named databases, integer keys big-endian):
//   meta        "format"                          -> magic + format version
//   runs        run#(8)                           -> RunRecord
//   inputs      run#(8)                           -> RunInput     (written once, at start)
//   run_ids     external id                       -> run#(8)
//   journal     run#(8) seq(4)                    -> JournalEntry
//   inbox       run#(8) kind(1) name 0 seq(8)     -> InboxEntry   (signals not yet consumed)
//   signal_ids  run#(8) signal id                 -> SignalIdMark (accepted or too late, for dedupe)
//   timers      deadline_us(8) run#(8) seq(4)     -> empty        (deadline order)
//   ready       run#(8)                           -> empty        (status ready or running)
//   waits       name 0 run#(8)                    -> empty        (status waiting, by what)
//   by_status   status(1) run#(8)                 -> workflow name (statuses other than ready, running)
//   events      seq(8)                            -> Event
// run# is internal and monotonic (creation order); ids users see are strings.
//
// Transactions never outlive a call and are never held across a fiber switch.
#pragma once

#include <abide/options.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <atomic>
#include <shared_mutex>
#include <thread>
#include <string>
#include <string_view>

struct MDB_env;
struct MDB_txn;
struct MDB_cursor;
struct MDB_val;

namespace abide::detail {

/// The key order of every abide table (an MDB_cmp_func, set on each table at
/// open): LMDB's default order, bytewise with the shorter of two equal
/// prefixes first, compared 8 and 4 bytes at a time instead of through
/// memcmp. Keys are mostly 8 to 20 bytes of big-endian numbers, and a write
/// compares keys a few hundred times a run, where the call to memcmp cost
/// more than the comparison. Invariant: the sign always equals the default
/// order's, so a program that opens the file without it (mdb_dump, mdb_stat,
/// an older abide) sees and keeps the same B-trees.
int compare_keys(const MDB_val* a, const MDB_val* b) noexcept;

enum class Db : std::uint8_t {
    meta, runs, run_ids, journal, inbox, signal_ids, timers, ready, waits, by_status, events, inputs, count_
};

/// Throws the abide error for an LMDB return code (the one place that maps them).
[[noreturn]] void throw_storage_error(int rc, std::string_view doing);

class Storage;

/// Observes every write of every transaction, in order, then its commit or
/// abort (an aborted batch is re-applied; its writes must be dropped) (benchmarks replay them
/// on raw LMDB as the baseline for the same writes). `key`/`value` are valid
/// only during the call. Set it before opening an engine; not for production.
struct WriteTap {
    enum class Op { put, append, del, commit, abort };
    std::function<void(Op op, Db db, std::string_view key, std::string_view value)> observe;
};
/// The process-wide tap (empty: no overhead beyond a branch).
WriteTap& write_tap();

class Txn;
/// One past the largest 8-byte key of `db` read as a big-endian number, or 1
/// if it has none: the next number of a table keyed by a growing sequence
/// (runs, events). Keys of other lengths, which only damage makes, are
/// stepped over, so a damaged key cannot make a number repeat. Throws
/// FormatError if the largest number is already 2^64 - 1.
std::uint64_t next_sequence(const Txn& txn, Db db);

/// A read or write transaction. Views returned by get() and cursors stay
/// valid until the transaction ends or, in a write transaction, the next write.
class Txn {
public:
    Txn(Txn&&) noexcept;
    Txn& operator=(Txn&&) = delete;
    ~Txn();

    std::optional<std::string_view> get(Db db, std::string_view key) const;
    /// Number of entries in a table, this transaction's writes included (O(1):
    /// LMDB keeps the count).
    std::uint64_t count(Db db) const;
    void put(Db db, std::string_view key, std::string_view value);
    /// Writes a key that must be new. Past the last key (the usual case for
    /// a table keyed by a growing number) it is appended with MDB_APPEND,
    /// which compares no keys on the way down to the last leaf; otherwise it
    /// is inserted. Throws FormatError if the key is already there (only a
    /// damaged table has it), having written nothing.
    void put_new(Db db, std::string_view key, std::string_view value);
    /// Writes a key unless it is there already; then writes nothing and
    /// returns the stored value. One descent of the tree where a get and a
    /// put take two.
    std::optional<std::string_view> put_absent(Db db, std::string_view key, std::string_view value);
    /// True if the key existed.
    bool del(Db db, std::string_view key);
    /// Commits; afterwards the transaction is gone. Throws on failure, and then
    /// nothing of it is stored.
    void commit();
    bool writable() const noexcept { return writable_; }
    /// The id of the commit this transaction reads (LMDB's txnid).
    std::uint64_t id() const;

private:
    friend class Storage;
    friend class Cursor;
    Txn(Storage& storage, bool writable);
    /// mdb_put with `flags`; returns LMDB's code for `tolerated` (nothing
    /// written; the transaction stays usable), throws for any other failure.
    /// For MDB_KEYEXIST under MDB_NOOVERWRITE, `stored` (if given) receives
    /// the value already there.
    int put(Db db, std::string_view key, std::string_view value, unsigned flags, int tolerated,
            std::string_view* stored = nullptr);
    Storage& storage_;
    MDB_txn* txn_ = nullptr;
    bool writable_;
    std::shared_lock<std::shared_mutex> map_lock_;
};

class Cursor {
public:
    Cursor(const Txn& txn, Db db);
    ~Cursor();
    Cursor(const Cursor&) = delete;
    Cursor& operator=(const Cursor&) = delete;
    /// Positions at the first key >= `key`; false if there is none.
    bool seek(std::string_view key);
    bool first();
    bool last();
    bool next();
    bool prev();
    std::string_view key() const { return key_; }
    std::string_view value() const { return value_; }
    /// Deletes the current entry; the cursor then stands at the next one.
    void del();

private:
    bool move(int op, std::string_view key = {});
    MDB_cursor* cursor_ = nullptr;
    Db db_;
    std::string_view key_, value_;
};

class Storage {
public:
    enum class Access { read_write, read_only };
    /// Opens or creates the database; refuses foreign and newer files
    /// untouched (FormatError). read_only never creates or writes anything
    /// (an empty or missing file is refused).
    explicit Storage(const EngineOptions& options, Access access = Access::read_write);
    ~Storage();
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    Txn read() { return Txn(*this, false); }
    /// At most one write transaction per process at a time: the commit queue
    /// guarantees it.
    Txn write() { return Txn(*this, true); }

    /// Doubles the map (up to max_map_size). Call with no transaction of this
    /// object open. Throws MapFullError when already at the limit.
    void grow_map();
    std::size_t map_size() const noexcept { return map_size_; }
    /// Reads every entry of LMDB's free-page list (which lists pages for
    /// reuse): a damaged one would only be touched by a later write. Returns
    /// the number of entries; throws like any read.
    std::uint64_t walk_free_list(Txn& txn);
    const std::string& path() const noexcept { return path_; }

private:
    friend class Txn;
    friend class Cursor;
    /// Opens `file` (creating its tables if it is new) into env_.
    void open_env(const std::string& file, unsigned flags);
    /// Creates a new database file at path_ so that it exists only whole.
    void create_file(unsigned flags);
    void open_databases(bool create);
    /// Opens (with `create`, makes) one table, or returns false if it does
    /// not exist and `may_lack`; FormatError if it does not exist otherwise.
    bool open_table(Txn& txn, Db db, bool create, bool may_lack);
    void check_format();
    /// The version in the format record; FormatError if there is none.
    std::uint32_t format_version(const Txn& txn) const;
    /// Rewrites a file of format `from` (2 or later) as this build's format,
    /// inside `txn` (the caller commits).
    void upgrade(Txn& txn, std::uint32_t from);
    void drop_executable_statuses(Txn& txn);
    /// Closes and reopens the environment after MDB_PANIC (see Txn's constructor).
    void reopen_after_panic();
    unsigned dbi(Db db) const { return dbis_[static_cast<std::size_t>(db)]; }

    MDB_env* env_ = nullptr;
    std::array<unsigned, static_cast<std::size_t>(Db::count_)> dbis_{};
    std::string path_;
    std::size_t map_size_;
    std::size_t max_map_size_;
    bool read_only_ = false;
    /// The file predates the inputs table (format 6 or older, until upgraded).
    bool lacks_inputs_ = false;
    unsigned flags_ = 0;  // the LMDB flags it was opened with
    /// Set while reopen_after_panic runs (under the exclusive map lock).
    std::atomic<std::thread::id> reopening_thread_{};
    /// Shared by every open transaction; exclusive while the map is resized
    /// (LMDB requires no transaction of this process then).
    std::shared_mutex map_mutex_;
};

}  // namespace abide::detail
