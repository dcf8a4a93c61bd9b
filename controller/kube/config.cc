#include "controller/kube/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "controller/source/manifest.h"

namespace doorman::controller::kube {
namespace {

using nlohmann::json;

std::string Dir(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p.front() == '/') return p;
  return base_dir + "/" + p;
}

// The entry named `name` of a kubeconfig list ("clusters", "users", "contexts"), or null.
const json* Named(const json& cfg, const char* list, const std::string& name, const char* inner) {
  auto it = cfg.find(list);
  if (it == cfg.end() || !it->is_array()) return nullptr;
  for (const auto& e : *it) {
    if (e.is_object() && e.value("name", "") == name) {
      auto in = e.find(inner);
      if (in != e.end() && in->is_object()) return &*in;
      static const json kEmpty = json::object();
      return &kEmpty;
    }
  }
  return nullptr;
}

std::string Str(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Reads PEM material from `<field>-data` (base64) or `<field>` (a file path). Returns false with
// *error when given but unreadable; *out stays empty when neither is given.
bool Material(const json& o, const std::string& field, const std::string& base_dir, const FileReader& read,
              std::string* out, std::string* error) {
  const std::string data = Str(o, (field + "-data").c_str());
  if (!data.empty()) {
    auto decoded = Base64Decode(data);
    if (!decoded) {
      *error = field + "-data is not valid base64";
      return false;
    }
    *out = std::move(*decoded);
    return true;
  }
  const std::string file = Str(o, field.c_str());
  if (file.empty()) return true;
  auto content = read(Resolve(base_dir, file));
  if (!content) {
    *error = "cannot read " + field + " " + Resolve(base_dir, file);
    return false;
  }
  *out = std::move(*content);
  return true;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
  return s.substr(i);
}

}  // namespace

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return ss.str();
}

std::optional<std::string> GetEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

std::optional<std::string> Base64Decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : in) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    if (padding) return std::nullopt;  // data after padding
    const int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits >= 6) return std::nullopt;  // a dangling sextet cannot encode a byte
  return out;
}

std::optional<KubeConfig> ParseKubeconfig(std::string_view text, const std::string& path, const FileReader& read,
                                          std::string* error, const std::string& context) {
  const std::string where = "kubeconfig " + path + ": ";
  json cfg;
  try {
    cfg = YamlToJson(text);
  } catch (const std::exception& e) {
    *error = where + e.what();
    return std::nullopt;
  }
  if (!cfg.is_object()) {
    *error = where + "not a kubeconfig (want a mapping with clusters, users, contexts)";
    return std::nullopt;
  }
  const std::string ctx_name = context.empty() ? Str(cfg, "current-context") : context;
  if (ctx_name.empty()) {
    *error = where + "no current-context";
    return std::nullopt;
  }
  const json* ctx = Named(cfg, "contexts", ctx_name, "context");
  if (!ctx) {
    *error = where + "context \"" + ctx_name + "\" not found";
    return std::nullopt;
  }
  const std::string cluster_name = Str(*ctx, "cluster");
  const json* cluster = Named(cfg, "clusters", cluster_name, "cluster");
  if (!cluster) {
    *error = where + "cluster \"" + cluster_name + "\" of context \"" + ctx_name + "\" not found";
    return std::nullopt;
  }
  const std::string base_dir = Dir(path);
  KubeConfig out;
  out.origin = "kubeconfig " + path + " (context " + ctx_name + ")";
  out.ns = Str(*ctx, "namespace");
  out.server = Str(*cluster, "server");
  while (!out.server.empty() && out.server.back() == '/') out.server.pop_back();
  if (out.server.empty()) {
    *error = where + "cluster \"" + cluster_name + "\" has no server";
    return std::nullopt;
  }
  if (out.server.rfind("https://", 0) != 0 && out.server.rfind("http://", 0) != 0) {
    *error = where + "server \"" + out.server + "\" must start with https:// or http://";
    return std::nullopt;
  }
  if (auto it = cluster->find("insecure-skip-tls-verify"); it != cluster->end() && it->is_boolean()) {
    out.insecure_skip_tls_verify = it->get<bool>();
  }
  std::string err;
  if (!Material(*cluster, "certificate-authority", base_dir, read, &out.ca_pem, &err)) {
    *error = where + err;
    return std::nullopt;
  }
  const std::string user_name = Str(*ctx, "user");
  if (!user_name.empty()) {
    const json* user = Named(cfg, "users", user_name, "user");
    if (!user) {
      *error = where + "user \"" + user_name + "\" of context \"" + ctx_name + "\" not found";
      return std::nullopt;
    }
    for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
      if (user->contains(unsupported)) {
        *error = where + "user \"" + user_name + "\": " + unsupported +
                 " credentials are not supported (use a token, tokenFile or client certificate)";
        return std::nullopt;
      }
    }
    out.token = Str(*user, "token");
    const std::string token_file = Str(*user, "tokenFile");
    if (out.token.empty() && !token_file.empty()) {
      out.token_file = Resolve(base_dir, token_file);
      auto t = read(out.token_file);
      if (!t) {
        *error = where + "cannot read tokenFile " + out.token_file;
        return std::nullopt;
      }
      out.token = Trim(*t);
    }
    if (!Material(*user, "client-certificate", base_dir, read, &out.client_cert_pem, &err) ||
        !Material(*user, "client-key", base_dir, read, &out.client_key_pem, &err)) {
      *error = where + err;
      return std::nullopt;
    }
    if (out.client_cert_pem.empty() != out.client_key_pem.empty()) {
      *error = where + "user \"" + user_name + "\" needs both client-certificate and client-key";
      return std::nullopt;
    }
  }
  return out;
}

