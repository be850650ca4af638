#include "oracle.hpp"

#include "workload.hpp"

#include <cctype>
#include <set>
#include <stdexcept>

namespace abide::corruption {

namespace {

bool is_error(const json& read) { return read.contains("error"); }

/// abide's storage errors say what is damaged ("[abide.storage.corrupt]
/// ... run record #3 ... checksum"): the error a damaged file must produce.
bool is_storage_error(const json& read) {
    return is_error(read) && read.value("abide", false) &&
           read["error"].get<std::string>().starts_with("[abide.storage.");
}

std::string shorten(const json& v) {
    std::string text = v.dump();
    return text.size() > 300 ? text.substr(0, 300) + "..." : text;
}

/// Everything one opened copy is judged on, with the verdict it builds.
class Judge {
public:
    Judge(const json& reference, const json& damaged, Verdict& verdict)
        : ref_(reference), obs_(damaged), verdict_(verdict) {
        for (const json& p : obs_["verify"]["problems"]) verify_problems_.push_back(p.get<std::string>());
        for (const json& r : obs_["verify"]["damaged_runs"]) verify_damaged_.push_back(r.get<std::string>());
        verdict_.detected_by_verify = !verify_problems_.empty();
    }

    void run() {
        for (const PlannedRun& run : planned_runs()) {
            for (const char* what : {"status", "trace", "result"})
                check_read(run, std::string("before ") + what, ref_["before"][run.id][what],
                           obs_["before"][run.id][what]);
        }
        for (const char* table : {"listed", "events", "stats"}) check_table(table);
        for (std::size_t i = 0; i < ref_["deliveries"].size(); ++i) {
            const PlannedRun& run = planned(obs_["deliveries"][i]["run"].get<std::string>());
            check_read(run, "delivery " + std::to_string(i), ref_["deliveries"][i]["outcome"],
                       obs_["deliveries"][i]["outcome"]);
        }
        for (const json& e : obs_["poll_errors"]) {
            ++engine_reports_;
            if (!e.get<std::string>().starts_with("[abide.storage."))
                fail("poll() threw an error that is not a storage error: " + e.get<std::string>());
        }
        engine_reports_ += obs_["poll_problems"].size();
        for (const PlannedRun& run : planned_runs()) {
            const json& expected = ref_["after"][run.id];
            const json& got = obs_["after"][run.id];
            if (reported(run)) {
                if (!named_by_verify(run)) ++verdict_.runs_verify_missed;
                continue;  // damaged: any end is acceptable, reported as it is
            }
            if (got == expected) continue;
            const std::string end = "run '" + run.id + "' was reported by nobody yet did not end as on the "
                                    "undamaged copy: " + shorten(got) + ", expected " + shorten(expected);
            const bool finished = got.contains("value") && got["value"].is_object() &&
                                  is_finished(parse_run_status(got["value"].value("status", "")).value_or(RunStatus::ready));
            if (finished)
                fail(end + " (a wrong outcome)");
            else if (!verdict_.detected_by_verify)
                fail(end + " (verify_database had found the file sound)");
            else if (!shared_table_damaged())
                fail(end + " (verify_database had named only other runs)");
            else
                ++verdict_.runs_blocked;
        }
        const bool anything_reported = verdict_.detected_by_verify || engine_reports_ > 0;
        verdict_.handling = anything_reported ? Verdict::Handling::reported : Verdict::Handling::sound;
    }

private:
    const PlannedRun& planned(const std::string& id) const {
        for (const PlannedRun& run : planned_runs())
            if (run.id == id) return run;
        throw std::runtime_error("unknown run in an observation: " + id);
    }

    bool named_by_verify(const PlannedRun& run) const {
        for (const std::string& d : verify_damaged_)
            if (d == run.id || d == "#" + std::to_string(run.number)) return true;
        for (const std::string& p : verify_problems_)
            if (names_run(p, run.id, run.number)) return true;
        return false;
    }

