// Helpers shared by the per-kind compilers: validators, Secret and EndpointSlice resolution,
// annotation reading. See internal.h.
#include "controller/translate/internal.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <limits>
#include <tuple>

#include "common/duration.h"
#include "common/pem_no_prompt.h"

namespace doorman::controller::internal {
namespace {

std::optional<std::string> Base64Decode(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    if (c == '\n' || c == '\r' || c == ' ') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad) return std::nullopt;  // data after padding
    const int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (pad > 2) return std::nullopt;
  return out;
}

std::optional<std::string> SecretValue(const json& secret, const char* key, bool* bad_base64) {
  if (auto sd = secret.find("stringData"); sd != secret.end() && sd->is_object()) {
    if (auto v = sd->find(key); v != sd->end() && v->is_string()) return v->get<std::string>();
  }
  if (auto d = secret.find("data"); d != secret.end() && d->is_object()) {
    if (auto v = d->find(key); v != d->end() && v->is_string()) {
      auto decoded = Base64Decode(v->get<std::string>());
      if (!decoded) *bad_base64 = true;
      return decoded;
    }
  }
  return std::nullopt;
}

constexpr std::string_view kBeginCertificate = "-----BEGIN CERTIFICATE-----";
constexpr std::string_view kEndCertificate = "-----END CERTIFICATE-----";

// The "-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----" blocks of `pem`, markers
// included, in order; text between them is skipped. *unterminated: a BEGIN without its END.
static std::vector<std::string_view> CertificateBlocks(std::string_view pem, bool* unterminated) {
  std::vector<std::string_view> out;
  *unterminated = false;
  for (std::size_t pos = pem.find(kBeginCertificate); pos != std::string_view::npos;
       pos = pem.find(kBeginCertificate, pos)) {
    const std::size_t end = pem.find(kEndCertificate, pos + kBeginCertificate.size());
    if (end == std::string_view::npos) {
      *unterminated = true;
      break;
    }
    out.push_back(pem.substr(pos, end + kEndCertificate.size() - pos));
    pos = end + kEndCertificate.size();
  }
  return out;
}

// One or more "-----BEGIN CERTIFICATE-----" blocks (text between them is allowed, as in
// ca-certificates bundles), each base64 of one DER SEQUENCE whose length matches: a structural
// check without OpenSSL, enough that the dataplane's parse does not fail on garbage.
bool IsPemCertificateBundle(const std::string& pem) {
  bool unterminated = false;
  const auto blocks = CertificateBlocks(pem, &unterminated);
  if (unterminated || blocks.empty()) return false;
  for (const std::string_view block : blocks) {
    std::string b64;
    for (const char c : block.substr(kBeginCertificate.size(),
                                     block.size() - kBeginCertificate.size() - kEndCertificate.size())) {
      if (c != '\n' && c != '\r' && c != ' ' && c != '\t') b64.push_back(c);
    }
    const auto der = Base64Decode(b64);
    if (!der || der->size() < 2 || static_cast<unsigned char>((*der)[0]) != 0x30) return false;
    const auto b1 = static_cast<unsigned char>((*der)[1]);
    std::size_t header = 2, length = b1;
    if (b1 & 0x80) {
      const std::size_t n = b1 & 0x7f;
      if (n == 0 || n > 4 || der->size() < 2 + n) return false;
      length = 0;
      for (std::size_t i = 0; i < n; ++i) length = (length << 8) | static_cast<unsigned char>((*der)[2 + i]);
      header += n;
    }
    if (header + length != der->size()) return false;
  }
  return true;
}

// "2020-02-01T00:00:00Z" for an ASN1_TIME; "" when it does not convert.
std::string Asn1TimeText(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "";
  char buf[32];
  return std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0 ? buf : "";
}

// Sets the load's validity warning when `cert` (of `ref`) is not valid now.
void CheckValidityNow(X509* cert, const std::string& ref, CertificateLoad* out) {
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    out->validity_reason = "CertificateExpired";
    out->validity_message = "the certificate of " + ref + " expired on " + Asn1TimeText(X509_get0_notAfter(cert)) +
                            ": clients that verify it refuse the connection (it is still served: renew it)";
  } else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    out->validity_reason = "CertificateNotYetValid";
    out->validity_message = "the certificate of " + ref + " is not valid before " +
                            Asn1TimeText(X509_get0_notBefore(cert)) +
                            ": clients that verify it refuse the connection until then (it is served)";
  }
}

