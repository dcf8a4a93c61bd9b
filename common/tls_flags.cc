#include "common/tls_flags.h"

namespace doorman {

std::string CheckTlsFlags(const TlsFiles& f) {
  if (!f.enabled()) {
    return f.server_name.empty() ? "" : "--tls-server-name needs --tls-cert, --tls-key and --tls-ca";
  }
  std::string missing;
  for (const auto& [name, value] : {std::pair{"--tls-cert", &f.cert}, {"--tls-key", &f.key}, {"--tls-ca", &f.ca}}) {
    if (value->empty()) missing += std::string(missing.empty() ? "" : ", ") + name;
  }
  if (missing.empty()) return "";
  return "--tls-cert, --tls-key and --tls-ca must be given together (missing " + missing + ")";
}

std::string_view TlsConnectHint(bool tls_enabled, std::string_view grpc_error) {
  for (std::string_view not_tls : {"Connection refused", "DNS resolution failed", "No route to host"}) {
    if (grpc_error.find(not_tls) != std::string_view::npos) return "";
  }
  if (tls_enabled) {
    return "mTLS: the controller must run with --tls-cert/--tls-key/--tls-ca, trust this dataplane's certificate, "
           "and present one signed by this --tls-ca naming the --controller host (or --tls-server-name)";
  }
  return "plaintext: if the controller requires mTLS, give --tls-cert, --tls-key and --tls-ca";
}

}  // namespace doorman
