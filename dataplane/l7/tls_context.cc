#include "dataplane/l7/tls_context.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <mutex>
#include <optional>
#include <set>

#include "common/pem_no_prompt.h"
#include "dataplane/l7/filters.h"

namespace doorman::dataplane {
namespace {

namespace ssl = boost::asio::ssl;

// TLS 1.2 suites: ECDHE + AEAD only (Mozilla "intermediate"); TLS 1.3 uses OpenSSL's defaults.
constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Session-ticket keys, one ring per process shared by every server context: a ticket stays
// valid across config generations (an EndpointSlice change rebuilds every context, and with
// per-context keys each one cut every client's resumption), and keys rotate on a clock, not on
// config changes: a new key every kTicketKeyPeriodS, the previous one still decrypting (its
// tickets are renewed) until it is 2 periods old, then forgotten, so a stolen key opens at most
// 2 hours of tickets (forward secrecy for resumed sessions, as nginx/HAProxy get from rotated
// ticket key files). Keys are random, never logged, and cleansed when dropped.
constexpr int64_t kTicketKeyPeriodS = 3600;

struct TicketKey {
  unsigned char name[16];
  unsigned char aes[32];   // AES-256-CBC
  unsigned char hmac[32];  // HMAC-SHA256
  int64_t born_s = 0;
};

class TicketKeyRing {
 public:
  // The newest key (a fresh one when it is due); false when no random key could be made.
  bool ForEncrypt(TicketKey* out) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!RotateIfDue()) return false;
    *out = keys_[0];
    return true;
  }
  // The key named `name` while it is accepted; *newest: it is the current one.
  bool ForDecrypt(const unsigned char* name, TicketKey* out, bool* newest) {
    std::lock_guard<std::mutex> lock(mu_);
    RotateIfDue();
    for (int i = 0; i < count_; ++i) {
      if (std::memcmp(keys_[i].name, name, sizeof keys_[i].name) == 0) {
        *out = keys_[i];
        *newest = i == 0;
        return true;
      }
    }
    return false;
  }
  // Forgets the keys that are 2 periods old without making a new one: the workers call it every
  // few seconds, so an idle process does not keep a retired key until its next handshake.
  void Expire() {
    std::lock_guard<std::mutex> lock(mu_);
    DropRetired(Now());
  }
  void SetClock(std::function<int64_t()> clock) {
    std::lock_guard<std::mutex> lock(mu_);
    clock_ = std::move(clock);
    Clear();
  }

 private:
  int64_t Now() const {
    if (clock_) return clock_();
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  void Clear() {
    OPENSSL_cleanse(keys_, sizeof keys_);
    count_ = 0;
  }
  // Forget what is 2 periods old (an idle process may skip several rotations).
  void DropRetired(int64_t now) {
    while (count_ > 0 && now - keys_[count_ - 1].born_s >= 2 * kTicketKeyPeriodS) {
      OPENSSL_cleanse(&keys_[--count_], sizeof(TicketKey));
    }
  }
  bool RotateIfDue() {
    const int64_t now = Now();
    DropRetired(now);
    if (count_ > 0 && now - keys_[0].born_s < kTicketKeyPeriodS) return true;
    TicketKey fresh;
    if (RAND_bytes(fresh.name, sizeof fresh.name) != 1 || RAND_bytes(fresh.aes, sizeof fresh.aes) != 1 ||
        RAND_bytes(fresh.hmac, sizeof fresh.hmac) != 1) {
      OPENSSL_cleanse(&fresh, sizeof fresh);
      return count_ > 0 && now - keys_[0].born_s < 2 * kTicketKeyPeriodS;
    }
    fresh.born_s = now;
    if (count_ == 2) OPENSSL_cleanse(&keys_[1], sizeof(TicketKey));
    keys_[1] = keys_[0];
    keys_[0] = fresh;
    OPENSSL_cleanse(&fresh, sizeof fresh);
    count_ = std::min(count_ + 1, 2);
    return true;
  }

  std::mutex mu_;
  TicketKey keys_[2] = {};  // newest first
  int count_ = 0;
  std::function<int64_t()> clock_;
};

TicketKeyRing& TicketKeys() {
  static TicketKeyRing* ring = new TicketKeyRing();  // never destroyed: handshakes may run at exit
  return *ring;
}

// SSL_CTX_set_tlsext_ticket_key_evp_cb: 1 = encrypted / decrypted with the current key, 2 =
// decrypted with the previous key (OpenSSL then issues a new ticket), 0 = unknown or retired key
// (a full handshake) or, when encrypting, no ticket (no random key or IV: the handshake goes on
// without one), -1 = error (the handshake fails).
int OnTicketKey(SSL*, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  TicketKey k;
  bool newest = true;
  int rc = -1;
  if (enc == 1) {
    if (!TicketKeys().ForEncrypt(&k) || RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) {
      OPENSSL_cleanse(&k, sizeof k);
      return 0;
    }
    std::memcpy(key_name, k.name, sizeof k.name);
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes, iv) == 1) rc = 1;
  } else {
    if (!TicketKeys().ForDecrypt(key_name, &k, &newest)) return 0;
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes, iv) == 1) rc = newest ? 1 : 2;
  }
  if (rc > 0) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof k.hmac),
                           OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(mac, params) != 1) rc = -1;
  }
  OPENSSL_cleanse(&k, sizeof k);
  return rc;
}

