// The torture's oracle: the invariants of docs (reliability.md), checked from
// outside after every kill, with the host and the signaller dead.
//
// What it reads:
//   * the database, through an abide::Engine opened for the check (opening it
//     and decoding every changed run's journal is the "opens and verifies"
//     check; each record carries its own checksum);
//   * the step log of the host just killed: one line per execution of a step
//     body, written before the body's effect;
//   * the effect ledger: one synced line per effect, keyed by the step's
//     idempotency key;
//   * the acknowledgement log of the signaller just killed: one line per
//     answer the engine (or the `abide` command) acknowledged, with its outcome.
//
// What it remembers between checks is what earlier checks saw committed: a
// journal entry seen once is acknowledged and must stay, with the same value;
// a step seen committed before a host started must not run in that host.
#pragma once

#include "workload.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace abide::torture {

/// What one host lifetime left behind for the oracle.
struct HostLifetime {
    std::filesystem::path steplog;  ///< this host's step log
    std::filesystem::path acks;     ///< the acknowledgement log of the signaller that ran beside it
};

/// Counts for the report.
struct OracleFigures {
    std::uint64_t body_executions = 0;
    std::uint64_t reran_bodies = 0;        ///< executions of a step whose body had run before (never committed)
    std::uint64_t killed_mid_step = 0;     ///< host lifetimes that ended with a body run but not committed
    std::uint64_t effects = 0;             ///< lines in the effect ledger
    std::uint64_t runs = 0, finished = 0;  ///< started runs, finished runs
    std::uint64_t quarantines = 0;         ///< times a run was seen newly quarantined
    std::uint64_t file_bytes = 0, max_file_bytes = 0;
    std::map<std::string, std::uint64_t> acks;  ///< by "purpose outcome"
};

class Oracle {
public:
    Oracle(std::filesystem::path db, std::filesystem::path ledger, std::uint64_t seed)
        : db_(std::move(db)), ledger_(std::move(ledger)), seed_(seed) {}

    /// Checks every invariant after one host lifetime; returns what is broken
    /// (empty: all hold). Runs that finished before the lifetime cannot change
    /// unless something is broken: they are compared with what was seen every
    /// full_sweep_every checks (and by `final`) rather than every time, which
    /// keeps a check's cost from growing with every run ever started.
    std::vector<std::string> check(const HostLifetime& lifetime, bool final = false);
    /// After a last lifetime that ran until every run finished: check() plus
    /// every run's expected ending, effects and consumed answers, and every
    /// accepted answer consumed or reported undeliverable exactly once.
    std::vector<std::string> check_final(const HostLifetime& lifetime);

    /// The runs the last check saw quarantined.
    std::vector<std::string> quarantined() const;
    /// During the last lifetime, which no kill ends: finds the runs its host
    /// quarantined (at its recovery, for kills before it), so the driver can
    /// release them, and checks each as check() would. A run the last kill
    /// hit for the quarantine_after-th time is quarantined there, not in a
    /// host the oracle checks after.
    std::vector<std::string> check_new_quarantines();
    /// The driver released `run` (a run's attempts start over).
    void released(const std::string& run);

    const OracleFigures& figures() const { return figures_; }
    /// The bound the database file must stay under for `runs` runs (see oracle.cpp).
    static std::uint64_t file_bound(std::uint64_t runs);

private:
    struct Entry {
        std::uint32_t seq = 0;
        std::string kind, name, value, detail;
        bool operator==(const Entry&) const = default;
    };
    struct Run {
        Plan plan;
        RunStatus status{};
        std::uint32_t journal_entries = 0;
        TimePoint updated{};
        std::vector<Entry> entries;
        std::map<std::string, int> consumed;  ///< answer id -> wakes carrying it
        json output;
        /// Checks since its journal last grew (or it was released) that saw
        /// it `running`, i.e. a host died while running it: at least
        /// quarantine_after before the engine may quarantine it.
        std::uint32_t deaths_while_running = 0;
    };
    using Broken = std::vector<std::string>;

    void check_steplog(const std::vector<examples::StepRun>& log, Broken& broken);
    void refresh_run(const Engine& db, const RunInfo& info, const std::set<std::string>& touched, Broken& broken);
    void check_journal(Run& run, const Trace& trace, Broken& broken);
    void check_quarantine(const RunInfo& info, const Run& run, std::uint32_t deaths_before, Broken& broken);
    void check_events(const Engine& db, Broken& broken);
    void check_acks(const std::filesystem::path& acks, Broken& broken);
    void check_ledger(Broken& broken);
    void check_accepted_resolved(Broken& broken);
    void check_ending(const Run& run, Broken& broken) const;
    int undeliverable(const std::string& id) const;
    int consumed(const std::string& id) const;

    std::filesystem::path db_, ledger_;
    std::uint64_t seed_;
    std::map<std::string, Run> runs_;
    std::map<std::string, std::string> committed_;  ///< idempotency key -> result, of every journaled step
    std::map<std::string, std::string> step_names_;  ///< idempotency key -> step name
    std::set<std::string> executed_;                 ///< keys whose body ran at least once
    std::map<std::string, std::string> accepted_;    ///< answer id -> run, accepted (buffered or delivered)
    std::set<std::string> unresolved_;               ///< accepted ids whose run has not finished
    std::set<std::string> unproven_duplicates_;      ///< duplicates whose first acceptance was not acknowledged
    std::map<std::string, int> undeliverable_;       ///< answer id -> signal_dropped / signal_rejected events
    std::map<std::string, std::string> payments_;    ///< ledger key -> receipt
    std::map<std::string, std::string> effect_refs_; ///< "{run}/{step}" -> ledger key
    static constexpr std::uint64_t full_sweep_every = 25;
    std::uint64_t checks_ = 0;
    std::size_t ledger_lines_ = 0;
    std::uint64_t event_cursor_ = 0;
    OracleFigures figures_;
};

}  // namespace abide::torture
