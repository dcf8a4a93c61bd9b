// mTLS credentials for the routing-state stream (controller gRPC server, dataplane gRPC client).
//
// Both sides use gRPC's TlsServerCredentials/TlsCredentials with a FileWatcherCertificateProvider:
// the three files are re-read every kTlsRefreshInterval, so renewed certificates (a Kubernetes
// Secret update) are used for new connections without a restart. The server requires and
// verifies a client certificate signed by --tls-ca; the client verifies the server's chain
// against --tls-ca and its name against the --controller host (or --tls-server-name). gRPC's
// TLS stack negotiates TLS 1.2 or 1.3, never lower.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/tls_flags.h"

namespace grpc {
class ChannelArguments;
class ChannelCredentials;
class ServerCredentials;
}  // namespace grpc

namespace doorman {

inline constexpr std::chrono::seconds kTlsRefreshInterval{5};

// A client or server certificate and its key, as PEM: usable, or what is wrong (the first
// certificate does not parse, the key does not parse or is encrypted, they do not match).
enum class PemPairProblem { kNone, kNoCertificate, kNoKey, kMismatch };
PemPairProblem CheckPemPair(const std::string& cert_pem, const std::string& key_pem);

// Checks PEM contents that came from `files` (used only to name them in the message): at least
// one certificate in cert and ca, an unencrypted private key that matches cert's first
// certificate. Returns "" or one line naming the flag and file; never any file content.
std::string CheckTlsPem(const TlsFiles& files, const std::string& cert_pem, const std::string& key_pem,
                        const std::string& ca_pem);

// Reads the three files and checks them (CheckTlsPem); "" or one line naming the file.
std::string CheckTlsFiles(const TlsFiles& files);

// Server credentials: mTLS when files.enabled(), else insecure (plaintext).
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsFiles& files);

// Channel credentials: mTLS when files.enabled(), else insecure. Sets the expected server name
// on `args` when files.server_name is given.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsFiles& files, grpc::ChannelArguments* args);

}  // namespace doorman
