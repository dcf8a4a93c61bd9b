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

}  // namespace
}  // namespace doorman
