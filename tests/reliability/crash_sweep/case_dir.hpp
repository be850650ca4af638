// The files of one crash-sweep case, shared by the host (sweep_host) and the
// driver (crash_sweep). A case is one directory; every process of the case
// (the run that is killed, the recoveries, the run that finishes) works on
// the same files, exactly as a restarted service would.
#pragma once

#include <filesystem>
#include <string_view>

namespace abide::sweep {

struct CaseDir {
    std::filesystem::path root;

    /// The abide database (and its "-lock" file beside it).
    std::filesystem::path db() const { return root / "sweep.db"; }
    /// The payments ledger: the stand-in payment provider, one line per key.
    std::filesystem::path ledger() const { return root / "payments.txt"; }
    /// ABIDE_CRASH_LOG: "point <name>" lines written by abide, "body <key>
    /// <attempt>" lines written by the step bodies and "host start" lines,
    /// all appended with O_APPEND in the order they happened.
    std::filesystem::path crash_log() const { return root / "crash.log"; }
    /// The seconds the host's fake clock stands after its fixed epoch.
    std::filesystem::path clock() const { return root / "clock"; }
    /// The index of the first driver phase not known to be complete.
    std::filesystem::path progress() const { return root / "progress"; }
    /// Written once, after the last phase: the outcome to compare.
    std::filesystem::path outcome() const { return root / "outcome.json"; }
    /// stdout and stderr of every host process of the case.
    std::filesystem::path host_output() const { return root / "host.out"; }
};

/// Line prefixes of the crash log.
inline constexpr std::string_view point_prefix = "point ";
inline constexpr std::string_view body_prefix = "body ";
inline constexpr std::string_view host_start_line = "host start";

}  // namespace abide::sweep
