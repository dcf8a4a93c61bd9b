#include "common/flags.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "common/duration.h"

namespace doorman {

FlagSet::FlagSet(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void FlagSet::String(std::string name, std::string* target, std::string help) {
  flags_[name] = Flag{std::move(help), *target, false, [target](std::string_view v) {
                        *target = std::string(v);
                        return true;
                      }};
}

void FlagSet::Int(std::string name, int64_t* target, std::string help) {
  flags_[name] = Flag{std::move(help), std::to_string(*target), false, [target](std::string_view v) {
                        int64_t out = 0;
                        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
                        if (ec != std::errc() || p != v.data() + v.size()) return false;
                        *target = out;
                        return true;
                      }};
}

void FlagSet::Bool(std::string name, bool* target, std::string help) {
  flags_[name] = Flag{std::move(help), *target ? "true" : "false", true, [target](std::string_view v) {
                        if (v == "true" || v == "1") {
                          *target = true;
                        } else if (v == "false" || v == "0") {
                          *target = false;
                        } else {
                          return false;
                        }
                        return true;
                      }};
}

void FlagSet::DurationMs(std::string name, int64_t* target, std::string help) {
  flags_[name] = Flag{std::move(help), FormatDuration(std::chrono::milliseconds(*target)), false,
                      [target](std::string_view v) {
                        auto d = ParseDuration(v);
                        if (!d) return false;
                        *target = d->count();
                        return true;
                      }};
}

std::string FlagSet::Usage() const {
  std::string out = "Usage: " + program_ + " [flags]\n" + summary_ + "\n\nFlags:\n";
  for (const auto& [name, f] : flags_) {
    out += "  --" + name + (f.is_bool ? "" : " VALUE") + "\n      " + f.help;
    // A help text that states its own default (in words) is not given a second one.
    if (!f.default_value.empty() && f.help.find("(default:") == std::string::npos) {
      out += " (default: " + f.default_value + ")";
    }
    out += "\n";
  }
  out += "  --help\n      print this help and exit\n  --version\n      print the version and exit\n";
  return out;
}

std::vector<std::string> FlagSet::ParseOrExit(int argc, char** argv) {
  std::vector<std::string> positional;
  auto fail = [this](const std::string& msg) {
    std::fprintf(stderr, "%s: %s (see --help)\n", program_.c_str(), msg.c_str());
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << Usage();
      std::exit(0);
    }
    if (arg == "--version") {
      std::cout << program_ << " " << DOORMAN_VERSION << "\n";
      std::exit(0);
    }
    if (arg.substr(0, 2) != "--") {
      positional.emplace_back(arg);
      continue;
    }
    arg.remove_prefix(2);
    std::string name(arg);
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
      has_value = true;
    }
    auto it = flags_.find(name);
    if (it == flags_.end()) fail("unknown flag --" + name);
    if (!has_value) {
      if (it->second.is_bool) {
        value = "true";
      } else {
        // "--controller --metrics-listen X": the next flag is not this one's value (no value of
        // ours starts with "--"; "--flag=--x" still passes one that does).
        if (i + 1 >= argc || std::string_view(argv[i + 1]).substr(0, 2) == "--") {
          fail("flag --" + name + " needs a value");
        }
        value = argv[++i];
      }
    }
    if (!it->second.set(value)) fail("invalid value \"" + value + "\" for flag --" + name);
  }
  return positional;
}

bool SplitHostPort(std::string_view in, std::string* host, uint16_t* port) {
  std::string_view h;
  std::string_view p;
  if (!in.empty() && in.front() == '[') {
    const auto close = in.find(']');
    if (close == std::string_view::npos || close + 1 >= in.size() || in[close + 1] != ':') return false;
    h = in.substr(1, close - 1);
    p = in.substr(close + 2);
  } else {
    const auto colon = in.rfind(':');
    if (colon == std::string_view::npos) return false;
    h = in.substr(0, colon);
    p = in.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return false;  // bare IPv6 needs brackets
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || value > 65535) return false;
  *host = h.empty() ? "0.0.0.0" : std::string(h);
  *port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace doorman
