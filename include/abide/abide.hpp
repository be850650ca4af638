// abide/abide.hpp: durable human-in-the-loop workflows. Include this one header.
#pragma once

#include <abide/agent.hpp>
#include <abide/codec.hpp>
#include <abide/context.hpp>
#include <abide/engine.hpp>
#include <abide/errors.hpp>
#include <abide/options.hpp>
#include <abide/types.hpp>
#include <abide/verify.hpp>
#include <abide/version.hpp>
