// verify_database: a full, read-only pass over a database in a child process.
//
// Protocol between the child and the caller, over a pipe, one line each:
//   "at <what>"      before each part of the pass (so a crash can say where)
//   "report <json>"  the finished report; the child then exits 0
// A child that dies of a signal, or exits without a report, means LMDB itself
// could not read the file: the caller reports that, with the last "at".
#include "engine_core.hpp"
#include "lmdb_pages.hpp"
#include "records.hpp"
#include "storage.hpp"

#include <abide/errors.hpp>
#include <abide/verify.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>

namespace abide {

json VerifyReport::to_json() const {
    return json{{"ok", ok()},
                {"runs", runs},
                {"journal_entries", journal_entries},
                {"buffered_signals", buffered_signals},
                {"events", events},
                {"free_list_entries", free_list_entries},
                {"problems", problems},
                {"damaged_runs", damaged_runs},
                {"unreadable", unreadable}};
}

namespace detail {
namespace {

void write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        const ssize_t n = ::write(fd, text.data(), text.size());
        if (n <= 0) return;  // the caller went away; nothing to tell
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

/// The pass itself, in the child. Reports progress on `fd`.
class Checker {
public:
    explicit Checker(int fd) : fd_(fd) {}

    VerifyReport run(const std::filesystem::path& path) {
        try {
            at("opening the file");
            EngineOptions options;
            options.path = path;
            Storage storage(options, Storage::Access::read_only);
            Txn t = storage.read();  // holds the snapshot: its pages are not reused meanwhile
            at("LMDB's pages");
            if (!check_pages(path, t.id())) return std::move(report_);
            guarded("LMDB's free-page list", [&] { report_.free_list_entries = storage.walk_free_list(t); });
            guarded("the run records and their journals", [&] { check_runs(t); });
            check_indexes(t);
            guarded("the buffered signals", [&] { check_inbox(t); });
            guarded("the signal ids", [&] { check_signal_ids(t); });
            guarded("the event log", [&] { check_events(t); });
        } catch (const std::exception& e) {
            problem(e.what());
            report_.unreadable = true;
        }
        return std::move(report_);
    }

private:
    void at(std::string_view what) { write_all(fd_, fmt::format("at {}\n", what)); }
    void problem(std::string text) { report_.problems.push_back(std::move(text)); }

    /// One part of the pass; an error it meets is a problem of that part, and
    /// the pass goes on with the next.
    template <class F>
    void guarded(std::string_view what, F&& part) {
        at(what);
        try {
            part();
        } catch (const std::exception& e) {
            problem(fmt::format("{}: {}", what, e.what()));
        }
    }

    /// LMDB's page structure, from the file's raw bytes. False if damaged.
    bool check_pages(const std::filesystem::path& path, std::uint64_t txnid) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0) {
            if (fd >= 0) ::close(fd);
            problem(fmt::format("cannot read '{}': {}", path.string(), std::strerror(errno)));
            report_.unreadable = true;
            return false;
        }
        const std::size_t size = static_cast<std::size_t>(st.st_size);
        void* map = size ? ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
        ::close(fd);
        if (map == MAP_FAILED) {
            problem(fmt::format("cannot map '{}': {}", path.string(), std::strerror(errno)));
            report_.unreadable = true;
            return false;
        }
        const auto found = check_lmdb_pages(std::string_view(static_cast<const char*>(map), size), txnid);
        ::munmap(map, size);
        for (const std::string& f : found) problem("storage structure: " + f);
        report_.unreadable = !found.empty();
        return found.empty();
    }
    /// A problem of run `run`, named by its id when its record or id index
    /// gave one.
    void run_problem(std::uint64_t run, const std::string& what) {
        const auto known = known_.find(run);
        const std::string id = known == known_.end() ? std::string() : known->second;
        problem(id.empty() ? fmt::format("run #{}: {}", run, what) : fmt::format("run '{}' (#{}): {}", id, run, what));
        if (damaged_.insert(run).second) report_.damaged_runs.push_back(id.empty() ? "#" + std::to_string(run) : id);
    }

