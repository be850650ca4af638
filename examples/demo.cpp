// abide demo: a refund that waits for a person, survives a process restart,
// and finishes exactly once.
//
// Each phase runs in its own child process, so nothing survives between them
// but the database file: process 1 starts the run and exits while it waits;
// process 2 (a fresh process) delivers the approval twice and finishes it.
#include <abide/abide.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>

using namespace std::chrono_literals;

struct Decision {
    std::string status, reviewer_id, reason;
    std::int64_t approved_amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Decision, status, reviewer_id, reason, approved_amount)

// The workflow: two steps, a durable wait for a person, then the side effect.
std::string refund_review(abide::Context& ctx, const std::string& ticket_id) {
    auto amount = ctx.step("load_ticket", [&] {
        std::cout << "    [pid " << getpid() << "] step load_ticket runs\n";
        return 4900;
    });
    auto decision = ctx.wait_for_signal<Decision>("refund_decision", 7 * 24h,
                                                  {{"ticket_id", ticket_id}, {"amount", amount}});
    if (!decision) return "timed_out";
    if (decision->status != "approved") return "not_approved: " + decision->reason;
    auto receipt = ctx.step("issue_refund", [&](abide::StepContext& s) {
        std::cout << "    [pid " << getpid() << "] step issue_refund pays " << amount << " with key "
                  << s.idempotency_key() << "\n";
        return "re_" + s.idempotency_key();
    });
    return "refunded " + receipt;
}

abide::EngineOptions options(const std::filesystem::path& db) {
    abide::EngineOptions o;
    o.path = db;  // synced commits by default: survives kills and power loss
    return o;
}

void define(abide::Engine& engine) {
    engine.define("refund_review", refund_review).signal<Decision>("refund_decision");
}

// Runs `phase` in a child process and waits for it, like a host restart.
bool in_new_process(const std::function<void()>& phase) {
    std::cout.flush();
    pid_t pid = fork();
    if (pid == 0) {
        try {
            phase();
        } catch (const std::exception& e) {
            std::cerr << e.what() << "\n";
            std::_Exit(1);
        }
        std::cout.flush();
        std::_Exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main() {
    const auto dir = std::filesystem::temp_directory_path() / ("abide-demo-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    const auto db = dir / "refunds.db";
    std::cout << "abide demo: database " << db << "\n\n";

    std::cout << "1. process A starts refund T-1001 and runs it until it waits for a person\n";
    bool ok = in_new_process([&] {
        abide::Engine engine(options(db));
        define(engine);
        engine.start("refund_review", std::string("T-1001"), {.run_id = "refund-T-1001"});
        engine.poll();
        for (const auto& run : engine.list_runs({.waiting_for = "refund_decision"}))
            std::cout << "    inbox: " << run.id << " waits for " << run.waiting->name << " "
                      << run.waiting->data.dump() << "\n";
        std::cout << "    process A exits; the run is only in the database now\n";
    });

    std::cout << "\n2. process B opens the same database and delivers the approval, twice\n";
    ok = ok && in_new_process([&] {
        abide::Engine engine(options(db));
        define(engine);
        const char* approval =
            R"({"status":"approved","reviewer_id":"u_123","reason":"inside the refund window","approved_amount":4900})";
        for (int i = 0; i < 2; ++i) {
            auto r = engine.signal("refund-T-1001", "refund_decision", approval, "approval-42");
            std::cout << "    signal: " << abide::to_string(r.outcome) << " (" << r.message << ")\n";
            engine.poll();
        }
        std::cout << "    result: " << engine.result<std::string>("refund-T-1001") << "\n\n";
        std::cout << "3. the trace of the run\n" << engine.trace("refund-T-1001").render();
    });

    std::filesystem::remove_all(dir);
    std::cout << (ok ? "\ndemo finished\n" : "\ndemo FAILED\n");
    return ok ? 0 : 1;
}
