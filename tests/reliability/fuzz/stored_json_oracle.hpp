// The oracle for abide's stored-JSON fast paths (src/records.hpp):
// parse_stored_json and dump_stored_json must give exactly what nlohmann's
// json::parse and dump() give, value, type, bytes and errors alike. Shared by
// the records fuzz target and the unit tests in tests/test_records.cpp.
#pragma once

#include "records.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace abide::stored_json_oracle {

using abide::json;

/// Sets `out` to what `make` returns and returns ""; or returns the
/// json::exception it threw as "id: message", leaving `out` as it was.
template <class Make, class Out>
std::string json_error(const Make& make, Out& out) {
    try {
        out = make();
    } catch (const json::exception& e) {
        return std::to_string(e.id) + ": " + e.what();
    }
    return {};
}

/// How dump_stored_json(value) differs from value.dump(); nothing if it does not.
inline std::optional<std::string> dump_difference(const json& value) {
    std::string expected, got;
    const std::string expected_error = json_error([&] { return value.dump(); }, expected);
    const std::string got_error = json_error([&] { return detail::dump_stored_json(value); }, got);
    if (got == expected && got_error == expected_error) return std::nullopt;
    return "dump_stored_json gave '" + got + "'" + got_error + " where dump() gave '" + expected + "'" +
           expected_error;
}

/// How parse_stored_json(text) differs from json::parse(text), and then how
/// dump_stored_json of the value differs from dump(); nothing if neither does.
inline std::optional<std::string> parse_difference(std::string_view text) {
    json expected, got;
    const std::string expected_error = json_error([&] { return json::parse(text); }, expected);
    const std::string got_error = json_error([&] { return detail::parse_stored_json(text); }, got);
    if (got_error != expected_error)
        return "parse_stored_json threw '" + got_error + "' where json::parse threw '" + expected_error + "'";
    if (!expected_error.empty()) return std::nullopt;
    if (got != expected || got.type() != expected.type())
        return "parse_stored_json read " + got.dump() + " where json::parse read " + expected.dump();
    return dump_difference(expected);
}

}  // namespace abide::stored_json_oracle
