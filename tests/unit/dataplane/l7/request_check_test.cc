#include "dataplane/l7/request_check.h"

#include <gtest/gtest.h>

#include <string>

namespace doorman::dataplane {
namespace {

// A request starts with a method: anything else is refused at once, not after the header
// timeout (helper-91: a ClientHello on a plain listener waited 10 s for a 408).
TEST(RequestCheckTest, WhatCannotStartARequestIsToldAtOnce) {
  for (const char* ok : {"GET / HTTP/1.1\r\n", "G", "\r\n", "\n", "M-SEARCH * HTTP/1.1\r\n", ""}) {
    EXPECT_EQ(NotARequestStart(ok), "") << ok;
  }
  EXPECT_EQ(NotARequestStart(std::string("\x16\x03\x01\x00\x05hello", 10)),
            "a TLS handshake on a plain HTTP listener (use http://, or an HTTPS listener for https://)");
  EXPECT_NE(NotARequestStart("\x80\x2e\x01").find("TLS handshake"), std::string::npos);
  // On an HTTPS listener the bytes are decrypted already: a handshake record there is just not
  // HTTP (helper-92: the advice to use an HTTPS listener was given on one).
  EXPECT_EQ(NotARequestStart(std::string("\x16\x03\x01", 3), /*tls_listener=*/true),
            "not an HTTP request (a request line starts with a method)");
  for (const char* bad : {" GET / HTTP/1.1\r\n", "\tGET", "(x", "\x01", "{\"json\":1}"}) {
    EXPECT_EQ(NotARequestStart(bad), "not an HTTP request (a request line starts with a method)") << bad;
  }
}

}  // namespace
}  // namespace doorman::dataplane
