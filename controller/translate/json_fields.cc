#include "controller/translate/json_fields.h"

#include <limits>

#include "common/duration.h"
#include "controller/source/known_fields.h"

namespace doorman::controller {

std::string FieldReader::TypeName(const nlohmann::json& j) { return JsonTypeName(j); }

std::string FieldReader::Quote(const std::string& s) { return QuoteForMessage(s); }

bool FieldReader::Object(const nlohmann::json& j, const std::string& path,
                         std::initializer_list<const char*> allowed) {
  if (j.is_null()) return true;
  if (!j.is_object()) {
    Invalid(path, "must be an object, not " + TypeName(j));
    return false;
  }
  for (const auto& [k, _] : j.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || k == a;
    if (!known) Invalid(Join(path, k.c_str()), UnknownFieldMessage(k, std::vector<std::string>(allowed.begin(), allowed.end())));
  }
  return true;
}

const nlohmann::json* FieldReader::Member(const nlohmann::json& o, const std::string& path, const char* key,
                                          bool required) {
  if (o.is_object()) {
    auto it = o.find(key);
    if (it != o.end() && !it->is_null()) return &*it;
  }
  if (required) Invalid(Join(path, key), "is required");
  return nullptr;
}

std::optional<std::string> FieldReader::String(const nlohmann::json& o, const std::string& path, const char* key,
                                               bool required) {
  const auto* m = Member(o, path, key, required);
  if (!m) return std::nullopt;
  if (!m->is_string()) {
    std::string hint = m->is_number() || m->is_boolean() ? " (quote it: \"" + m->dump() + "\")" : "";
    Invalid(Join(path, key), "must be a string, not " + TypeName(*m) + hint);
    return std::nullopt;
  }
  std::string s = m->get<std::string>();
  if (s.empty() && required) {
    Invalid(Join(path, key), "must not be empty");
    return std::nullopt;
  }
  return s;
}

std::optional<int64_t> FieldReader::Int(const nlohmann::json& o, const std::string& path, const char* key,
                                        bool required) {
  const auto* m = Member(o, path, key, required);
  if (!m) return std::nullopt;
  if (m->is_number_integer()) return m->get<int64_t>();
  if (m->is_number_unsigned()) {
    Invalid(Join(path, key), "is out of range");
    return std::nullopt;
  }
  Invalid(Join(path, key), "must be an integer, not " + TypeName(*m) + (m->is_string() ? " " + Quote(m->get<std::string>()) : ""));
  return std::nullopt;
}

std::optional<bool> FieldReader::Bool(const nlohmann::json& o, const std::string& path, const char* key) {
  const auto* m = Member(o, path, key);
  if (!m) return std::nullopt;
  if (!m->is_boolean()) {
    Invalid(Join(path, key), "must be true or false, not " + TypeName(*m));
    return std::nullopt;
  }
  return m->get<bool>();
}

std::optional<uint32_t> FieldReader::DurationMs(const nlohmann::json& o, const std::string& path, const char* key,
                                                bool positive) {
  const auto* m = Member(o, path, key);
  if (!m) return std::nullopt;
  if (!m->is_string()) {
    Invalid(Join(path, key), "must be a duration string such as \"2s\" or \"500ms\", not " + TypeName(*m));
    return std::nullopt;
  }
  const std::string s = m->get<std::string>();
  if (s == "0") {  // Go takes a bare 0; the CRD's pattern (and so a real API server) does not
    Invalid(Join(path, key), "invalid duration \"0\" (a unit is required, e.g. 500ms or 2s)");
    return std::nullopt;
  }
  const auto ns = ParseDurationNs(s);
  if (!ns && DurationTooLong(s)) {
    Invalid(Join(path, key), "duration " + Quote(s) + " is too long (at most 1193h, about 49 days)");
    return std::nullopt;
  }
  if (!ns) {
    Invalid(Join(path, key), "invalid duration " + Quote(s) + " (want e.g. 500ms, 2s, 1h30m)");
    return std::nullopt;
  }
  const auto d = WholeMilliseconds(*ns);
  if (!d) {
    Invalid(Join(path, key), "duration " + Quote(s) + " " + kSubMillisecondProblem);
    return std::nullopt;
  }
  if (d->count() > std::numeric_limits<uint32_t>::max()) {
    // Durations travel as 32-bit milliseconds.
    Invalid(Join(path, key), "duration " + Quote(s) + " is too long (at most 1193h, about 49 days)");
    return std::nullopt;
  }
  if (positive && d->count() == 0) {
    Invalid(Join(path, key), "must be greater than 0 (omit the field for the default)");
    return std::nullopt;
  }
  return static_cast<uint32_t>(d->count());
}

const nlohmann::json* FieldReader::Array(const nlohmann::json& o, const std::string& path, const char* key,
                                         bool required) {
  static const nlohmann::json kEmpty = nlohmann::json::array();
  const auto* m = Member(o, path, key, required);
  if (!m) return required ? nullptr : &kEmpty;
  if (!m->is_array()) {
    Invalid(Join(path, key), "must be a list, not " + TypeName(*m));
    return nullptr;
  }
  return m;
}

std::vector<std::string> FieldReader::StringList(const nlohmann::json& o, const std::string& path, const char* key) {
  std::vector<std::string> out;
  const auto* arr = Array(o, path, key);
  if (!arr) return out;
  const std::string p = Join(path, key);
  for (size_t i = 0; i < arr->size(); ++i) {
    const auto& e = (*arr)[i];
    if (!e.is_string()) {
      Invalid(Index(p, i), "must be a string, not " + TypeName(e));
      continue;
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> FieldReader::StringMap(const nlohmann::json& o,
                                                                        const std::string& path, const char* key) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto* m = Member(o, path, key);
  if (!m) return out;
  const std::string p = Join(path, key);
  if (!m->is_object()) {
    Invalid(p, "must be a map of strings, not " + TypeName(*m));
    return out;
  }
  for (const auto& [k, v] : m->items()) {
    if (!v.is_string()) {
      Invalid(Join(p, k.c_str()), "must be a string, not " + TypeName(v));
      continue;
    }
    out.emplace_back(k, v.get<std::string>());
  }
  return out;
}

}  // namespace doorman::controller
