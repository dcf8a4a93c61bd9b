#include "controller/source/manifest.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/utf8.h"
#include "controller/source/known_fields.h"

namespace doorman::controller {
namespace {

bool IsDigits(std::string_view s, bool (*ok)(char)) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), ok);
}
bool Dec(char c) { return c >= '0' && c <= '9'; }
bool Oct(char c) { return c >= '0' && c <= '7'; }
bool Hex(char c) { return Dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// YAML 1.2 core schema float: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
bool IsCoreFloat(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t int_digits = 0;
  while (i < s.size() && Dec(s[i])) ++i, ++int_digits;
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && Dec(s[i])) ++i, ++frac_digits;
    if (int_digits == 0 && frac_digits == 0) return false;
  } else if (int_digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && Dec(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

nlohmann::json ParseInteger(std::string_view digits, int base, bool negative, std::string_view original) {
  uint64_t u = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), u, base);
  if (ec != std::errc() || p != digits.data() + digits.size()) {
    // Too large for 64 bits: keep it as a (lossy) number, as JSON decoders do.
    double d = 0;
    std::from_chars(original.data(), original.data() + original.size(), d);
    return d;
  }
  if (negative) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) return -static_cast<double>(u);
    return static_cast<int64_t>(0 - u);
  }
  if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return static_cast<int64_t>(u);
  return u;
}

// Resolves a plain (unquoted, untagged) scalar with the YAML 1.2 core schema.
nlohmann::json ResolvePlainScalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  std::string_view v = s;
  bool negative = false;
  std::string_view unsigned_part = v;
  if (v[0] == '-' || v[0] == '+') {
    negative = v[0] == '-';
    unsigned_part = v.substr(1);
  }
  if (IsDigits(unsigned_part, Dec)) return ParseInteger(unsigned_part, 10, negative, v);
  if (v.size() > 2 && v[0] == '0' && v[1] == 'o' && IsDigits(v.substr(2), Oct)) {
    return ParseInteger(v.substr(2), 8, false, v);
  }
  if (v.size() > 2 && v[0] == '0' && v[1] == 'x' && IsDigits(v.substr(2), Hex)) {
    return ParseInteger(v.substr(2), 16, false, v);
  }
  if (IsCoreFloat(v)) {
    double d = 0;
    auto [p, ec] = std::from_chars(v.data() + (v[0] == '+' ? 1 : 0), v.data() + v.size(), d);
    if (ec == std::errc() && p == v.data() + v.size()) return d;
    if (ec == std::errc::result_out_of_range) return negative ? -HUGE_VAL : HUGE_VAL;
  }
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF") {
    return std::numeric_limits<double>::infinity();
  }
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -std::numeric_limits<double>::infinity();
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

nlohmann::json ScalarToJson(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  const std::string& value = node.Scalar();
  if (tag == "?") return ResolvePlainScalar(value);
  if (tag == "!" || tag == "tag:yaml.org,2002:str") return value;  // quoted / block / !!str
  if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
      tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
    nlohmann::json j = ResolvePlainScalar(value);
    if (j.is_string()) {
      throw YAML::ParserException(node.Mark(), "value \"" + value + "\" does not match its tag " + tag);
    }
    return j;
  }
  // Unknown local tags: keep the text, as a string.
  return value;
}

// Bounds on what one document may expand to: YAML aliases are shared nodes, so a 12-line file
// of nested aliases ("billion laughs") expands to billions of values, and an alias that refers
// to itself never ends. Kubernetes objects are shallow and an API server stores at most ~1.5 MiB
// per object, so these limits only stop such documents.
constexpr int kMaxDepth = 100;
constexpr std::size_t kMaxValues = 500'000;

struct ExpandBudget {
  std::size_t values = 0;
};

nlohmann::json NodeToJson(const YAML::Node& node, ExpandBudget& budget, int depth = 0) {
  if (depth > kMaxDepth) {
    throw YAML::ParserException(node.Mark(), "nested more than " + std::to_string(kMaxDepth) +
                                                 " levels deep (or an alias that refers to itself)");
  }
  if (++budget.values > kMaxValues) {
    throw YAML::ParserException(node.Mark(), "expands to more than " + std::to_string(kMaxValues) +
                                                 " values (aliases nested in aliases?)");
  }
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    case YAML::NodeType::Sequence: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& item : node) arr.push_back(NodeToJson(item, budget, depth + 1));
      return arr;
    }
    case YAML::NodeType::Map: {
      nlohmann::json obj = nlohmann::json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          throw YAML::ParserException(kv.first.Mark(), "mapping keys must be scalars");
        }
        const std::string key = kv.first.Scalar();
        if (obj.contains(key)) {
          throw YAML::ParserException(kv.first.Mark(), "duplicate key \"" + key + "\"");
        }
        obj[key] = NodeToJson(kv.second, budget, depth + 1);
      }
      return obj;
    }
  }
  return nullptr;
}

