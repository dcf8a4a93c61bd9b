#include "common/grpc_tls.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

namespace doorman {
namespace {

// A throwaway key and self-signed certificate, generated per test (no key material in the repo).
struct Identity {
  std::string cert_pem;
  std::string key_pem;
  std::string encrypted_key_pem;
};

std::string BioString(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

Identity MakeIdentity(const char* cn) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  X509_sign(x.get(), key.get(), EVP_sha256());
  Identity id;
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x.get());
  id.cert_pem = BioString(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  id.key_pem = BioString(b);
  b = BIO_new(BIO_s_mem());
  unsigned char pass[] = "secret";
  PEM_write_bio_PrivateKey(b, key.get(), EVP_aes_256_cbc(), pass, 6, nullptr, nullptr);
  id.encrypted_key_pem = BioString(b);
  return id;
}

const TlsFiles kFiles{"/etc/tls/tls.crt", "/etc/tls/tls.key", "/etc/tls/ca.crt", ""};

// The error names the flag and the file, and never carries PEM content.
void ExpectError(const std::string& got, const std::string& want, const Identity& id) {
  EXPECT_NE(got.find(want), std::string::npos) << got;
  EXPECT_EQ(got.find("-----"), std::string::npos) << got;
  EXPECT_EQ(got.find(id.key_pem.substr(40, 20)), std::string::npos) << got;
  EXPECT_EQ(got.find('\n'), std::string::npos) << got;
}

TEST(MtlsPem, AcceptsAMatchingKeyAndCertificates) {
  const Identity id = MakeIdentity("node"), ca = MakeIdentity("ca");
  EXPECT_EQ(CheckTlsPem(kFiles, id.cert_pem, id.key_pem, ca.cert_pem), "");
  // A chain (leaf first) and a CA bundle with several certificates are fine too.
  EXPECT_EQ(CheckTlsPem(kFiles, id.cert_pem + ca.cert_pem, id.key_pem, ca.cert_pem + id.cert_pem), "");
}

TEST(MtlsPem, NamesTheBrokenFile) {
  const Identity id = MakeIdentity("node"), other = MakeIdentity("other"), ca = MakeIdentity("ca");
  struct Case {
    std::string cert, key, ca, want;
  };
  const Case cases[] = {
      {"", id.key_pem, ca.cert_pem, "--tls-cert /etc/tls/tls.crt: no PEM certificate"},
      {"garbage", id.key_pem, ca.cert_pem, "--tls-cert /etc/tls/tls.crt: no PEM certificate"},
      {id.key_pem, id.key_pem, ca.cert_pem, "--tls-cert /etc/tls/tls.crt: no PEM certificate"},
      {id.cert_pem, "", ca.cert_pem, "--tls-key /etc/tls/tls.key: no unencrypted PEM private key"},
      {id.cert_pem, id.cert_pem, ca.cert_pem, "--tls-key /etc/tls/tls.key: no unencrypted PEM private key"},
      {id.cert_pem, id.encrypted_key_pem, ca.cert_pem, "--tls-key /etc/tls/tls.key: no unencrypted PEM private key"},
      {id.cert_pem, other.key_pem, ca.cert_pem,
       "--tls-key /etc/tls/tls.key does not match the certificate in --tls-cert /etc/tls/tls.crt"},
      {id.cert_pem, id.key_pem, "", "--tls-ca /etc/tls/ca.crt: no PEM certificate"},
      {id.cert_pem, id.key_pem, id.key_pem, "--tls-ca /etc/tls/ca.crt: no PEM certificate"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.want);
    ExpectError(CheckTlsPem(kFiles, c.cert, c.key, c.ca), c.want, id);
  }
}

TEST(MtlsPem, UnreadableFileIsNamed) {
  const Identity id = MakeIdentity("node");
  const std::string dir = testing::TempDir();
  const TlsFiles files{dir + "/mtls-cert.pem", dir + "/mtls-missing.key", dir + "/mtls-cert.pem", ""};
  std::ofstream(files.cert) << id.cert_pem;
  ExpectError(CheckTlsFiles(files), "--tls-key " + files.key + ": cannot read (No such file or directory)", id);
  ExpectError(CheckTlsFiles({files.cert, dir, files.ca, ""}), "--tls-key " + dir + ": cannot read (Is a directory)", id);
  std::ofstream(files.key) << id.key_pem;
  EXPECT_EQ(CheckTlsFiles(files), "");
  std::remove(files.cert.c_str());
  std::remove(files.key.c_str());
}

}  // namespace
}  // namespace doorman