    /// verify reported a problem that names none of the runs: damage to a
    /// table they share.
    bool shared_table_damaged() const {
        for (const std::string& p : verify_problems_) {
            bool names_one = false;
            for (const PlannedRun& run : planned_runs()) names_one = names_one || names_run(p, run.id, run.number);
            if (!names_one) return true;
        }
        return false;
    }

    /// Damaged by someone's account: verify, an error reading it, or a poll.
    bool reported(const PlannedRun& run) const {
        if (named_by_verify(run) || errored_.count(run.id)) return true;
        for (const json& p : obs_["poll_problems"])
            if (names_run(p.get<std::string>(), run.id, run.number)) return true;
        return false;
    }

    void check_read(const PlannedRun& run, const std::string& what, const json& expected, const json& got) {
        if (got == expected) return;
        const std::string where = "run '" + run.id + "' (#" + std::to_string(run.number) + ") " + what;
        if (is_error(got)) {
            errored_.insert(run.id);
            ++engine_reports_;
            if (!is_storage_error(got) && !named_by_verify(run))
                fail(where + ": an error that does not say the file is damaged, for a run verify did not name: " +
                     got["error"].get<std::string>());
            return;
        }
        if (named_by_verify(run)) {
            ++verdict_.wrong_values_behind_warning;
            return;
        }
        fail(where + " is silently wrong: " + shorten(got) + ", expected " + shorten(expected));
    }

    void check_table(const char* table) {
        const json& expected = ref_["tables"][table];
        const json& got = obs_["tables"][table];
        if (got == expected) return;
        if (is_storage_error(got)) {
            ++engine_reports_;
            return;
        }
        if (verdict_.detected_by_verify) {
            ++verdict_.wrong_values_behind_warning;
            return;
        }
        fail(std::string(table) + " is silently wrong: " + shorten(got) + ", expected " + shorten(expected));
    }

    void fail(std::string what) { verdict_.failures.push_back(std::move(what)); }

    const json& ref_;
    const json& obs_;
    Verdict& verdict_;
    std::vector<std::string> verify_problems_;
    std::vector<std::string> verify_damaged_;
    std::set<std::string> errored_;
    std::size_t engine_reports_ = 0;
};

}  // namespace

bool names_run(const std::string& text, const std::string& id, std::uint64_t number) {
    auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; };
    for (std::size_t at = text.find(id); at != std::string::npos; at = text.find(id, at + 1)) {
        const bool starts = at == 0 || !word_char(text[at - 1]);
        const bool ends = at + id.size() == text.size() || !word_char(text[at + id.size()]);
        if (starts && ends) return true;
    }
    const std::string hash = "#" + std::to_string(number);
    for (std::size_t at = text.find(hash); at != std::string::npos; at = text.find(hash, at + 1))
        if (at + hash.size() == text.size() || !std::isdigit(static_cast<unsigned char>(text[at + hash.size()])))
            return true;
    return false;
}

Verdict judge(const json& reference, const json& damaged) {
    Verdict verdict;
    verdict.detected_by_verify = !damaged["verify"]["problems"].empty();
    if (damaged.contains("refused")) {
        verdict.handling = Verdict::Handling::refused;
        if (!damaged["verify"]["unreadable"].get<bool>())
            verdict.failures.push_back("refused although the check did not find the file unreadable");
        return verdict;
    }
    if (damaged.contains("open_error")) {
        verdict.handling = Verdict::Handling::refused;
        const json& error = damaged["open_error"];
        if (!is_storage_error(error))
            verdict.failures.push_back("the Engine refused the file with an error that does not say it is damaged: " +
                                       error.dump());
        if (!verdict.detected_by_verify)
            verdict.failures.push_back("verify_database found the file sound, but the Engine refused it: " +
                                       error.dump());
        return verdict;
    }
    Judge(reference, damaged, verdict).run();
    return verdict;
}

}  // namespace abide::corruption
