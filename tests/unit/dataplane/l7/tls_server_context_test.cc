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

// One in-memory handshake (a BIO pair, no sockets) of a client naming `sni` against `server`,
// offering `offer` (null: none). Returns the client's session once it has read the server's
// tickets (null if the handshake failed) and sets *reused.
// `sigalgs` (if given) limits the client's signature algorithms; *peer (if given) gets the
// certificate served (the caller frees it).
SSL_SESSION* Handshake(const TlsServerContext& server, const char* sni, SSL_SESSION* offer, int max_version, bool* reused,
                       const char* sigalgs = nullptr, X509** peer = nullptr) {
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_max_proto_version(cctx, max_version);
  SSL* c = SSL_new(cctx);
  if (sigalgs != nullptr) SSL_set1_sigalgs_list(c, sigalgs);
  SSL* s = SSL_new(server.initial().native_handle());
  BIO* cb = nullptr;
  BIO* sb = nullptr;
  BIO_new_bio_pair(&cb, 0, &sb, 0);
  SSL_set_bio(c, cb, cb);
  SSL_set_bio(s, sb, sb);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  SSL_set_tlsext_host_name(c, sni);
  if (offer != nullptr) SSL_set_session(c, offer);
  bool c_done = false, s_done = false, failed = false;
  for (int round = 0; round < 50 && !(c_done && s_done) && !failed; ++round) {
    for (auto [ssl, done] : {std::pair{c, &c_done}, std::pair{s, &s_done}}) {
      if (*done) continue;
      const int r = SSL_do_handshake(ssl);
      if (r == 1) {
        *done = true;
      } else if (const int e = SSL_get_error(ssl, r); e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        failed = true;
      }
    }
  }
  SSL_SESSION* out = nullptr;
  if (c_done && s_done) {
    char byte;
    SSL_read(c, &byte, 1);  // no data: reads the TLS 1.3 NewSessionTicket messages, then wants more
    *reused = SSL_session_reused(c) == 1;
    out = SSL_get1_session(c);
    if (peer != nullptr) *peer = SSL_get1_peer_certificate(c);
    // A clean close, as a client's close_notify: SSL_free would otherwise mark the session not
    // resumable (a session of a connection that was cut).
    SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
  SSL_free(c);
  SSL_free(s);
  SSL_CTX_free(cctx);
  return out;
}

// Whether `served` (freed here) is the first certificate of `chain_pem`.
bool IsCertificate(X509* served, const std::string& chain_pem) {
  BIO* pem = BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size()));
  X509* want = PEM_read_bio_X509(pem, nullptr, nullptr, nullptr);
  const bool same = served != nullptr && want != nullptr && X509_cmp(served, want) == 0;
  X509_free(want);
  X509_free(served);
  BIO_free(pem);
  return same;
}

// Session tickets survive config generations (every snapshot rebuilds the contexts; per-context
// keys cut every client's resumption on each EndpointSlice change) but stay with their
// certificate, and the keys rotate on a clock: a ticket is renewed under the next key and
// refused once its key is two periods (2 h) old.
TEST(TlsServerContext, TicketsOutliveTheConfigGenerationButNotTheirCertificateOrTwoHours) {
  int64_t now = 1000;
  SetTicketKeyClockForTesting([&now] { return now; });
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2");
    now = 1000;
    SetTicketKeyClockForTesting([&now] { return now; });  // forgets every key
    std::string error;
    std::vector<std::string> warnings;
    auto first = TlsServerContext::Build(Https(false), &error, &warnings);
    ASSERT_NE(first, nullptr) << error;
    bool reused = true;
    SSL_SESSION* ticket = Handshake(*first, "tenant.test", nullptr, version, &reused);
    ASSERT_NE(ticket, nullptr);
    EXPECT_FALSE(reused);
    ASSERT_EQ(SSL_SESSION_is_resumable(ticket), 1);
    // The next generation, with the same certificate.
    auto second = TlsServerContext::Build(Https(false), &error, &warnings);
    ASSERT_NE(second, nullptr) << error;
    SSL_SESSION* again = Handshake(*second, "tenant.test", ticket, version, &reused);
    ASSERT_NE(again, nullptr);
    EXPECT_TRUE(reused);
    SSL_SESSION_free(again);
    // Another certificate in the same place (a renewed one, or another tenant's): a full handshake.
    Listener other = Https(false);
    other.tls_certificates = {Generate("default/tenant", "tenant.test", "EC")};
    auto renewed = TlsServerContext::Build(other, &error, &warnings);
    ASSERT_NE(renewed, nullptr) << error;
    again = Handshake(*renewed, "tenant.test", ticket, version, &reused);
    ASSERT_NE(again, nullptr);
    EXPECT_FALSE(reused);
    SSL_SESSION_free(again);
    // An hour later a new key encrypts; the previous one still decrypts.
    now += 3600;
    again = Handshake(*second, "tenant.test", ticket, version, &reused);
    ASSERT_NE(again, nullptr);
    EXPECT_TRUE(reused);
    SSL_SESSION_free(again);
    // Two hours after its key was made, the ticket is refused.
    now += 3600;
    again = Handshake(*second, "tenant.test", ticket, version, &reused);
    ASSERT_NE(again, nullptr);
    EXPECT_FALSE(reused);
    SSL_SESSION_free(again);
    SSL_SESSION_free(ticket);
  }
  SetTicketKeyClockForTesting(nullptr);
}

