// Replays a fuzz target's kept inputs without libFuzzer: every file of the
// directories (or files) named on the command line goes through
// LLVMFuzzerTestOneInput once, each in a child process so that one crashing
// input neither hides the others nor leaves state behind for them. An input
// passes when its child exits 0 within the time limit.
//
// usage: abide_fuzz_replay_<target> DIR_OR_FILE...
// Files whose names start with '.' (.gitkeep) are skipped. Prints
// "fuzz_replay_<target>: N passed, N failed" last; exit 1 if any failed.
#include "fuzz_support.hpp"

#include <harness.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

/// The inputs named by `args`, each directory's files in name order.
std::vector<fs::path> collect_inputs(int argc, char** argv) {
    std::vector<fs::path> inputs;
    for (int i = 1; i < argc; ++i) {
        const fs::path arg = argv[i];
        if (!fs::is_directory(arg)) {
            inputs.push_back(arg);  // a missing file fails below, loudly
            continue;
        }
        std::vector<fs::path> files;
        for (const auto& entry : fs::directory_iterator(arg))
            if (entry.is_regular_file() && entry.path().filename().string().front() != '.')
                files.push_back(entry.path());
        std::sort(files.begin(), files.end());
        inputs.insert(inputs.end(), files.begin(), files.end());
    }
    return inputs;
}

/// Runs one input in a child; "" if it passed, else what happened.
std::string replay_in_child(const fs::path& input) {
    std::ifstream in(input, std::ios::binary);
    if (!in) return "cannot read the file";
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::cout.flush();
    const pid_t child = ::fork();
    if (child < 0) return "fork failed";
    if (child == 0) {
        ::alarm(120);  // a hang is a failure too (SIGALRM)
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        std::exit(0);  // runs static destructors: the target's scratch files go
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
    if (WIFSIGNALED(status))
        return "killed by signal " + std::to_string(WTERMSIG(status)) +
               (WTERMSIG(status) == SIGALRM ? " (over 120 s)" : "") + "; its output is above";
    return "exit status " + std::to_string(WEXITSTATUS(status)) + "; its output is above";
}

}  // namespace

int main(int argc, char** argv) {
    const std::string name = "fuzz_replay_" + fs::path(argv[0]).filename().string().substr(
                                                  std::string_view("abide_fuzz_replay_").size());
    // Targets put their scratch files here; removed at the end.
    abide::harness::ScratchDir scratch("abide-fuzz-replay");
    ::setenv("ABIDE_FUZZ_DIR", scratch.path().c_str(), 1);

    // The inputs are fixed files: there is no seed; 0 is printed on failure.
    abide::harness::Tally tally(name, 0);
    const std::vector<fs::path> inputs = collect_inputs(argc, argv);
    if (inputs.empty()) tally.fail("inputs", "no input files found; pass the corpus and crashes directories");
    for (const fs::path& input : inputs) {
        const std::string problem = replay_in_child(input);
        if (problem.empty())
            tally.pass();
        else
            tally.fail(input.string(), problem);
    }
    return tally.finish();
}
