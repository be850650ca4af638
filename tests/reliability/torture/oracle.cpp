#include "oracle.hpp"

#include "harness.hpp"

#include <algorithm>
#include <sstream>

namespace abide::torture {
namespace {

/// The answer id a wake entry consumed (its trace detail is "signal id=ID"
/// or "resumed id=ID"), or "".
std::string consumed_id(const std::string& kind, const std::string& detail) {
    if (kind != "wake") return {};
    const auto at = detail.find(" id=");
    return at == std::string::npos ? std::string() : detail.substr(at + 4);
}

/// One line of the acknowledgement log (see torture_signaller.cpp).
struct Ack {
    std::string id, run, channel, name, purpose, outcome, via, exit;
};

std::optional<Ack> parse_ack(const std::string& line) {
    std::istringstream in(line);
    Ack a;
    if (!(in >> a.id >> a.run >> a.channel >> a.name >> a.purpose >> a.outcome >> a.via >> a.exit)) return std::nullopt;
    return a;
}

bool accepted_outcome(const std::string& outcome) { return outcome == "buffered" || outcome == "delivered"; }

/// Plan index of a run id "t-000042", or -1.
int index_of(const std::string& run) {
    if (run.size() != 8 || run.compare(0, 2, "t-") != 0) return -1;
    try {
        return std::stoi(run.substr(2));
    } catch (const std::exception&) {
        return -1;
    }
}

std::string run_of_key(const std::string& key) { return key.substr(0, key.find(':')); }

}  // namespace

// A run keeps its input, its journal (at most ~12 entries of under 300 bytes
// here), its events (about as many) and index keys: measured at 3-4 KiB per
// finished run in these databases. LMDB's B-trees are at least half full
// after splits, and pages freed by a commit are reused once no reader holds
// them, so a healthy file stays within 2x of its data plus a few MiB of
// slack for the freelist and the map's first pages. 16 KiB per run is 4x the
// data: a file over it grows with kills (leaked pages, stale readers pinning
// old snapshots, records written twice), not with runs.
std::uint64_t Oracle::file_bound(std::uint64_t runs) { return (std::uint64_t{4} << 20) + runs * (16u << 10); }

std::vector<std::string> Oracle::quarantined() const {
    std::vector<std::string> ids;
    for (const auto& [id, run] : runs_)
        if (run.status == RunStatus::quarantined) ids.push_back(id);
    return ids;
}

void Oracle::released(const std::string& run) {
    Run& r = runs_.at(run);
    r.deaths_while_running = 0;
    r.status = RunStatus::ready;  // what `abide release` makes it: released once
}

void Oracle::check_quarantine(const RunInfo& info, const Run& run, std::uint32_t deaths_before, Broken& broken) {
    ++figures_.quarantines;
    if (deaths_before < quarantine_after || info.journal_entries != run.journal_entries)
        broken.push_back(info.id + " was quarantined, but at most " + std::to_string(deaths_before) +
                         " hosts died running it since its last progress (quarantine_after is " +
                         std::to_string(quarantine_after) + "): " +
                         (info.error ? info.error->message : std::string("no error")));
}

std::vector<std::string> Oracle::check_new_quarantines() {
    Broken broken;
    try {
        const Engine db({.path = db_, .cache_size = 0});
        for (const RunInfo& info : list_all_runs(db, RunStatus::quarantined)) {
            auto it = runs_.find(info.id);
            if (it == runs_.end() || it->second.status == RunStatus::quarantined) continue;
            check_quarantine(info, it->second, it->second.deaths_while_running, broken);
            it->second.status = RunStatus::quarantined;
        }
    } catch (const std::exception& e) {
        broken.push_back(std::string("the database does not open to list quarantined runs: ") + e.what());
    }
    return broken;
}

int Oracle::undeliverable(const std::string& id) const {
    auto it = undeliverable_.find(id);
    return it == undeliverable_.end() ? 0 : it->second;
}

int Oracle::consumed(const std::string& id) const {
    auto run = runs_.find(id.substr(0, id.find('/')));
    if (run == runs_.end()) return 0;
    auto it = run->second.consumed.find(id);
    return it == run->second.consumed.end() ? 0 : it->second;
}

std::vector<std::string> Oracle::check(const HostLifetime& lifetime, bool final) {
    Broken broken;
    const auto log = examples::read_step_log(lifetime.steplog);
    // Committed before this host started: what earlier checks saw.
    check_steplog(log, broken);
    // The ledger before the journal: an effect is on the ledger before its
    // step commits, so every step this check sees committed has its line.
    check_ledger(broken);
    std::set<std::string> touched;  // runs named by this lifetime's logs
    for (const auto& r : log) touched.insert(r.run_id);
    for (const std::string& line : harness::read_lines(lifetime.acks))
        if (auto a = parse_ack(line)) touched.insert(a->run);
    try {
        const Engine db({.path = db_, .cache_size = 0});
        const Stats stats = db.stats();
        if (stats.runs < runs_.size())
            broken.push_back("the database holds " + std::to_string(stats.runs) + " runs, " +
                             std::to_string(runs_.size()) + " were seen before");
        if (stats.completed < figures_.finished)
            broken.push_back("the database holds " + std::to_string(stats.completed) + " completed runs, " +
                             std::to_string(figures_.finished) + " were seen before");
        if (++checks_ % full_sweep_every == 0 || final) {
            // Every run, finished ones too: none may have changed since it finished.
            const std::vector<RunInfo> all = list_all_runs(db);
            const std::size_t listed = all.size();
            for (const RunInfo& info : all) refresh_run(db, info, touched, broken);
            if (listed != stats.runs)
                broken.push_back("the database lists " + std::to_string(listed) + " runs and counts " +
                                 std::to_string(stats.runs));
        } else {
            // What can have changed: unfinished runs, runs this lifetime
            // started (run ids are the plan indexes in order), and runs its logs name.
            std::set<std::string> ids = touched;
            for (const auto& [id, run] : runs_)
                if (!is_finished(run.status)) ids.insert(id);
            for (std::uint64_t i = runs_.size(); i < stats.runs; ++i) ids.insert(run_id_of(static_cast<int>(i)));
            for (const std::string& id : ids) {
                if (auto info = db.status(id))
                    refresh_run(db, *info, touched, broken);
                else if (runs_.count(id) || (index_of(id) >= 0 && index_of(id) < static_cast<int>(stats.runs)))
                    broken.push_back("run " + id + " is not in the database");
            }
        }
        check_events(db, broken);
        figures_.file_bytes = stats.file_bytes;
        figures_.max_file_bytes = std::max(figures_.max_file_bytes, stats.file_bytes);
        figures_.runs = stats.runs;
        figures_.finished = stats.completed;
        if (stats.file_bytes > file_bound(stats.runs))
            broken.push_back("the database file is " + std::to_string(stats.file_bytes) + " bytes for " +
                             std::to_string(stats.runs) + " runs, over the bound of " +
                             std::to_string(file_bound(stats.runs)));
    } catch (const std::exception& e) {
        broken.push_back(std::string("the database does not open and verify: ") + e.what());
        return broken;
    }
    check_acks(lifetime.acks, broken);
    check_accepted_resolved(broken);
    bool mid_step = false;
    for (const auto& r : log) mid_step = mid_step || !committed_.count(r.key);
    figures_.killed_mid_step += mid_step ? 1 : 0;
    return broken;
}

void Oracle::check_steplog(const std::vector<examples::StepRun>& log, Broken& broken) {
    std::map<std::string, int> in_this_host;
    for (const examples::StepRun& r : log) {
        const std::string what = r.run_id + " step " + r.step + " (" + r.key + ")";
        if (committed_.count(r.key))
            broken.push_back(what + " ran again although its result " + committed_[r.key] + " was journaled");
        if (++in_this_host[r.key] == 2) broken.push_back(what + " ran twice in one host");
        ++figures_.body_executions;
        figures_.reran_bodies += executed_.insert(r.key).second ? 0 : 1;
    }
}

void Oracle::check_ledger(Broken& broken) {
    const auto payments = examples::PaymentsLedger(ledger_).payments();
    if (payments.size() < ledger_lines_)
        broken.push_back("the effect ledger shrank from " + std::to_string(ledger_lines_) + " to " +
                         std::to_string(payments.size()) + " lines");
    for (std::size_t i = ledger_lines_; i < payments.size(); ++i) {
        const examples::Payment& p = payments[i];
        if (!payments_.emplace(p.key, p.receipt).second)
            broken.push_back("the effect ledger holds two effects under key " + p.key);
        auto [it, fresh] = effect_refs_.emplace(p.reference, p.key);
        if (!fresh)
            broken.push_back("effect " + p.reference + " was performed twice, under keys " + it->second + " and " +
                             p.key);
        if (p.reference.compare(0, run_of_key(p.key).size() + 1, run_of_key(p.key) + "/") != 0)
            broken.push_back("effect " + p.reference + " has the key " + p.key + " of another run");
    }
    ledger_lines_ = std::max(ledger_lines_, payments.size());
    figures_.effects = ledger_lines_;
}

void Oracle::refresh_run(const Engine& db, const RunInfo& info, const std::set<std::string>& touched,
                         Broken& broken) {
    const int index = index_of(info.id);
    auto it = runs_.find(info.id);
    if (it == runs_.end()) {
        if (index < 0) {
            broken.push_back("the database holds a run the workload never starts: " + info.id);
            return;
        }
        Run fresh;
        fresh.plan = make_plan(seed_, index);
        if (info.input != json(fresh.plan))
            broken.push_back(info.id + ": its input " + info.input.dump() + " is not its plan " +
                             json(fresh.plan).dump());
        it = runs_.emplace(info.id, std::move(fresh)).first;
    }
    Run& run = it->second;
    // Counted for every run, changed or not: the count may only overstate the
    // deaths (a check that sees `running` after a host that never claimed the
    // run), so the quarantine check below never blames a sound engine.
    const std::uint32_t deaths_before = run.deaths_while_running;
    if (info.journal_entries != run.journal_entries) run.deaths_while_running = 0;
    if (info.status == RunStatus::running) ++run.deaths_while_running;
    if (info.status == RunStatus::quarantined && run.status != RunStatus::quarantined)
        check_quarantine(info, run, deaths_before, broken);
    if (run.status == info.status && run.journal_entries == info.journal_entries && run.updated == info.updated &&
        !touched.count(info.id) && !run.entries.empty())
        return;  // unchanged since the last check
    if (is_finished(run.status) && (info.status != run.status || info.journal_entries != run.journal_entries))
        broken.push_back(info.id + " was " + std::string(to_string(run.status)) + " and is now " +
                         std::string(to_string(info.status)) + " with " + std::to_string(info.journal_entries) +
                         " journal entries");
    if (info.status == RunStatus::failed || info.status == RunStatus::cancelled)
        broken.push_back(info.id + " " + std::string(to_string(info.status)) + ": " +
                         (info.error ? info.error->id + " " + info.error->message : std::string("no error")));
    run.status = info.status;
    run.journal_entries = info.journal_entries;
    run.updated = info.updated;
    if (info.output) run.output = *info.output;
    check_journal(run, db.trace(info.id), broken);
    if (run.status == RunStatus::completed) check_ending(run, broken);
}

void Oracle::check_journal(Run& run, const Trace& trace, Broken& broken) {
    const std::string& id = run.plan.run_id;
    std::vector<Entry> entries;
    for (const TraceEntry& e : trace.entries)
        entries.push_back({e.seq, e.kind, e.name, e.value.dump(), e.detail});
    // Acknowledged entries stay, with the same values.
    for (std::size_t i = 0; i < run.entries.size(); ++i) {
        if (i >= entries.size()) {
            broken.push_back(id + ": journal entry " + std::to_string(i) + " (" + run.entries[i].kind + " " +
                             run.entries[i].name + ") was seen committed and is gone");
            break;
        }
        if (!(entries[i] == run.entries[i]))
            broken.push_back(id + ": journal entry " + std::to_string(i) + " was " + run.entries[i].kind + " " +
                             run.entries[i].name + " " + run.entries[i].value + " and is now " + entries[i].kind +
                             " " + entries[i].name + " " + entries[i].value);
    }
    const std::vector<std::string> expected = expected_consumed(run.plan);
    run.consumed.clear();
    for (const TraceEntry& e : trace.entries) {
        if (e.kind == "step") {
            const std::string key = id + ":" + std::to_string(e.seq);
            committed_[key] = e.value.dump();
            step_names_[key] = e.name;
            if (is_effect_step(e.name)) {
                auto paid = payments_.find(key);
                if (paid == payments_.end())
                    broken.push_back(id + ": effect step " + e.name + " is journaled (" + e.value.dump() +
                                     ") but the ledger has no effect under " + key);
                else if (e.value != paid->second)
                    broken.push_back(id + ": effect step " + e.name + " is journaled as " + e.value.dump() +
                                     ", the ledger's receipt is " + paid->second);
            }
        }
        const std::string answer = consumed_id(e.kind, e.detail);
        if (answer.empty()) continue;
        if (++run.consumed[answer] == 2) broken.push_back(id + ": answer " + answer + " was applied twice");
        if (std::find(expected.begin(), expected.end(), answer) == expected.end())
            broken.push_back(id + ": consumed " + answer + ", which its plan never answers with");
    }
    run.entries = std::move(entries);
}

void Oracle::check_ending(const Run& run, Broken& broken) const {
    const Ending want = expected_ending(run.plan);
    const std::string& id = run.plan.run_id;
    if (run.output.value("outcome", "") != want.outcome || run.output.value("amount", std::int64_t{-1}) != want.amount)
        broken.push_back(id + " (" + run.plan.workflow + ") ended " + run.output.dump() + ", expected " +
                         want.outcome + " of " + std::to_string(want.amount));
    std::vector<std::string> effects;
    json receipts = json::array();
    for (const Entry& e : run.entries)
        if (e.kind == "step" && is_effect_step(e.name)) {
            effects.push_back(e.name);
            receipts.push_back(json::parse(e.value));
        }
    if (effects != expected_effects(run.plan))
        broken.push_back(id + ": its journal has the effects " + json(effects).dump() + ", expected " +
                         json(expected_effects(run.plan)).dump());
    if (run.output.value("receipts", json::array()) != receipts)
        broken.push_back(id + ": its output names the receipts " + run.output.value("receipts", json()).dump() +
                         ", its journal " + receipts.dump());
}

void Oracle::check_events(const Engine& db, Broken& broken) {
    for (;;) {
        const auto batch = db.events(event_cursor_, 2000);
        if (batch.empty()) break;
        for (const Event& e : batch) {
            if (e.seq != event_cursor_ + 1)
                broken.push_back("the event log jumps from seq " + std::to_string(event_cursor_) + " to " +
                                 std::to_string(e.seq));
            event_cursor_ = e.seq;
            if (e.type != EventType::signal_dropped && e.type != EventType::signal_rejected) continue;
            const std::string answer = e.data.value("signal_id", "");
            if (++undeliverable_[answer] == 2)
                broken.push_back(e.run_id + ": answer " + answer + " was reported undeliverable twice");
        }
    }
    if (db.stats().last_event_seq < event_cursor_)
        broken.push_back("the event log lost events after seq " + std::to_string(db.stats().last_event_seq));
}

void Oracle::check_acks(const std::filesystem::path& acks, Broken& broken) {
    for (const std::string& line : harness::read_lines(acks)) {
        const auto a = parse_ack(line);
        if (!a) {
            broken.push_back("malformed acknowledgement line: " + line);
            continue;
        }
        ++figures_.acks[a->purpose + " " + a->outcome];
        const std::string what = "answer " + a->id + " (" + a->purpose + ", " + a->via + ") to " + a->run + ": " +
                                 a->outcome;
        const bool accepted = accepted_outcome(a->outcome);
        if (a->via == "cli" && a->exit != (accepted ? "0" : "1"))
            broken.push_back(what + ", but the abide command exited with " + a->exit);
        auto run = runs_.find(a->run);
        if (accepted) {
            if (!accepted_.emplace(a->id, a->run).second) broken.push_back(what + " for the second time");
            unresolved_.insert(a->id);
        } else if (a->outcome == "duplicate") {
            const bool seen = accepted_.count(a->id) || consumed(a->id) > 0 || undeliverable(a->id) > 0;
            if (!seen) unproven_duplicates_.insert(a->id);  // accepted by a send killed before its line
        } else if (a->outcome == "run_finished") {
            if (run == runs_.end() || !is_finished(run->second.status))
                broken.push_back(what + ", but the run is not finished");
        } else if (a->outcome == "too_late") {
            bool timed_out = false;
            if (run != runs_.end())
                for (const Entry& e : run->second.entries)
                    timed_out = timed_out || (e.kind == "wake" && e.name == a->name && e.detail.rfind("timeout", 0) == 0);
            if (!timed_out) broken.push_back(what + ", but the journal shows no timeout of that wait");
        } else if (a->outcome == "unknown_run") {
            if (a->purpose != "probe" || run != runs_.end()) broken.push_back(what + " for a run that exists");
        } else {
            broken.push_back(what + ": not an outcome this workload can get");
        }
    }
}

void Oracle::check_accepted_resolved(Broken& broken) {
    for (auto it = unresolved_.begin(); it != unresolved_.end();) {
        const std::string& answer = *it;
        const int outcomes = consumed(answer) + undeliverable(answer);
        if (outcomes > 1)
            broken.push_back("answer " + answer + " was consumed " + std::to_string(consumed(answer)) +
                             " times and reported undeliverable " + std::to_string(undeliverable(answer)) + " times");
        auto run = runs_.find(accepted_.at(answer));
        if (run == runs_.end() || !is_finished(run->second.status)) {
            ++it;
            continue;
        }
        if (outcomes == 0)
            broken.push_back("answer " + answer + " was accepted, and its run finished without consuming it or "
                             "reporting it undeliverable");
        it = unresolved_.erase(it);
    }
}

std::vector<std::string> Oracle::check_final(const HostLifetime& lifetime) {
    Broken broken = check(lifetime, true);
    for (const auto& [id, run] : runs_) {
        if (run.status != RunStatus::completed) {
            broken.push_back(id + " (" + run.plan.workflow + ") did not finish: " +
                             std::string(to_string(run.status)));
            continue;
        }
        std::vector<std::string> consumed_in_order;
        for (const Entry& e : run.entries)
            if (std::string answer = consumed_id(e.kind, e.detail); !answer.empty())
                consumed_in_order.push_back(std::move(answer));
        if (consumed_in_order != expected_consumed(run.plan))
            broken.push_back(id + " consumed " + json(consumed_in_order).dump() + ", expected " +
                             json(expected_consumed(run.plan)).dump());
    }
    for (const std::string& answer : unproven_duplicates_)
        if (consumed(answer) + undeliverable(answer) != 1)
            broken.push_back("answer " + answer + " was reported a duplicate but was never accepted");
    for (const auto& [key, receipt] : payments_)
        if (!committed_.count(key)) broken.push_back("the ledger holds effect " + key + " of no journaled step");
    // Each run's effects, once each (checked per run at its end), and nothing else.
    std::size_t expected_effect_count = 0;
    for (const auto& [id, run] : runs_) expected_effect_count += expected_effects(run.plan).size();
    if (payments_.size() != expected_effect_count)
        broken.push_back("the ledger holds " + std::to_string(payments_.size()) + " effects, the plans " +
                         std::to_string(expected_effect_count));
    return broken;
}

}  // namespace abide::torture