    void check_runs(Txn& t) {
        // Ids by run number, so that a run whose record is damaged is still
        // named by the id its users know.
        std::map<std::uint64_t, std::string> ids;
        {
            Cursor i(t, Db::run_ids);
            for (bool ok = i.first(); ok; ok = i.next())
                if (i.value().size() == 8) ids.emplace(get_be64(i.value()), std::string(i.key()));
        }
        Cursor c(t, Db::runs);
        for (bool ok = c.first(); ok; ok = c.next()) {
            ++report_.runs;
            if (c.key().size() != 8) {
                problem("runs table: a key of " + std::to_string(c.key().size()) + " bytes");
                continue;
            }
            const std::uint64_t run = get_be64(c.key());
            RunRecord r;
            try {
                r = decode_run_record(c.value(), run);
            } catch (const FormatError& e) {
                const auto id = ids.find(run);
                known_[run] = id == ids.end() ? std::string() : id->second;
                run_problem(run, e.what());
                continue;
            }
            known_[run] = r.id;
            check_run(t, run, r);
        }
    }

    void check_run(Txn& t, std::uint64_t run, const RunRecord& r) {
        auto expect = [&](bool holds, const std::string& what) {
            if (!holds) run_problem(run, what);
        };
        const auto id_target = t.get(Db::run_ids, r.id);
        expect(id_target && id_target->size() == 8 && get_be64(*id_target) == run,
               "the id index does not point at this run");
        try {
            (void)read_run_input(t, run, r);
        } catch (const FormatError& e) {
            run_problem(run, e.what());
        }
        const bool executable = in_ready_set(r.status);
        if (!executable)
            expect(t.get(Db::by_status, status_key(r.status, run)).has_value(),
                   fmt::format("missing from the status index ({})", to_string(r.status)));
        expect(t.get(Db::ready, run_key(run)).has_value() == executable,
               executable ? "missing from the ready set" : "in the ready set but not executable");
        if (r.status == RunStatus::waiting) {
            expect(r.park.has_value(), "waiting without a wait");
            if (r.park && (r.park->kind == WaitKind::signal || r.park->kind == WaitKind::suspend))
                expect(t.get(Db::waits, waits_key(r.park->name, run)).has_value(), "missing from the waits index");
            if (r.park && r.park->deadline_us != 0)
                expect(t.get(Db::timers, timer_key(r.park->deadline_us, run, r.park->seq)).has_value(),
                       "its wait's deadline has no timer");
        }
        // The journal: exactly entries 0..journal_len-1, each decodable.
        std::uint32_t expected_seq = 0;
        Cursor j(t, Db::journal);
        for (bool more = j.seek(journal_key(run, 0)); more && j.key().size() == 12 && get_be64(j.key()) == run;
             more = j.next()) {
            const std::uint32_t seq = get_be32(j.key(), 8);
            ++report_.journal_entries;
            if (seq != expected_seq) {
                run_problem(run, fmt::format("journal entry {} is missing", expected_seq));
                expected_seq = seq;
            }
            ++expected_seq;
            try {
                const JournalEntry e = decode_journal_entry(j.value(), run, seq, r.created_us);
                // Queries read the wait's data from the entry the park names.
                if (r.park && seq == r.park->seq)
                    expect(e.parks(), fmt::format("its wait names journal entry {}, a {} entry", seq, to_string(e.kind)));
            } catch (const FormatError& e) {
                run_problem(run, e.what());
            }
        }
        expect(expected_seq == r.journal_len,
               fmt::format("the record says {} journal entries, the journal holds {}", r.journal_len, expected_seq));
        if (r.park)
            expect(r.park->seq < r.journal_len,
                   fmt::format("its wait names journal entry {}, past the journal's {} entries", r.park->seq,
                               r.journal_len));
    }

