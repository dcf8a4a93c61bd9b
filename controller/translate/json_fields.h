// Typed, path-tracking access to a JSON object for validation (translate-internal).
// Every getter reports a problem naming the field path ("spec.listeners[0].port") instead of
// throwing, so one pass collects every problem in an object.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace doorman::controller {

struct Problem {
  std::string reason;  // InvalidSpec | UnsupportedValue | InvalidCertificateRef | ...
  std::string field;
  std::string message;
};

class FieldReader {
 public:
  std::vector<Problem> problems;

  void Fail(std::string reason, std::string field, std::string message) {
    problems.push_back({std::move(reason), std::move(field), std::move(message)});
  }
  void Invalid(const std::string& field, std::string message) { Fail("InvalidSpec", field, std::move(message)); }
  void Unsupported(const std::string& field, std::string message) {
    Fail("UnsupportedValue", field, std::move(message));
  }

  // `j` must be an object (null counts as an empty one) with keys from `allowed` only.
  // Returns false (and reports) otherwise.
  bool Object(const nlohmann::json& j, const std::string& path, std::initializer_list<const char*> allowed);

  // Members of object `o`. Absent or null → nullopt (required: also reported).
  const nlohmann::json* Member(const nlohmann::json& o, const std::string& path, const char* key,
                               bool required = false);
  std::optional<std::string> String(const nlohmann::json& o, const std::string& path, const char* key,
                                    bool required = false);
  std::optional<int64_t> Int(const nlohmann::json& o, const std::string& path, const char* key,
                             bool required = false);
  std::optional<bool> Bool(const nlohmann::json& o, const std::string& path, const char* key);
  // A duration ("2s"); must fit uint32 milliseconds. `positive`: 0 is refused (a timeout whose
  // zero would otherwise silently mean "the default"; omit the field for the default).
  std::optional<uint32_t> DurationMs(const nlohmann::json& o, const std::string& path, const char* key,
                                     bool positive = false);
  // An array (null → empty); nullptr (reported) when it is something else.
  const nlohmann::json* Array(const nlohmann::json& o, const std::string& path, const char* key,
                              bool required = false);
  // An array of strings; each element reported on its own when not a string.
  std::vector<std::string> StringList(const nlohmann::json& o, const std::string& path, const char* key);
  // A map of string → string (header rules).
  std::vector<std::pair<std::string, std::string>> StringMap(const nlohmann::json& o, const std::string& path,
                                                             const char* key);

  static std::string Join(const std::string& path, const char* key) { return path.empty() ? key : path + "." + key; }
  static std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }
  static std::string TypeName(const nlohmann::json& j);
  static std::string Quote(const std::string& s);
};

}  // namespace doorman::controller
