#include "common/host.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

namespace examples {
namespace {

std::string role;  // "host" or "notifier": prefixes say()'s lines

[[noreturn]] void usage_error(const char* usage, const std::string& what) {
    std::cerr << "error: " << what << "\n" << usage;
    std::exit(2);
}

std::string indent(const std::string& text) {
    std::string out = "    ";
    for (char c : text) out += c == '\n' ? std::string("\n    ") : std::string(1, c);
    return out;
}

}  // namespace

HostArgs parse_args(int argc, char** argv, const char* usage, std::string runs_prefix) {
    HostArgs a;
    a.runs_prefix = std::move(runs_prefix);
    if (argc < 2) usage_error(usage, "no mode given");
    a.mode = argv[1];
    if (a.mode != "host" && a.mode != "notify") usage_error(usage, "unknown mode '" + a.mode + "'");
    role = a.mode == "host" ? "host" : "notifier";
    for (int i = 2; i < argc; ++i) {
        const std::string flag = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage_error(usage, flag + " needs a value");
            return argv[++i];
        };
        auto number = [&]() -> int {
            const std::string v = value();
            char* end = nullptr;
            long n = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || n < 0 || n > 1'000'000) usage_error(usage, flag + ": not a count: " + v);
            return static_cast<int>(n);
        };
        if (flag == "--db")
            a.db = value();
        else if (flag == "--ledger")
            a.ledger = value();
        else if (flag == "--steplog")
            a.steplog = value();
        else if (flag == "--fake-clock-file")
            a.clock_file = value();
        else if (flag == "--outbox")
            a.outbox = value();
        else if (flag == "--start")
            a.start = number();
        else if (flag == "--runs-prefix")
            a.runs_prefix = value();
        else if (flag == "--poll-ms")
            a.poll = std::chrono::milliseconds(number());
        else if (flag == "--step-delay-ms")
            a.step_delay = std::chrono::milliseconds(number());
        else if (flag == "--post-delay-ms")
            a.post_delay = std::chrono::milliseconds(number());
        else if (flag == "--quarantine-after")
            a.quarantine_after = static_cast<std::uint32_t>(number());
        else if (flag == "--exit-when-idle")
            a.exit_when_idle = true;
        else if (flag == "--follow")
            a.follow = true;
        else
            usage_error(usage, "unknown option " + flag);
    }
    if (a.db.empty()) usage_error(usage, "--db is required");
    if (a.mode == "host" && a.ledger.empty()) usage_error(usage, "host needs --ledger");
    if (a.mode == "notify" && a.outbox.empty()) usage_error(usage, "notify needs --outbox");
    return a;
}

std::function<abide::TimePoint()> file_clock(std::filesystem::path file) {
    return [file = std::move(file)] {
        long long seconds = 0;
        if (std::ifstream in(file); in) in >> seconds;
        return abide::Clock::now() + std::chrono::seconds(seconds);
    };
}

void set_clock_offset(const std::filesystem::path& file, std::chrono::seconds offset) {
    write_file_atomically(file, std::to_string(offset.count()) + "\n");
}

abide::EngineOptions engine_options(const HostArgs& args) {
    abide::EngineOptions o;
    o.path = args.db;  // Durability::synced: every commit survives a kill -9 and power loss
    if (!args.clock_file.empty()) o.clock = file_clock(args.clock_file);
    o.on_event = print_event;
    if (args.quarantine_after) o.quarantine_after = *args.quarantine_after;
    return o;
}

