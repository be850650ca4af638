// The signaller of the kill -9 torture: a separate process that answers the
// runs as the plan says (workload.hpp: sends_for), with duplicates, strays,
// malformed payloads, late answers and answers to finished runs, through
// Engine::signal_batch or through the `abide` command. It opens the database
// with no workflow definitions, as the `abide` command does, so every accepted
// payload is buffered and checked by the host at its next poll.
//
// After each answer it appends one line to the acknowledgement log:
//   ID RUN signal|resume NAME PURPOSE OUTCOME VIA EXIT
// (VIA api or cli; EXIT the command's exit status, or - for the API). A line
// is written only after the engine (or the command) returned: a signaller
// killed in between leaves an accepted signal without a line, which the
// oracle allows; a line is never written for something that did not happen.
//
// A run that is finished and has had all its answers is appended to the done
// file, so that a restarted signaller leaves it alone. The driver kills this
// process (and the commands it runs: it leads its own process group) at
// random instants, like the host.
#include "harness.hpp"
#include "workload.hpp"

#include <unistd.h>

#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>

namespace {

using namespace abide;
namespace fs = std::filesystem;

struct SignallerOptions {
    fs::path db, acks, done, cli, scratch;
    std::chrono::milliseconds poll{5};
};

SignallerOptions parse(int argc, char** argv) {
    const harness::Flags f(argc, argv, {"--db", "--acks", "--done", "--cli", "--scratch"}, {"--poll-ms"},
                           "usage: abide_torture_signaller --db DB --acks FILE --done FILE --cli ABIDE --scratch DIR "
                           "[--poll-ms M]\n");
    SignallerOptions o;
    o.db = f.text("--db");
    o.acks = f.text("--acks");
    o.done = f.text("--done");
    o.cli = f.text("--cli");
    o.scratch = f.text("--scratch");
    o.poll = std::chrono::milliseconds(f.number("--poll-ms", static_cast<std::uint64_t>(o.poll.count())));
    return o;
}

class Signaller {
public:
    explicit Signaller(SignallerOptions o) : o_(std::move(o)), engine_({.path = o_.db, .cache_size = 0}) {
        for (const std::string& run : harness::read_lines(o_.done)) done_.insert(run);
    }

    /// Each pass answers the unfinished runs, those that left that set since
    /// the last pass, and a page of the runs that are not done (finished runs
    /// wanting answers after their end; runs that finished while no signaller
    /// ran). Paging keeps every pass short however many runs there are, so a
    /// signaller that lives a few milliseconds still answers something.
    void run() {
        for (;;) {
            std::vector<RunInfo> runs = unfinished_and_just_finished();
            for (RunInfo& r : next_page_of_not_done()) runs.push_back(std::move(r));
            answer(runs);
            std::this_thread::sleep_for(o_.poll);
        }
    }

private:
    std::vector<RunInfo> next_page_of_not_done() {
        if (catch_up_.empty()) {  // start (again) at the first run that is not done
            int first = 0;
            while (done_.count(torture::run_id_of(first))) ++first;
            if (first > 0) catch_up_ = torture::run_id_of(first - 1);
        }
        std::vector<RunInfo> page = engine_.list_runs({.limit = 50, .after = catch_up_});
        catch_up_ = page.empty() ? std::string() : page.back().id;
        std::erase_if(page, [&](const RunInfo& r) { return done_.count(r.id) || !is_finished(r.status); });
        return page;
    }

    std::vector<RunInfo> unfinished_and_just_finished() {
        std::vector<RunInfo> runs;
        std::set<std::string> now_unfinished;
        for (RunStatus s : {RunStatus::ready, RunStatus::running, RunStatus::waiting})
            for (RunInfo& r : torture::list_all_runs(engine_, s)) {
                now_unfinished.insert(r.id);
                runs.push_back(std::move(r));
            }
        for (const std::string& id : unfinished_)
            if (!now_unfinished.count(id))
                if (auto info = engine_.status(id)) runs.push_back(std::move(*info));
        unfinished_ = std::move(now_unfinished);
        return runs;
    }

