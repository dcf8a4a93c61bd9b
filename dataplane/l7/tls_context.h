// OpenSSL server contexts for one HTTPS listener in one config generation: one SSL_CTX per
// certificate (the first is the default), chosen during the handshake by SNI (SelectCertificate
// on the certificate's SAN dNSNames, else its CN). Certificates for exactly the same names with
// different key types (RSA + ECDSA) share one SSL_CTX, where OpenSSL picks by the client's
// signature algorithms. TLS >= the listener's min version (never
// below 1.2), a modern AEAD-only cipher list for TLS 1.2, ALPN "http/1.1" only.
// Immutable once built; shared by the connections accepted under this generation, so a
// certificate rotated by a later snapshot serves new handshakes while old connections keep the
// context they started with. Private keys are never logged; errors name the certificate only.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/config/runtime_config.h"

namespace doorman::dataplane {

class TlsServerContext {
 public:
  // Builds the contexts for `listener.tls_certificates`. Unusable certificates are skipped with a
  // warning; returns null (and *error) when none is usable. *expiry (if given) gets each usable
  // certificate's notAfter.
  static std::shared_ptr<const TlsServerContext> Build(const Listener& listener, std::string* error,
                                                       std::vector<std::string>* warnings,
                                                       std::vector<CertificateExpiry>* expiry = nullptr);

  // The context new connections start with (its servername callback switches by SNI).
  boost::asio::ssl::context& initial() const { return *entries_.front().ctx; }
  const std::vector<std::string>& names(std::size_t i) const { return entries_[i].names; }

 private:
  struct Entry {
    std::unique_ptr<boost::asio::ssl::context> ctx;
    std::vector<std::string> names;
    std::string name;  // TlsCertificate.name, for warnings
    // (key type, TlsCertificate.name) of each certificate in ctx: one per type (RSA + ECDSA).
    std::vector<std::pair<int, std::string>> certificates;
  };
  static int OnServerName(SSL* ssl, int* alert, void* arg);
  static int OnClientHello(SSL* ssl, int* alert, void* arg);
  std::vector<Entry> entries_;
  std::vector<std::vector<std::string>> all_names_;
  std::vector<std::string> namespaces_;  // each entry's certificate namespace ("" = the self-signed default)
  std::shared_ptr<const HostOwnership> host_owners_;  // Listener.host_owners, kept with the context
};

// Tests only: the clock (seconds) session-ticket keys rotate by, and forgets every key; null =
// the steady clock. Keys are process-wide (one ring for every context, so tickets survive config
// generations) and rotate hourly: docs/l7.md "TLS termination".
void SetTicketKeyClockForTesting(std::function<int64_t()> clock);
// Forgets the ticket keys past their 2 hours now (the workers' pool sweep calls it every 5 s;
// otherwise only a handshake would).
void ExpireTicketKeys();

// OpenSSL client context for TLS to a route's backends (backend protocol HTTPS): TLS >= 1.2, the
// same modern cipher list, ALPN "http/1.1". With a CA bundle the backend's chain and name are
// verified (the name is set per connection: SetUpConnection); without one, nothing is verified
// (ingress-nginx's and Envoy's default), which is documented as such.
class TlsClientContext {
 public:
  static std::shared_ptr<const TlsClientContext> Build(const std::string& ca_pem, std::string* error);
  boost::asio::ssl::context& context() const { return *ctx_; }
  bool verify() const { return verify_; }
  // SNI (when `server_name` is a DNS name) and, when verifying, the expected host name or IP.
  // Returns false (and *error) if OpenSSL refuses them.
  // Also refuses an empty name when verifying: a chain alone proves nothing about which backend.
  bool SetUpConnection(SSL* ssl, const std::string& server_name, std::string* error) const;
  // What a connection made with this context was checked against: "none", or "ca:" + the
  // SHA-256 of the CA bundle. Part of the upstream pool key, so a connection is only reused by a
  // route that would have verified it the same way (and survives snapshots with the same CA).
  const std::string& pool_id() const { return pool_id_; }

 private:
  std::unique_ptr<boost::asio::ssl::context> ctx_;
  bool verify_ = false;
  std::string pool_id_ = "none";
};

}  // namespace doorman::dataplane