// Whether SNI selection can serve a certificate of namespace `ns` for some name its SAN `name`
// covers under `owners`: the name's owner is `ns` (an exact name, or the owner of the most
// specific `*.` host covering a wildcard SAN), or, for a wildcard SAN "*.s", `ns` owns a host it
// covers (an exact one label under it, or "*.s" itself) although another namespace owns "*.s"
// (helper-146: an older namespace's wildcard route does not stop the younger one's exact host).
// `entries` gives owners.Entries() (asked only for a wildcard SAN another namespace covers).
bool NamespaceOwnsSomeNameOf(const HostOwnership& owners,
                             const std::function<const std::vector<HostOwnership::Entry>&()>& entries_of,
                             const std::string& name, std::string_view ns) {
  if (owners.OwnerOf(name) == ns) return true;
  if (name.size() < 3 || name[0] != '*' || name[1] != '.') return false;
  const std::string_view suffix = std::string_view(name).substr(1);  // ".s"
  const auto& entries = entries_of();
  return std::any_of(entries.begin(), entries.end(), [&](const HostOwnership::Entry& e) {
    if (e.ns != ns) return false;
    if (e.host == name) return true;
    const std::string_view h = e.host;
    if (h.size() <= suffix.size() || h.substr(h.size() - suffix.size()) != suffix) return false;
    const std::string_view label = h.substr(0, h.size() - suffix.size());
    return label.find('.') == std::string_view::npos && label != "*";
  });
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::vector<std::string> CertificateNames(X509* cert) {
  std::vector<std::string> out;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type != GEN_DNS) continue;
      const auto* s = n->d.dNSName;
      out.push_back(Lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                      static_cast<std::size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (out.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0) {
      out.push_back(Lower(cn));
    }
  }
  return out;
}

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void*) {
  // http/1.1, else http/1.0 (curl -0 offers only that; nginx selects it, helper-121).
  static const unsigned char kHttp1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1', 8, 'h', 't', 't', 'p', '/', '1', '.', '0'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp1, sizeof(kHttp1), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    // The client offered ALPN without HTTP/1.x (an h2-only gRPC client): RFC 7301 §3.2's fatal
    // no_application_protocol alert, as nginx sends, not a handshake that ends in an HTTP/1.1
    // 400 to its HTTP/2 preface. A client that offers no ALPN at all is not asked here.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// A server context with the listener's protocol floor, the cipher list and ALPN; no certificate.
std::unique_ptr<ssl::context> NewServerContext(const std::string& min_version) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(c, kCiphers12);
  SSL_CTX_set_alpn_select_cb(c, SelectAlpn, nullptr);
  return ctx;
}