    struct Pending {
        std::string run;
        torture::Send send;
    };

    void answer(const std::vector<RunInfo>& runs) {
        std::vector<Pending> api, cli;
        std::vector<std::pair<std::string, std::vector<std::string>>> finished;  // run, its sends' keys
        if (!probed_) {  // one answer to a run that does not exist: unknown_run
            api.push_back({"t-missing", {"probe-" + std::to_string(::getpid()), WaitKind::signal, "decision",
                                         json::object(), "probe"}});
            probed_ = true;
        }
        const TimePoint now = Clock::now();
        for (const RunInfo& info : runs) {
            if (done_.count(info.id)) continue;
            const auto plan = info.input.get<torture::Plan>();
            std::vector<std::string> keys;
            for (torture::Send& s : torture::sends_for(plan, info, now)) {
                keys.push_back(key_of(s));
                if (acked_.count(keys.back())) continue;
                (plan.via_cli ? cli : api).push_back({info.id, std::move(s)});
            }
            if (is_finished(info.status)) finished.emplace_back(info.id, std::move(keys));
            if (!is_finished(info.status)) unfinished_.insert(info.id);
        }
        send_by_api(api);
        for (const Pending& p : cli) send_by_cli(p);
        for (const auto& [run, keys] : finished) {
            bool all = true;
            for (const std::string& k : keys) all = all && acked_.count(k);
            if (!all) continue;
            harness::append_line(o_.done, run);
            done_.insert(run);
        }
    }

    static std::string key_of(const torture::Send& s) { return s.id + "#" + s.purpose; }

    void send_by_api(const std::vector<Pending>& pending) {
        if (pending.empty()) return;
        std::vector<SignalRequest> requests;
        for (const Pending& p : pending)
            requests.push_back({p.run, p.send.name, p.send.payload, p.send.id, p.send.channel});
        const std::vector<SignalResult> results = engine_.signal_batch(requests);
        for (std::size_t i = 0; i < pending.size(); ++i)
            acknowledge(pending[i], std::string(to_string(results[i].outcome)), "api", "-");
    }

    /// `abide signal|resume RUN NAME --id ID --data JSON --json`; the outcome
    /// is read from its JSON line, the exit status logged beside it.
    void send_by_cli(const Pending& p) {
        const fs::path out = o_.scratch / ("cli-" + std::to_string(::getpid()) + ".out");
        fs::remove(out);
        const bool is_signal = p.send.channel == WaitKind::signal;
        const int code = harness::run_to_end({o_.cli.string(), "--db", o_.db.string(), is_signal ? "signal" : "resume",
                                              p.run, p.send.name, "--id", p.send.id, "--data", p.send.payload.dump(),
                                              "--json"},
                                             out);
        std::string outcome = "cli_failed";
        try {
            const auto lines = harness::read_lines(out);
            if (!lines.empty()) outcome = json::parse(lines.back()).at("outcome").get<std::string>();
        } catch (const std::exception&) {
            // The line is missing or not JSON: logged as cli_failed, which the oracle reports.
        }
        acknowledge(p, outcome, "cli", std::to_string(code));
    }

    void acknowledge(const Pending& p, const std::string& outcome, const char* via, const std::string& exit) {
        const torture::Send& s = p.send;
        harness::append_line(o_.acks, s.id + " " + p.run + " " + (s.channel == WaitKind::signal ? "signal" : "resume") +
                                          " " + s.name + " " + s.purpose + " " + outcome + " " + via + " " + exit);
        acked_.insert(key_of(s));
    }

    SignallerOptions o_;
    Engine engine_;  // defines nothing: payloads are stored unchecked, as by the `abide` command
    std::set<std::string> done_, acked_, unfinished_;
    std::string catch_up_;  // the last run id the catch-up pages reached
    bool probed_ = false;
};

}  // namespace

int main(int argc, char** argv) try {
    abide::harness::die_with_parent();
    Signaller(parse(argc, argv)).run();
} catch (const std::exception& e) {
    std::cerr << "abide_torture_signaller: " << e.what() << "\n";
    return 1;
}
