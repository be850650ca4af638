// abide/agent.hpp: model calls with structured output, as journaled steps.
//
// abide does not talk to any model itself. The host implements abide::Agent
// with its model client (an HTTP client for its provider, say); workflows call
// abide::agent_step, which runs the agent inside a step. The prompt and the
// structured result are journaled together, so replay never calls the model
// again and the trace shows what was asked and what came back.
#pragma once

#include <abide/codec.hpp>
#include <abide/context.hpp>

#include <string>
#include <string_view>

namespace abide {

/// What a workflow asks of a model.
struct AgentRequest {
    std::string agent;          ///< the agent's id, e.g. "planning-agent"
    std::string system_prompt;
    std::string prompt;
    json output_schema{};       ///< JSON Schema the answer must satisfy (null: free JSON)
};

/// Implemented by the host. Thread-safety: called from whichever thread polls.
class Agent {
public:
    virtual ~Agent() = default;
    /// Returns the model's structured answer as JSON. Runs inside a step: at
    /// least once per run (again if the process dies before the result is
    /// committed), so pass step.idempotency_key() to providers that dedupe.
    /// Throwing fails the step (and its retry policy applies).
    virtual json invoke(const AgentRequest& request, const StepContext& step) = 0;
};

/// Runs `agent` as the step `name` and returns its answer decoded into T. An
/// answer that does not decode into T fails the step with the decoder's
/// message, so malformed model output is caught where it happens. Journaled
/// as {"agent", "prompt", "result"}.
template <class T>
T agent_step(Context& ctx, std::string_view name, Agent& agent, const AgentRequest& request,
             const StepOptions& options = {}) {
    const std::string what = "the answer of agent '" + request.agent + "' in step '" + std::string(name) + "'";
    json recorded = ctx.step(name, options, [&](StepContext& step) {
        json answer = agent.invoke(request, step);
        (void)detail::decode_as<T>(answer, what);
        return json{{"agent", request.agent}, {"prompt", request.prompt}, {"result", std::move(answer)}};
    });
    return detail::decode_as<T>(recorded.at("result"), what);
}

}  // namespace abide
