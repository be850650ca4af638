// abide/detail/fiber_unwind.hpp: the exception that unwinds a run's fiber.
#pragma once

namespace abide::detail {

/// Thrown inside a run's fiber to unwind it (eviction, a fatal replay error).
/// Not a std::exception, so `catch (const std::exception&)` lets it pass.
/// WorkflowDef::body catches it in the frame that called the workflow and
/// returns a discarded json value instead (an unwind costs more than half a
/// microsecond for each frame it walks); the run then handles it as if it
/// had reached its own handler.
struct FiberUnwind {};

}  // namespace abide::detail
