// The seeded workload of the kill -9 torture: what each run does, what the
// signaller sends it, and how it must end.
//
// Run i of seed S has one Plan, made by make_plan(S, i) alone, so the host
// (which starts the run with the plan as its input), the signaller (which
// reads the plan back from the run's input) and the driver (which computes
// the expected ending independently) agree without talking to each other.
//
// Four workflows, each taking its Plan as input:
//   refund    steps, then wait_for_signal("decision") with or without a
//             7-day timeout; request_changes re-drafts and waits again;
//             approved pays once (an effect), rejected stops.
//   charge    steps; over $1000 suspend("approval") (no deadline, or a short
//             one nobody meets: "expired"); an optional ctx.sleep; then two
//             effects, the charge and the receipt mail.
//   multi     steps; the manager's approval, and over $10000 finance's too
//             (two signal names, the second with a 7-day timeout); then the
//             effect.
//   expiring  steps; wait_for_signal("decision") with a short timeout that
//             no decision meets; then an escalation effect.
// Deadlines are real time: a 7-day timeout never passes during a run of the
// harness, and a short one always passes before the signaller (which never
// answers it in time) speaks, so every ending is decided by the plan alone.
#pragma once

#include "common/ledger.hpp"

#include <abide/abide.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace abide::torture {

struct Plan {
    int index = 0;
    std::string run_id;    ///< "t-000042"
    std::string workflow;  ///< refund, charge, multi or expiring
    std::int64_t amount = 0;  ///< cents
    int prep_steps = 1;       ///< steps before the first wait (each a window for a kill)
    int work_us = 0;          ///< how long each step body lasts
    /// refund: the reviewer's answer to each wait in turn (approved, rejected,
    /// request_changes); charge: approved or rejected at the suspend; multi:
    /// the manager's then finance's.
    std::vector<std::string> decisions;
    bool long_timeout = false;  ///< refund, multi: wait with a 7-day timeout instead of none
    int short_timeout_ms = 0;   ///< expiring always, charge sometimes: a deadline nobody meets
    int sleep_ms = 0;           ///< charge: ctx.sleep before charging
    // How the signaller treats the run:
    bool early = false;      ///< sends the first decision before the run waits (buffered, then consumed)
    bool resend = false;     ///< sends every decision twice under one id (a duplicate), and once more after the end
    bool stray = false;      ///< multi: a second manager approval under a new id while finance decides (dropped)
    bool malformed = false;  ///< sends a payload of the wrong shape before the first decision (rejected)
    bool via_cli = false;    ///< sends through the `abide` command instead of Engine::signal_batch
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Plan, index, run_id, workflow, amount, prep_steps, work_us, decisions, long_timeout,
                                   short_timeout_ms, sleep_ms, early, resend, stray, malformed, via_cli)

/// The plan of run `index` under `seed`: the same in every process.
Plan make_plan(std::uint64_t seed, int index);
std::string run_id_of(int index);

/// How a run must end: its output's "outcome" and "amount" (the output also
/// holds receipts, checked against the effect ledger).
struct Ending {
    std::string outcome;
    std::int64_t amount = 0;
};
Ending expected_ending(const Plan& p);
/// The effects (step names) a run that ends as planned has performed once each.
std::vector<std::string> expected_effects(const Plan& p);
/// Every step that performs an effect is named here.
bool is_effect_step(const std::string& step_name);
/// The ids of the signals and resumes the run must consume, in order.
std::vector<std::string> expected_consumed(const Plan& p);

/// One signal or resume the signaller sends.
struct Send {
    std::string id;
    WaitKind channel = WaitKind::signal;  ///< signal or suspend (a resume)
    std::string name;                     ///< signal name or step key
    json payload;
    /// decision, duplicate (same id again), stray (new id, never consumed),
    /// malformed (the host rejects it), late (after the deadline), after (to
    /// a finished run), probe (to a run that does not exist).
    std::string purpose;
};

/// What the signaller sends a run in the state `info` at time `now` (real
/// time). Every id is derived from the run, the name and the stage, so
/// sending the same Send again is always a harmless duplicate.
std::vector<Send> sends_for(const Plan& p, const RunInfo& info, TimePoint now);

/// What step bodies touch outside the journal: the effect ledger and the
/// step log (one line per body execution, written before its effect).
struct Outside {
    examples::PaymentsLedger ledger;
    std::filesystem::path steplog;
};

/// Deliberate bugs, for showing that the harness catches them
/// (ABIDE_TORTURE_BREAK in the host's environment):
///   step_twice           every effect step's body runs twice per execution;
///   effect_outside_step  the charge is also paid outside its step, under a
///                        key of the process, so a replay pays it again.
enum class Breakage { none, step_twice, effect_outside_step };
Breakage breakage_from_env();

/// The host's EngineOptions::quarantine_after: a run the host died running
/// this many times in a row (without progress) is quarantined. Random kills do
/// that to unlucky runs; the driver releases them as an operator would.
constexpr std::uint32_t quarantine_after = 3;

/// Defines the four workflows on `engine`; their step bodies use `outside`.
void define_workflows(Engine& engine, const Outside& outside, Breakage breakage = Breakage::none);

/// Every run in `db` in `status` (every run when nothing), in id order,
/// listed a page at a time.
std::vector<RunInfo> list_all_runs(const Engine& db, std::optional<RunStatus> status = {});

}  // namespace abide::torture