std::optional<KubeConfig> InClusterConfig(const EnvReader& env, const FileReader& read, std::string* error,
                                          const std::string& sa_dir) {
  const auto host = env("KUBERNETES_SERVICE_HOST");
  const auto port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port || host->empty() || port->empty()) return std::nullopt;
  KubeConfig out;
  out.origin = "in-cluster";
  const bool v6 = host->find(':') != std::string::npos;
  out.server = "https://" + (v6 ? "[" + *host + "]" : *host) + ":" + *port;
  out.token_file = sa_dir + "/token";
  auto token = read(out.token_file);
  if (!token) {
    *error = "in-cluster: cannot read " + out.token_file;
    return std::nullopt;
  }
  out.token = Trim(*token);
  auto ca = read(sa_dir + "/ca.crt");
  if (!ca) {
    *error = "in-cluster: cannot read " + sa_dir + "/ca.crt";
    return std::nullopt;
  }
  out.ca_pem = std::move(*ca);
  if (auto ns = read(sa_dir + "/namespace")) out.ns = Trim(*ns);
  return out;
}

std::optional<KubeConfig> ResolveKubeConfig(const std::string& kubeconfig_flag, const EnvReader& env,
                                            const FileReader& read, std::string* error, const std::string& sa_dir) {
  auto from_file = [&](const std::string& path) -> std::optional<KubeConfig> {
    auto text = read(path);
    if (!text) {
      *error = "kubeconfig " + path + ": cannot read the file";
      return std::nullopt;
    }
    return ParseKubeconfig(*text, path, read, error);
  };
  if (!kubeconfig_flag.empty()) return from_file(kubeconfig_flag);
  error->clear();
  if (auto in_cluster = InClusterConfig(env, read, error, sa_dir)) return in_cluster;
  if (!error->empty()) return std::nullopt;
  if (auto kc = env("KUBECONFIG"); kc && !kc->empty()) {
    const std::string first = kc->substr(0, kc->find(':'));
    return from_file(first);
  }
  *error = "no Kubernetes API configuration: give --kubeconfig PATH, run in a cluster, or set $KUBECONFIG";
  return std::nullopt;
}

}  // namespace doorman::controller::kube
