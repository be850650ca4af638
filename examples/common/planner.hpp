// The planning agent of the examples: the Polos guide's ActionPlan as the
// structured output, and a deterministic offline stand-in for the model.
//
// abide never calls a model itself: the host implements abide::Agent with its
// model client, and abide::agent_step journals the prompt and the answer (see
// README "Agent steps"). The examples ship OfflinePlanner so that they run
// anywhere and always give the same answer; swap in a real client for
// production.
#pragma once

#include <abide/abide.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace examples {

/// The structured output the planning agent must produce.
struct ActionPlan {
    std::string description;         ///< what will be done
    std::vector<std::string> steps;  ///< steps to execute
    double estimated_cost = 0.0;     ///< USD
    std::string risk_level;          ///< low, medium or high
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ActionPlan, description, steps, estimated_cost, risk_level)

/// The JSON Schema of ActionPlan, given to the model as its output schema.
abide::json action_plan_schema();

/// A request to the planning agent. The prompt is prose with one fact a line
/// ("Amount (USD): 49.00", "Reviewer feedback: ..."): a real model reads it
/// as text, OfflinePlanner reads those lines.
abide::AgentRequest plan_request(const std::string& request, double amount_usd, const std::string& feedback = {});

/// Answers every plan_request deterministically: the plan repeats the request,
/// costs the stated amount (or the first amount named in the reviewer's
/// feedback) and rates the risk by cost. `on_call` sees each invocation (the
/// examples log step executions with it).
class OfflinePlanner : public abide::Agent {
public:
    explicit OfflinePlanner(std::function<void(const abide::StepContext&)> on_call = {})
        : on_call_(std::move(on_call)) {}
    abide::json invoke(const abide::AgentRequest& request, const abide::StepContext& step) override;

private:
    std::function<void(const abide::StepContext&)> on_call_;
};

/// Cents from US dollars, rounded to the nearest cent.
std::int64_t to_cents(double usd);
/// "49.00" from 4900.
std::string format_usd(std::int64_t cents);

}  // namespace examples
