// Shared helpers of the translator's table-driven tests: manifests in, snapshot/statuses out.
#pragma once

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "controller/source/manifest.h"
#include "controller/translate/translate.h"

namespace doorman::controller::testing {

namespace v1 = doorman::v1;

// A real certificate/key pair (EC P-256, CN shop.example.com, SAN *.example.com, valid until
// 2126): the translator checks that a TLS Secret's key matches its certificate. Test-only.
inline const std::string kTestCertPem = R"(-----BEGIN CERTIFICATE-----
MIIBujCCAV+gAwIBAgIUV+IDgzXmqGIbseiiA62q3tshdQ0wCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTAgFw0yNjExMjYyMjAzMjRaGA8y
MTI2MTEwMjIyMDMyNFowGzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABPYgO1q+3+V1BgDFqU93y4FEcq52M5GVYug2
Gfe+GoRnmcVFZ9QcAy7tyDmIMHsCL026JxIW8HCZJTtBf44c9DOjfzB9MB0GA1Ud
DgQWBBQJPNDcdhMrB21a0fOoSdH4p0N+ezAfBgNVHSMEGDAWgBQJPNDcdhMrB21a
0fOoSdH4p0N+ezAPBgNVHRMBAf8EBTADAQH/MCoGA1UdEQQjMCGCEHNob3AuZXhh
bXBsZS5jb22CDSouZXhhbXBsZS5jb20wCgYIKoZIzj0EAwIDSQAwRgIhAMxuzQ/j
Fr98+4A56oZTHBYnmIm+YVs6HO8NoDzomei2AiEAjKAVZ1sRgpx9ZhtXX0bV3dR5
OG2KsWRRxqZ9zPF2/bE=
-----END CERTIFICATE-----
)";
inline const std::string kTestKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZrBDWxFmcMvojcid
NihqrkgkVM1GzXBwuU/94imW8pGhRANCAAT2IDtavt/ldQYAxalPd8uBRHKudjOR
lWLoNhn3vhqEZ5nFRWfUHAMu7cg5iDB7Ai9NuicSFvBwmSU7QX+OHPQz
-----END PRIVATE KEY-----
)";
// Throwaway certificates for old.example.com outside their validity: expired (January 2020) and
// not yet valid (2125). Test-only.
inline const std::string kExpiredCertPem = R"(-----BEGIN CERTIFICATE-----
MIIBUjCB+qADAgECAhRMCpx288ppvOFGycC8YcO4crQ9OzAKBggqhkjOPQQDAjAa
MRgwFgYDVQQDDA9vbGQuZXhhbXBsZS5jb20wHhcNMjAwMTAxMDAwMDAwWhcNMjAw
MjAxMDAwMDAwWjAaMRgwFgYDVQQDDA9vbGQuZXhhbXBsZS5jb20wWTATBgcqhkjO
PQIBBggqhkjOPQMBBwNCAARpXUPBQpTOnTgymU/WhCAdWPoC7m+rLe/cDTgfhbwl
zWUW5Ge9FZVcvlHkp3ndOtvUAa6Uw1HC49gUz/tOkusFox4wHDAaBgNVHREEEzAR
gg9vbGQuZXhhbXBsZS5jb20wCgYIKoZIzj0EAwIDRwAwRAIgc0DF1eMQSPrhF7sH
XoggFt9D1ZTVPwiiy/lMCsLgtwgCIFl6JvSnxnM7+7YDFpp/0L2KtObrxDwRERHR
c02FMyoX
-----END CERTIFICATE-----
)";
inline const std::string kExpiredKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyp48UEzYSuhOfZDm
qiepDUa/hGG/EjzUe0NO012enryhRANCAARpXUPBQpTOnTgymU/WhCAdWPoC7m+r
Le/cDTgfhbwlzWUW5Ge9FZVcvlHkp3ndOtvUAa6Uw1HC49gUz/tOkusF
-----END PRIVATE KEY-----
)";
inline const std::string kFutureCertPem = R"(-----BEGIN CERTIFICATE-----
MIIBVjCB/qADAgECAhRv7O+jsgueTTYRzNDHNvNsJSRsEzAKBggqhkjOPQQDAjAa
MRgwFgYDVQQDDA9vbGQuZXhhbXBsZS5jb20wIhgPMjEyNTAxMDEwMDAwMDBaGA8y
MTI2MDEwMTAwMDAwMFowGjEYMBYGA1UEAwwPb2xkLmV4YW1wbGUuY29tMFkwEwYH
KoZIzj0CAQYIKoZIzj0DAQcDQgAEEgTpY4Z9MPA1vRNx1LMOIPhSTB1SGD+7aaqk
0XeZNXaF6/p2rb2D5z53Wz7Xd7hI6hioT3J1X2W4N/Lvm6YHZqMeMBwwGgYDVR0R
BBMwEYIPb2xkLmV4YW1wbGUuY29tMAoGCCqGSM49BAMCA0cAMEQCIBD79taM9c6W
Jt1Ndah4N44DcU4ccGA3amvhDnsVJaVsAiBfQjSJH5CYxfbUtUWY2uUsBTqQyrnG
BeO7Ppl1V7HZjQ==
-----END CERTIFICATE-----
)";
inline const std::string kFutureKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKs9l9iIqo3XkATWH
yJN8wgOmy95ggLYgI7NyxuyYmLChRANCAAQSBOljhn0w8DW9E3HUsw4g+FJMHVIY
P7tpqqTRd5k1doXr+natvYPnPndbPtd3uEjqGKhPcnVfZbg38u+bpgdm
-----END PRIVATE KEY-----
)";

