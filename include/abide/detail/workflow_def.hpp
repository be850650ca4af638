// abide/detail/workflow_def.hpp: the type-erased form of a defined workflow.
// Templates in engine.hpp fill it; the engine core in src/ uses only this.
#pragma once

#include <abide/codec.hpp>
#include <abide/detail/fiber_unwind.hpp>

#include <functional>
#include <map>
#include <string>

namespace abide {
class Context;

namespace detail {

/// Throws PayloadError when a JSON value does not decode into the declared type.
using payload_validator = std::function<void(const json&)>;

struct WorkflowDef {
    std::string name;
    /// Decodes the input, releases its JSON (the workflow keeps what it
    /// decoded), runs the workflow, encodes its output; a discarded json
    /// value if the workflow was unwound (FiberUnwind).
    std::function<json(Context&, json&& input)> body;
    payload_validator validate_input;
    /// Declared signals by name; a signal to an undeclared name is refused.
    std::map<std::string, payload_validator, std::less<>> signals;
    /// Declared resume payloads by suspend step key; undeclared keys accept any JSON.
    std::map<std::string, payload_validator, std::less<>> resumes;
};

/// Splits a callable's signature (via std::function's deduction guide).
template <class Sig>
struct workflow_signature;
template <class R, class... A>
struct workflow_signature<std::function<R(A...)>> {
    using result = R;
    static constexpr std::size_t arity = sizeof...(A);
    template <std::size_t I>
    using arg = std::decay_t<std::tuple_element_t<I, std::tuple<A...>>>;
};

}  // namespace detail
}  // namespace abide
