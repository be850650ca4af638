// What every fuzz target shares: the libFuzzer entry point it defines, and
// how it reports a broken property. A failed property aborts the process, so
// libFuzzer keeps the input as a crash and the replay driver counts a failure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

/// Defined once by each target (fuzz_<target>.cpp); called by libFuzzer, or by
/// replay_main.cpp with each file of the target's corpus and crash directories.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace abide::fuzz {

/// Prints what broke and aborts (a crash, for libFuzzer and the replay driver).
[[noreturn]] inline void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz property broken: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

/// fail(describe()) unless `ok`; `describe` runs only on failure.
template <class Describe>
void require(bool ok, Describe&& describe) {
    if (!ok) fail(describe());
}

/// The input as text, for targets whose input is text.
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

/// A short, printable excerpt of an input for failure messages.
inline std::string excerpt(std::string_view bytes, std::size_t limit = 120) {
    std::string out;
    for (char c : bytes.substr(0, limit)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f) {
            out += c;
        } else {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 0xf];
        }
    }
    if (bytes.size() > limit) out += "...(" + std::to_string(bytes.size()) + " bytes)";
    return out;
}

/// Where targets put scratch files: $ABIDE_FUZZ_DIR (the replay driver and
/// run_fuzzers.sh set it, and remove it afterwards), else /dev/shm.
inline std::string scratch_base() {
    const char* dir = std::getenv("ABIDE_FUZZ_DIR");
    return dir && *dir ? dir : "/dev/shm";
}

}  // namespace abide::fuzz