    /// Every index entry, and every stored input, names a run that exists.
    void check_indexes(Txn& t) {
        struct Index {
            Db db;
            const char* name;
            std::size_t run_offset_from_end;  // where run# sits, counted from the key's end (0: keys end with it)
        };
        static constexpr Index indexes[] = {{Db::ready, "ready set", 0},
                                            {Db::by_status, "status index", 0},
                                            {Db::waits, "waits index", 0},
                                            {Db::timers, "timers", 4},
                                            {Db::inputs, "inputs", 0}};
        for (const Index& index : indexes) {
            guarded(index.name, [&] {
                Cursor c(t, index.db);
                for (bool ok = c.first(); ok; ok = c.next()) {
                    const std::string_view key = c.key();
                    if (key.size() < 8 + index.run_offset_from_end) {
                        problem(fmt::format("{}: a key of {} bytes", index.name, key.size()));
                        continue;
                    }
                    const std::uint64_t run = get_be64(key, key.size() - 8 - index.run_offset_from_end);
                    if (!known_.count(run))
                        problem(fmt::format("{}: names run #{}, which does not exist", index.name, run));
                    else if (index.db == Db::by_status && key.size() == 9 &&
                             in_ready_set(static_cast<RunStatus>(key[0])))
                        problem(fmt::format("{}: lists run #{} as {}, a status only the ready set holds",
                                            index.name, run, to_string(static_cast<RunStatus>(key[0]))));
                }
            });
        }
        guarded("the id index", [&] {
            Cursor ids(t, Db::run_ids);
            for (bool ok = ids.first(); ok; ok = ids.next())
                if (ids.value().size() != 8 || !known_.count(get_be64(ids.value())))
                    problem(fmt::format("id index: '{}' names no existing run", ids.key()));
        });
    }

    /// A buffered signal's checksum covers its key; the key is also checked
    /// against the signal_buffered event that announced it (its last 8
    /// bytes): same run, same name. When the key is damaged, the event still
    /// names the run the signal was for.
    void check_inbox(Txn& t) {
        Cursor inbox(t, Db::inbox);
        const EventSources sources = event_sources_in(t);
        for (bool ok = inbox.first(); ok; ok = inbox.next()) {
            ++report_.buffered_signals;
            const std::string_view key = inbox.key();
            const std::uint64_t run = key.size() >= 8 ? get_be64(key) : 0;
            std::set<std::uint64_t> named{run};  // to name if damaged: the key's run, the event's
            std::uint64_t announced_number = 0;    // layout 3 events name it
            try {
                if (key.size() < 8 + 1 + 1 + 8 || key[key.size() - 9] != '\0')
                    throw FormatError("abide.storage.corrupt", "a buffered signal's key is malformed");
                const std::string_view name = key.substr(9, key.size() - 18);
                const auto event = t.get(Db::events, key.substr(key.size() - 8));
                if (!event) throw FormatError("abide.storage.corrupt", "a buffered signal's key names no event");
                const Event e = decode_event(*event, get_be64(key, key.size() - 8), sources, &announced_number);
                if (announced_number == 0) {
                    // A layout 2 event names the run by id: the id index gives its number
                    // (checked on its own by check_runs).
                    const auto announced = t.get(Db::run_ids, e.run_id);
                    if (announced && announced->size() == 8) announced_number = get_be64(*announced);
                }
                if (announced_number != 0) named.insert(announced_number);
                (void)decode_inbox_entry(inbox.value(), key);
                if (announced_number != run || e.type != EventType::signal_buffered || e.name != name)
                    throw FormatError("abide.storage.corrupt",
                                      "a buffered signal's key does not match the event that announced it");
            } catch (const FormatError& e) {
                if (announced_number != 0) named.insert(announced_number);
                for (const std::uint64_t n : named) run_problem(n, e.what());
            }
        }
    }

    /// Each record's checksum covers its key. A damaged one names both the
    /// run its key holds and the run its record holds: one of them is the run
    /// whose resent signals it answers.
    void check_signal_ids(Txn& t) {
        Cursor ids(t, Db::signal_ids);
        for (bool ok = ids.first(); ok; ok = ids.next()) {
            const std::string_view key = ids.key();
            const std::uint64_t run = key.size() >= 8 ? get_be64(key) : 0;
            try {
                if (key.size() < 8) throw FormatError("abide.storage.corrupt", "a signal id's key is malformed");
                (void)decode_signal_id(ids.value(), run, key.substr(8));
            } catch (const FormatError& e) {
                std::set<std::uint64_t> named{run};
                if (const auto owner = signal_id_owner(ids.value())) named.insert(*owner);
                for (const std::uint64_t n : named) run_problem(n, e.what());
            }
        }
    }