bool IsKnownKind(const std::string& kind) {
  return kind == kKindLoadBalancer || kind == kKindService || kind == kKindEndpointSlice ||
         kind == kKindIngress || kind == kKindIngressClass || kind == kKindSecret;
}

bool IsClusterScoped(const std::string& kind) { return kind == kKindIngressClass; }

std::string StringAt(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// yaml-cpp passes the bytes of a UTF-8 file through unchecked, and a name or value that is not
// UTF-8 cannot be written to the API or shown as JSON (nlohmann::json throws): such a file is
// refused whole, with the position of the first bad byte. A file with a UTF-16 or UTF-32 byte
// order mark (PowerShell 5's default) is left to yaml-cpp, which decodes it to UTF-8 (and
// ParseManifests checks what it made of it).
std::optional<std::pair<int, std::string>> Utf8Problem(std::string_view text) {
  for (const std::string_view bom : {std::string_view("\xFF\xFE", 2), std::string_view("\xFE\xFF", 2),
                                     std::string_view("\x00\x00\xFE\xFF", 4)}) {
    if (text.substr(0, bom.size()) == bom) return std::nullopt;
  }
  const auto bad = FirstInvalidUtf8(text);
  if (!bad) return std::nullopt;
  const std::string_view before = text.substr(0, *bad);
  const int line = 1 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
  const std::size_t line_start = before.rfind('\n') == std::string_view::npos ? 0 : before.rfind('\n') + 1;
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(text[*bad])));
  return std::make_pair(line, "not valid UTF-8 (byte " + std::string(byte) + ", the line's byte " +
                                  std::to_string(*bad - line_start + 1) + "); manifests must be UTF-8 (or UTF-16/32 with a byte order mark)");
}

}  // namespace

std::string ManifestError::ToString() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (document >= 0) out += "document " + std::to_string(document) + ": ";
  return out + message;
}

