#include "controller/translate/openapi_check.h"

#include <re2/re2.h>

#include <map>
#include <memory>
#include <mutex>

namespace doorman::controller {
namespace {

using nlohmann::json;

std::string TypeOf(const json& v) {
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

bool HasType(const json& v, const std::string& type) {
  const std::string t = TypeOf(v);
  return t == type || (type == "number" && t == "integer");
}

// Characters (code points) of a UTF-8 string: the API server's minLength/maxLength unit.
size_t Characters(const std::string& s) {
  size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// Compiled patterns, shared (the schema lives as long as the process).
const RE2* Pattern(const std::string& p) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<RE2>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& re = cache[p];
  if (!re) {
    RE2::Options opts;
    opts.set_log_errors(false);
    re = std::make_unique<RE2>(p, opts);
  }
  return re->ok() ? re.get() : nullptr;
}

std::string Quoted(const json& v) { return v.is_string() ? "\"" + v.get<std::string>() + "\"" : v.dump(); }

class Checker {
 public:
  explicit Checker(size_t max) : max_(max) {}

  void Check(const json& schema, const json& v, const std::string& path) {
    if (full() || !schema.is_object()) return;
    // The API server drops null fields (a key left empty in YAML) before validating, unless the
    // schema is nullable; the translator reads them as absent too.
    if (v.is_null() && !schema.value("nullable", false)) return;
    if (const auto t = schema.find("type"); t != schema.end() && t->is_string()) {
      if (!HasType(v, *t)) {
        Add(path, "must be of type " + t->get<std::string>() + ", not " + TypeOf(v));
        return;  // the other keywords assume the type
      }
    }
    if (const auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
      bool found = false;
      std::string values;
      for (const auto& x : *e) {
        found = found || x == v;
        values += (values.empty() ? "" : ", ") + Quoted(x);
      }
      if (!found) Add(path, "unsupported value " + Quoted(v) + ": supported values: " + values);
    }
    if (v.is_string()) CheckString(schema, v.get<std::string>(), path);
    if (v.is_number()) CheckNumber(schema, v, path);
    if (v.is_array()) CheckArray(schema, v, path);
    if (v.is_object()) CheckObject(schema, v, path);
  }

  std::vector<SchemaViolation> Take() { return std::move(out_); }

 private:
  bool full() const { return out_.size() >= max_; }
  void Add(const std::string& field, std::string message) {
    if (!full()) out_.push_back({field, std::move(message)});
  }

  void CheckString(const json& schema, const std::string& s, const std::string& path) {
    if (const auto m = schema.find("maxLength"); m != schema.end() && m->is_number_integer()) {
      if (Characters(s) > m->get<size_t>()) {
        Add(path, "may not be longer than " + std::to_string(m->get<size_t>()) + " characters");
      }
    }
    if (const auto m = schema.find("minLength"); m != schema.end() && m->is_number_integer()) {
      if (Characters(s) < m->get<size_t>()) {
        Add(path, "must be at least " + std::to_string(m->get<size_t>()) + " characters long");
      }
    }
    if (const auto p = schema.find("pattern"); p != schema.end() && p->is_string()) {
      const RE2* re = Pattern(*p);
      if (re != nullptr && !RE2::PartialMatch(s, *re)) Add(path, "must match the pattern '" + p->get<std::string>() + "'");
    }
  }

  void CheckNumber(const json& schema, const json& v, const std::string& path) {
    const double x = v.get<double>();
    if (const auto m = schema.find("maximum"); m != schema.end() && m->is_number() && x > m->get<double>()) {
      Add(path, "must be less than or equal to " + m->dump());
    }
    if (const auto m = schema.find("minimum"); m != schema.end() && m->is_number() && x < m->get<double>()) {
      Add(path, "must be greater than or equal to " + m->dump());
    }
  }

  void CheckArray(const json& schema, const json& v, const std::string& path) {
    if (const auto m = schema.find("maxItems"); m != schema.end() && m->is_number_integer() && v.size() > m->get<size_t>()) {
      Add(path, "too many items: " + std::to_string(v.size()) + ", at most " + std::to_string(m->get<size_t>()));
    }
    if (const auto m = schema.find("minItems"); m != schema.end() && m->is_number_integer() && v.size() < m->get<size_t>()) {
      Add(path, "must have at least " + std::to_string(m->get<size_t>()) + " item(s)");
    }
    if (const auto items = schema.find("items"); items != schema.end() && items->is_object()) {
      for (size_t i = 0; i < v.size() && !full(); ++i) Check(*items, v[i], path + "[" + std::to_string(i) + "]");
    }
  }

  void CheckObject(const json& schema, const json& v, const std::string& path) {
    const std::string prefix = path.empty() ? "" : path + ".";
    if (const auto m = schema.find("maxProperties"); m != schema.end() && m->is_number_integer() &&
                                                      v.size() > m->get<size_t>()) {
      Add(path, "too many properties: " + std::to_string(v.size()) + ", at most " + std::to_string(m->get<size_t>()));
    }
    if (const auto req = schema.find("required"); req != schema.end() && req->is_array()) {
      for (const auto& name : *req) {
        if (!name.is_string()) continue;
        const auto it = v.find(name.get<std::string>());
        if (it == v.end() || it->is_null()) Add(prefix + name.get<std::string>(), "required value");
      }
    }
    const auto props = schema.find("properties");
    const auto extra = schema.find("additionalProperties");
    for (const auto& [k, x] : v.items()) {
      if (full()) return;
      if (props != schema.end() && props->is_object() && props->contains(k)) {
        Check((*props)[k], x, prefix + k);
      } else if (extra != schema.end() && extra->is_object()) {
        Check(*extra, x, prefix + k);
      }
    }
  }

  size_t max_;
  std::vector<SchemaViolation> out_;
};

}  // namespace

std::vector<SchemaViolation> CheckOpenApi(const json& schema, const json& value, const std::string& path, size_t max) {
  Checker c(max);
  c.Check(schema, value, path);
  return c.Take();
}

json CrdSchema(const json& crd) {
  if (!crd.is_object() || crd.value("kind", "") != "CustomResourceDefinition") return nullptr;
  const json* versions = crd.contains("spec") && crd["spec"].is_object() && crd["spec"].contains("versions")
                             ? &crd["spec"]["versions"]
                             : nullptr;
  if (versions == nullptr || !versions->is_array()) return nullptr;
  for (const auto& v : *versions) {
    if (!v.is_object() || !v.value("served", false)) continue;
    if (v.contains("schema") && v["schema"].is_object() && v["schema"].contains("openAPIV3Schema")) {
      return v["schema"]["openAPIV3Schema"];
    }
  }
  return nullptr;
}

}  // namespace doorman::controller