// With host owners, another namespace's certificate for the same names is a context of its own
// (never a pair): the owner's is then served for its names even when the other came first
// (helper-141: it was skipped, and the owner's clients got an unrelated default), and a later
// certificate of the owner still pairs with the owner's own.
TEST(TlsServerContext, WithHostOwnersACopyOfTheOwnersNamesDoesNotHideTheOwnersCertificate) {
  Listener l = Https(false);
  auto owners = std::make_shared<HostOwnership>();
  owners->Add("shop.test", "shop", false);
  l.host_owners = owners;
  const TlsCertificatePem mine = Generate("shop/mine", "shop.test", "EC");
  const TlsCertificatePem mine_rsa = Generate("shop/mine-rsa", "shop.test", "RSA");
  l.tls_certificates = {Generate("other/a", "a.test", "EC"), Generate("other/dup", "shop.test", "EC"), mine, mine_rsa};
  std::string error;
  std::vector<std::string> warnings;
  auto c = TlsServerContext::Build(l, &error, &warnings);
  ASSERT_NE(c, nullptr) << error;
  // Only other's copy is said to be unused (shop owns its one name); shop's pair is not skipped.
  ASSERT_EQ(warnings.size(), 1u) << warnings.front();
  EXPECT_NE(warnings[0].find("certificate \"other/dup\" is not served"), std::string::npos) << warnings[0];
  EXPECT_EQ(c->names(1), std::vector<std::string>{"shop.test"});
  EXPECT_EQ(c->names(2), std::vector<std::string>{"shop.test"});
  // The handshake for shop.test is served with shop's certificate of the key type the client
  // takes (the pair joined: helper-143), never other's copy nor a.test.
  for (const auto& [sigalgs, want_pem] : {std::pair{"ECDSA+SHA256", &mine}, std::pair{"RSA-PSS+SHA256:RSA+SHA256", &mine_rsa}}) {
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      SCOPED_TRACE(std::string(sigalgs) + (version == TLS1_3_VERSION ? " TLS 1.3" : " TLS 1.2"));
      bool reused = false;
      X509* served = nullptr;
      SSL_SESSION* session = Handshake(*c, "shop.test", nullptr, version, &reused, sigalgs, &served);
      ASSERT_NE(session, nullptr);
      SSL_SESSION_free(session);
      EXPECT_TRUE(IsCertificate(served, want_pem->chain_pem));
    }
  }
  // A copy whose namespace owns none of its names is never served: said so.
  owners = std::make_shared<HostOwnership>();
  owners->Add("a.test", "other", false);
  l.host_owners = owners;
  l.tls_certificates = {Generate("other/a", "a.test", "EC"), Generate("other/dup", "shop.test", "EC"), mine};
  warnings.clear();
  c = TlsServerContext::Build(l, &error, &warnings);
  ASSERT_NE(c, nullptr) << error;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("certificate \"shop/mine\" has the same names as \"other/dup\" of another namespace, "
                             "which is served for them while namespace \"shop\" owns none of them"),
            std::string::npos)
      << warnings[0];
  // Any certificate (not the default) whose every name another namespace owns is never chosen:
  // said, once.
  owners = std::make_shared<HostOwnership>();
  owners->Add("shop.test", "shop", false);
  owners->Add("*.shop.test", "shop", true);
  l.host_owners = owners;
  l.tls_certificates = {Generate("other/a", "a.test", "EC"), Generate("other/takeover", "shop.test", "EC"),
                        Generate("other/wild", "*.shop.test", "EC"), Generate("other/mixed", "a.test", "EC"), mine};
  warnings.clear();
  c = TlsServerContext::Build(l, &error, &warnings);
  ASSERT_NE(c, nullptr) << error;
  std::string all;
  for (const auto& w : warnings) all += w + "\n";
  EXPECT_NE(all.find("certificate \"other/takeover\" is not served: every name it covers belongs to another namespace"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("certificate \"other/wild\" is not served"), std::string::npos) << all;
  EXPECT_EQ(all.find("\"other/a\" is not served"), std::string::npos) << all;  // the default
  EXPECT_EQ(all.find("\"shop/mine\" is not served"), std::string::npos) << all;
  // A wildcard certificate is served for an exact host its namespace owns under another
  // namespace's wildcard route: no warning (helper-146 saw "owns none of them" here).
  owners = std::make_shared<HostOwnership>();
  owners->Add("*.corp.test", "old", true);
  owners->Add("d.corp.test", "new", false);
  l.host_owners = owners;
  const TlsCertificatePem new_wild = Generate("new/wild", "*.corp.test", "EC");
  l.tls_certificates = {Generate("old/oldwild", "*.corp.test", "EC"), new_wild, Generate("new/elsewhere", "*.other.test", "EC")};
  warnings.clear();
  c = TlsServerContext::Build(l, &error, &warnings);
  ASSERT_NE(c, nullptr) << error;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  bool reused = false;
  X509* served = nullptr;
  SSL_SESSION* session = Handshake(*c, "d.corp.test", nullptr, TLS1_3_VERSION, &reused, nullptr, &served);
  ASSERT_NE(session, nullptr);
  SSL_SESSION_free(session);
  EXPECT_TRUE(IsCertificate(served, new_wild.chain_pem));  // new's wildcard for new's host, not old's
}

}  // namespace
}  // namespace doorman::dataplane
