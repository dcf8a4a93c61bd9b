// Snapshot → RuntimeConfig, pure. Validates everything the dataplane relies on and either
// returns a complete RuntimeConfig plus warnings (ACK), or an error naming the offending object
// and field (NACK; the caller keeps serving its previous config).
//
// Errors: empty/duplicate names; a listener with an unknown protocol, port 0/>65535, or a port
// already used by another listener of the same transport (TCP-based vs UDP); a route or backend
// reference to a missing object; a route listed by a listener that names another listener;
// a path that does not start with '/'; an invalid RE2 regex; an endpoint whose address is not an
// IP literal or whose port is 0/>65535.
// Warnings: anything accepted but not programmed by this build (UDP/TLS listeners, HTTPS
// listeners without a tls_builder or without a usable certificate, PROXY protocol, source ranges,
// SourceIP stickiness, unknown retry conditions, active health checks, non-HTTP backend
// protocols, schedulers other than round-robin, L7 match fields on L4 routes, extra routes on an
// L4 listener, routes that no listener lists, routes whose every backend weight is 0). One line
// each, naming the object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/config/runtime_config.h"

namespace doorman::v1 {
class Snapshot;
}

namespace doorman::dataplane {

struct CompileOptions {
  std::string node_name;  // for BackendSet.local_only
  // Builds an HTTPS listener's TLS contexts (the I/O library supplies it; the core links no
  // OpenSSL). Returns null and sets *error when no certificate is usable; may append per-
  // certificate warnings, and fills *expiry with the usable certificates' notAfter. Without a
  // builder, HTTPS listeners are not served.
  std::function<std::shared_ptr<const TlsServerContext>(const Listener&, std::string* error,
                                                        std::vector<std::string>* warnings,
                                                        std::vector<CertificateExpiry>* expiry)>
      tls_builder;
  // Builds the client context for a route whose backend protocol is HTTPS from the CA PEM (empty
  // = no verification). Returns null and sets *error for an unusable CA. Without a builder,
  // HTTPS backends are warned and spoken to in plain HTTP/1.1.
  using BackendTlsBuilder =
      std::function<std::shared_ptr<const TlsClientContext>(const std::string& ca_pem, std::string* error)>;
  BackendTlsBuilder backend_tls_builder;
  // The config being replaced, if any: endpoints with the same key keep their EndpointState
  // (health, open connections) so an update resets neither.
  const RuntimeConfig* previous = nullptr;
};

struct CompileResult {
  std::shared_ptr<const RuntimeConfig> config;  // null on error
  std::string error;
  std::vector<std::string> warnings;
  bool ok() const { return config != nullptr; }
};

// Starts the drain of endpoints that `previous` had and `next` does not (EndpointState::
// removed_at_ms = now_ms), and of endpoints that left a listener's routes (Listener::drain_flags,
// even if another listener keeps the address); ends both for endpoints back in `next`.
// Called after the swap.
void MarkRemovedEndpoints(const RuntimeConfig* previous, const RuntimeConfig& next, int64_t now_ms);

CompileResult Compile(const doorman::v1::Snapshot& snapshot, uint64_t version, const CompileOptions& options);

}  // namespace doorman::dataplane
