// Fuzz target: the payload of a signal, as a host hands it over from an HTTP
// body: raw bytes as the JSON text of Engine::signal to a run that waits for a
// declared, typed signal.
//
// Properties, for every input:
//  * signal() never crashes or throws for bad input (ASan+UBSan);
//  * it delivers exactly the payloads that are JSON, within
//    max_payload_bytes once re-serialised (what the engine stores) and
//    decodable into the declared type, and refuses every other one as
//    invalid_payload with a message;
//  * a refusal writes nothing: the run still waits, its journal unchanged;
//  * a delivered payload reaches the workflow as the same Decision.
//
// Speed: one engine serves many inputs (a database in /dev/shm, unsynced
// commits, the run's fiber cached). Each run takes `waits_per_run` signals
// and completes; a new run takes its place, and after `runs_per_database` runs
// the database is replaced by a fresh one so that it stays small.
#include "fuzz_support.hpp"

#include <abide/abide.hpp>
#include <harness.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace {

using namespace abide;

struct Decision {
    std::string status, reviewer_id, reason;
    std::int64_t approved_amount = 0;
    bool operator==(const Decision&) const = default;
};

void to_json(json& j, const Decision& d) {
    j = json{{"status", d.status},
             {"reviewer_id", d.reviewer_id},
             {"reason", d.reason},
             {"approved_amount", d.approved_amount}};
}

// Strict, unlike NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE: nlohmann converts a JSON
// float (1e300, or an integer literal too large for 64 bits) into an integer
// field with a cast that is undefined behaviour out of range, and truncates
// 1.5 to 1. This target found that (pending/signal_payload/); a workflow type
// for untrusted payloads must accept only JSON integers that fit.
void from_json(const json& j, Decision& d) {
    j.at("status").get_to(d.status);
    j.at("reviewer_id").get_to(d.reviewer_id);
    j.at("reason").get_to(d.reason);
    const json& amount = j.at("approved_amount");
    const bool fits = amount.is_number_integer() &&
                      (!amount.is_number_unsigned() ||
                       amount.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX));
    if (!fits) throw std::invalid_argument("approved_amount must be a whole number that fits in 64 bits");
    d.approved_amount = amount.get<std::int64_t>();
}

// Small, so that libFuzzer's short inputs (run_fuzzers.sh: -max_len=1024)
// reach both sides of the limit; short inputs keep it fast.
constexpr std::size_t max_payload_bytes = 256;
constexpr int waits_per_run = 64;
constexpr int runs_per_database = 64;

/// How deeply arrays and objects nest in `text` (exact for valid JSON), found
/// without recursion.
std::size_t nesting_depth(std::string_view text) {
    std::size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

/// What the engine must do with `payload`: the Decision it must deliver, or
/// nothing if it must refuse it. Same rules as Engine::signal, stated here
/// independently of the engine's code.
std::optional<Decision> expected_delivery(std::string_view payload) {
    // JSON text never holds a raw NUL byte; nlohmann's parser would stop at
    // one and ignore the rest (this target found that: crashes/signal_payload/).
    if (payload.find('\0') != std::string_view::npos) return std::nullopt;
    // Each level costs two bytes of the re-serialised text, so anything deeper
    // is over the limit; and dump() below recurses once per level.
    if (nesting_depth(payload) > max_payload_bytes / 2) return std::nullopt;
    const json parsed = json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return std::nullopt;
    if (parsed.dump().size() > max_payload_bytes) return std::nullopt;
    try {
        return parsed.get<Decision>();
    } catch (const std::exception&) {  // json::exception, or from_json's own check
        return std::nullopt;
    }
}

class PayloadSession {
public:
    void deliver(std::string_view payload) {
        if (!engine_) open_database();
        if (run_id_.empty()) start_run();
        const std::optional<RunInfo> before = engine_->status(run_id_);
        const SignalResult result = engine_->signal(run_id_, "decision", payload);
        const std::optional<Decision> expected = expected_delivery(payload);
        auto where = [&] {
            return " (outcome " + std::string(to_string(result.outcome)) + ": " + result.message +
                   ") for payload " + fuzz::excerpt(payload);
        };
        if (!expected) {
            fuzz::require(result.outcome == SignalOutcome::invalid_payload,
                          [&] { return "a payload the run must refuse was not refused as invalid_payload" + where(); });
            fuzz::require(!result.message.empty(), [&] { return "a refusal without a message" + where(); });
            const std::optional<RunInfo> after = engine_->status(run_id_);
            fuzz::require(after && after->status == RunStatus::waiting &&
                              after->journal_entries == before->journal_entries,
                          [&] { return "a refused payload changed the run" + where(); });
            return;
        }
        fuzz::require(result.outcome == SignalOutcome::delivered,
                      [&] { return "a valid payload was not delivered" + where(); });
        received_.reset();
        (void)engine_->poll();
        fuzz::require(received_ == expected, [&] {
            return "the workflow did not receive the Decision that was sent" + where() + "; received " +
                   (received_ ? json(*received_).dump() : std::string("nothing"));
        });
        if (--waits_left_ == 0) finish_run();
    }

private:
    void open_database() {
        database_dir_ = std::make_unique<harness::ScratchDir>(fuzz::scratch_base() + "/abide-fuzz-payload");
        EngineOptions options;
        options.path = *database_dir_ / "payload.db";
        options.durability = Durability::unsynced;  // /dev/shm: nothing to sync; speed
        options.max_payload_bytes = max_payload_bytes;
        engine_ = std::make_unique<Engine>(options);
        engine_
            ->define("review",
                     [this](Context& ctx) {
                         for (int i = 0; i < waits_per_run; ++i)
                             received_ = ctx.wait_for_signal<Decision>("decision");
                         return waits_per_run;
                     })
            .signal<Decision>("decision");
    }

    void start_run() {
        run_id_ = "review-" + std::to_string(runs_started_++);
        (void)engine_->start_json("review", json(), StartOptions{.run_id = run_id_});
        (void)engine_->poll();
        const std::optional<RunInfo> info = engine_->status(run_id_);
        fuzz::require(info && info->status == RunStatus::waiting,
                      [&] { return "run " + run_id_ + " does not wait for its signal after the first poll"; });
        waits_left_ = waits_per_run;
    }

    void finish_run() {
        const std::optional<RunInfo> info = engine_->status(run_id_);
        fuzz::require(info && info->status == RunStatus::completed,
                      [&] { return "run " + run_id_ + " took all its signals but did not complete"; });
        run_id_.clear();
        if (runs_started_ % runs_per_database == 0) {
            engine_.reset();  // closes the database before its directory goes
            database_dir_.reset();
        }
    }

    std::unique_ptr<harness::ScratchDir> database_dir_;
    std::unique_ptr<Engine> engine_;
    std::string run_id_;
    int waits_left_ = 0;
    std::uint64_t runs_started_ = 0;
    std::optional<Decision> received_;  // written by the workflow
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static PayloadSession session;
    session.deliver(fuzz::as_text(data, size));
    return 0;
}
