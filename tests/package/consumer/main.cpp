// Uses abide as a downstream project would: one header, one workflow with one
// step, a temporary database, poll until done, check the result.
#include <abide/abide.hpp>

#include <stdlib.h>  // mkdtemp

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>

namespace {

int fail(const std::string& what) {
    std::fprintf(stderr, "abide_consumer: FAILED: %s\n", what.c_str());
    return 1;
}

int run(const std::filesystem::path& dir) {
    abide::EngineOptions options;
    options.path = dir / "consumer.db";
    options.durability = abide::Durability::unsynced;
    abide::Engine engine(options);

    engine.define("double",
                  [](abide::Context& ctx, const int& x) { return ctx.step("multiply", [&] { return x * 2; }); });

    abide::RunHandle run = engine.start("double", 21);
    for (int i = 0; i < 100; ++i) {
        auto info = engine.status(run);
        if (!info) return fail("status() knows no run " + run.id);
        if (abide::is_finished(info->status)) break;
        engine.poll();
    }
    auto info = engine.status(run);
    if (!info || info->status != abide::RunStatus::completed) {
        return fail("run " + run.id + " is " + (info ? std::string(abide::to_string(info->status)) : "unknown") +
                    (info && info->error ? ": " + info->error->message : ""));
    }
    int result = engine.result<int>(run);
    if (result != 42) return fail("result is " + std::to_string(result) + ", expected 42");
    std::printf("abide_consumer: abide %d.%d.%d (journal format %u): run %s completed with %d\n", ABIDE_VERSION_MAJOR,
                ABIDE_VERSION_MINOR, ABIDE_VERSION_PATCH, abide::journal_format_version, run.id.c_str(), result);
    return 0;
}

}  // namespace

int main() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "abide-consumer-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return fail("mkdtemp failed");
    const std::filesystem::path dir = tmpl;
    int rc = 1;
    try {
        rc = run(dir);
    } catch (const std::exception& e) {
        rc = fail(std::string("exception: ") + e.what());
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return rc;
}