nlohmann::json YamlToJson(std::string_view yaml) {
  if (const auto bad = Utf8Problem(yaml)) throw std::runtime_error("line " + std::to_string(bad->first) + ": " + bad->second);
  try {
    ExpandBudget budget;
    return NodeToJson(YAML::Load(std::string(yaml)), budget);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

namespace {
// Records where each document starts; builds nothing.
class DocumentStarts final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    repeated_ = count_ > 0 && mark.pos == last_.pos;
    last_ = mark;
    ++count_;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  bool repeated() const { return repeated_; }
  std::size_t count() const { return count_; }
  const YAML::Mark& last() const { return last_; }

 private:
  YAML::Mark last_ = YAML::Mark::null_mark();
  std::size_t count_ = 0;
  bool repeated_ = false;
};

// YAML::LoadAll, refusing what makes yaml-cpp 0.7 (Debian 12) loop for ever: a top-level flow
// collection or quoted scalar followed by "," ("[],", or JSON objects pasted with commas between
// them) is never consumed, and LoadAll adds empty documents until memory runs out (yaml-cpp issue
// #1040, fixed upstream in 0.8.1 by PR #1319; found by fuzzing the manifest parser). A first
// pass only notes where each document starts: a document that starts where the previous one
// did means no progress, and is reported as the syntax error it is.
std::vector<YAML::Node> LoadAllDocuments(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts starts;
  while (parser.HandleNextDocument(starts)) {
    if (starts.repeated() || starts.count() > text.size() + 1) {
      throw YAML::ParserException(starts.last(), "unexpected character after a document (a ',' between documents?)");
    }
  }
  return YAML::LoadAll(text);
}
}  // namespace

ParseResult ParseManifests(std::string_view text, const std::string& file) {
  ParseResult result;
  std::vector<YAML::Node> docs;
  if (const auto bad = Utf8Problem(text)) {
    result.errors.push_back({file, -1, bad->first, bad->second});
    return result;
  }
  try {
    docs = LoadAllDocuments(std::string(text));
  } catch (const YAML::Exception& e) {
    result.errors.push_back({file, -1, e.mark.is_null() ? 0 : e.mark.line + 1, e.msg});
    return result;
  }
  for (size_t i = 0; i < docs.size(); ++i) {
    const YAML::Node& doc = docs[i];
    const int index = static_cast<int>(i);
    const int line = doc.Mark().is_null() ? 0 : doc.Mark().line + 1;
    if (doc.IsNull() || !doc.IsDefined()) continue;  // empty document (e.g. a trailing ---)
    nlohmann::json obj;
    try {
      ExpandBudget budget;
      obj = NodeToJson(doc, budget);
    } catch (const YAML::Exception& e) {
      result.errors.push_back({file, index, e.mark.is_null() ? line : e.mark.line + 1, e.msg});
      continue;
    }
    if (!obj.is_object()) {
      result.errors.push_back({file, index, line, "a document must be a mapping (an object)"});
      continue;
    }
    try {
      (void)obj.dump();  // every string valid UTF-8 (after yaml-cpp's UTF-16/32 decoding, too)
    } catch (const nlohmann::json::type_error&) {
      result.errors.push_back({file, index, line, "contains text that is not valid Unicode"});
      continue;
    }
    const std::string api_version = StringAt(obj, "apiVersion");
    const std::string kind = StringAt(obj, "kind");
    const auto meta = obj.find("metadata");
    std::string name;
    std::string ns;
    if (meta != obj.end() && meta->is_object()) {
      name = StringAt(*meta, "name");
      ns = StringAt(*meta, "namespace");
    }
    std::string missing;
    if (api_version.empty()) missing = "apiVersion";
    else if (kind.empty()) missing = "kind";
    else if (name.empty()) missing = "metadata.name";
    if (!missing.empty()) {
      result.errors.push_back({file, index, line, "missing or non-string " + missing});
      continue;
    }
    if (!IsKnownKind(kind)) {
      result.ignored.push_back({file, index, line,
                                "unknown kind \"" + kind + "\" (apiVersion " + api_version + ") " +
                                    (ns.empty() ? "" : ns + "/") + name + " ignored"});
      continue;
    }
    if (kind == kKindLoadBalancer && api_version != "doorman.dev/v1alpha1") {
      result.errors.push_back({file, index, line,
                               "LoadBalancer " + name + ": unsupported apiVersion \"" + api_version +
                                   "\" (want doorman.dev/v1alpha1)"});
      continue;
    }
    // The kinds checked field by field below have one schema: their current version's (the beta
    // versions were removed: discovery.k8s.io/v1beta1 in Kubernetes 1.25, networking.k8s.io/v1beta1
    // in 1.22).
    const char* want_version = kind == kKindEndpointSlice ? "discovery.k8s.io/v1"
                               : kind == kKindSecret       ? "v1"
                               : kind == kKindIngressClass ? "networking.k8s.io/v1"
                                                           : nullptr;
    if (want_version != nullptr && api_version != want_version) {
      result.errors.push_back({file, index, line,
                               kind + " " + name + ": unsupported apiVersion \"" + api_version + "\" (want " +
                                   want_version + ")"});
      continue;
    }
    if (IsClusterScoped(kind)) {
      ns.clear();
    } else if (ns.empty()) {
      ns = kDefaultNamespace;
      obj["metadata"]["namespace"] = ns;
    }
    ObjectKey key{kind, ns, name};
    if (kind == kKindEndpointSlice || kind == kKindSecret || kind == kKindIngressClass) {
      // The kinds doorman reads but does not report status on: an unknown field, or a value of
      // the wrong type, refuses the document here, as kubectl apply would (Service, Ingress and
      // LoadBalancer are refused by the translator, with a status condition).
      const auto problems = FieldProblems(kind, obj);
      for (const auto& p : problems) result.errors.push_back({file, index, line, key.ToString() + ": " + p.path + ": " + p.message});
      if (!problems.empty()) continue;
    }
    const bool duplicate = std::any_of(result.objects.begin(), result.objects.end(),
                                       [&key](const ParsedObject& o) { return o.key == key; });
    if (duplicate) {
      result.errors.push_back({file, index, line, key.ToString() + " is declared twice in this file"});
      continue;
    }
    result.objects.push_back({std::move(key), StoredObject{std::move(obj), {file, index, line}, ""}});
  }
  return result;
}

std::vector<WatchEvent> ManifestSet::ApplyFile(const std::string& file, ParseResult parsed,
                                               std::vector<Diagnostic>* diagnostics) {
  Stage(file, std::move(parsed), diagnostics);
  return Rebuild(diagnostics);
}

std::vector<WatchEvent> ManifestSet::ApplyFiles(std::vector<std::pair<std::string, std::optional<ParseResult>>> files,
                                                std::vector<Diagnostic>* diagnostics) {
  for (auto& [file, parsed] : files) {
    if (parsed) {
      Stage(file, std::move(*parsed), diagnostics);
    } else {
      files_.erase(file);
    }
  }
  return Rebuild(diagnostics);
}

void ManifestSet::Stage(const std::string& file, ParseResult parsed, std::vector<Diagnostic>* diagnostics) {
  FileState& st = files_[file];
  for (const auto& e : parsed.ignored) {
    if (diagnostics) {
      diagnostics->push_back({log::Level::kWarn, "manifest", "ignoring object of unknown kind",
                              {{"file", file}, {"line", std::to_string(e.line)}, {"error", e.message}}});
    }
  }
  if (parsed.errors.empty()) {
    st.serving = std::move(parsed.objects);
    st.errors.clear();
    st.ever_clean = true;
  } else {
    st.errors = parsed.errors;
    if (!st.ever_clean) {
      st.serving = std::move(parsed.objects);  // never parsed cleanly: use what did parse
    }
    const bool keeping = st.ever_clean && !st.serving.empty();
    for (const auto& e : parsed.errors) {
      if (diagnostics) {
        diagnostics->push_back(
            {log::Level::kWarn, "manifest",
             keeping ? "cannot parse manifest, keeping last good objects from this file"
                     : "cannot parse manifest",
             {{"file", file}, {"line", std::to_string(e.line)}, {"error", e.ToString()}}});
      }
    }
  }
}

std::vector<WatchEvent> ManifestSet::RemoveFile(const std::string& file, std::vector<Diagnostic>* diagnostics) {
  files_.erase(file);
  return Rebuild(diagnostics);
}

std::vector<std::string> ManifestSet::files() const {
  std::vector<std::string> out;
  for (const auto& [f, _] : files_) out.push_back(f);
  return out;
}

std::vector<ManifestError> ManifestSet::errors() const {
  std::vector<ManifestError> out;
  for (const auto& [_, st] : files_) out.insert(out.end(), st.errors.begin(), st.errors.end());
  return out;
}

std::vector<WatchEvent> ManifestSet::Rebuild(std::vector<Diagnostic>* diagnostics) {
  ObjectStore next;
  std::set<std::string> duplicates;
  for (const auto& [file, st] : files_) {  // std::map: files in path order, first one wins
    std::string stale;
    if (!st.errors.empty() && st.ever_clean) stale = st.errors.front().ToString();
    for (const auto& o : st.serving) {
      if (auto it = next.find(o.key); it != next.end()) {
        // Reported once while it lasts.
        const std::string id = file + "|" + o.key.ToString() + "|" + it->second.source.file;
        duplicates.insert(id);
        if (diagnostics && !duplicates_.count(id)) {
          diagnostics->push_back({log::Level::kWarn, "manifest", "object declared in two files, ignoring this one",
                                  {{"file", file}, {"object", o.key.ToString()}, {"winner", it->second.source.file}}});
        }
        continue;
      }
      StoredObject so = o.stored;
      so.stale_reason = stale;
      next.emplace(o.key, std::move(so));
    }
  }
  std::vector<WatchEvent> events;
  auto a = objects_.begin();
  auto b = next.begin();
  while (a != objects_.end() || b != next.end()) {
    if (b == next.end() || (a != objects_.end() && a->first < b->first)) {
      events.push_back({"DELETED", a->first});
      ++a;
    } else if (a == objects_.end() || b->first < a->first) {
      events.push_back({"ADDED", b->first});
      ++b;
    } else {
      if (a->second.object != b->second.object) events.push_back({"MODIFIED", a->first});
      ++a;
      ++b;
    }
  }
  objects_ = std::move(next);
  duplicates_ = std::move(duplicates);
  return events;
}

}  // namespace doorman::controller
