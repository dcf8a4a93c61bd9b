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

}  // namespace doorman
