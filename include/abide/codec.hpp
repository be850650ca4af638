// abide/codec.hpp: how C++ values become journal payloads and back.
//
// Every value abide stores (workflow input and output, step results, signal
// and resume payloads, wait metadata) goes through `abide::codec<T>`. The
// default uses nlohmann-json's customisation point, so a type that has
// `to_json`/`from_json` (or NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE) just works.
// Specialise `abide::codec<T>` for a type that needs another mapping.
//
// A workflow always sees the decoded value, on first execution as on replay:
// a step's result is encoded, journaled, and decoded again before the workflow
// gets it, so a field the codec drops is dropped the same way both times.
#pragma once

#include <abide/errors.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <type_traits>

namespace abide {

using json = nlohmann::json;

/// Customisation point: `static json encode(const T&)` and
/// `static T decode(const json&)`; decode throws on a value that does not fit.
template <class T>
struct codec {
    static json encode(const T& value) { return json(value); }
    static T decode(const json& value) { return value.template get<T>(); }
};

template <>
struct codec<json> {
    static json encode(const json& value) { return value; }
    static json decode(const json& value) { return value; }
};

namespace detail {

/// Readable name of T for error messages ("Decision", "std::string").
std::string type_name(const char* mangled);

/// Calls `f(args...)` and encodes its result, or returns null JSON when R is
/// void. Always inlined: Engine::define's workflow call must not gain a
/// frame (see FiberUnwind).
template <class R, class F, class... A>
[[gnu::always_inline]] inline json call_and_encode(F& f, A&... args) {
    if constexpr (std::is_void_v<R>) {
        std::invoke(f, args...);
        return json();
    } else {
        return codec<R>::encode(std::invoke(f, args...));
    }
}

/// Decodes `value` into T, turning any decoder failure into a PayloadError
/// that names the value, "what 'name'" (e.g. "signal 'refund_decision'"), or
/// `what` alone without a name, and the target type. The name is put together
/// only on failure: replay decodes every recorded value.
template <class T>
T decode_as(const json& value, std::string_view what, std::string_view name = {}) {
    try {
        return codec<T>::decode(value);
    } catch (const std::exception& e) {
        std::string named(what);
        if (!name.empty()) named += " '" + std::string(name) + "'";
        throw PayloadError("abide.payload.invalid", named + " does not decode into " +
                                                        type_name(typeid(T).name()) + ": " + e.what() +
                                                        "; send a payload of the declared shape");
    }
}

}  // namespace detail
}  // namespace abide
