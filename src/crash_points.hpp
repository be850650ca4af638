// Named crash points, for the crash-point sweep (tests/reliability/crash_sweep).
//
// ABIDE_CRASH_POINT("commit.before") marks a place where a real process may
// die: before and after every commit, every step body, every signal
// application and every timer firing. In builds configured with
// -DABIDE_CRASH_POINTS=ON (the dev and asan presets) the points read two
// environment variables, once per process:
//
//   ABIDE_CRASH_LOG=<file>  append "point <name>\n" to <file> at every point
//                           (one write() with O_APPEND each, so the lines survive
//                           a SIGKILL and interleave in order with other
//                           O_APPEND writers of this process);
//   ABIDE_CRASH_AT=<n>      SIGKILL this process at its n-th point (1-based,
//                           counted over all points), after logging it;
//   ABIDE_CRASH_AT=<name>:<k>  ... at the k-th hit of point <name>.
//
// In other builds (Release, installed packages) the macro is empty: a
// production library never reads these variables.
#pragma once

#ifdef ABIDE_CRASH_POINTS
namespace abide::detail {
void crash_point(const char* name) noexcept;
}
#define ABIDE_CRASH_POINT(name) ::abide::detail::crash_point(name)
#else
#define ABIDE_CRASH_POINT(name) static_cast<void>(0)
#endif
