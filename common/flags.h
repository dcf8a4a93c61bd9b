// Minimal command-line flag parser: `--name value`, `--name=value`, boolean `--name`
// (or `--name=true|false`), `--help`, `--version`. Unknown flags and missing or malformed values
// produce one clear error line and exit code 2, as the API contract requires.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace doorman {

class FlagSet {
 public:
  FlagSet(std::string program, std::string summary);

  void String(std::string name, std::string* target, std::string help);
  void Int(std::string name, int64_t* target, std::string help);
  void Bool(std::string name, bool* target, std::string help);
  // A duration flag in Go syntax ("2s"), stored as milliseconds.
  void DurationMs(std::string name, int64_t* target, std::string help);

  // Parses argv. Prints help / version and exits 0 for --help / --version; prints
  // "<program>: <error>" and exits 2 on a bad flag. Returns positional arguments.
  std::vector<std::string> ParseOrExit(int argc, char** argv);

  std::string Usage() const;

 private:
  struct Flag {
    std::string help;
    std::string default_value;
    bool is_bool = false;
    std::function<bool(std::string_view)> set;
  };
  std::string program_;
  std::string summary_;
  std::map<std::string, Flag> flags_;
};

// Splits "host:port", ":port", "[v6]:port". An empty host means all interfaces ("0.0.0.0").
// Returns false for a missing or out-of-range port.
bool SplitHostPort(std::string_view in, std::string* host, uint16_t* port);

}  // namespace doorman
