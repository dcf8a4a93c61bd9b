#include "dataplane/l7/request_check.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>

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

// helper-112: a well-formed version other than 1.0/1.1 is 505, a malformed one 400.
TEST(RequestCheckTest, UnsupportedButWellFormedVersions) {
  for (const char* v : {"GET / HTTP/2.0\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "GET /x HTTP/1.2\r\nHost: a\r\n",
                        "GET / HTTP/9.9\n", "GET / HTTP/0.9\r\n"}) {
    EXPECT_TRUE(UnsupportedHttpVersion(v)) << v;
  }
  for (const char* v : {"GET / HTTP/1.1\r\n", "GET / HTTP/1.0\r\n", "GET / HTTP/1.x\r\n", "GET / http/2.0\r\n",
                        "GET / HTTP/22.0\r\n", "GET / HTTP/2\r\n", "GET /\r\n", "", "GET",
                        "GET / HTTP/1.1 HTTP/2.0\r\n", "GET /a b HTTP/2.0\r\n", "GET  / HTTP/2.0\r\n"}) {
    EXPECT_FALSE(UnsupportedHttpVersion(v)) << v;
  }
}

HttpHead Parsed(const std::string& text) {
  HttpHead h;
  HeadParser<true> p(h);
  p.eager(false);
  boost::system::error_code ec;
  p.put(boost::asio::buffer(text), ec);
  EXPECT_FALSE(ec) << ec.message() << " " << text;
  return h;
}

// RFC 9112 §6.1: a coding the server does not understand SHOULD be 501; chunked not last (or
// twice, or in HTTP/1.0) is not well framed: 400.
TEST(RequestCheckTest, TransferCodingsOtherThanChunked) {
  unsigned status = 0;
  for (const char* te : {"gzip, chunked", "deflate,chunked", "x-custom ,  chunked", "gzip, br, chunked"}) {
    EXPECT_NE(SmugglingRisk(Parsed(std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ") + te + "\r\n\r\n"),
                            &status),
              "")
        << te;
    EXPECT_EQ(status, 501u) << te;
  }
  for (const char* te : {"chunked, gzip", "chunked, chunked", "gzip", "gzip, chunked, chunked", "gzip;q=1, chunked",
                         "chunked, identity"}) {
    EXPECT_NE(SmugglingRisk(Parsed(std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ") + te + "\r\n\r\n"),
                            &status),
              "")
        << te;
    EXPECT_EQ(status, 400u) << te;
  }
  EXPECT_EQ(SmugglingRisk(Parsed("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), &status),
            "Transfer-Encoding in an HTTP/1.0 request");
  EXPECT_EQ(status, 400u);
  EXPECT_EQ(SmugglingRisk(Parsed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), &status), "");
  EXPECT_EQ(SmugglingRisk(Parsed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")),
            "Transfer-Encoding coding other than \"chunked\" not implemented");  // no status wanted
}

}  // namespace
}  // namespace doorman::dataplane
