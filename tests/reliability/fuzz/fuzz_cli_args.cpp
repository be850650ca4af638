// Fuzz target: the abide command's inputs, i.e. its argument parser
// (tools/cli_args.cpp) and the JSON of --data, which the command checks
// before it opens the database.
//
// Input: NUL-separated strings. The first is $ABIDE_DB (empty: unset); the
// others are argv[1..]. A --data value @FILE reads FILE: so that the target
// reads no files of the machine, every @NAME is pointed at a scratch
// directory holding a few payload files (NAME keeps only [A-Za-z0-9_.-], and
// ".." is dropped), and standard input (@-) is /dev/null.
//
// Properties, for every input:
//  * parse() returns a Command or throws cli::UsageFailure (a usage error,
//    exit 2): never another exception, never a crash (ASan+UBSan);
//  * a Command to run names a verb and a database, and every positional the
//    verb needs, non-empty; --limit is at least 1;
//  * the help texts of a help Command render;
//  * for signal and resume, the --data JSON either parses or fails with
//    json::parse_error, which the command reports as a usage error.
#include "fuzz_support.hpp"

#include <cli_args.hpp>
#include <harness.hpp>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace abide;

/// Payload files that @NAME may name, in a scratch directory for the process.
class DataFiles {
public:
    DataFiles() : dir_(fuzz::scratch_base() + "/abide-fuzz-cli") {
        write("decision.json",
              R"({"status":"approved","reviewer_id":"u_123","reason":"ok","approved_amount":4900})");
        write("bad.json", R"({"status":)");
        write("empty.json", "");
        // Standard input is where `--data @-` reads; never the terminal.
        if (!std::freopen("/dev/null", "r", stdin)) fuzz::fail("cannot reopen standard input on /dev/null");
    }
    /// The argument with any @NAME file reference moved into the scratch directory.
    std::string confine(const std::string& arg) const {
        if (!arg.empty() && arg[0] == '@') return confined_reference(arg.substr(1));
        const std::size_t eq = arg.find('=');
        if (arg.rfind("--", 0) == 0 && eq != std::string::npos && eq + 1 < arg.size() && arg[eq + 1] == '@')
            return arg.substr(0, eq + 1) + confined_reference(arg.substr(eq + 2));
        return arg;
    }

private:
    void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
    std::string confined_reference(const std::string& name) const {
        if (name == "-") return "@-";
        std::string kept;
        for (char c : name)
            if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') kept += c;
        if (kept.find("..") != std::string::npos) kept = "dotdot";
        return "@" + (dir_ / kept).string();
    }
    harness::ScratchDir dir_;
};

std::vector<std::string> split_on_nul(std::string_view bytes) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        const std::size_t nul = bytes.find('\0', start);
        parts.emplace_back(bytes.substr(start, nul == std::string_view::npos ? std::string_view::npos : nul - start));
        if (nul == std::string_view::npos) return parts;
        start = nul + 1;
    }
}

bool needs_run_and_name(cli::Verb v) { return v == cli::Verb::signal || v == cli::Verb::resume; }
bool needs_run(cli::Verb v) {
    return needs_run_and_name(v) || v == cli::Verb::show || v == cli::Verb::trace || v == cli::Verb::cancel;
}

void check_command(const cli::Command& cmd, std::string_view input) {
    auto where = [&] { return std::string(" for input ") + fuzz::excerpt(input); };
    if (cmd.kind == cli::Command::Kind::help) {
        const std::string text = cmd.verb ? cli::verb_help(*cmd.verb) : cli::overall_help();
        fuzz::require(!text.empty(), [&] { return "empty help text" + where(); });
        return;
    }
    if (cmd.kind == cli::Command::Kind::version) return;
    fuzz::require(cmd.verb.has_value(), [&] { return "a command to run without a verb" + where(); });
    fuzz::require(!cmd.db.empty(), [&] { return "a command to run without a database" + where(); });
    if (needs_run(*cmd.verb)) fuzz::require(!cmd.run.empty(), [&] { return "no RUN" + where(); });
    if (needs_run_and_name(*cmd.verb)) fuzz::require(!cmd.name.empty(), [&] { return "no NAME" + where(); });
    if (cmd.limit) fuzz::require(*cmd.limit >= 1, [&] { return "--limit below 1" + where(); });
    if (needs_run_and_name(*cmd.verb)) {
        try {
            [[maybe_unused]] const json parsed = json::parse(cmd.data);
        } catch (const json::exception&) {
            // The command's usage error: "... is not valid JSON", exit 2
            // (abide_cli.cpp catches every json::exception there, which
            // includes out_of_range for a number like 1e999).
        } catch (const std::exception& e) {
            fuzz::fail(std::string("--data JSON raised ") + e.what() + " instead of a JSON error" + where());
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const DataFiles files;
    const std::string_view input = fuzz::as_text(data, size);
    std::vector<std::string> parts = split_on_nul(input);
    const std::string env_db = parts.front();
    std::vector<std::string> args{"abide"};
    for (std::size_t i = 1; i < parts.size(); ++i) args.push_back(files.confine(parts[i]));
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);

    cli::Command cmd;
    try {
        cmd = cli::parse(static_cast<int>(args.size()), argv.data(), env_db.empty() ? nullptr : env_db.c_str());
    } catch (const cli::UsageFailure& e) {
        fuzz::require(std::string_view(e.what()).size() > 0, [] { return std::string("empty usage message"); });
        return 0;
    } catch (const std::exception& e) {
        fuzz::fail(std::string("parse raised ") + e.what() + " instead of a usage error for input " +
                   fuzz::excerpt(input));
    }
    check_command(cmd, input);
    return 0;
}
