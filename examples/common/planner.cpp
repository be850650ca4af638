#include "common/planner.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace examples {
namespace {

const char* const amount_label = "Amount (USD): ";
const char* const feedback_label = "Reviewer feedback: ";

/// The value of the prompt line starting with `label`, or "".
std::string prompt_field(const std::string& prompt, const std::string& label) {
    std::istringstream in(prompt);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(label, 0) == 0) return line.substr(label.size());
    return {};
}

}  // namespace

abide::json action_plan_schema() {
    return {{"type", "object"},
            {"required", {"description", "steps", "estimated_cost", "risk_level"}},
            {"properties",
             {{"description", {{"type", "string"}}},
              {"steps", {{"type", "array"}, {"items", {{"type", "string"}}}}},
              {"estimated_cost", {{"type", "number"}}},
              {"risk_level", {{"type", "string"}, {"enum", {"low", "medium", "high"}}}}}}};
}

abide::AgentRequest plan_request(const std::string& request, double amount_usd, const std::string& feedback) {
    std::string prompt =
        "Create an action plan for: " + request + "\n" + amount_label + format_usd(to_cents(amount_usd)) + "\n";
    if (!feedback.empty()) prompt += feedback_label + feedback + "\n";
    return {"planning-agent", "Analyze requests and create detailed action plans with cost estimates.",
            std::move(prompt), action_plan_schema()};
}

abide::json OfflinePlanner::invoke(const abide::AgentRequest& request, const abide::StepContext& step) {
    if (on_call_) on_call_(step);
    const std::string& prompt = request.prompt;
    const std::string what =
        prompt.substr(0, prompt.find('\n')).substr(std::string("Create an action plan for: ").size());
    double cost = std::strtod(prompt_field(prompt, amount_label).c_str(), nullptr);
    ActionPlan plan{
        what, {"Check the request against policy", "Execute: " + what, "Confirm to the requester"}, cost, ""};
    // A reviewer who names an amount ("refund half: 24.50") gets that amount.
    const std::string feedback = prompt_field(prompt, feedback_label);
    if (!feedback.empty()) {
        plan.description += " (revised: " + feedback + ")";
        const auto digit = feedback.find_first_of("0123456789");
        if (digit != std::string::npos) plan.estimated_cost = std::strtod(feedback.c_str() + digit, nullptr);
    }
    plan.risk_level = plan.estimated_cost > 10000 ? "high" : plan.estimated_cost > 1000 ? "medium" : "low";
    return plan;
}

std::int64_t to_cents(double usd) { return std::llround(usd * 100.0); }

std::string format_usd(std::int64_t cents) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld.%02lld", static_cast<long long>(cents / 100),
                  static_cast<long long>(std::llabs(cents % 100)));
    return buf;
}

}  // namespace examples