// The pair a TLS listener would serve: the first certificate of the chain and the private key
// parse, and the key belongs to the certificate. Checked here so that the object's own status
// says so (a dataplane that cannot load it would otherwise only skip the listener and warn).
// Empty when usable (then the load's validity warning is set if it is not valid now), else why
// not. Nothing of the key is ever part of the message.
std::string CertificatePairProblem(const std::string& chain_pem, const std::string& key_pem, const std::string& ref,
                                   CertificateLoad* load) {
  BIO* cb = BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size()));
  X509* cert = cb != nullptr ? PEM_read_bio_X509(cb, nullptr, NoPassphrase, nullptr) : nullptr;
  BIO_free(cb);
  BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = kb != nullptr ? PEM_read_bio_PrivateKey(kb, nullptr, NoPassphrase, nullptr) : nullptr;
  BIO_free(kb);
  std::string why;
  if (cert == nullptr) {
    why = "tls.crt is not a PEM certificate";
  } else if (key == nullptr) {
    why = "tls.key is not an unencrypted PEM private key";
  } else if (X509_check_private_key(cert, key) != 1) {
    why = "tls.key does not match the certificate in tls.crt";
  } else {
    CheckValidityNow(cert, ref, load);
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  ERR_clear_error();
  return why;
}

// A hex digit's value, or -1.
int HexValue(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

}  // namespace

std::vector<bool> CertificateCoversHosts(const std::string& chain_pem, const std::vector<std::string>& hosts) {
  BIO* cb = BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size()));
  X509* cert = cb != nullptr ? PEM_read_bio_X509(cb, nullptr, NoPassphrase, nullptr) : nullptr;
  BIO_free(cb);
  std::vector<bool> covered;
  for (const auto& host : hosts) {
    // A "*." pattern is covered when any one name under it is: checked with a label no real host
    // uses, so that only a matching wildcard in the certificate covers it.
    const std::string name = host.rfind("*.", 0) == 0 ? "doorman-wildcard-check" + host.substr(1) : host;
    covered.push_back(cert != nullptr && X509_check_host(cert, name.data(), name.size(), 0, nullptr) == 1);
  }
  X509_free(cert);
  ERR_clear_error();
  return covered;
}

// ---- small validators ------------------------------------------------------------------------

bool IsHostPattern(const std::string& s) {
  if (s.rfind("*.", 0) == 0) return IsDns1123Subdomain(s.substr(2));
  return IsDns1123Subdomain(s);
}

bool IsToken(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::string PathProblem(const std::string& s) {
  if (s.empty() || s.front() != '/') return "must start with \"/\"";
  auto hex = [](char c) { return HexValue(c) >= 0; };
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool pchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos;
    if (pchar) continue;
    if (c == '%') {
      if (i + 2 < s.size() && hex(s[i + 1]) && hex(s[i + 2])) {
        i += 2;
        continue;
      }
      return "has a malformed %-escape (want %XX)";
    }
    if (c == '?' || c == '#') return "must not contain a query or fragment ('?', '#')";
    if (c == ' ') return "must not contain spaces (write %20)";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "must not contain control characters (CR, LF, ...)";
    return std::string("must not contain '") + c + "' (percent-encode it)";
  }
  return "";
}

std::string NotNormalPathProblem(const std::string& s) {
  for (const char* seq : {"//", "/./", "/../"}) {
    if (s.find(seq) != std::string::npos) {
      return "contains " + Q(seq) + ": requests are matched with dot segments removed and slashes merged, so it never "
             "matches (write the path in that form)";
    }
  }
  for (const char* end : {"/.", "/.."}) {
    const std::string e(end);
    if (s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0) {
      return "ends in " + Q(e) + ": requests are matched with dot segments removed, so it never matches";
    }
  }
  for (std::size_t i = s.find('%'); i != std::string::npos; i = s.find('%', i + 1)) {
    if (i + 2 < s.size() && s[i + 1] == '2' && (s[i + 2] == 'F' || s[i + 2] == 'f')) {
      return "contains an encoded '/' (" + s.substr(i, 3) + "), which Gateway API and Ingress paths may not";
    }
  }
  return "";
}

std::string LowercaseEscape(const std::string& s) {
  auto hex = [](char c) { return HexValue(c) >= 0; };
  for (std::size_t i = s.find('%'); i != std::string::npos && i + 2 < s.size(); i = s.find('%', i + 1)) {
    if (hex(s[i + 1]) && hex(s[i + 2]) && ((s[i + 1] >= 'a' && s[i + 1] <= 'f') || (s[i + 2] >= 'a' && s[i + 2] <= 'f'))) {
      return s.substr(i, 3);
    }
  }
  return "";
}

std::string UnmatchablePathProblem(const std::string& s) {
  if (s.find(';') != std::string::npos) {
    return "contains ';': requests are matched without ';' path parameters, so it never matches";
  }
  const auto hex = HexValue;
  for (std::size_t i = s.find('%'); i != std::string::npos; i = s.find('%', i + 1)) {
    if (i + 2 >= s.size() || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) continue;  // PathProblem's
    const char c = static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved && c == '.') {
      return "contains " + s.substr(i, 3) + ", an escaped '.': requests are matched with it decoded and dot segments "
             "removed, so write the path in that form";
    }
    if (unreserved) {
      return "contains " + s.substr(i, 3) + ", an escaped unreserved character: requests are matched with it decoded, "
             "so write " + Q(std::string(1, c));
    }
    if ((s[i + 1] >= 'a' && s[i + 1] <= 'f') || (s[i + 2] >= 'a' && s[i + 2] <= 'f')) {
      std::string upper = s.substr(i, 3);
      for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      return "contains " + s.substr(i, 3) + ": requests are matched with upper-case hex digits, so write " + upper;
    }
  }
  return "";
}

