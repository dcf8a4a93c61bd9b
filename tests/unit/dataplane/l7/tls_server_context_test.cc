// TlsServerContext (dataplane/l7/tls_context.h): the server contexts of an HTTPS listener. No
// sockets: handshakes by SNI are in tests/integration/test_l7_tls.py.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "dataplane/config/runtime_config.h"
#include "dataplane/l7/tls_context.h"
#include "tests/unit/common/test_certificate.h"

namespace doorman::dataplane {
namespace {

// A throwaway self-signed test certificate and key (P-256, CN and SAN tenant.test); nothing
// trusts it.
const std::string kCert =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBmjCCAUGgAwIBAgIUbT2TCGQbyz4xlK2JED/UIvBY9yswCgYIKoZIzj0EAwIw\n"
    "FjEUMBIGA1UEAwwLdGVuYW50LnRlc3QwIBcNMjYxMTI5MDkwMzMxWhgPMjEyNjEx\n"
    "MDUwOTAzMzFaMBYxFDASBgNVBAMMC3RlbmFudC50ZXN0MFkwEwYHKoZIzj0CAQYI\n"
    "KoZIzj0DAQcDQgAEUDHl+gbtpVvVjAuBHQtjQOIM7WmTu9+cCPyNhYKNRyGqzzm8\n"
    "cenjzKlxnvug0c7SRU5XxP9oZUZ9feurqtbWpqNrMGkwHQYDVR0OBBYEFOLeH6m1\n"
    "urJIF/KnAGx8Yt//o1mPMB8GA1UdIwQYMBaAFOLeH6m1urJIF/KnAGx8Yt//o1mP\n"
    "MA8GA1UdEwEB/wQFMAMBAf8wFgYDVR0RBA8wDYILdGVuYW50LnRlc3QwCgYIKoZI\n"
    "zj0EAwIDRwAwRAIgTnMFALUFlFthfF+ygAQVm3jvURjXFbdOh+cHUgOcyr0CIGFy\n"
    "HjujBM6li7RQWJ+P48v0FimjPq0k95XFIdbRM7Yo\n"
    "-----END CERTIFICATE-----\n";
const std::string kKey =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgf5SxCN7dv8iSuVnV\n"
    "/8HiFwYyCM9icE+TXPnpzUeddqShRANCAARQMeX6Bu2lW9WMC4EdC2NA4gztaZO7\n"
    "35wI/I2Fgo1HIarPObxx6ePMqXGe+6DRztJFTlfE/2hlRn1966uq1tam\n"
    "-----END PRIVATE KEY-----\n";

std::string Subject(boost::asio::ssl::context& c) {
  X509* x = SSL_CTX_get0_certificate(c.native_handle());
  if (x == nullptr) return "";
  char buf[256] = {};
  X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof(buf));
  return buf;
}

// A self-signed certificate for `cn` (also its SAN) with a new key of `key_type` ("RSA" or
// "EC"), as a TlsCertificatePem; generated here so the test carries no key material.
TlsCertificatePem Generate(const std::string& name, const std::string& cn, const std::string& key_type) {
  auto [cert, key] = doorman::testing::SelfSignedCertificate(cn, key_type);
  return {name, std::move(cert), std::move(key)};
}

// The key types of the certificates a context holds (OpenSSL keeps one per type).
std::vector<int> KeyTypes(boost::asio::ssl::context& c) {
  std::vector<int> out;
  SSL_CTX* ctx = c.native_handle();
  for (int r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST); r == 1; r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_NEXT)) {
    out.push_back(EVP_PKEY_get_base_id(X509_get0_pubkey(SSL_CTX_get0_certificate(ctx))));
  }
  return out;
}

Listener Https(bool default_self_signed) {
  Listener l;
  l.name = "https-443";
  l.protocol = Protocol::kHttps;
  l.tls_certificates = {{"default/tenant", kCert, kKey}};
  l.tls_default_self_signed = default_self_signed;
  return l;
}

TEST(TlsServerContext, TheFirstCertificateIsTheDefault) {
  std::string error;
  std::vector<std::string> warnings;
  auto c = TlsServerContext::Build(Https(false), &error, &warnings);
  ASSERT_NE(c, nullptr) << error;
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(Subject(c->initial()), "/CN=tenant.test");
  EXPECT_EQ(c->names(0), std::vector<std::string>{"tenant.test"});
}