void say(const std::string& line) {
    std::string text = role.empty() ? line : "[" + role + " " + std::to_string(::getpid()) + "] " + line;
    text += '\n';
    std::cout.flush();
    for (std::string_view rest = text; !rest.empty();) {
        ssize_t n = ::write(STDOUT_FILENO, rest.data(), rest.size());
        if (n <= 0) return;  // nothing sensible to do about a closed stdout
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

void print_event(const abide::Event& e) {
    using T = abide::EventType;
    const std::string who = e.run_id + ": ";
    const std::string data = e.data.is_null() ? "" : " " + e.data.dump();
    switch (e.type) {
        case T::waiting:
            say(who + "waits for signal " + e.name + data);
            break;
        case T::suspended:
            say(who + "suspended at " + e.topic + data);
            break;
        case T::signal_delivered:
            say(who + "got signal " + e.name + data);
            break;
        case T::resumed:
            say(who + "resumed at " + e.topic + data);
            break;
        case T::signal_rejected:
            say(who + "refused an invalid " + e.name + data);
            break;
        case T::timed_out:
            say(who + "timed out waiting for " + e.name);
            break;
        case T::completed:
            say(who + "completed" + data);
            break;
        case T::failed:
            say(who + "FAILED" + data);
            break;
        case T::cancelled:
            say(who + "cancelled" + data);
            break;
        case T::quarantined:
            say(who + "QUARANTINED" + data);
            break;
        default:
            break;  // steps print themselves when their bodies run (World::ran)
    }
}

World::World(const HostArgs& args)
    : ledger(args.ledger),
      planner([this](const abide::StepContext& s) { ran(s); }),
      steplog_(args.steplog),
      delay_(args.step_delay) {}

void World::ran(const abide::StepContext& step) const {
    if (!steplog_.empty())
        append_step_run(steplog_,
                        {step.run_id(), step.step_name(), step.idempotency_key(), step.attempt(), ::getpid()});
    say(step.run_id() + ": step " + step.step_name() + " runs" +
        (step.attempt() > 1 ? " (attempt " + std::to_string(step.attempt()) + ")" : ""));
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
}

int run_host(abide::Engine& engine, const HostArgs& args, const std::function<void(int)>& start_run) {
    say("polls " + args.db.string());
    for (int i = 0; i < args.start; ++i) start_run(i);  // idempotent: a restarted host creates nothing
    const auto& clock = engine.options().clock;
    for (;;) {
        const abide::PollResult r = engine.poll();
        if (args.exit_when_idle) {
            const abide::Stats s = engine.stats();
            if (s.ready + s.running + s.waiting == 0) return 0;
        }
        if (r.runs_advanced > 0 || r.timers_fired > 0) continue;  // more may be ready
        // Signals arrive from other processes (the abide command), so poll at
        // least every args.poll; sooner if a timer is due.
        auto sleep = std::chrono::duration_cast<std::chrono::milliseconds>(args.poll);
        if (r.next_deadline)
            sleep = std::min(sleep, std::chrono::ceil<std::chrono::milliseconds>(*r.next_deadline - clock()));
        if (sleep.count() > 0) std::this_thread::sleep_for(sleep);
    }
}

int run_notifier(const abide::Engine& engine, const HostArgs& args, const ApprovalMessage& message) {
    AppendOnceFile outbox(args.outbox);
    std::uint64_t cursor = 0;
    for (const Notification& n : read_outbox(args.outbox)) cursor = std::max(cursor, n.seq);
    say("reads events after #" + std::to_string(cursor) + " of " + args.db.string());
    for (;;) {
        const std::vector<abide::Event> batch = engine.events(cursor, 100);
        for (const abide::Event& e : batch) {
            cursor = e.seq;
            if (e.type != abide::EventType::suspended) continue;
            const std::string step_key = e.topic.substr(0, e.topic.find('/'));
            const std::string url = "https://admin.example.com/approve/" + e.run_id + "?step=" + step_key;
            const std::string text = message(e, url);
            std::this_thread::sleep_for(args.post_delay);  // the chat service's latency: a window for kills
            // The post and the cursor are this one line: after it is synced the
            // message is sent and will not be sent again.
            bool posted = !outbox.append_once(std::to_string(e.seq), [&](std::size_t) {
                return e.run_id + " " + e.topic + " " + abide::json(text).dump();
            });
            if (posted) say("posts #" + std::to_string(e.seq) + " (" + e.topic + "):\n" + indent(text));
        }
        if (!batch.empty()) continue;
        if (!args.follow) return 0;
        std::this_thread::sleep_for(args.poll);
    }
}

std::vector<Notification> read_outbox(const std::filesystem::path& outbox) {
    std::vector<Notification> out;
    for (const std::string& line : AppendOnceFile(outbox).lines()) {
        Notification n;
        std::size_t a = line.find(' '), b = line.find(' ', a + 1), c = line.find(' ', b + 1);
        if (c == std::string::npos) throw std::runtime_error("malformed outbox line: " + line);
        n.seq = std::stoull(line.substr(0, a));
        n.run_id = line.substr(a + 1, b - a - 1);
        n.topic = line.substr(b + 1, c - b - 1);
        n.message = abide::json::parse(line.substr(c + 1)).get<std::string>();
        out.push_back(std::move(n));
    }
    return out;
}

int example_main(int argc, char** argv, const ExampleProgram& program) try {
    if (argc == 1) return program.scenario();
    const HostArgs args = parse_args(argc, argv, program.usage, program.runs_prefix);
    if (args.mode == "notify" && program.notify) {
        const abide::Engine engine({.path = args.db});  // reads the event log; no workflows, never polls
        return run_notifier(engine, args, program.notify);
    }
    if (args.mode != "host") return std::cerr << program.usage, 2;
    World world(args);
    abide::Engine engine(engine_options(args));
    program.define(engine, world);
    return run_host(engine, args, [&](int i) { program.start(engine, args.runs_prefix, i); });
} catch (const std::exception& e) {
    std::cerr << program.name << ": " << e.what() << "\n";
    return 1;
}

std::filesystem::path make_temp_dir(const std::string& prefix) {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    return tmpl;
}

bool Checks::expect(bool ok, const std::string& what) {
    say(std::string(ok ? "  ok      " : "  FAILED  ") + what);
    failed_ += ok ? 0 : 1;
    return ok;
}

}  // namespace examples
