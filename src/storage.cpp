#include "storage.hpp"

#include "bytes.hpp"
#include "keys.hpp"

#include <abide/errors.hpp>
#include <abide/types.hpp>
#include <abide/version.hpp>

#include <lmdb.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace abide::detail {

namespace {

constexpr std::string_view format_magic = "abide-journal";

constexpr std::array<const char*, static_cast<std::size_t>(Db::count_)> db_names = {
    "meta", "runs", "run_ids", "journal", "inbox", "signal_ids",
    "timers", "ready", "waits", "by_status", "events", "inputs"};

/// The first format with this table: older files lack it until upgrade() makes it.
constexpr std::uint32_t inputs_since_format = 7;

MDB_val to_val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view from_val(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

}  // namespace

void throw_storage_error(int rc, std::string_view doing) {
    std::string what = std::string(doing) + ": " + mdb_strerror(rc);
    switch (rc) {
        case MDB_MAP_FULL:
            throw MapFullError("abide.storage.map_full",
                               what + "; the database reached EngineOptions::max_map_size. Raise it or "
                                      "free space; nothing of this operation was written");
        case MDB_CORRUPTED:
        case MDB_PAGE_NOTFOUND:
            throw FormatError("abide.storage.corrupt",
                              what + "; the file is damaged. Restore it from a backup");
        case MDB_INVALID:
            throw FormatError("abide.storage.foreign_file",
                              what + "; this file is not an abide database. Point EngineOptions::path "
                                     "at a new file or at an abide database; the file was not modified");
        case MDB_VERSION_MISMATCH:
            throw FormatError("abide.storage.newer_format",
                              what + "; the file was written by another LMDB version. It was not modified");
        case MDB_PANIC:
            throw StorageError("abide.storage.panic",
                               what + "; a write to the file failed earlier and reopening it failed too. Destroy "
                                      "and reopen the Engine; every committed state is intact");
        case ENOSPC:
        case EIO:
            throw StorageError("abide.storage.io",
                               what + "; the disk is full or failing. Nothing of this operation was "
                                      "written; free space and retry");
        default:
            throw StorageError("abide.storage.error", what);
    }
}

WriteTap& write_tap() {
    static WriteTap tap;
    return tap;
}

std::uint64_t next_sequence(const Txn& txn, Db db) {
    Cursor c(txn, db);
    for (bool ok = c.last(); ok; ok = c.prev()) {
        if (c.key().size() != 8) continue;
        const std::uint64_t last = get_be64(c.key());
        if (last == UINT64_MAX)
            throw FormatError("abide.storage.corrupt",
                              std::string("the last key of ") + db_names[static_cast<std::size_t>(db)] +
                                  " is the largest number there is; the file is damaged. Nothing was written. "
                                  "Run `abide check` to see what else is, and restore the file from a backup");
        return last + 1;
    }
    return 1;
}

// ---- Txn -------------------------------------------------------------------

Txn::Txn(Storage& storage, bool writable) : storage_(storage), writable_(writable) {
    for (;;) {
        // The thread reopening the environment holds the map exclusively and
        // opens the tables with transactions of its own.
        if (storage_.reopening_thread_ != std::this_thread::get_id()) map_lock_ = std::shared_lock(storage_.map_mutex_);
        // No environment: reopening after a panic failed; try again now.
        int rc = storage_.env_ ? mdb_txn_begin(storage_.env_, nullptr, writable ? 0 : MDB_RDONLY, &txn_) : MDB_PANIC;
        if (rc == 0) return;
        if (map_lock_.owns_lock()) map_lock_.unlock();
        if (rc == MDB_PANIC) {
            // A failed write of the meta page poisons the environment until
            // it is closed; every commit before the failure is intact in the
            // file, so reopening is the recovery.
            storage_.reopen_after_panic();
            continue;
        }
        if (rc != MDB_MAP_RESIZED) throw_storage_error(rc, "beginning a transaction");
        // Another process grew the map: adopt its size, then try again.
        std::unique_lock exclusive(storage_.map_mutex_);
        rc = mdb_env_set_mapsize(storage_.env_, 0);
        if (rc != 0) throw_storage_error(rc, "adopting the grown map size");
        MDB_envinfo info;
        mdb_env_info(storage_.env_, &info);
        storage_.map_size_ = info.me_mapsize;
    }
}

Txn::Txn(Txn&& other) noexcept
    : storage_(other.storage_), txn_(std::exchange(other.txn_, nullptr)), writable_(other.writable_),
      map_lock_(std::move(other.map_lock_)) {}

Txn::~Txn() {
    if (!txn_) return;
    mdb_txn_abort(txn_);
    if (writable_)
        if (auto& tap = write_tap().observe) tap(WriteTap::Op::abort, Db::meta, {}, {});
}

std::optional<std::string_view> Txn::get(Db db, std::string_view key) const {
    MDB_val k = to_val(key), v;
    int rc = mdb_get(txn_, storage_.dbi(db), &k, &v);
    if (rc == MDB_NOTFOUND) return std::nullopt;
    if (rc != 0) throw_storage_error(rc, std::string("reading ") + db_names[static_cast<std::size_t>(db)]);
    return from_val(v);
}

std::uint64_t Txn::id() const { return mdb_txn_id(txn_); }

std::uint64_t Txn::count(Db db) const {
    MDB_stat st;
    int rc = mdb_stat(txn_, storage_.dbi(db), &st);
    if (rc != 0) throw_storage_error(rc, "counting entries");
    return st.ms_entries;
}

void Txn::put(Db db, std::string_view key, std::string_view value) { (void)put(db, key, value, 0, 0); }

void Txn::put_new(Db db, std::string_view key, std::string_view value) {
    // MDB_KEYEXIST from MDB_APPEND: the key is not past the last one. LMDB
    // returns it before touching anything, and the transaction stays usable.
    if (put(db, key, value, MDB_APPEND, MDB_KEYEXIST) == 0) return;
    if (put(db, key, value, MDB_NOOVERWRITE, MDB_KEYEXIST) == 0) return;
    throw FormatError("abide.storage.corrupt",
                      std::string("a new entry of ") + db_names[static_cast<std::size_t>(db)] +
                          " would replace one already stored; the file is damaged. Nothing was written. "
                          "Run `abide check` to see what else is, and restore the file from a backup");
}

std::optional<std::string_view> Txn::put_absent(Db db, std::string_view key, std::string_view value) {
    std::string_view stored;
    if (put(db, key, value, MDB_NOOVERWRITE, MDB_KEYEXIST, &stored) == 0) return std::nullopt;
    return stored;
}

int Txn::put(Db db, std::string_view key, std::string_view value, unsigned flags, int tolerated,
             std::string_view* stored) {
    MDB_val k = to_val(key), v = to_val(value);
    int rc = mdb_put(txn_, storage_.dbi(db), &k, &v, flags);
    if (rc != 0 && rc == tolerated) {
        // LMDB points v at the value already stored under MDB_NOOVERWRITE.
        if (stored) *stored = std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
        return rc;
    }
    if (rc != 0) throw_storage_error(rc, std::string("writing ") + db_names[static_cast<std::size_t>(db)]);
    if (auto& tap = write_tap().observe)
        tap(flags & MDB_APPEND ? WriteTap::Op::append : WriteTap::Op::put, db, key, value);
    return 0;
}

bool Txn::del(Db db, std::string_view key) {
    MDB_val k = to_val(key);
    int rc = mdb_del(txn_, storage_.dbi(db), &k, nullptr);
    if (rc == MDB_NOTFOUND) return false;
    if (rc != 0) throw_storage_error(rc, std::string("deleting from ") + db_names[static_cast<std::size_t>(db)]);
    if (auto& tap = write_tap().observe) tap(WriteTap::Op::del, db, key, {});
    return true;
}

void Txn::commit() {
    // LMDB frees the transaction whether or not the commit succeeds.
    int rc = mdb_txn_commit(std::exchange(txn_, nullptr));
    if (map_lock_.owns_lock()) map_lock_.unlock();
    if (rc != 0) throw_storage_error(rc, "committing");
    if (writable_)
        if (auto& tap = write_tap().observe) tap(WriteTap::Op::commit, Db::meta, {}, {});
}

// ---- Cursor ----------------------------------------------------------------

Cursor::Cursor(const Txn& txn, Db db) : db_(db) {
    int rc = mdb_cursor_open(txn.txn_, txn.storage_.dbi(db), &cursor_);
    if (rc != 0) throw_storage_error(rc, "opening a cursor");
}

Cursor::~Cursor() { mdb_cursor_close(cursor_); }

bool Cursor::move(int op, std::string_view key) {
    MDB_val k = to_val(key), v{};
    int rc = mdb_cursor_get(cursor_, &k, &v, static_cast<MDB_cursor_op>(op));
    if (rc == MDB_NOTFOUND) {
        key_ = value_ = {};
        return false;
    }
    if (rc != 0) throw_storage_error(rc, "moving a cursor");
    key_ = from_val(k);
    value_ = from_val(v);
    return true;
}

bool Cursor::seek(std::string_view key) { return move(MDB_SET_RANGE, key); }
bool Cursor::first() { return move(MDB_FIRST); }
bool Cursor::last() { return move(MDB_LAST); }
bool Cursor::next() { return move(MDB_NEXT); }
bool Cursor::prev() { return move(MDB_PREV); }

void Cursor::del() {
    const std::string deleted = write_tap().observe ? std::string(key_) : std::string();
    int rc = mdb_cursor_del(cursor_, 0);
    if (rc != 0) throw_storage_error(rc, "deleting at a cursor");
    if (auto& tap = write_tap().observe) tap(WriteTap::Op::del, db_, deleted, {});
    // After a delete LMDB leaves the cursor on the following entry.
    if (!move(MDB_GET_CURRENT)) key_ = value_ = {};
}

// ---- Storage ---------------------------------------------------------------

Storage::Storage(const EngineOptions& options, Access access)
    : path_(options.path.string()), map_size_(options.map_size), max_map_size_(options.max_map_size),
      read_only_(access == Access::read_only) {
    if (path_.empty())
        throw UsageError("abide.options.path", "EngineOptions::path is empty; name the database file");
    std::error_code ec;
    if (std::filesystem::is_directory(options.path, ec))
        throw UsageError("abide.options.path",
                         "EngineOptions::path '" + path_ + "' is a directory; name a file inside it");
    unsigned flags = MDB_NOSUBDIR | MDB_NOTLS | MDB_NORDAHEAD;
    if (options.durability == Durability::meta_unsynced) flags |= MDB_NOMETASYNC;
    if (options.durability == Durability::unsynced) flags |= MDB_NOSYNC;
    if (read_only_) flags |= MDB_RDONLY;
    if (!read_only_ && !std::filesystem::exists(path_, ec)) create_file(flags);
    open_env(path_, flags);
    flags_ = flags;
}

void Storage::reopen_after_panic() {
    std::unique_lock exclusive(map_mutex_);  // no transaction of this object is open now
    if (env_) {
        MDB_txn* probe = nullptr;
        const int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &probe);
        if (rc == 0) {
            mdb_txn_abort(probe);
            return;  // another thread reopened it already
        }
        if (rc != MDB_PANIC) return;  // the caller's retry reports it
        mdb_env_close(env_);
        env_ = nullptr;
    }
    // Throws if the file cannot be opened now (env_ stays null): the caller
    // gets that error, and the next transaction tries again.
    reopening_thread_ = std::this_thread::get_id();
    try {
        open_env(path_, flags_);
    } catch (...) {
        reopening_thread_ = std::thread::id();
        throw;
    }
    reopening_thread_ = std::thread::id();
}

