#include "common/grpc_tls.h"
#include "common/pem_no_prompt.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace doorman {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

BioPtr MemBio(const std::string& pem) { return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))); }


// All certificates in a PEM bundle (PEM blocks of other types are skipped by OpenSSL).
std::vector<X509Ptr> ReadCertificates(const std::string& pem) {
  std::vector<X509Ptr> out;
  auto bio = MemBio(pem);
  while (bio) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr);
    if (x == nullptr) break;
    out.emplace_back(x);
  }
  ERR_clear_error();  // the end-of-input "no start line" error
  return out;
}

std::string Named(const char* flag, const std::string& path) { return std::string(flag) + " " + path; }

}  // namespace

PemPairProblem CheckPemPair(const std::string& cert_pem, const std::string& key_pem) {
  const auto chain = ReadCertificates(cert_pem);
  if (chain.empty()) return PemPairProblem::kNoCertificate;
  PkeyPtr key;
  if (auto bio = MemBio(key_pem)) key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (!key) return PemPairProblem::kNoKey;
  const bool match = X509_check_private_key(chain.front().get(), key.get()) == 1;
  ERR_clear_error();
  return match ? PemPairProblem::kNone : PemPairProblem::kMismatch;
}

std::string CheckTlsPem(const TlsFiles& files, const std::string& cert_pem, const std::string& key_pem,
                        const std::string& ca_pem) {
  switch (CheckPemPair(cert_pem, key_pem)) {
    case PemPairProblem::kNoCertificate:
      return Named("--tls-cert", files.cert) + ": no PEM certificate in the file";
    case PemPairProblem::kNoKey:
      return Named("--tls-key", files.key) + ": no unencrypted PEM private key in the file";
    case PemPairProblem::kMismatch:
      return Named("--tls-key", files.key) + " does not match the certificate in " + Named("--tls-cert", files.cert);
    case PemPairProblem::kNone:
      break;
  }
  if (ReadCertificates(ca_pem).empty()) return Named("--tls-ca", files.ca) + ": no PEM certificate in the file";
  return "";
}

std::string CheckTlsFiles(const TlsFiles& files) {
  std::string pem[3];
  const std::pair<const char*, const std::string*> inputs[3] = {
      {"--tls-cert", &files.cert}, {"--tls-key", &files.key}, {"--tls-ca", &files.ca}};
  for (int i = 0; i < 3; ++i) {
    std::error_code ec;
    if (std::filesystem::is_directory(*inputs[i].second, ec)) {
      return Named(inputs[i].first, *inputs[i].second) + ": cannot read (Is a directory)";
    }
    std::ifstream in(*inputs[i].second, std::ios::binary);
    if (!in) return Named(inputs[i].first, *inputs[i].second) + ": cannot read (" + std::strerror(errno) + ")";
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) return Named(inputs[i].first, *inputs[i].second) + ": cannot read";
    pem[i] = std::move(buf).str();
  }
  std::string error = CheckTlsPem(files, pem[0], pem[1], pem[2]);
  OPENSSL_cleanse(pem[1].data(), pem[1].size());  // the key is gRPC's to hold, not ours
  return error;
}

namespace {

std::shared_ptr<grpc::experimental::CertificateProviderInterface> Provider(const TlsFiles& files) {
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, files.ca, static_cast<unsigned>(kTlsRefreshInterval.count()));
}

}  // namespace

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  grpc::experimental::TlsServerCredentialsOptions options(Provider(files));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsFiles& files, grpc::ChannelArguments* args) {
  if (!files.enabled()) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(files));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  if (!files.server_name.empty()) args->SetSslTargetNameOverride(files.server_name);
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace doorman
