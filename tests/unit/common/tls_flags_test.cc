#include "common/tls_flags.h"

#include <gtest/gtest.h>

namespace doorman {
namespace {

TEST(MtlsFlags, AllThreeOrNone) {
  struct Case {
    TlsFiles files;
    std::string want;  // "" = accepted, else a substring of the error
  };
  const Case cases[] = {
      {{}, ""},
      {{"c.crt", "c.key", "ca.crt", ""}, ""},
      {{"c.crt", "c.key", "ca.crt", "controller.example"}, ""},
      {{"c.crt", "", "", ""}, "(missing --tls-key, --tls-ca)"},
      {{"", "c.key", "", ""}, "(missing --tls-cert, --tls-ca)"},
      {{"", "", "ca.crt", ""}, "(missing --tls-cert, --tls-key)"},
      {{"c.crt", "c.key", "", ""}, "(missing --tls-ca)"},
      {{"", "", "", "controller.example"}, "--tls-server-name needs --tls-cert, --tls-key and --tls-ca"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.files.cert + "|" + c.files.key + "|" + c.files.ca + "|" + c.files.server_name);
    const std::string got = CheckTlsFlags(c.files);
    if (c.want.empty()) {
      EXPECT_EQ(got, "");
    } else {
      EXPECT_NE(got.find(c.want), std::string::npos) << got;
      EXPECT_EQ(got.find('\n'), std::string::npos) << "one line";
    }
  }
}

TEST(MtlsFlags, EnabledByAnyFile) {
  EXPECT_FALSE(TlsFiles{}.enabled());
  EXPECT_FALSE((TlsFiles{"", "", "", "name"}.enabled()));
  EXPECT_TRUE((TlsFiles{"", "", "ca", ""}.enabled()));
}

TEST(MtlsConnectHint, OnlyWhenATlsMismatchIsPossible) {
  const std::string_view refused =
      "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: "
      "Connection refused";
  const std::string_view dns = "DNS resolution failed for doorman-controller.doorman-system.svc:18000";
  const std::string_view closed = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Socket closed";
  const std::string_view verify =
      "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls handshake failed: SSL_ERROR_SSL: "
      "error:0A000086:SSL routines::certificate verify failed";
  for (bool tls : {false, true}) {
    EXPECT_EQ(TlsConnectHint(tls, refused), "");
    EXPECT_EQ(TlsConnectHint(tls, dns), "");
  }
  EXPECT_EQ(TlsConnectHint(false, closed).substr(0, 10), "plaintext:");
  EXPECT_EQ(TlsConnectHint(true, closed).substr(0, 5), "mTLS:");
  EXPECT_EQ(TlsConnectHint(true, verify).substr(0, 5), "mTLS:");
}

}  // namespace
}  // namespace doorman