void Storage::open_env(const std::string& file, unsigned flags) {
    std::error_code ec;
    const std::string lock_path = file + "-lock";
    const bool lock_existed = std::filesystem::exists(lock_path, ec);
    int rc = mdb_env_create(&env_);
    if (rc != 0) throw_storage_error(rc, "creating the environment");
    mdb_env_set_maxdbs(env_, static_cast<MDB_dbi>(Db::count_) + 2);
    mdb_env_set_maxreaders(env_, 512);
    mdb_env_set_mapsize(env_, map_size_);
    rc = mdb_env_open(env_, file.c_str(), flags, 0644);
    try {
        if (rc != 0) throw_storage_error(rc, "opening '" + file + "'");
        MDB_envinfo info;
        mdb_env_info(env_, &info);
        map_size_ = info.me_mapsize;
        // Readers left by killed processes would pin old pages forever.
        int dead = 0;
        mdb_reader_check(env_, &dead);
        check_format();
    } catch (...) {
        mdb_env_close(env_);
        env_ = nullptr;
        if (!lock_existed) std::filesystem::remove(lock_path, ec);
        throw;
    }
}

void Storage::create_file(unsigned flags) {
    // LMDB writes a new file's meta pages without syncing them: a power cut
    // before the first synced commit leaves a file that no later open
    // accepts. So the file is made whole (tables and format record, synced)
    // under a temporary name, then linked into place, which also leaves a
    // file another process created meanwhile alone. Crash before the link:
    // no file at the path, the next open starts over. Crash after it: the
    // file is complete; a stray "<path>.creating-<pid>" may remain.
    const std::string temp = path_ + ".creating-" + std::to_string(::getpid());
    std::error_code ec;
    std::filesystem::remove(temp, ec);
    std::filesystem::remove(temp + "-lock", ec);
    open_env(temp, flags & ~static_cast<unsigned>(MDB_NOSYNC | MDB_NOMETASYNC));
    mdb_env_close(env_);
    env_ = nullptr;
    std::filesystem::remove(temp + "-lock", ec);
    const int linked = ::link(temp.c_str(), path_.c_str());
    const int link_errno = errno;
    std::filesystem::remove(temp, ec);
    if (linked != 0 && link_errno != EEXIST)
        throw StorageError("abide.storage.create", "cannot create '" + path_ + "': " + std::strerror(link_errno) +
                                                       "; check that its directory exists and is writable");
    // The new name must survive a power cut too.
    const std::string dir = std::filesystem::path(path_).parent_path().empty()
                                ? std::string(".")
                                : std::filesystem::path(path_).parent_path().string();
    if (int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

Storage::~Storage() {
    if (env_) mdb_env_close(env_);
}

void Storage::check_format() {
    // The main database lists the named databases. Empty: a new file, which
    // we initialise. Without our meta database: someone else's LMDB file,
    // which we refuse before writing anything.
    bool fresh = false;
    {
        Txn txn = read();
        MDB_dbi main = 0;
        int rc = mdb_dbi_open(txn.txn_, nullptr, 0, &main);
        if (rc != 0) throw_storage_error(rc, "opening the main database");
        MDB_stat st;
        mdb_stat(txn.txn_, main, &st);
        fresh = st.ms_entries == 0;
        if (fresh && read_only_)
            throw FormatError("abide.storage.foreign_file",
                              "'" + path_ + "' is empty: it holds no abide database. The file was not modified");
        if (!fresh) {
            MDB_val k = to_val("meta"), v;
            if (mdb_get(txn.txn_, main, &k, &v) != 0)
                throw FormatError("abide.storage.foreign_file",
                                  "'" + path_ + "' is an LMDB file but not an abide database; point "
                                  "EngineOptions::path at a new file. The file was not modified");
        }
    }
    open_databases(fresh);
    // Another process may upgrade the file between our read and our write:
    // the write transaction reads the version again and, if it changed,
    // the checks start over.
    for (;;) {
        std::uint32_t version = 0;
        {
            Txn txn = read();
            version = format_version(txn);
        }
        if (version > journal_format_version)
            throw FormatError("abide.storage.newer_format",
                              "'" + path_ + "' has journal format " + std::to_string(version) +
                                  " but this build of abide reads format " + std::to_string(journal_format_version) +
                                  " at most; upgrade abide. The file was not modified");
        if (version < 2)
            throw FormatError("abide.storage.older_format",
                              "'" + path_ + "' has journal format " + std::to_string(version) +
                                  ", written by an earlier abide whose checksums do not cover their keys; this build "
                                  "reads format " +
                                  std::to_string(journal_format_version) +
                                  ". Finish its runs with the build that wrote it, or start a new file. "
                                  "The file was not modified");
        if (version >= inputs_since_format && lacks_inputs_) {
            // Another process may have upgraded the file since open_databases looked.
            Txn txn = read();
            lacks_inputs_ = !open_table(txn, Db::inputs, false, true);
            txn.commit();  // keeps the table's handle
            if (lacks_inputs_)
                throw FormatError("abide.storage.corrupt", "'" + path_ + "' has journal format " +
                                                               std::to_string(version) +
                                                               " but lacks its 'inputs' table; the file is damaged");
        }
        if (version == journal_format_version) return;
        if (read_only_)
            throw FormatError("abide.storage.older_format",
                              "'" + path_ + "' has journal format " + std::to_string(version) +
                                  "; this build reads format " + std::to_string(journal_format_version) +
                                  ". Open it once with an Engine (or any `abide` command but `check`), which "
                                  "upgrades it in place. The file was not modified");
        Txn txn = write();
        if (format_version(txn) != version) continue;  // upgraded meanwhile: look again
        upgrade(txn, version);
        txn.commit();
        return;
    }
}

std::uint32_t Storage::format_version(const Txn& txn) const {
    auto meta = txn.get(Db::meta, "format");
    if (!meta || meta->size() != format_magic.size() + 4 || meta->substr(0, format_magic.size()) != format_magic)
        throw FormatError("abide.storage.foreign_file",
                          "'" + path_ + "' has no abide format record; it is not an abide database. "
                          "The file was not modified");
    return get_be32(*meta, format_magic.size());
}

void Storage::upgrade(Txn& txn, std::uint32_t from) {
    // One transaction: a crash leaves the file at its old format, whole, and
    // the next open upgrades it again.
    // Formats 4 to 6 write events and journal entries in layout 3 (format 6
    // adds flags to events); older records stay as they are and are still
    // read: nothing to rewrite.
    // Format 7 keeps each new run's input in the inputs table, written once,
    // instead of in its record, rewritten at every step; records of older
    // runs keep theirs and are read as they are.
    if (from <= 2) drop_executable_statuses(txn);
    if (lacks_inputs_) {
        open_table(txn, Db::inputs, true, false);
        lacks_inputs_ = false;
    }
    std::string meta(format_magic);
    put_be32(meta, journal_format_version);
    txn.put(Db::meta, "format", meta);
}

void Storage::drop_executable_statuses(Txn& txn) {
    // Format 3 keeps ready and running runs only in the ready set, which
    // format 2 also had; their by_status entries go.
    Cursor c(txn, Db::by_status);
    if (c.seek(std::string(1, static_cast<char>(RunStatus::ready))))
        while (!c.key().empty() && in_ready_set(static_cast<RunStatus>(c.key()[0])))
            c.del();  // del steps to the next entry (an empty key past the end)
}

int compare_keys(const MDB_val* a, const MDB_val* b) noexcept {
    const auto* x = static_cast<const unsigned char*>(a->mv_data);
    const auto* y = static_cast<const unsigned char*>(b->mv_data);
    const std::size_t common = std::min(a->mv_size, b->mv_size);
    std::size_t at = 0;
    // A chunk read big-endian compares as its bytes do, first byte first.
    for (; at + 8 <= common; at += 8) {
        const std::uint64_t u = load_be<std::uint64_t>(x + at), v = load_be<std::uint64_t>(y + at);
        if (u != v) return u < v ? -1 : 1;
    }
    if (at + 4 <= common) {
        const std::uint32_t u = load_be<std::uint32_t>(x + at), v = load_be<std::uint32_t>(y + at);
        if (u != v) return u < v ? -1 : 1;
        at += 4;
    }
    for (; at < common; ++at)
        if (x[at] != y[at]) return x[at] < y[at] ? -1 : 1;
    return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size ? 1 : 0;
}

bool Storage::open_table(Txn& txn, Db db, bool create, bool may_lack) {
    const char* name = db_names[static_cast<std::size_t>(db)];
    MDB_dbi handle = 0;
    int rc = mdb_dbi_open(txn.txn_, name, create ? MDB_CREATE : 0, &handle);
    if (rc == MDB_NOTFOUND && may_lack) return false;
    if (rc == MDB_NOTFOUND)
        throw FormatError("abide.storage.corrupt",
                          "'" + path_ + "' lacks the '" + name + "' table; the file is damaged or not abide's");
    if (rc != 0) throw_storage_error(rc, std::string("opening table ") + name);
    // Before any access to the table, as LMDB requires.
    rc = mdb_set_compare(txn.txn_, handle, compare_keys);
    if (rc != 0) throw_storage_error(rc, std::string("setting the key order of table ") + name);
    dbis_[static_cast<std::size_t>(db)] = handle;
    return true;
}

void Storage::open_databases(bool create) {
    Txn txn(*this, create);
    // A file older than the inputs table gets it from upgrade(); until then
    // nothing reads it, since check_format() runs before any other access,
    // and it refuses a file of the current format that lacks it.
    for (std::size_t i = 0; i < db_names.size(); ++i) {
        const Db db = static_cast<Db>(i);
        const bool opened = open_table(txn, db, create, db == Db::inputs);
        if (db == Db::inputs) lacks_inputs_ = !opened;
    }
    if (create) {
        std::string meta(format_magic);
        put_be32(meta, journal_format_version);
        txn.put(Db::meta, "format", meta);
    }
    txn.commit();
}

std::uint64_t Storage::walk_free_list(Txn& txn) {
    constexpr MDB_dbi free_dbi = 0;  // LMDB's own table of reusable pages
    MDB_cursor* cursor = nullptr;
    int rc = mdb_cursor_open(txn.txn_, free_dbi, &cursor);
    if (rc != 0) throw_storage_error(rc, "opening the free-page list");
    std::uint64_t entries = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT))
        ++entries;
    mdb_cursor_close(cursor);
    if (rc != MDB_NOTFOUND) throw_storage_error(rc, "reading the free-page list");
    return entries;
}

void Storage::grow_map() {
    std::unique_lock exclusive(map_mutex_);
    if (map_size_ >= max_map_size_)
        throw MapFullError("abide.storage.map_full",
                           "the database is full at EngineOptions::max_map_size (" + std::to_string(max_map_size_) +
                               " bytes); raise it or free space. Nothing of the failed operation was written");
    std::size_t next = std::min(max_map_size_, map_size_ * 2);
    int rc = mdb_env_set_mapsize(env_, next);
    if (rc != 0) throw_storage_error(rc, "growing the map");
    map_size_ = next;
}

}  // namespace abide::detail