// A kubernetes.io/tls Secret body (stringData) with `cert` and `key`.
inline std::string TlsStringDataOf(const std::string& cert, const std::string& key) {
  std::string out = "stringData:\n  tls.crt: |\n";
  std::istringstream c(cert), k(key);
  for (std::string line; std::getline(c, line);) out += "    " + line + "\n";
  out += "  tls.key: |\n";
  for (std::string line; std::getline(k, line);) out += "    " + line + "\n";
  return out;
}

// The start of the key's base64, to check that no output ever quotes it.
inline constexpr const char* kTestKeyBytes = "MIGHAgEAMBMGByqGSM49AgEG";

// "stringData:" with tls.crt and tls.key of the pair above, as YAML block scalars.
inline std::string TlsStringData() { return TlsStringDataOf(kTestCertPem, kTestKeyPem); }

inline ObjectStore Store(const std::string& text, const std::string& path = "/m/test.yaml") {
  ManifestSet set;
  auto parsed = ParseManifests(text, path);
  EXPECT_TRUE(parsed.errors.empty()) << path << ": " << parsed.errors[0].ToString();
  set.ApplyFile(path, std::move(parsed), nullptr);
  return set.objects();
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline const ObjectStatus* StatusOf(const TranslateResult& r, const std::string& kind, const std::string& name) {
  for (const auto& st : r.statuses) {
    if (st.key.kind == kind && st.key.name == name) return &st;
  }
  return nullptr;
}

inline const v1::Listener* ListenerNamed(const v1::Snapshot& s, const std::string& name) {
  for (const auto& l : s.listeners()) {
    if (l.name() == name) return &l;
  }
  return nullptr;
}

inline const v1::Route* RouteNamed(const v1::Snapshot& s, const std::string& name) {
  for (const auto& r : s.routes()) {
    if (r.name() == name) return &r;
  }
  return nullptr;
}

inline const v1::BackendSet* SetNamed(const v1::Snapshot& s, const std::string& name) {
  for (const auto& b : s.backend_sets()) {
    if (b.name() == name) return &b;
  }
  return nullptr;
}

// Statuses as comment lines, then the snapshot: the golden files are the spec, read by eye.
inline std::string GoldenText(const TranslateResult& r) {
  std::string out = "# Statuses (Accepted/reason: message; warnings indented):\n";
  for (const auto& st : r.statuses) {
    out += "#   " + st.key.ToString() + ": " + st.reason + (st.accepted ? "" : ": " + st.message) + "\n";
    for (const auto& w : st.warnings) out += "#     " + w.reason + " " + w.field + ": " + w.message + "\n";
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(r.snapshot, &text);
  return out + text;
}

}  // namespace doorman::controller::testing