// Loads a PEM chain (leaf first) and key into `c`, in the slot of the key's type (OpenSSL keeps
// one certificate per type: RSA, ECDSA, Ed25519, ...); false + *error when unusable.
bool LoadCertificate(SSL_CTX* c, const TlsCertificatePem& pem, std::vector<std::string>* names, int64_t* not_after,
                     std::string* error) {
  BIO* bio = BIO_new_mem_buf(pem.chain_pem.data(), static_cast<int>(pem.chain_pem.size()));
  X509* leaf = PEM_read_bio_X509(bio, nullptr, NoPassphrase, nullptr);
  if (leaf == nullptr) {
    BIO_free(bio);
    *error = "certificate chain is not PEM";
    ERR_clear_error();
    return false;
  }
  bool ok = SSL_CTX_use_certificate(c, leaf) == 1;
  *names = CertificateNames(leaf);
  std::tm tm{};
  // 0 when unreadable (the caller says so): a certificate whose notAfter cannot be exported.
  *not_after = 0;
  if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1) {
    const time_t t = timegm(&tm);
    if (t != static_cast<time_t>(-1) && t > 0) *not_after = static_cast<int64_t>(t);
  }
  X509_free(leaf);
  while (ok) {
    X509* extra = PEM_read_bio_X509(bio, nullptr, NoPassphrase, nullptr);
    if (extra == nullptr) break;
    ok = SSL_CTX_add0_chain_cert(c, extra) == 1;
    if (!ok) X509_free(extra);
  }
  BIO_free(bio);
  ERR_clear_error();  // the loop's end-of-data
  if (!ok) {
    *error = "certificate chain rejected: " + OpenSslError();
    return false;
  }
  BIO* kbio = BIO_new_mem_buf(pem.key_pem.data(), static_cast<int>(pem.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio, nullptr, NoPassphrase, nullptr);
  BIO_free(kbio);
  if (key == nullptr) {
    ERR_clear_error();
    *error = "private key is not PEM";  // never echo key material
    return false;
  }
  ok = SSL_CTX_use_PrivateKey(c, key) == 1 && SSL_CTX_check_private_key(c) == 1;
  EVP_PKEY_free(key);
  if (!ok) {
    ERR_clear_error();
    *error = "private key does not match the certificate";
    return false;
  }
  return true;
}

// One context from a PEM chain (leaf first) and key; nullptr + *error when unusable.
std::unique_ptr<ssl::context> MakeContext(const TlsCertificatePem& pem, const std::string& min_version,
                                          std::vector<std::string>* names, int64_t* not_after, std::string* error) {
  auto ctx = NewServerContext(min_version);
  if (!LoadCertificate(ctx->native_handle(), pem, names, not_after, error)) return nullptr;
  return ctx;
}

// The OpenSSL certificate slot a context's current certificate is in: its key's base type.
int KeyType(SSL_CTX* c) {
  X509* x = SSL_CTX_get0_certificate(c);
  EVP_PKEY* k = x == nullptr ? nullptr : X509_get0_pubkey(x);
  return k == nullptr ? EVP_PKEY_NONE : EVP_PKEY_get_base_id(k);
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// ingress-nginx's "fake certificate": self-signed, generated once per process (P-256, CN
// "Doorman Default Certificate", no SAN, valid a year from start), for handshakes no
// certificate's names cover when the listener asks for it (ListenerTls.default_self_signed).
// Kept as OpenSSL objects for the life of the process (never as PEM text, never logged); both
// null if OpenSSL fails (the listener then uses its first certificate, with a warning).
struct SelfSigned {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
};

const SelfSigned& SelfSignedDefault() {
  static const SelfSigned generated = [] {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_NAME* subject = X509_NAME_new();
    BIGNUM* serial = BN_new();
    const bool ok =
        key != nullptr && x != nullptr && subject != nullptr && serial != nullptr && X509_set_version(x, 2) == 1 &&
        BN_rand(serial, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != nullptr &&
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) != nullptr &&
        X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600) != nullptr &&
        X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Doorman"), -1, -1,
                                   0) == 1 &&
        X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("Doorman Default Certificate"), -1, -1, 0) == 1 &&
        X509_set_subject_name(x, subject) == 1 && X509_set_issuer_name(x, subject) == 1 && X509_set_pubkey(x, key) == 1 &&
        X509_sign(x, key, EVP_sha256()) > 0;
    BN_free(serial);
    X509_NAME_free(subject);
    ERR_clear_error();
    if (!ok) {
      X509_free(x);
      EVP_PKEY_free(key);
      return SelfSigned{};
    }
    return SelfSigned{x, key};
  }();
  return generated;
}

// A context serving the self-signed default; nullptr + *error when there is none.
std::unique_ptr<ssl::context> MakeSelfSignedContext(const std::string& min_version, std::string* error) {
  const SelfSigned& s = SelfSignedDefault();
  if (s.cert == nullptr) {
    *error = "could not generate it";
    return nullptr;
  }
  auto ctx = NewServerContext(min_version);
  SSL_CTX* c = ctx->native_handle();
  if (SSL_CTX_use_certificate(c, s.cert) != 1 || SSL_CTX_use_PrivateKey(c, s.key) != 1) {
    *error = OpenSslError();
    return nullptr;
  }
  return ctx;
}

}  // namespace

