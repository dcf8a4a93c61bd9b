// The --tls-cert/--tls-key/--tls-ca (and dataplane --tls-server-name) flags: mTLS on the
// controller ↔ dataplane routing-state stream. Pure: flag consistency only; the files themselves
// are checked by common/grpc_tls.h.
#pragma once

#include <string>
#include <string_view>

namespace doorman {

// The flag values as given. Empty strings mean "not given".
struct TlsFiles {
  std::string cert;         // this process's certificate chain (PEM)
  std::string key;          // its private key (PEM, unencrypted)
  std::string ca;           // CA bundle (PEM) that must have signed the peer's certificate
  std::string server_name;  // dataplane only: the name expected in the controller's certificate

  // True when any of the three files is given (then all three must be: CheckTlsFlags).
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

// "" when the flags are usable, else one line for the user: all three files or none, and
// --tls-server-name only together with them.
std::string CheckTlsFlags(const TlsFiles& files);

// What to tell the user when a dataplane's connection to the controller failed with
// `grpc_error` (gRPC's status message), given whether it uses mTLS: where to look for a TLS
// mismatch, or "" when the error says nothing reached a TLS handshake (refused, unresolvable).
std::string_view TlsConnectHint(bool tls_enabled, std::string_view grpc_error);

}  // namespace doorman
