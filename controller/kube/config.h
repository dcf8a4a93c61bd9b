// Where the Kubernetes API is and how to authenticate to it: a kubeconfig file (current-context
// → cluster + user) or the in-cluster service account. Pure: file contents come in as strings
// through a FileReader, so tests need no files; nothing here ever logs credentials.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace doorman::controller::kube {

// Everything the HTTP client needs. PEM fields hold the material itself (a kubeconfig's *-data
// fields decoded, or the referenced files read); *_file fields are kept so the client can re-read
// rotating credentials.
struct KubeConfig {
  std::string server;            // "https://10.0.0.1:443" (no trailing slash)
  std::string ca_pem;            // empty: the system trust store
  bool insecure_skip_tls_verify = false;
  std::string token;             // bearer token (never logged)
  std::string token_file;        // re-read when it changes (service-account token rotation)
  std::string client_cert_pem;   // client certificate (mTLS user)
  std::string client_key_pem;    // its private key (never logged)
  std::string ns;                // the context's / pod's namespace ("" when unknown)
  std::string origin;            // "kubeconfig /path (context x)" or "in-cluster" — for logs
};

// Reads a whole file; nullopt when it cannot be read.
using FileReader = std::function<std::optional<std::string>(const std::string& path)>;
// Reads an environment variable; nullopt when unset.
using EnvReader = std::function<std::optional<std::string>(const std::string& name)>;

// The real file system / environment.
std::optional<std::string> ReadFile(const std::string& path);
std::optional<std::string> GetEnv(const std::string& name);

// Parses kubeconfig `text` (YAML or JSON) read from `path`: current-context (or `context` when
// non-empty) → its cluster (server, certificate-authority[-data], insecure-skip-tls-verify) and
// user (token, tokenFile, client-certificate[-data], client-key[-data]). Relative file paths are
// relative to the kubeconfig's directory, as kubectl resolves them. Returns nullopt and sets
// *error (without any secret in it) on a problem.
std::optional<KubeConfig> ParseKubeconfig(std::string_view text, const std::string& path, const FileReader& read,
                                          std::string* error, const std::string& context = "");

// The in-cluster service account: KUBERNETES_SERVICE_HOST/PORT and
// /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}. nullopt (error empty)
// when not running in a cluster; nullopt with *error when the environment is there but broken.
inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
std::optional<KubeConfig> InClusterConfig(const EnvReader& env, const FileReader& read, std::string* error,
                                          const std::string& sa_dir = kServiceAccountDir);

// API.md §2 precedence: --kubeconfig PATH, else in-cluster, else $KUBECONFIG (its first entry
// when it lists several, separated by ':'). nullopt + *error when none applies or it is broken.
std::optional<KubeConfig> ResolveKubeConfig(const std::string& kubeconfig_flag, const EnvReader& env,
                                            const FileReader& read, std::string* error,
                                            const std::string& sa_dir = kServiceAccountDir);

// RFC 4648 base64 (padding optional, whitespace ignored); nullopt on bad input.
std::optional<std::string> Base64Decode(std::string_view in);

}  // namespace doorman::controller::kube