// ListenerTls.default_self_signed: the default (no SNI, or a name no certificate covers) is a
// self-signed certificate generated once per process, with no names SNI could select; the
// listener's own certificates follow.
TEST(TlsServerContext, ASelfSignedDefaultComesFirstAndIsTheSameForEveryBuild) {
  std::string error;
  std::vector<std::string> warnings;
  auto c = TlsServerContext::Build(Https(true), &error, &warnings);
  ASSERT_NE(c, nullptr) << error;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ(Subject(c->initial()), "/O=Doorman/CN=Doorman Default Certificate");
  X509* fake = SSL_CTX_get0_certificate(c->initial().native_handle());
  ASSERT_NE(fake, nullptr);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(fake), X509_get_issuer_name(fake)), 0);
  EXPECT_EQ(X509_get_ext_by_NID(fake, NID_subject_alt_name, -1), -1);  // no SAN: no name of anyone's
  EXPECT_TRUE(c->names(0).empty());
  EXPECT_EQ(c->names(1), std::vector<std::string>{"tenant.test"});
  EXPECT_GE(SSL_CTX_get_min_proto_version(c->initial().native_handle()), TLS1_2_VERSION);
  auto again = TlsServerContext::Build(Https(true), &error, &warnings);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(X509_cmp(fake, SSL_CTX_get0_certificate(again->initial().native_handle())), 0);
}

// Without a usable certificate of its own the listener is not served: the self-signed default
// alone does not open it.
TEST(TlsServerContext, TheSelfSignedDefaultAloneServesNothing) {
  Listener l = Https(true);
  l.tls_certificates = {{"default/broken", "not pem", "not pem"}};
  std::string error;
  std::vector<std::string> warnings;
  EXPECT_EQ(TlsServerContext::Build(l, &error, &warnings), nullptr);
  EXPECT_NE(error.find("certificate chain is not PEM"), std::string::npos) << error;
}

// The usable certificates' notAfter, for doorman_tls_certificate_expiry_timestamp_seconds: not
// the self-signed default (nobody declared it), not an unusable certificate.
TEST(TlsServerContext, ReportsTheNotAfterOfEachUsableCertificate) {
  std::string error;
  std::vector<std::string> warnings;
  std::vector<CertificateExpiry> expiry;
  Listener l = Https(true);
  l.tls_certificates.push_back({"default/broken", "not pem", "not pem"});
  ASSERT_NE(TlsServerContext::Build(l, &error, &warnings, &expiry), nullptr) << error;
  ASSERT_EQ(expiry.size(), 1u);
  EXPECT_EQ(expiry[0].name, "default/tenant");
  EXPECT_EQ(expiry[0].not_after, 4949543011);  // notAfter 2126-11-05 09:03:31 UTC (GeneralizedTime)
  l.tls_certificates = {{"default/broken", "not pem", "not pem"}};
  EXPECT_EQ(TlsServerContext::Build(l, &error, &warnings, &expiry), nullptr);
  EXPECT_TRUE(expiry.empty());
}

// An RSA and an ECDSA certificate for the same names share one context, so OpenSSL serves each
// client the one its signature algorithms take (nginx's two ssl_certificate lines); a third for
// the same names with a key type already there could never be served: skipped, with a warning.
// Both served certificates' expiries are exported.
TEST(TlsServerContext, RsaAndEcdsaForTheSameNamesShareAContext) {
  Listener l = Https(false);
  l.tls_certificates = {Generate("default/rsa", "dual.test", "RSA"), Generate("default/ecdsa", "dual.test", "EC"),
                        Generate("default/ecdsa-again", "dual.test", "EC"), Generate("default/other", "other.test", "EC")};
  std::string error;
  std::vector<std::string> warnings;
  std::vector<CertificateExpiry> expiry;
  auto c = TlsServerContext::Build(l, &error, &warnings, &expiry);
  ASSERT_NE(c, nullptr) << error;
  EXPECT_EQ(KeyTypes(c->initial()), (std::vector<int>{EVP_PKEY_RSA, EVP_PKEY_EC}));
  EXPECT_EQ(c->names(0), std::vector<std::string>{"dual.test"});
  EXPECT_EQ(c->names(1), std::vector<std::string>{"other.test"});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("certificate \"default/ecdsa-again\" has the same names and key type as \"default/ecdsa\""),
            std::string::npos)
      << warnings[0];
  ASSERT_EQ(expiry.size(), 3u);
  EXPECT_EQ(expiry[1].name, "default/ecdsa");
  EXPECT_EQ(expiry[2].name, "default/other");
  // Another namespace's certificate for the same names never joins the pair (helper-137).
  l.tls_certificates = {Generate("shop/rsa", "dual.test", "RSA"), Generate("evil/ecdsa", "dual.test", "EC")};
  warnings.clear();
  c = TlsServerContext::Build(l, &error, &warnings, &expiry);
  ASSERT_NE(c, nullptr) << error;
  EXPECT_EQ(KeyTypes(c->initial()), (std::vector<int>{EVP_PKEY_RSA}));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("certificate \"evil/ecdsa\" has the same names as \"shop/rsa\" of another namespace"),
            std::string::npos)
      << warnings[0];
}

}  // namespace
}  // namespace doorman::dataplane