std::shared_ptr<const TlsServerContext> TlsServerContext::Build(const Listener& listener, std::string* error,
                                                                std::vector<std::string>* warnings,
                                                                std::vector<CertificateExpiry>* expiry) {
  auto out = std::shared_ptr<TlsServerContext>(new TlsServerContext());
  out->host_owners_ = listener.host_owners;
  if (expiry != nullptr) expiry->clear();
  // listener.host_owners->Entries(), made once and only if a wildcard SAN needs it; and the
  // certificates the same-names check warned about (the not-served check below says nothing more).
  std::optional<std::vector<HostOwnership::Entry>> owner_entries;
  auto entries_of_owners = [&]() -> const std::vector<HostOwnership::Entry>& {
    if (!owner_entries) owner_entries = listener.host_owners->Entries();
    return *owner_entries;
  };
  std::set<std::string> warned_same_names;
  for (const auto& pem : listener.tls_certificates) {
    Entry e;
    std::string why;
    int64_t not_after = 0;
    e.ctx = MakeContext(pem, listener.tls_min_version, &e.names, &not_after, &why);
    if (!e.ctx) {
      warnings->push_back("listener \"" + listener.name + "\": certificate \"" + pem.name + "\" unusable (" + why +
                          "); skipped");
      if (error->empty()) *error = "certificate \"" + pem.name + "\": " + why;
      continue;
    }
    e.name = pem.name;
    // Said of a certificate that is served (not of one skipped below).
    auto served_expiry = [&] {
      if (expiry != nullptr && not_after != 0) expiry->push_back({pem.name, not_after});
      if (not_after == 0) {
        warnings->push_back("listener \"" + listener.name + "\": certificate \"" + pem.name +
                            "\": its notAfter is unreadable; served, but its expiry is not exported");
      }
    };
    // A certificate for exactly the names of an earlier one: with another key type (the usual
    // RSA + ECDSA pair) it joins that context, and OpenSSL serves each client the one its
    // signature algorithms take, as nginx does with two ssl_certificate lines; with the same
    // key type it could never be served, so it is skipped with a warning.
    // Certificates are named "<namespace>/<Secret>": a pair only joins within one namespace, so
    // another namespace's certificate for the same names (on a shared port) is never offered to
    // the clients whose signature algorithms would prefer it.
    const auto ns_of = [](const std::string& name) { return name.substr(0, name.find('/')); };
    auto same_names_in = [&](bool same_namespace) {
      return std::find_if(out->entries_.begin(), out->entries_.end(), [&](const Entry& other) {
        return !e.names.empty() && Sorted(other.names) == Sorted(e.names) &&
               (ns_of(other.name) == ns_of(pem.name)) == same_namespace;
      });
    };
    const auto same_names = same_names_in(true);
    if (const auto other_ns = same_names_in(false); same_names == out->entries_.end() && other_ns != out->entries_.end()) {
      // Another namespace's certificate for these names came first. With host owners it is a
      // context of its own: SelectCertificate serves it for the names its namespace owns (so an
      // older object of another namespace cannot take them by listing a copy of the owner's
      // names: helper-141); without, the earlier one wins every such name, so it is skipped.
      if (!listener.host_owners || listener.host_owners->empty()) {
        warnings->push_back("listener \"" + listener.name + "\": certificate \"" + pem.name +
                            "\" has the same names as \"" + other_ns->name +
                            "\" of another namespace, which is served for them; skipped");
        continue;
      }
      // Kept, but served only for the names its namespace owns: none now means never (helper-143).
      const std::string ns = ns_of(pem.name);
      if (std::none_of(e.names.begin(), e.names.end(), [&](const std::string& n) {
            return NamespaceOwnsSomeNameOf(*listener.host_owners, entries_of_owners, n, ns);
          })) {
        warned_same_names.insert(pem.name);
        warnings->push_back("listener \"" + listener.name + "\": certificate \"" + pem.name +
                            "\" has the same names as \"" + other_ns->name +
                            "\" of another namespace, which is served for them while namespace \"" + ns +
                            "\" owns none of them");
      }
    }
    if (same_names != out->entries_.end()) {
      const int type = KeyType(e.ctx->native_handle());
      const auto served = std::find_if(same_names->certificates.begin(), same_names->certificates.end(),
                                       [&](const auto& c) { return c.first == type; });
      if (served != same_names->certificates.end()) {
        warnings->push_back("listener \"" + listener.name + "\": certificate \"" + pem.name +
                            "\" has the same names and key type as \"" + served->second +
                            "\", which is served for them; skipped");
        continue;
      }
      std::vector<std::string> unused_names;
      int64_t unused_not_after = 0;
      if (!LoadCertificate(same_names->ctx->native_handle(), pem, &unused_names, &unused_not_after, &why)) {
        // Loaded once already, so not expected; the certificate is then not served.
        warnings->push_back("listener \"" + listener.name + "\": certificate \"" + pem.name + "\" unusable (" +
                            why + "); skipped");
        continue;
      }
      same_names->certificates.emplace_back(type, pem.name);
      served_expiry();
      continue;
    }
    served_expiry();
    e.certificates.emplace_back(KeyType(e.ctx->native_handle()), pem.name);
    out->all_names_.push_back(e.names);
    out->namespaces_.push_back(ns_of(pem.name));
    out->entries_.push_back(std::move(e));
  }
  if (out->entries_.empty()) return nullptr;
  // A certificate (not the default) whose every name another namespace owns is never chosen by
  // SNI (SelectCertificate): said once, unless the same-names warning above said it already.
  if (listener.host_owners && !listener.host_owners->empty()) {
    // entries_[0] is the default (served for unknown names) unless a self-signed one goes first.
    for (std::size_t i = listener.tls_default_self_signed ? 0 : 1; i < out->entries_.size(); ++i) {
      const Entry& e = out->entries_[i];
      const std::string& ns = out->namespaces_[i];
      const bool others_only = !e.names.empty() && std::all_of(e.names.begin(), e.names.end(), [&](const std::string& n) {
        const std::string_view owner = listener.host_owners->OwnerOf(n);
        return !owner.empty() && owner != ns && !NamespaceOwnsSomeNameOf(*listener.host_owners, entries_of_owners, n, ns);
      });
      if (others_only && !warned_same_names.count(e.name)) {
        warnings->push_back("listener \"" + listener.name + "\": certificate \"" + e.name +
                            "\" is not served: every name it covers belongs to another namespace (host_owners)");
      }
    }
  }
  error->clear();
  if (listener.tls_default_self_signed) {
    // First, so it is the default; no names, so SNI never selects it.
    Entry e;
    std::string why;
    e.ctx = MakeSelfSignedContext(listener.tls_min_version, &why);
    if (e.ctx) {
      e.name = "self-signed default";
      out->all_names_.insert(out->all_names_.begin(), e.names);
      out->namespaces_.insert(out->namespaces_.begin(), std::string());
      out->entries_.insert(out->entries_.begin(), std::move(e));
    } else {
      warnings->push_back("listener \"" + listener.name + "\": the self-signed default certificate is unusable (" +
                          why + "); clients without a known SNI get certificate \"" + out->entries_.front().name + "\"");
    }
  }
  for (std::size_t i = 0; i < out->entries_.size(); ++i) {
    SSL_CTX* c = out->entries_[i].ctx->native_handle();
    // A session belongs to the certificate it was made with (RFC 6066 §3: not resumed under
    // another name): each context has its own session id context, which the client hello
    // callback switches to before OpenSSL looks the session up, so a session or ticket from
    // certificate A offered with SNI B is ignored and B gets a full handshake. Ticket keys
    // outlive the config generation (TicketKeyRing), so the id must name the certificate itself,
    // not its place in the list: the SHA-256 of its chain(s), so a ticket made under one
    // certificate never resumes under another that took its place, nor under a renewed one.
    unsigned char sid[32];
    unsigned int sid_len = 0;
    std::string material = "doorman/";
    if (out->entries_[i].certificates.empty()) material += "self-signed default";  // one per process
    for (const auto& [type, name] : out->entries_[i].certificates) {
      for (const auto& pem : listener.tls_certificates) {
        if (pem.name == name) material.append(pem.chain_pem).push_back('\0');
      }
    }
    if (EVP_Digest(material.data(), material.size(), sid, &sid_len, EVP_sha256(), nullptr) != 1 ||
        sid_len > SSL_MAX_SID_CTX_LENGTH) {
      *error = "cannot hash certificate \"" + out->entries_[i].name + "\" for its session id context";
      return nullptr;
    }
    SSL_CTX_set_session_id_context(c, sid, sid_len);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(c, OnTicketKey);
    SSL_CTX_set_client_hello_cb(c, OnClientHello, out.get());
    SSL_CTX_set_tlsext_servername_callback(c, OnServerName);
    SSL_CTX_set_tlsext_servername_arg(c, out.get());
  }
  return out;
}

