// abide/errors.hpp: the exceptions abide throws.
//
// Expected outcomes (a signal that was a duplicate, a wait that timed out) are
// values, never exceptions. Exceptions are for misuse, for the environment
// (storage) and for the failures a workflow itself raises and may catch
// (a recorded step failure, a suspend timeout, a cancellation).
//
// Every what() starts with a stable id in brackets, for example
// "[abide.storage.map_full] ...", followed by what was wrong and what to do.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace abide {

/// Base of every exception abide throws. `id()` is stable across versions.
class Error : public std::runtime_error {
public:
    Error(std::string id, const std::string& message)
        : std::runtime_error("[" + id + "] " + message), id_(std::move(id)) {}
    /// The stable identifier, e.g. "abide.storage.map_full".
    const std::string& id() const noexcept { return id_; }

private:
    std::string id_;
};

/// The database could not do what was asked (I/O error, full disk, panic).
/// Nothing of the failed operation was committed.
class StorageError : public Error {
public:
    using Error::Error;
};

/// The map reached EngineOptions::max_map_size. Nothing was committed; raise
/// the limit or free space, then retry.
class MapFullError : public StorageError {
public:
    using StorageError::StorageError;
};

/// The file is not an abide database, was written by a newer format, or a
/// record failed its checksum. abide never writes to such a file.
class FormatError : public StorageError {
public:
    using StorageError::StorageError;
};

/// The caller used the API wrongly: unknown workflow, duplicate definition,
/// a ctx call outside a workflow, an unknown run for a call that needs one.
class UsageError : public Error {
public:
    using Error::Error;
};

/// A payload (workflow input, signal, resume data) is not valid JSON or does
/// not decode into the declared type. Nothing was written.
class PayloadError : public UsageError {
public:
    using UsageError::UsageError;
};

/// The workflow code no longer matches the run's journal. The run is stopped
/// (status failed, error id "abide.replay.nondeterminism") and can be retried
/// with Engine::retry after the code is fixed.
class NondeterminismError : public Error {
public:
    using Error::Error;
};

/// A step's body threw. The failure was journaled; on replay the same error is
/// raised again without running the body. Raised inside workflow code.
class StepError : public Error {
public:
    StepError(std::string step, std::string error_type, std::string message, std::uint32_t attempts)
        : Error("abide.step.failed",
                "step '" + step + "' failed after " + std::to_string(attempts) + " attempt(s): " +
                    error_type + ": " + message),
          step_(std::move(step)), error_type_(std::move(error_type)), message_(std::move(message)),
          attempts_(attempts) {}
    const std::string& step() const noexcept { return step_; }
    /// The C++ type of the exception the body threw (demangled), as recorded.
    const std::string& error_type() const noexcept { return error_type_; }
    /// The body's what(), as recorded.
    const std::string& message() const noexcept { return message_; }
    std::uint32_t attempts() const noexcept { return attempts_; }

private:
    std::string step_, error_type_, message_;
    std::uint32_t attempts_;
};

/// Context::suspend reached its timeout before Engine::resume arrived.
/// Raised inside workflow code; catch it to handle the timeout.
class TimeoutError : public Error {
public:
    explicit TimeoutError(std::string step_key)
        : Error("abide.wait.timeout", "suspend '" + step_key + "' timed out before it was resumed"),
          step_key_(std::move(step_key)) {}
    const std::string& step_key() const noexcept { return step_key_; }

private:
    std::string step_key_;
};

/// Engine::cancel reached this run. Raised inside workflow code at its current
/// or next wait; catch it to compensate (steps still run), then rethrow or
/// return. If it escapes the workflow the run ends with status cancelled.
class Cancelled : public Error {
public:
    explicit Cancelled(std::string reason)
        : Error("abide.run.cancelled", "the run was cancelled: " + reason), reason_(std::move(reason)) {}
    const std::string& reason() const noexcept { return reason_; }

private:
    std::string reason_;
};

}  // namespace abide
