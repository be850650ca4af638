// The outside world of the examples, in files that several processes share:
// the payments ledger (the stand-in for a payment provider), the step log (one
// line per execution of a step body) and the append-once file both build on.
//
// None of this is in the abide journal: it is what a test checks the journal's
// promises against, from outside. Every writer takes an flock, so hosts, the
// demo and the test harness may use the same files at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace examples {

/// An append-only text file of lines "KEY REST...", written at most once per
/// key. Each append is one write(2) with O_APPEND under an exclusive flock,
/// then fsync; a line cut short by a crash (no newline) is ignored and cut off
/// before the next append.
class AppendOnceFile {
public:
    explicit AppendOnceFile(std::filesystem::path path);
    /// Appends `key + " " + make_rest(n)` (n: the complete lines before it)
    /// unless a line with `key` exists; returns that line's rest, or nothing
    /// when it appended.
    std::optional<std::string> append_once(std::string_view key,
                                           const std::function<std::string(std::size_t)>& make_rest) const;
    /// Every complete line, in file order.
    std::vector<std::string> lines() const;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

struct Payment {
    std::string key;        ///< the idempotency key the caller passed
    std::int64_t amount{};  ///< cents
    std::string receipt;
    std::string reference;  ///< what the payment is for (a ticket, a customer)
};

/// The payment provider of the examples. Paying a key that was paid returns
/// the original receipt and pays nothing, as Stripe does with an idempotency
/// key, so a step body that runs again after a crash still pays once.
class PaymentsLedger {
public:
    explicit PaymentsLedger(std::filesystem::path path) : file_(std::move(path)) {}
    /// Pays `amount` cents under `key` and returns the receipt id.
    std::string pay(std::string_view key, std::int64_t amount, std::string_view reference) const;
    std::vector<Payment> payments() const;
    /// Payments recorded under `key`: the exactly-once oracle (0 or 1).
    std::size_t count(std::string_view key) const;
    /// Payments recorded for `reference`, whatever their key.
    std::size_t count_for(std::string_view reference) const;
    const std::filesystem::path& path() const { return file_.path(); }

private:
    AppendOnceFile file_;
};

/// One execution of a step body, as the step log records it.
struct StepRun {
    std::string run_id, step, key;  ///< key: the step's idempotency key, "{run}:{position}"
    std::uint32_t attempt{};
    long pid{};
};

/// Appends one line per step execution: "run step key attempt pid". Not
/// synced: the harness kills processes, it does not cut power.
void append_step_run(const std::filesystem::path& path, const StepRun& run);
std::vector<StepRun> read_step_log(const std::filesystem::path& path);

/// Writes a whole file atomically (a temporary beside it, then rename).
void write_file_atomically(const std::filesystem::path& path, std::string_view text);

}  // namespace examples