void SetTicketKeyClockForTesting(std::function<int64_t()> clock) { TicketKeys().SetClock(std::move(clock)); }

void ExpireTicketKeys() { TicketKeys().Expire(); }

// Runs first in the handshake, before the session lookup: picks the certificate's context by
// the server_name extension read from the raw ClientHello (RFC 6066 §3 layout).
int TlsServerContext::OnClientHello(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const TlsServerContext*>(arg);
  const unsigned char* p = nullptr;
  std::size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 5) return SSL_CLIENT_HELLO_SUCCESS;
  const std::size_t list = (std::size_t{p[0]} << 8) | p[1];
  if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name) return SSL_CLIENT_HELLO_SUCCESS;
  const std::size_t name_len = (std::size_t{p[3]} << 8) | p[4];
  if (name_len == 0 || 5 + name_len > len) return SSL_CLIENT_HELLO_SUCCESS;  // OpenSSL refuses it later
  const std::string_view sni(reinterpret_cast<const char*>(p + 5), name_len);
  const std::size_t i = SelectCertificate(self->all_names_, sni, self->host_owners_.get(), &self->namespaces_);
  if (i != 0) SSL_set_SSL_CTX(ssl, self->entries_[i].ctx->native_handle());
  return SSL_CLIENT_HELLO_SUCCESS;
}

