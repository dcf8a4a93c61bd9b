// TlsClientContext (dataplane/l7/tls_context.h): the context for TLS to HTTPS backends. No
// sockets: handshakes against real backends are in tests/integration/test_l7_backend_tls.py.
#include "dataplane/l7/tls_context.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <string>

namespace doorman::dataplane {
namespace {

// A throwaway self-signed test CA (P-256, public certificate only).
const std::string kTestCa =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBlTCCATugAwIBAgIUeypS6GoEl2Esiu97kHbjumjaj5swCgYIKoZIzj0EAwIw\n"
    "HzEdMBsGA1UEAwwUZG9vcm1hbiB1bml0IHRlc3QgQ0EwIBcNMjYxMTI2MTY1OTMy\n"
    "WhgPMjEyNjExMDIxNjU5MzJaMB8xHTAbBgNVBAMMFGRvb3JtYW4gdW5pdCB0ZXN0\n"
    "IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnDP5BJGRkFuXxtmwkHCxS28H\n"
    "JFtP+y35KnslhII2PHIrHWsO9Hsn2ASLk/KJkpegniXKwsCgpR+CVcony2l4EKNT\n"
    "MFEwHQYDVR0OBBYEFGbUqTr1Rww0/HfJOSeBKAwdpU+FMB8GA1UdIwQYMBaAFGbU\n"
    "qTr1Rww0/HfJOSeBKAwdpU+FMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID\n"
    "SAAwRQIhALOUCvGoSOwAqgfyiGIoRYfYf6DBoHcXOM4P+ISdX9EcAiBxAg7/nQoU\n"
    "1l3szs5YbcKXlzc5a8BOZCSU4j85K7io6g==\n"
    "-----END CERTIFICATE-----\n";

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
std::unique_ptr<SSL, SslFree> NewSsl(const TlsClientContext& c) {
  return std::unique_ptr<SSL, SslFree>(SSL_new(c.context().native_handle()));
}

TEST(TlsClientContext, WithoutACaNothingIsVerifiedButTls12IsTheFloor) {
  std::string error;
  auto c = TlsClientContext::Build("", &error);
  ASSERT_NE(c, nullptr) << error;
  EXPECT_FALSE(c->verify());
  EXPECT_EQ(c->pool_id(), "none");
  SSL_CTX* ctx = c->context().native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
  auto ssl = NewSsl(*c);
  ASSERT_TRUE(c->SetUpConnection(ssl.get(), "backend.test", &error)) << error;
  EXPECT_STREQ(SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name), "backend.test");
  auto no_name = NewSsl(*c);
  EXPECT_TRUE(c->SetUpConnection(no_name.get(), "", &error)) << error;  // no SNI, nothing checked
  EXPECT_EQ(SSL_get_servername(no_name.get(), TLSEXT_NAMETYPE_host_name), nullptr);
}

TEST(TlsClientContext, WithACaTheChainAndTheNameAreVerified) {
  std::string error;
  auto c = TlsClientContext::Build("junk before\n" + kTestCa + "junk after\n", &error);
  ASSERT_NE(c, nullptr) << error;
  EXPECT_TRUE(c->verify());
  EXPECT_EQ(SSL_CTX_get_verify_mode(c->context().native_handle()), SSL_VERIFY_PEER);
  EXPECT_EQ(c->pool_id().rfind("ca:", 0), 0u) << c->pool_id();
  EXPECT_EQ(c->pool_id().size(), 3u + 64u);

  // The same bundle pools together (across snapshots); another one does not.
  auto same = TlsClientContext::Build("junk before\n" + kTestCa + "junk after\n", &error);
  ASSERT_NE(same, nullptr);
  EXPECT_EQ(same->pool_id(), c->pool_id());
  auto other = TlsClientContext::Build(kTestCa, &error);
  ASSERT_NE(other, nullptr);
  EXPECT_NE(other->pool_id(), c->pool_id());

  auto dns = NewSsl(*c);
  ASSERT_TRUE(c->SetUpConnection(dns.get(), "backend.test", &error)) << error;
  EXPECT_STREQ(SSL_get_servername(dns.get(), TLSEXT_NAMETYPE_host_name), "backend.test");
  EXPECT_STREQ(X509_VERIFY_PARAM_get0_host(SSL_get0_param(dns.get()), 0), "backend.test");

  // An IP: no SNI (RFC 6066 forbids it), the certificate must carry it as an IP SAN.
  auto ip = NewSsl(*c);
  ASSERT_TRUE(c->SetUpConnection(ip.get(), "127.0.0.1", &error)) << error;
  EXPECT_EQ(SSL_get_servername(ip.get(), TLSEXT_NAMETYPE_host_name), nullptr);
  char* ip_asc = X509_VERIFY_PARAM_get1_ip_asc(SSL_get0_param(ip.get()));
  ASSERT_NE(ip_asc, nullptr);
  EXPECT_STREQ(ip_asc, "127.0.0.1");
  OPENSSL_free(ip_asc);
  EXPECT_EQ(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ip.get()), 0), nullptr);

  // Verifying needs a name: a chain alone says nothing about which backend answered.
  auto none = NewSsl(*c);
  error.clear();
  EXPECT_FALSE(c->SetUpConnection(none.get(), "", &error));
  EXPECT_NE(error.find("no server name"), std::string::npos) << error;
}

TEST(TlsClientContext, ABundleWithoutACertificateIsRefused) {
  for (const std::string& bad : {std::string("not a certificate"),
                                std::string("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")}) {
    std::string error;
    EXPECT_EQ(TlsClientContext::Build(bad, &error), nullptr) << bad;
    EXPECT_EQ(error, "no usable certificate in the CA bundle");
  }
}

}  // namespace
}  // namespace doorman::dataplane
