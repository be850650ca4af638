#include "crash_points.hpp"

#ifdef ABIDE_CRASH_POINTS

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <unistd.h>

namespace abide::detail {

namespace {

struct CrashConfig {
    int log_fd = -1;
    std::string at_name;       // empty: count every point
    unsigned long at_hit = 0;  // 0: never crash
    std::atomic<unsigned long> hits{0};

    CrashConfig() {
        if (const char* log = std::getenv("ABIDE_CRASH_LOG"); log && *log)
            log_fd = ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (const char* at = std::getenv("ABIDE_CRASH_AT"); at && *at) {
            std::string spec(at);
            if (auto colon = spec.rfind(':'); colon != std::string::npos) {
                at_name = spec.substr(0, colon);
                at_hit = std::strtoul(spec.c_str() + colon + 1, nullptr, 10);
            } else {
                at_hit = std::strtoul(spec.c_str(), nullptr, 10);
            }
        }
    }
};

CrashConfig& config() {
    static CrashConfig c;
    return c;
}

}  // namespace

void crash_point(const char* name) noexcept {
    CrashConfig& c = config();
    if (c.log_fd < 0 && c.at_hit == 0) return;
    if (c.log_fd >= 0) {
        std::string line = std::string("point ") + name + "\n";
        [[maybe_unused]] ssize_t n = ::write(c.log_fd, line.data(), line.size());
    }
    if (c.at_hit == 0) return;
    if (!c.at_name.empty() && c.at_name != name) return;
    if (c.hits.fetch_add(1) + 1 == c.at_hit) ::raise(SIGKILL);
}

}  // namespace abide::detail

#endif