// The certificate was chosen by OnClientHello; this only acknowledges the name (OpenSSL then
// keeps it in the session, which SSL_get_servername reports).
int TlsServerContext::OnServerName(SSL*, int*, void*) { return SSL_TLSEXT_ERR_OK; }

}  // namespace doorman::dataplane

namespace doorman::dataplane {

std::shared_ptr<const TlsClientContext> TlsClientContext::Build(const std::string& ca_pem, std::string* error) {
  auto out = std::make_shared<TlsClientContext>();
  out->ctx_ = std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
  SSL_CTX* c = out->ctx_->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_cipher_list(c, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                             "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(c, kAlpn, sizeof(kAlpn));
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (ca_pem.empty()) {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    return out;
  }
  BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
  X509_STORE* store = SSL_CTX_get_cert_store(c);
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, NoPassphrase, nullptr)) {
    if (X509_STORE_add_cert(store, cert) == 1) ++added;
    X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error();  // the read loop ends with a "no start line" error
  if (added == 0) {
    *error = "no usable certificate in the CA bundle";
    return nullptr;
  }
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  out->verify_ = true;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(ca_pem.data(), ca_pem.size(), md, &md_len, EVP_sha256(), nullptr) != 1) {
    *error = "cannot hash the CA bundle";
    return nullptr;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out->pool_id_ = "ca:";
  for (unsigned int i = 0; i < md_len; ++i) {
    out->pool_id_.push_back(kHex[md[i] >> 4]);
    out->pool_id_.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

bool TlsClientContext::SetUpConnection(SSL* ssl, const std::string& server_name, std::string* error) const {
  boost::system::error_code ec;
  (void)boost::asio::ip::make_address(server_name, ec);
  const bool is_ip = !ec;
  if (!server_name.empty() && !is_ip && SSL_set_tlsext_host_name(ssl, server_name.c_str()) != 1) {
    *error = "invalid server name for SNI";
    return false;
  }
  if (!verify_) return true;
  if (server_name.empty()) {
    *error = "no server name to verify the backend's certificate against (no Host and no backend-tls-server-name)";
    return false;
  }
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  // SAN only, as docs/l7.md says (RFC 9525 retired the subject CN fallback; Go refuses it too).
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
  const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str())
                       : X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), server_name.size());
  if (ok != 1) {
    *error = "cannot set the expected backend name";
    return false;
  }
  return true;
}

}  // namespace doorman::dataplane
