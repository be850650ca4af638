// Engine: the public face; every call forwards to the core.
#include "engine_core.hpp"

#include <fmt/format.h>

namespace abide {

namespace {

constexpr int max_payload_depth = 256;

SignalResult parse_then(std::string_view text, const std::function<SignalResult(json)>& deliver) {
    // The JSON parser stops at a NUL byte as if the text ended there, so
    // "{...}\0garbage" would pass as "{...}". JSON text never holds a raw NUL
    // (inside a string it is written \u0000): refuse it here.
    if (const auto nul = text.find('\0'); nul != std::string_view::npos)
        return {SignalOutcome::invalid_payload,
                fmt::format("the payload is not valid JSON: it holds a NUL byte at offset {} (inside a JSON string "
                            "write \\u0000); nothing was written",
                            nul)};
    json payload;
    try {
        // Serialising JSON recurses once per level: refuse deep nesting here.
        payload = json::parse(text, [](int depth, json::parse_event_t, json&) {
            if (depth > max_payload_depth)
                throw std::length_error("nested deeper than " + std::to_string(max_payload_depth) + " levels");
            return true;
        });
    } catch (const std::exception& e) {  // parse_error, out_of_range (1e999), the depth limit
        return {SignalOutcome::invalid_payload,
                fmt::format("the payload is not valid JSON: {}; nothing was written", e.what())};
    }
    return deliver(std::move(payload));
}

}  // namespace

Engine::Engine(EngineOptions options) : core_(std::make_unique<detail::EngineCore>(std::move(options))) {}
Engine::~Engine() = default;

detail::WorkflowDef& Engine::add_definition(std::string name) { return core_->add_definition(std::move(name)); }

RunHandle Engine::start_json(std::string_view workflow, const json& input, StartOptions options) {
    StartRequest request{std::string(workflow), input, std::move(options)};
    return core_->start(std::span<const StartRequest>(&request, 1)).front();
}

std::vector<RunHandle> Engine::start_batch(std::span<const StartRequest> requests) {
    return core_->start(requests);
}

SignalResult Engine::deliver(std::string_view run, WaitKind channel, std::string_view name, json payload,
                             std::string_view signal_id) {
    SignalRequest request{std::string(run), std::string(name), std::move(payload), std::string(signal_id), channel};
    return core_->deliver(std::span<const SignalRequest>(&request, 1)).front();
}

std::vector<SignalResult> Engine::signal_batch(std::span<const SignalRequest> requests) {
    return core_->deliver(requests);
}

SignalResult Engine::signal(std::string_view run, std::string_view name, std::string_view payload,
                            std::string_view signal_id) {
    return parse_then(payload, [&](json p) { return deliver(run, WaitKind::signal, name, std::move(p), signal_id); });
}

SignalResult Engine::resume(std::string_view run, std::string_view step_key, std::string_view data,
                            std::string_view signal_id) {
    return parse_then(data, [&](json p) { return deliver(run, WaitKind::suspend, step_key, std::move(p), signal_id); });
}

CancelResult Engine::cancel(std::string_view run, std::string_view reason) { return core_->cancel(run, reason); }
void Engine::retry(std::string_view run) { core_->retry(run); }
void Engine::release(std::string_view run) { core_->release_quarantined(run); }
PollResult Engine::poll() { return core_->poll(); }
std::optional<TimePoint> Engine::next_deadline() const { return core_->next_deadline(); }
std::optional<RunInfo> Engine::status(std::string_view run) const { return core_->status(run); }
std::vector<RunInfo> Engine::list_runs(const RunQuery& query) const { return core_->list_runs(query); }
std::vector<Event> Engine::events(std::uint64_t after, std::size_t limit) const { return core_->events(after, limit); }
Trace Engine::trace(std::string_view run) const { return core_->trace(run); }
json Engine::completed_output(std::string_view run) const { return core_->completed_output(run); }
Stats Engine::stats() const { return core_->stats(); }
const EngineOptions& Engine::options() const noexcept { return core_->options; }

}  // namespace abide
