// A self-signed certificate and its private key (PEM) for one DNS name, for unit tests that need
// certificates with chosen names or key types. Header-only: each test binary links OpenSSL.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>
#include <utility>

namespace doorman::testing {

// `dns` is the CN and the one DNS subject alternative name; `key_type` "RSA" (2048) or "EC" (P-256).
// Valid from an hour ago for a day.
inline std::pair<std::string, std::string> SelfSignedCertificate(const std::string& dns, const std::string& key_type = "EC") {
  EVP_PKEY* key = key_type == "RSA" ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_NAME* subject = X509_NAME_new();
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(dns.c_str()), -1, -1, 0);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_subject_name(x, subject);
  X509_set_issuer_name(x, subject);
  X509_set_pubkey(x, key);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, ("DNS:" + dns).c_str());
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(x, key, EVP_sha256());
  auto pem = [](auto write) {
    BIO* b = BIO_new(BIO_s_mem());
    write(b);
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
  };
  std::pair<std::string, std::string> out{pem([&](BIO* b) { PEM_write_bio_X509(b, x); }),
                                          pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); })};
  X509_NAME_free(subject);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace doorman::testing