std::string CookiePathProblem(const std::string& s) {
  // ';' first: "/a; Domain=x" is an attribute injection before it is a path with a space.
  if (s.find(';') != std::string::npos) return "must not contain ';' (it ends a cookie attribute)";
  return PathProblem(s);
}

std::string HostPrefixedCookiePathWhy(const std::string& name) {
  return "cookie " + name + " is sent with Path=/: browsers refuse a __Host- cookie with any other path";
}

std::string FieldValueProblem(const std::string& s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return "must not contain control characters (CR, LF, NUL, ...)";
  }
  return "";
}

std::string RouteObjectPath(const ObjectKey& key) {
  if (key.kind == kKindService) return key.ns + "/service:" + key.name;
  if (key.kind == kKindIngress) return key.ns + "/ingress:" + key.name;
  return key.ns + "/" + key.name;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

bool IsCidr(const std::string& s) {
  const auto slash = s.find('/');
  if (slash == std::string::npos) return false;
  const std::string ip = s.substr(0, slash);
  const std::string bits = s.substr(slash + 1);
  if (bits.empty() || bits.size() > 3 || !std::all_of(bits.begin(), bits.end(), ::isdigit)) return false;
  const int n = std::stoi(bits);
  unsigned char buf[16];
  if (inet_pton(AF_INET, ip.c_str(), buf) == 1) return n <= 32;
  if (inet_pton(AF_INET6, ip.c_str(), buf) == 1) return n <= 128;
  return false;
}

std::optional<std::string> SloppyCidr(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  std::string text(s);
  if (IsCidr(text)) return text;
  const auto slash = text.find('/');
  if (slash == std::string::npos || text.find(':') != std::string::npos) return std::nullopt;
  // IPv4 with leading zeros: four decimal octets of 1-3 digits each, each <= 255.
  std::string ip;
  std::string_view rest = std::string_view(text).substr(0, slash);
  for (int octet = 0; octet < 4; ++octet) {
    const auto dot = rest.find('.');
    const std::string_view part = octet < 3 ? rest.substr(0, dot) : rest;
    if ((octet < 3 && dot == std::string_view::npos) || part.empty() || part.size() > 3 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    const int v = std::stoi(std::string(part));
    if (v > 255) return std::nullopt;
    ip += (octet ? "." : "") + std::to_string(v);
    if (octet < 3) rest.remove_prefix(dot + 1);
  }
  std::string out = ip + text.substr(slash);
  if (!IsCidr(out)) return std::nullopt;
  return out;
}

bool IsL7(v1::Protocol p) { return p == v1::HTTP || p == v1::HTTPS; }

std::optional<v1::BackendTls> HealthCheckTls(const v1::BackendTls& route_tls, const std::set<std::string>& hosts,
                                             std::string* why) {
  v1::BackendTls out = route_tls;
  if (!out.server_name().empty()) return out;
  const bool one_name = hosts.size() == 1 && !hosts.begin()->empty() && hosts.begin()->rfind("*.", 0) != 0;
  if (one_name) {
    out.set_server_name(*hosts.begin());
    return out;
  }
  if (out.ca_pem().empty()) return out;  // unverified TLS: no SNI
  *why = hosts.size() > 1                          ? "serve several hosts"
         : hosts.empty() || hosts.begin()->empty() ? "serve any host"
                                                   : "serve a wildcard host";
  return std::nullopt;
}
const char* Transport(v1::Protocol p) { return p == v1::UDP ? "udp" : "tcp"; }

std::optional<v1::Protocol> ParseProtocol(const std::string& s) {
  if (s == "TCP") return v1::TCP;
  if (s == "UDP") return v1::UDP;
  if (s == "TLS") return v1::TLS;
  if (s == "HTTP") return v1::HTTP;
  if (s == "HTTPS") return v1::HTTPS;
  return std::nullopt;
}

// Reads a uint32 field in [lo, hi].
std::optional<uint32_t> RangedInt(FieldReader& r, const json& o, const std::string& path, const char* key,
                                  int64_t lo, int64_t hi, bool required) {
  auto v = r.Int(o, path, key, required);
  if (!v) return std::nullopt;
  if (*v < lo || *v > hi) {
    r.Invalid(FieldReader::Join(path, key),
              std::to_string(*v) + " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
    return std::nullopt;
  }
  return static_cast<uint32_t>(*v);
}

bool CheckRegex(FieldReader& r, const std::string& field, const std::string& re) {
  RE2::Options opts;
  opts.set_log_errors(false);
  RE2 compiled(re, opts);
  if (!compiled.ok()) r.Invalid(field, "invalid regular expression " + Q(re) + ": " + compiled.error());
  return compiled.ok();
}

void ReadCidrs(FieldReader& r, const json& o, const std::string& path, const char* key,
               google::protobuf::RepeatedPtrField<std::string>* out, bool sloppy) {
  const auto list = r.StringList(o, path, key);
  for (size_t i = 0; i < list.size(); ++i) {
    const std::optional<std::string> cidr = sloppy ? SloppyCidr(list[i]) : std::optional<std::string>(list[i]);
    if (!cidr || !IsCidr(*cidr)) {
      r.Invalid(FieldReader::Index(FieldReader::Join(path, key), i),
                "invalid CIDR " + Q(list[i]) + " (want e.g. 192.0.2.0/24 or 2001:db8::/32)");
      continue;
    }
    out->Add(std::string(*cidr));
  }
}

bool EndpointLess(const v1::Endpoint& a, const v1::Endpoint& b) {
  if (a.address() != b.address()) return a.address() < b.address();
  return a.port() < b.port();
}

const char* const kSchedulerNames =
    "round-robin, weighted-round-robin, least-connections, source-hash, maglev or p2c";

bool IsScheduler(const std::string& s) {
  static const std::set<std::string> kSchedulers = {"round-robin", "weighted-round-robin", "least-connections",
                                                    "source-hash", "maglev",               "p2c"};
  return kSchedulers.count(s) > 0;
}

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::string JoinStrings(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    out.push_back(Trim(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

std::string StringOr(const json& o, const char* key, const std::string& fallback) {
  if (!o.is_object()) return fallback;
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : fallback;
}

namespace {
const json* MetadataMember(const json& o, const char* key) {
  if (auto m = o.find("metadata"); m != o.end() && m->is_object()) {
    if (auto v = m->find(key); v != m->end()) return &*v;
  }
  return nullptr;
}
}  // namespace

int64_t GenerationOf(const json& o) {
  const json* g = MetadataMember(o, "generation");
  return g && g->is_number_integer() ? g->get<int64_t>() : 0;
}

std::optional<CreationTime> ParseRfc3339(const std::string& s) {
  using namespace std::chrono;  // NOLINT(build/namespaces): calendar types
  // date-time = YYYY-MM-DD "T" hh:mm:ss [.frac] ("Z" / ("+" / "-") hh:mm)
  size_t i = 0;
  auto digits = [&](size_t n) -> std::optional<int> {
    if (i + n > s.size()) return std::nullopt;
    int v = 0;
    for (size_t k = 0; k < n; ++k, ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  auto literal = [&](const char* any_of) {
    if (i >= s.size() || s[i] == '\0' || std::strchr(any_of, s[i]) == nullptr) return false;
    ++i;
    return true;
  };
  const auto y = digits(4);
  if (!y || !literal("-")) return std::nullopt;
  const auto mo = digits(2);
  if (!mo || !literal("-")) return std::nullopt;
  const auto d = digits(2);
  if (!d || !literal("Tt")) return std::nullopt;
  const auto h = digits(2);
  if (!h || !literal(":")) return std::nullopt;
  const auto mi = digits(2);
  if (!mi || !literal(":")) return std::nullopt;
  const auto sec = digits(2);
  if (!sec) return std::nullopt;
  const year_month_day date{year{*y}, month(static_cast<unsigned>(*mo)), day(static_cast<unsigned>(*d))};
  // Second 60 is a leap second (RFC 3339 allows it); it counts as the next second's start.
  if (!date.ok() || *h > 23 || *mi > 59 || *sec > 60) return std::nullopt;
  int64_t micros = 0;
  if (literal(".")) {
    const size_t start = i;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (i - start < 6) micros = micros * 10 + (s[i] - '0');
    }
    if (i == start) return std::nullopt;
    for (size_t k = std::min<size_t>(i - start, 6); k < 6; ++k) micros *= 10;
  }
  minutes offset{0};
  if (!literal("Zz")) {
    if (i >= s.size() || (s[i] != '+' && s[i] != '-')) return std::nullopt;
    const bool east = s[i++] == '+';
    const auto oh = digits(2);
    if (!oh || !literal(":")) return std::nullopt;
    const auto om = digits(2);
    if (!om || *oh > 23 || *om > 59) return std::nullopt;
    offset = minutes{(*oh * 60 + *om) * (east ? 1 : -1)};
  }
  if (i != s.size()) return std::nullopt;
  // Local time minus its offset is UTC: 00:00+02:00 is 22:00Z the day before.
  return sys_days{date} + hours{*h} + minutes{*mi} + seconds{*sec} - offset + microseconds{micros};
}

std::optional<CreationTime> CreationTimeOf(const json& o) {
  const json* ts = MetadataMember(o, "creationTimestamp");
  return ts && ts->is_string() ? ParseRfc3339(ts->get<std::string>()) : std::nullopt;
}

std::optional<std::string> AnnotationOf(const json& o, const std::string& name) {
  const json* a = MetadataMember(o, "annotations");
  if (!a || !a->is_object()) return std::nullopt;
  auto it = a->find(name);
  if (it == a->end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// ---- Secrets ----------------------------------------------------------------------------------------

namespace {
// A Secret of another type is invisible in a cluster (only kubernetes.io/tls Secrets are
// watched): "not found" there may mean "wrong type".
std::string NotFound(const std::string& ref, bool only_tls_watched) {
  return ref + " not found" +
         (only_tls_watched ? " (only Secrets of type kubernetes.io/tls are watched: one of another type is not seen)" : "");
}
}  // namespace

CertificateLoad LoadCertificate(const ObjectStore& store, const std::string& ns, const std::string& secret_name,
                                bool only_tls_watched) {
  CertificateLoad out;
  auto it = store.find(ObjectKey{kKindSecret, ns, secret_name});
  // Only the CERTIFICATE blocks of tls.crt: some users keep the key in the same PEM file, and the
  // chain is not treated as a secret (it is shown on /debug/snapshot, the key is redacted).
  auto certificates_only = [](const std::string& pem) {
    bool unterminated = false;
    std::string chain;
    for (const std::string_view block : CertificateBlocks(pem, &unterminated)) chain.append(block).append("\n");
    return chain;
  };
  const std::string ref = "Secret " + ns + "/" + secret_name;
  if (it == store.end()) {
    out.not_found = true;
    out.message = NotFound(ref, only_tls_watched);
    return out;
  }
  const json& s = it->second.object;
  if (auto t = s.find("type"); t != s.end() && t->is_string() && *t != "kubernetes.io/tls") {
    out.message = ref + " has type " + Q(t->get<std::string>()) + ", want kubernetes.io/tls";
    return out;
  }
  v1::TlsCertificate cert;
  cert.set_name(ns + "/" + secret_name);
  for (const char* key : {"tls.crt", "tls.key"}) {
    bool bad = false;
    auto v = SecretValue(s, key, &bad);
    if (bad) {
      out.message = ref + ": data." + key + " is not valid base64";
      return out;
    }
    if (!v || v->find("-----BEGIN ") == std::string::npos) {
      out.message = ref + (v ? ": " + std::string(key) + " is not PEM" : " has no " + std::string(key));
      return out;
    }
    if (std::string_view(key) == "tls.crt") {
      cert.set_certificate_chain_pem(*v);
    } else {
      cert.set_private_key_pem(*v);
    }
  }
  if (std::string chain = certificates_only(cert.certificate_chain_pem()); chain.empty()) {
    out.message = ref + ": tls.crt has no CERTIFICATE block";
    return out;
  } else {
    cert.set_certificate_chain_pem(std::move(chain));
  }
  if (const auto why = CertificatePairProblem(cert.certificate_chain_pem(), cert.private_key_pem(), ref, &out);
      !why.empty()) {
    out.message = ref + ": " + why;
    return out;
  }
  out.cert = std::move(cert);
  return out;
}

CaBundleLoad LoadCaBundle(const ObjectStore& store, const std::string& ns, const std::string& secret_name,
                          bool only_tls_watched) {
  CaBundleLoad out;
  auto it = store.find(ObjectKey{kKindSecret, ns, secret_name});
  const std::string ref = "Secret " + ns + "/" + secret_name;
  if (it == store.end()) {
    out.message = NotFound(ref, only_tls_watched);
    return out;
  }
  const json& s = it->second.object;
  // Only kubernetes.io/tls Secrets are watched (controller/kube/resources.cc): the same rule from
  // manifests, so a Secret that works standalone works in a cluster.
  if (auto t = s.find("type"); t != s.end() && t->is_string() && *t != "kubernetes.io/tls") {
    out.message = ref + " has type " + Q(t->get<std::string>()) + ", want kubernetes.io/tls";
    return out;
  }
  bool bad = false;
  auto v = SecretValue(s, "ca.crt", &bad);
  if (bad) {
    out.message = ref + ": data.ca.crt is not valid base64";
  } else if (!v) {
    out.message = ref + " has no ca.crt";
  } else if (!IsPemCertificateBundle(*v)) {
    // Checked here, not only by the dataplane: a bundle it cannot parse would NACK every update.
    out.message = ref + ": ca.crt is not a PEM certificate bundle";
  } else {
    out.pem = std::move(*v);
  }
  return out;
}

// ---- Services and EndpointSlices ----------------------------------------------------------------

namespace {

// The Service a slice belongs to (its kubernetes.io/service-name label), or nullopt for a slice
// no Service uses: unlabelled, or FQDN (kube-proxy ignores those too).
std::optional<std::string> SliceService(const json& slice) {
  const json* labels = nullptr;
  if (auto m = slice.find("metadata"); m != slice.end() && m->is_object()) {
    if (auto l = m->find("labels"); l != m->end() && l->is_object()) labels = &*l;
  }
  if (!labels || !labels->contains("kubernetes.io/service-name")) return std::nullopt;
  if (StringOr(slice, "addressType") == "FQDN") return std::nullopt;
  return StringOr(*labels, "kubernetes.io/service-name");
}

thread_local const SliceIndexScope* current_slice_index = nullptr;

}  // namespace

SliceIndexScope::SliceIndexScope(const ObjectStore& store) : previous_(current_slice_index), store_(&store) {
  for (auto s = store.lower_bound(ObjectKey{kKindEndpointSlice, "", ""});
       s != store.end() && s->first.kind == kKindEndpointSlice; ++s) {
    if (auto svc = SliceService(s->second.object)) slices_[{s->first.ns, *svc}].push_back(&s->second.object);
  }
  current_slice_index = this;
}

SliceIndexScope::~SliceIndexScope() { current_slice_index = previous_; }

// The index's answer when the current index is `store`'s (*found = true), else nothing.
std::vector<const json*> IndexedSlices(const ObjectStore& store, const std::string& ns, const std::string& svc,
                                       bool* found) {
  const SliceIndexScope* index = current_slice_index;
  *found = index != nullptr && index->store_ == &store;
  if (!*found) return {};
  auto it = index->slices_.find({ns, svc});
  return it == index->slices_.end() ? std::vector<const json*>{} : it->second;
}

namespace {

// The EndpointSlices of Service `svc` in `ns` (labelled kubernetes.io/service-name), without the
// FQDN ones kube-proxy ignores too, in store order.
std::vector<const json*> ServiceSlices(const ObjectStore& store, const std::string& ns, const std::string& svc) {
  bool indexed = false;
  auto out = IndexedSlices(store, ns, svc, &indexed);
  if (indexed) return out;
  for (auto s = store.lower_bound(ObjectKey{kKindEndpointSlice, ns, ""});
       s != store.end() && s->first.kind == kKindEndpointSlice && s->first.ns == ns; ++s) {
    if (SliceService(s->second.object) == svc) out.push_back(&s->second.object);
  }
  return out;
}

// A slice port's `port` when it is a usable one (1..65535).
std::optional<uint32_t> SlicePortNumber(const json& p) {
  const int64_t num = p.contains("port") && p["port"].is_number_integer() ? p["port"].get<int64_t>() : 0;
  if (num <= 0 || num > 65535) return std::nullopt;
  return static_cast<uint32_t>(num);
}

}  // namespace

std::vector<v1::Endpoint> SliceEndpoints(const ObjectStore& store, const std::string& ns, const std::string& svc,
                                         const std::string& port_name, const std::string& protocol) {
  std::vector<v1::Endpoint> eps;
  for (const json* slice_ptr : ServiceSlices(store, ns, svc)) {
    const json& slice = *slice_ptr;
    std::optional<uint32_t> target;
    if (auto ports = slice.find("ports"); ports != slice.end() && ports->is_array()) {
      for (const auto& p : *ports) {
        if (!p.is_object()) continue;
        const std::string name = StringOr(p, "name");
        const std::string proto = StringOr(p, "protocol", "TCP");
        if (name == port_name && proto == protocol) {
          if (auto num = SlicePortNumber(p)) target = num;
        }
      }
    }
    if (!target) continue;
    auto endpoints = slice.find("endpoints");
    if (endpoints == slice.end() || !endpoints->is_array()) continue;
    for (const auto& e : *endpoints) {
      if (!e.is_object()) continue;
      bool ready = true;
      bool serving = true;
      bool terminating = false;
      if (auto c = e.find("conditions"); c != e.end() && c->is_object()) {
        // Kubernetes: an unknown (absent) ready condition means ready; serving defaults to ready.
        if (auto v = c->find("ready"); v != c->end() && v->is_boolean()) ready = v->get<bool>();
        serving = ready;
        if (auto v = c->find("serving"); v != c->end() && v->is_boolean()) serving = v->get<bool>();
        if (auto v = c->find("terminating"); v != c->end() && v->is_boolean()) terminating = v->get<bool>();
      }
      const std::string node = StringOr(e, "nodeName");
      const std::string zone = StringOr(e, "zone");
      // The first address only: "no semantics are defined for additional addresses", and
      // kube-proxy does not look at them. Canonical spelling, so one pod is one endpoint.
      auto addrs = e.find("addresses");
      if (addrs == e.end() || !addrs->is_array() || addrs->empty()) continue;
      {
        const json& a = addrs->front();
        const std::string address = a.is_string() ? CanonicalIp(a.get<std::string>()) : "";
        if (address.empty()) continue;
        v1::Endpoint ep;
        ep.set_address(address);
        ep.set_port(*target);
        ep.set_node_name(node);
        ep.set_zone(zone);
        ep.set_ready(ready && !terminating);
        ep.set_serving(serving);
        ep.set_terminating(terminating);
        eps.push_back(std::move(ep));
      }
    }
  }
  // The same address may appear in two slices (e.g. while the EndpointSlice controller moves it):
  // keep one, the readiest (ready, then serving), so the result does not depend on slice names.
  std::sort(eps.begin(), eps.end(), [](const v1::Endpoint& a, const v1::Endpoint& b) {
    return std::make_tuple(a.address(), a.port(), !a.ready(), !a.serving(), a.terminating(), a.node_name(), a.zone()) <
           std::make_tuple(b.address(), b.port(), !b.ready(), !b.serving(), b.terminating(), b.node_name(), b.zone());
  });
  eps.erase(std::unique(eps.begin(), eps.end(),
                        [](const v1::Endpoint& a, const v1::Endpoint& b) {
                          return a.address() == b.address() && a.port() == b.port();
                        }),
            eps.end());
  return eps;
}

std::optional<std::string> SlicePortMissing(const ObjectStore& store, const std::string& ns, const std::string& svc,
                                            const std::string& port_name, const std::string& protocol) {
  std::set<std::string> have;
  for (const json* slice : ServiceSlices(store, ns, svc)) {
    auto ports = slice->find("ports");
    if (ports == slice->end() || !ports->is_array()) continue;
    for (const auto& p : *ports) {
      if (!p.is_object()) continue;
      const std::string name = StringOr(p, "name");
      const std::string proto = StringOr(p, "protocol", "TCP");
      const bool numbered = SlicePortNumber(p).has_value();
      if (name == port_name && proto == protocol && numbered) return std::nullopt;
      have.insert((name.empty() ? std::string("unnamed") : Q(name)) + "/" + proto + (numbered ? "" : " without a port number"));
    }
  }
  if (have.empty()) return std::nullopt;
  return "the EndpointSlices of Service " + ns + "/" + svc + " have no " + protocol + " port " +
         (port_name.empty() ? std::string("without a name") : "named " + Q(port_name)) + " (they have " +
         JoinStrings(std::vector<std::string>(have.begin(), have.end()), ", ") + "), so it has no endpoints";
}

void ResolveServiceBackend(const ObjectStore& store, const std::string& ns, const std::string& svc,
                           const ServicePortRef& port, const std::string& field, v1::BackendSet* set,
                           std::vector<StatusWarning>* warnings) {
  set->set_service(ns + "/" + svc + ":" + port.ToString());
  auto it = store.find(ObjectKey{kKindService, ns, svc});
  if (it == store.end()) {
    warnings->push_back({"BackendNotFound", field, "Service " + ns + "/" + svc + " not found"});
    return;
  }
  const json& service = it->second.object;
  if (const auto spec = service.find("spec"); spec != service.end() && spec->is_object() &&
                                              StringOr(*spec, "type") == "ExternalName") {
    // No EndpointSlices: an empty backend set (503) that would otherwise say nothing of why.
    warnings->push_back({"BackendNotFound", field,
                         "Service " + ns + "/" + svc + " is of type ExternalName (" +
                             Q(StringOr(*spec, "externalName")) + "): it has no endpoints, and doorman routes to "
                             "EndpointSlice endpoints only (name the addresses as endpoints instead)"});
    return;
  }
  std::optional<std::string> port_name;
  std::string other_protocol;  // of a port that matches but has another protocol
  if (auto spec = service.find("spec"); spec != service.end() && spec->is_object()) {
    if (auto ports = spec->find("ports"); ports != spec->end() && ports->is_array()) {
      for (const auto& p : *ports) {
        if (!p.is_object()) continue;
        const std::string name = StringOr(p, "name");
        const int64_t number = p.contains("port") && p["port"].is_number_integer() ? p["port"].get<int64_t>() : -1;
        const bool match = port.number ? number == static_cast<int64_t>(port.number) : name == port.name;
        if (!match) continue;
        if (const std::string protocol = StringOr(p, "protocol", "TCP"); protocol != port.protocol) {
          other_protocol = protocol;
          continue;
        }
        port_name = name;
        // By name, the set is still named by the port number (what kube-proxy and users see).
        if (!port.number && number > 0) set->set_service(ns + "/" + svc + ":" + std::to_string(number));
        break;
      }
    }
  }
  if (!port_name) {
    const std::string which = (port.number ? "port " : "port named ") + port.ToString();
    std::string message = "Service " + ns + "/" + svc + " has no " + which;
    if (!other_protocol.empty()) {
      message = "Service " + ns + "/" + svc + " has no " + port.protocol + " " + which + " (its " + which + " is " +
                other_protocol + "; a " + (port.protocol == "UDP" ? "UDP" : "TCP, TLS, HTTP or HTTPS") +
                " listener routes to a " + port.protocol + " Service port)";
    }
    warnings->push_back({"BackendNotFound", field, message});
    return;
  }
  for (auto& ep : SliceEndpoints(store, ns, svc, *port_name, port.protocol)) *set->add_endpoints() = std::move(ep);
  if (set->endpoints_size() == 0) {
    if (auto why = SlicePortMissing(store, ns, svc, *port_name, port.protocol)) warnings->push_back({"BackendNotFound", field, *why});
  }
}

// ---- annotations ---------------------------------------------------------------------------------

AnnotationReader::AnnotationReader(const json& object, const std::set<std::string>& known, FieldReader* r,
                                   std::vector<StatusWarning>* warnings)
    : r_(r), warnings_(warnings) {
  const json* meta = nullptr;
  if (auto m = object.find("metadata"); m != object.end() && m->is_object()) meta = &*m;
  if (!meta) return;
  auto a = meta->find("annotations");
  if (a == meta->end() || a->is_null()) return;
  if (!a->is_object()) {
    r_->Invalid("metadata.annotations", "must be a map of strings, not " + FieldReader::TypeName(*a));
    return;
  }
  std::vector<std::string> foreign;  // ingress-nginx's: a migrated object must not lose them silently
  for (const auto& [k, v] : a->items()) {
    if (k.rfind("nginx.ingress.kubernetes.io/", 0) == 0) foreign.push_back(k);
    if (k.rfind("doorman.dev/", 0) != 0) continue;
    if (!known.count(k)) {
      std::vector<std::string> names(known.begin(), known.end());
      warnings_->push_back({"UnknownAnnotation", Field(k),
                            "unknown annotation " + k + " has no effect on this " +
                                StringOr(object, "kind", "object") +
                                (names.empty() ? " (it takes no doorman.dev annotations: its spec holds every setting)"
                                               : " (known: " + JoinStrings(names, ", ") + ")")});
      continue;
    }
    values_[k] = &v;
  }
  if (!foreign.empty()) {
    warnings_->push_back({"AnnotationIgnored", "metadata.annotations",
                          "ingress-nginx annotations have no effect on doorman (access rules among them are not "
                          "enforced): " + JoinStrings(foreign, ", ") +
                              "; docs/kubernetes.md lists the doorman.dev equivalents"});
  }
}

std::optional<std::string> AnnotationReader::String(const std::string& name) {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  const json& v = *it->second;
  if (!v.is_string()) {
    const std::string hint = v.is_number() || v.is_boolean() ? " (quote it: \"" + v.dump() + "\")" : "";
    Invalid(name, "must be a string, not " + FieldReader::TypeName(v) + hint);
    return std::nullopt;
  }
  return v.get<std::string>();
}

std::optional<bool> AnnotationReader::Bool(const std::string& name) {
  auto s = String(name);
  if (!s) return std::nullopt;
  // The spellings Go's strconv.ParseBool takes, as ingress-nginx and Kubernetes read booleans.
  for (const char* t : {"true", "True", "TRUE", "t", "T", "1"}) {
    if (*s == t) return true;
  }
  for (const char* f : {"false", "False", "FALSE", "f", "F", "0"}) {
    if (*s == f) return false;
  }
  Invalid(name, "invalid value " + Q(*s) + " (want \"true\" or \"false\"; also taken, as by ingress-nginx: True, TRUE, t, T, 1 and False, FALSE, f, F, 0)");
  return std::nullopt;
}

std::optional<int64_t> AnnotationReader::Int(const std::string& name, int64_t lo, int64_t hi) {
  auto s = String(name);
  if (!s) return std::nullopt;
  int64_t v = 0;
  const bool digits = !s->empty() && s->size() <= 12 && std::all_of(s->begin(), s->end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) v = std::stoll(*s);
  if (!digits || v < lo || v > hi) {
    Invalid(name, "invalid value " + Q(*s) + " (want an integer in " + std::to_string(lo) + ".." +
                      std::to_string(hi) + ")");
    return std::nullopt;
  }
  return v;
}

std::optional<uint32_t> AnnotationReader::DurationMs(const std::string& name) {
  auto s = String(name);
  if (!s) return std::nullopt;
  const auto ns = ParseDurationNs(*s);
  if ((ns && *ns > std::chrono::milliseconds(std::numeric_limits<uint32_t>::max())) || (!ns && DurationTooLong(*s))) {
    // Durations travel as 32-bit milliseconds.
    Invalid(name, "duration " + Q(*s) + " is too long (at most 1193h, about 49 days)");
    return std::nullopt;
  }
  if (!ns) {
    // A bare number is ingress-nginx's habit (seconds): say which unit to write.
    const bool bare = !s->empty() && std::all_of(s->begin(), s->end(), [](unsigned char c) { return std::isdigit(c); });
    Invalid(name, "invalid duration " + Q(*s) +
                      (bare ? " (a unit is required: \"" + *s + "s\" for seconds)" : " (want e.g. 500ms, 60s, 1h30m)"));
    return std::nullopt;
  }
  const auto d = WholeMilliseconds(*ns);
  if (!d) {
    Invalid(name, "duration " + Q(*s) + " " + kSubMillisecondProblem);
    return std::nullopt;
  }
  return static_cast<uint32_t>(d->count());
}

void AnnotationReader::Invalid(const std::string& name, const std::string& message) {
  r_->Fail("InvalidAnnotation", Field(name), "annotation " + name + ": " + message);
}

void AnnotationReader::Ignored(const std::string& name, const std::string& why, const std::string& on) {
  warnings_->push_back(
      {"AnnotationIgnored", Field(name), "annotation " + name + " has no effect" + (on.empty() ? "" : " on " + on) + ": " + why});
}

}  // namespace doorman::controller::internal
