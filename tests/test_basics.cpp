#include "support.hpp"

#include <catch2/catch.hpp>

using namespace abide;
using namespace std::chrono_literals;

// A named namespace, not an anonymous one: the macro's to_json is unused
// here, and clang warns about unused functions with internal linkage.
namespace smoke {

struct Decision {
    std::string status, reviewer_id, reason;
    std::int64_t approved_amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Decision, status, reviewer_id, reason, approved_amount)

}  // namespace smoke
using smoke::Decision;

TEST_CASE("a workflow runs steps, waits for a signal and completes", "[smoke]") {
    test::TempDir dir;
    test::ManualClock clock;
    int loads = 0, refunds = 0;
    Engine engine(test::test_options(dir, clock));
    engine
        .define("refund",
                [&](Context& ctx, const std::string& ticket) {
                    auto amount = ctx.step("load", [&] {
                        ++loads;
                        return 4900;
                    });
                    auto d = ctx.wait_for_signal<Decision>("decision", 24h, {{"ticket", ticket}});
                    if (!d) return std::string("timed_out");
                    if (d->status != "approved") return std::string("rejected");
                    ctx.step("refund", [&] {
                        ++refunds;
                        return amount;
                    });
                    return std::string("refunded");
                })
        .signal<Decision>("decision");
    auto run = engine.start("refund", std::string("T-1"));
    auto p = engine.poll();
    CHECK(p.waiting == 1);
    CHECK(engine.status(run)->status == RunStatus::waiting);
    auto r = engine.signal(run, "decision", R"({"status":"approved","reviewer_id":"u1","reason":"ok","approved_amount":4900})");
    CHECK(r.outcome == SignalOutcome::delivered);
    CHECK(r.message == "delivered: run '" + run.id +
                           "' was waiting for signal 'decision' and is ready; the next poll continues it");
    engine.poll();
    CHECK(engine.status(run)->status == RunStatus::completed);
    CHECK(engine.result<std::string>(run) == "refunded");
    CHECK(loads == 1);
    CHECK(refunds == 1);
}