    /// Events are numbered 1, 2, 3, ... with no gaps (the log is append
    /// only): a damaged key shows as a break in the sequence.
    void check_events(Txn& t) {
        Cursor events(t, Db::events);
        // An event's run record and the journal entry it refers to must read
        // too: one that is missing or damaged makes the event unreadable, a
        // problem of the run the event names.
        const EventSources sources = event_sources_in(t);
        std::uint64_t expected = 1;
        for (bool ok = events.first(); ok; ok = events.next()) {
            ++report_.events;
            const std::uint64_t seq = events.key().size() == 8 ? get_be64(events.key()) : 0;
            if (seq != expected)
                problem(fmt::format("the event log: event {} follows event {} (a damaged key)", seq, expected - 1));
            expected = seq + 1;
            std::uint64_t run = 0;  // known once the event's own bytes check out
            try {
                (void)decode_event(events.value(), seq, sources, &run);
            } catch (const FormatError& e) {
                if (run != 0 && known_.count(run))
                    run_problem(run, fmt::format("its event {} cannot be read: {}", seq, e.what()));
                else
                    problem(e.what());
            }
        }
    }

    int fd_;
    VerifyReport report_;
    std::map<std::uint64_t, std::string> known_;  // every run number, with its id (empty if unknown)
    std::set<std::uint64_t> damaged_;
};

VerifyReport report_from_json(const json& j) {
    VerifyReport r;
    r.runs = j.at("runs").get<std::uint64_t>();
    r.journal_entries = j.at("journal_entries").get<std::uint64_t>();
    r.buffered_signals = j.at("buffered_signals").get<std::uint64_t>();
    r.events = j.at("events").get<std::uint64_t>();
    r.free_list_entries = j.at("free_list_entries").get<std::uint64_t>();
    r.problems = j.at("problems").get<std::vector<std::string>>();
    r.damaged_runs = j.at("damaged_runs").get<std::vector<std::string>>();
    r.unreadable = j.at("unreadable").get<bool>();
    return r;
}

}  // namespace
}  // namespace detail

VerifyReport verify_database(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        VerifyReport r;
        r.problems.push_back(fmt::format("'{}' does not exist; nothing was checked", path.string()));
        r.unreadable = true;
        return r;
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw StorageError("abide.verify.pipe", std::string("cannot check the database: pipe: ") + std::strerror(errno));
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw StorageError("abide.verify.fork", std::string("cannot check the database: fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        ::close(fds[0]);
        ::signal(SIGSEGV, SIG_DFL);  // die of a bad page, whatever the host installed
        ::signal(SIGBUS, SIG_DFL);
        ::signal(SIGABRT, SIG_DFL);
        const VerifyReport report = detail::Checker(fds[1]).run(path);
        detail::write_all(fds[1], "report " + report.to_json().dump() + "\n");
        ::_exit(0);  // no atexit handlers or destructors of the caller's objects
    }
    ::close(fds[1]);
    std::string text;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) {
            text.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    std::string last_at = "starting";
    for (std::size_t pos = 0; pos < text.size();) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string::npos) break;
        const std::string_view line(text.data() + pos, end - pos);
        if (line.starts_with("at ")) last_at = line.substr(3);
        if (line.starts_with("report ") && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            try {
                return detail::report_from_json(json::parse(line.substr(7)));
            } catch (const json::exception&) {
                break;
            }
        }
        pos = end + 1;
    }
    VerifyReport r;
    r.unreadable = true;
    const std::string how = WIFSIGNALED(status) ? fmt::format("crashed ({})", ::strsignal(WTERMSIG(status)))
                                                : fmt::format("ended without a report (exit {})", WEXITSTATUS(status));
    r.problems.push_back(fmt::format("the check of '{}' {} while reading {}: the file is damaged where the storage "
                                     "engine itself reads it. Do not open it in a host; restore it from a backup",
                                     path.string(), how, last_at));
    return r;
}

}  // namespace abide
