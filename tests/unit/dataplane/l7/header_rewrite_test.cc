#include "dataplane/l7/header_rewrite.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>

namespace doorman::dataplane {
namespace {

namespace http = boost::beast::http;

// A parsed head with Beast-like accessors, so the expectations read as before.
struct Req {
  HttpHead h;
  HttpHead& base() { return h; }
  std::size_t count(std::string_view n) const { return h.Count(n); }
  std::size_t count(http::field f) const { return h.Count(f); }
  std::string operator[](std::string_view n) const { return std::string(h.Get(n).value_or("")); }
  std::string operator[](http::field f) const { return std::string(h.Get(f).value_or("")); }
  std::string_view target() const { return h.target(); }
};

// Parses a request head from a string buffer (no sockets), as the proxy's parser does.
Req ParseHead(const std::string& text) {
  Req r;
  HeadParser<true> p(r.h);
  p.eager(false);
  boost::system::error_code ec;
  p.put(boost::asio::buffer(text), ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.is_header_done());
  return r;
}

std::string Serialize(const HttpHead& h) {
  std::string out;
  h.SerializeRequest(&out);
  return out;
}

TEST(HeaderRewriteTest, StripsHopByHopButKeepsFraming) {
  auto req = ParseHead(
      "POST /up HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, X-Secret, content-length, Transfer-Encoding\r\n"
      "Keep-Alive: timeout=5\r\nProxy-Connection: close\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: websocket\r\n"
      "X-Secret: 1\r\nContent-Length: 3\r\nX-Keep: yes\r\n\r\n");
  StripHopByHop(req.base());
  for (const char* gone : {"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade", "X-Secret"}) {
    EXPECT_EQ(req.count(gone), 0u) << gone;
  }
  EXPECT_EQ(req[http::field::content_length], "3");  // named by Connection, kept: it frames the body
  EXPECT_EQ(req[http::field::host], "app");
  EXPECT_EQ(req["X-Keep"], "yes");
}

TEST(HeaderRewriteTest, ConnectionTokensFromRepeatedFieldsAreAllHonoured) {
  auto req = ParseHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-one\r\nX-One: 1\r\nConnection: X-Two\r\nX-Two: 2\r\n\r\n");
  StripHopByHop(req.base());
  EXPECT_EQ(req.count("X-One"), 0u);
  EXPECT_EQ(req.count("X-Two"), 0u);
}

// helper-112: a client behind a trusted proxy named X-Forwarded-For in Connection, and the
// proxy's own address replaced the real client's at the backend.
TEST(HeaderRewriteTest, ConnectionCannotNominateTheForwardingFields) {
  auto req = ParseHead(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For, x-real-ip, Forwarded, X-Forwarded-Proto, "
      "X-Forwarded-Host, X-Forwarded-Port, X-Request-Id, X-Other\r\nX-Forwarded-For: 203.0.113.5, 10.0.0.2\r\n"
      "X-Real-IP: 203.0.113.5\r\nForwarded: for=203.0.113.5\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-Host: shop.example\r\nX-Forwarded-Port: 443\r\nX-Request-Id: abc\r\nX-Other: 1\r\n\r\n");
  ForwardedInfo info;
  info.client_ip = "10.0.0.2";
  info.host = "a";
  info.forwarded_for = ForwardedForMode::kAppend;
  info.trusted = true;  // 10.0.0.2, the proxy in front, is trusted
  PrepareUpstreamRequest(req.base(), info);
  const std::string wire = Serialize(req.base());
  EXPECT_EQ(req["X-Forwarded-For"], "203.0.113.5, 10.0.0.2, 10.0.0.2") << wire;
  EXPECT_EQ(req["X-Real-IP"], "203.0.113.5") << wire;
  EXPECT_EQ(req[http::field::forwarded], "for=203.0.113.5, for=10.0.0.2") << wire;
  EXPECT_EQ(req["X-Forwarded-Proto"], "https") << wire;
  EXPECT_EQ(req["X-Forwarded-Host"], "shop.example") << wire;
  EXPECT_EQ(req["X-Forwarded-Port"], "443") << wire;
  EXPECT_EQ(req["X-Request-Id"], "abc") << wire;
  EXPECT_EQ(req.count("X-Other"), 0u) << wire;  // any other nominated field still goes
  EXPECT_EQ(req.count(http::field::connection), 0u) << wire;
}

TEST(HeaderRewriteTest, ForwardedHeaders) {
  struct Case {
    ForwardedForMode mode;
    bool trusted;
    const char* incoming;  // extra request lines
    const char* want_xff;  // "" = absent
  };
  const Case cases[] = {
      {ForwardedForMode::kAppend, false, "", "192.0.2.7"},
      {ForwardedForMode::kAppend, true, "X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n", "10.0.0.1, 10.0.0.2, 192.0.2.7"},
      // A spoofed header from an untrusted client never reaches the backend.
      {ForwardedForMode::kAppend, false, "X-Forwarded-For: 6.6.6.6\r\n", "192.0.2.7"},
      {ForwardedForMode::kReplace, true, "X-Forwarded-For: 10.0.0.1\r\n", "192.0.2.7"},
      {ForwardedForMode::kOff, true, "X-Forwarded-For: 10.0.0.1\r\n", "10.0.0.1"},
      {ForwardedForMode::kOff, false, "X-Forwarded-For: 10.0.0.1\r\n", ""},
      {ForwardedForMode::kOff, false, "", ""},
  };
  for (const auto& c : cases) {
    auto req = ParseHead(std::string("GET /p HTTP/1.0\r\nHost: app.local:8080\r\n") + c.incoming + "\r\n");
    ForwardedInfo info;
    info.client_ip = "192.0.2.7";
    info.host = "app.local:8080";
    info.forwarded_for = c.mode;
    info.trusted = c.trusted;
    EXPECT_FALSE(PrepareUpstreamRequest(req.base(), info));
    EXPECT_EQ(std::string(req["X-Forwarded-For"]), c.want_xff) << Serialize(req.base());
    EXPECT_EQ(req["X-Forwarded-Proto"], "http");
    EXPECT_EQ(req["X-Forwarded-Host"], "app.local:8080");
    EXPECT_EQ(Serialize(req.base()).find(" HTTP/1.1\r\n") != std::string::npos, true);  // always HTTP/1.1 upstream
  }
}

// X-Real-IP follows the X-Forwarded-For mode with one address; RFC 7239 Forwarded is never
// created, passed on from trusted clients only, extended in Append and dropped in Replace.
TEST(HeaderRewriteTest, RealIpAndForwardedTrustOnlyTrustedClients) {
  struct Case {
    ForwardedForMode mode;
    bool trusted;
    bool incoming;              // the client sent X-Real-IP: 6.6.6.6 and Forwarded: for=6.6.6.6
    const char* want_real_ip;   // "" = absent
    const char* want_forwarded;  // "" = absent
  };
  const Case cases[] = {
      {ForwardedForMode::kAppend, false, false, "192.0.2.7", ""},
      {ForwardedForMode::kAppend, false, true, "192.0.2.7", ""},
      {ForwardedForMode::kAppend, true, true, "6.6.6.6", "for=6.6.6.6;proto=https, for=192.0.2.7"},
      {ForwardedForMode::kAppend, true, false, "192.0.2.7", ""},
      {ForwardedForMode::kReplace, true, true, "192.0.2.7", ""},
      {ForwardedForMode::kReplace, false, true, "192.0.2.7", ""},
      {ForwardedForMode::kOff, true, true, "6.6.6.6", "for=6.6.6.6;proto=https"},
      {ForwardedForMode::kOff, false, true, "", ""},
      {ForwardedForMode::kOff, false, false, "", ""},
  };
  for (const auto& c : cases) {
    auto req = ParseHead(std::string("GET /p HTTP/1.1\r\nHost: a\r\n") +
                         (c.incoming ? "x-real-ip: 6.6.6.6\r\nForwarded: for=6.6.6.6;proto=https\r\n" : "") + "\r\n");
    ForwardedInfo info;
    info.client_ip = "192.0.2.7";
    info.host = "a";
    info.forwarded_for = c.mode;
    info.trusted = c.trusted;
    PrepareUpstreamRequest(req.base(), info);
    const std::string wire = Serialize(req.base());
    EXPECT_EQ(std::string(req["X-Real-IP"]), c.want_real_ip) << wire;
    EXPECT_LE(req.count("X-Real-IP"), 1u) << wire;
    EXPECT_EQ(std::string(req[http::field::forwarded]), c.want_forwarded) << wire;
    EXPECT_LE(req.count(http::field::forwarded), 1u) << wire;
  }
}

// Behind a trusted balancer that sends X-Forwarded-For only (AWS ALB, GCLB), X-Real-IP names the
// client its chain gives, as nginx's realip module finds it, not the balancer's own address.
TEST(HeaderRewriteTest, RealIpBehindATrustedProxyComesFromItsChain) {
  const std::vector<l4::Cidr> trusted = {*l4::ParseCidr("10.0.0.0/8"), *l4::ParseCidr("2001:db8::/32")};
  struct Case {
    const char* incoming;  // extra request lines
    const char* want;
  };
  const Case cases[] = {
      {"X-Forwarded-For: 203.0.113.9\r\n", "203.0.113.9"},
      {"X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.1.1.1\r\n", "203.0.113.9"},  // rightmost untrusted
      {"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.9 , 10.2.2.2\r\n", "203.0.113.9"},
      {"X-Forwarded-For: 10.3.3.3, 10.1.1.1\r\n", "10.3.3.3"},  // every entry trusted: the leftmost
      {"X-Forwarded-For: ,, \r\n", "10.9.9.9"},                  // nothing in it: the peer
      {"", "10.9.9.9"},
      {"X-Forwarded-For: 2001:db8::5, 2001:db9::1\r\n", "2001:db9::1"},
      // Not an IP address: the peer's, never the junk (a backend would log or trust it).
      {"X-Forwarded-For: unknown\r\n", "10.9.9.9"},
      {"X-Forwarded-For: 203.0.113.9, <script>\r\n", "10.9.9.9"},
      {"X-Forwarded-For: 203.0.113.9:4711\r\n", "203.0.113.9"},  // a port some balancers add
      {"X-Forwarded-For: [2001:db9::1]:443\r\n", "2001:db9::1"},
  };
  for (const auto& c : cases) {
    auto req = ParseHead(std::string("GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=203.0.113.9\r\n") + c.incoming + "\r\n");
    ForwardedInfo info;
    info.client_ip = "10.9.9.9";
    info.host = "a";
    info.trusted = true;
    info.trusted_proxies = &trusted;
    PrepareUpstreamRequest(req.base(), info);
    EXPECT_EQ(std::string(req["X-Real-IP"]), c.want) << c.incoming;
    EXPECT_EQ(std::string(req[http::field::forwarded]), "for=203.0.113.9, for=10.9.9.9");
  }
  // Our hop in Forwarded, for an IPv6 peer: quoted and bracketed (RFC 7239 §6).
  auto req = ParseHead("GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=x\r\n\r\n");
  ForwardedInfo info;
  info.client_ip = "2001:db8::7";
  info.host = "a";
  info.trusted = true;
  PrepareUpstreamRequest(req.base(), info);
  EXPECT_EQ(std::string(req[http::field::forwarded]), "for=x, for=\"[2001:db8::7]\"");
}

// The client for rate-limit and source-IP keys behind a trusted proxy: the X-Real-IP rule, but
// an address only (garbage in the chain leaves the peer as the key).
TEST(HeaderRewriteTest, ForwardedClientIpIsTheChainsClientWhenItIsAnAddress) {
  const std::vector<l4::Cidr> trusted = {*l4::ParseCidr("10.0.0.0/8")};
  const std::pair<const char*, const char*> cases[] = {
      {"X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.1.1.1\r\n", "203.0.113.9"},
      {"X-Forwarded-For: 10.3.3.3, 10.1.1.1\r\n", "10.3.3.3"},
      {"X-Forwarded-For: 2001:DB8::5\r\n", "2001:db8::5"},
      {"X-Forwarded-For: unknown\r\n", ""},
      {"X-Forwarded-For: 203.0.113.9:4711\r\n", "203.0.113.9"},  // with the client's port
      {"X-Forwarded-For: [2001:db8::5]:443\r\n", "2001:db8::5"},
      {"X-Forwarded-For: [2001:db8::5\r\n", ""},
      {"X-Forwarded-For: ::ffff:203.0.113.9\r\n", "203.0.113.9"},  // one key per client
      {"X-Forwarded-For: fe80::1%2\r\n", "fe80::1"},  // a zone index is no part of the client
      {"X-Forwarded-For: [fe80::1%eth0]:80\r\n", "fe80::1"},
      {"", ""},
  };
  for (const auto& [incoming, want] : cases) {
    auto req = ParseHead(std::string("GET / HTTP/1.1\r\nHost: a\r\n") + incoming + "\r\n");
    EXPECT_EQ(ForwardedClientIp(req.base(), trusted), want) << incoming;
  }
}

// A request head from client 192.0.2.7 (trusted or not) after PrepareUpstreamRequest.
Req PreparedFrom(bool trusted, const std::string& text) {
  Req req = ParseHead(text);
  ForwardedInfo info;
  info.client_ip = "192.0.2.7";
  info.host = "a";
  info.trusted = trusted;
  PrepareUpstreamRequest(req.base(), info);
  return req;
}

// CGI-style backends read X_Forwarded_For as X-Forwarded-For: an untrusted client's underscore
// spellings of the managed headers are dropped; other underscore names, and a trusted client's,
// pass.
TEST(HeaderRewriteTest, UnderscoreSpellingsOfForwardingHeadersAreDroppedFromUntrustedClients) {
  for (bool trusted : {false, true}) {
    auto req = PreparedFrom(
        trusted,
        "GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nx-real_ip: 6.6.6.6\r\nX_FORWARDED_PROTO: https\r\n"
        "Forwarded_: x\r\nX_Request_Id: spoof\r\napi_key: k\r\nX-Forwarded_Hosts: h\r\n\r\n");
    const std::string wire = Serialize(req.base());
    for (const char* name : {"X_Forwarded_For", "x-real_ip", "X_FORWARDED_PROTO", "X_Request_Id"}) {
      EXPECT_EQ(req.count(name), trusted ? 1u : 0u) << name << "\n" << wire;
    }
    EXPECT_EQ(req.count("api_key"), 1u) << wire;            // not a forwarding header
    EXPECT_EQ(req.count("X-Forwarded_Hosts"), 1u) << wire;  // not one either (one letter more)
    EXPECT_EQ(req.count("Forwarded_"), 1u) << wire;
    EXPECT_EQ(req["X-Forwarded-For"], "192.0.2.7");
  }
}

TEST(HeaderRewriteTest, UnderscoreSpellingsOfFramingHeadersAreAlwaysDropped) {
  for (bool trusted : {false, true}) {
    auto req = PreparedFrom(
        trusted,
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer_Encoding: chunked\r\ncontent_length: 99\r\n"
        "HOST_: x\r\nConnection_: close\r\nkeep_alive: 1\r\nproxy_connection: close\r\nTE_: x\r\nT_E: trailers\r\n"
        "Upgrade_Insecure_Requests: 1\r\nexpect_: x\r\nX_Custom_Id: 7\r\n\r\n");
    const std::string wire = Serialize(req.base());
    for (const char* name : {"Transfer_Encoding", "content_length", "keep_alive", "proxy_connection"}) {
      EXPECT_EQ(req.count(name), 0u) << name << "\n" << wire;
    }
    // One character more or less than a framing name is not one of them.
    for (const char* name : {"HOST_", "Connection_", "TE_", "T_E", "Upgrade_Insecure_Requests", "expect_", "X_Custom_Id"}) {
      EXPECT_EQ(req.count(name), 1u) << name << "\n" << wire;
    }
    EXPECT_EQ(req[http::field::content_length], "3") << wire;
    EXPECT_EQ(wire.find("chunked"), std::string::npos) << wire;
  }
}

TEST(HeaderRewriteTest, AbsoluteFormBecomesOriginFormAndExpectIsConsumed) {
  auto req = ParseHead(
      "PUT http://App.Local:81/a?b=1 HTTP/1.1\r\nHost: ignored\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
  ForwardedInfo info;
  info.client_ip = "::1";
  info.host = "App.Local:81";
  info.authority = "App.Local:81";
  info.origin_target = "/a?b=1";
  EXPECT_TRUE(PrepareUpstreamRequest(req.base(), info));
  EXPECT_EQ(req.count(http::field::expect), 0u);
  EXPECT_EQ(req.target(), "/a?b=1");
  EXPECT_EQ(req[http::field::host], "App.Local:81");
  EXPECT_EQ(Serialize(req.base()).rfind("PUT /a?b=1 HTTP/1.1\r\n", 0), 0u);
}

TEST(HeaderRewriteTest, ForwardedProtoHostPortTrustOnlyTrustedClients) {
  for (bool trusted : {false, true}) {
    auto req = ParseHead(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n"
        "X-Forwarded-Port: 1\r\nX-Request-Id: client-id\r\n\r\n");
    ForwardedInfo info;
    info.client_ip = "192.0.2.7";
    info.host = "a";
    info.port = "8080";
    info.trusted = trusted;
    info.request_id = "chosen";
    PrepareUpstreamRequest(req.base(), info);
    EXPECT_EQ(req["X-Forwarded-Proto"], trusted ? "https" : "http");
    EXPECT_EQ(req["X-Forwarded-Host"], trusted ? "evil" : "a");
    EXPECT_EQ(req["X-Forwarded-Port"], trusted ? "1" : "8080");
    EXPECT_EQ(req["X-Request-Id"], "chosen");
    EXPECT_EQ(req.count("X-Request-Id"), 1u);
  }
}

TEST(HeaderRewriteTest, HeaderRulesRemoveSetAdd) {
  auto req = ParseHead("GET / HTTP/1.1\r\nHost: a\r\nX-Debug: 1\r\nX-Env: dev\r\nx-env: dev2\r\nX-Multi: a\r\n\r\n");
  HeaderRules rules;
  rules.remove = {"x-debug"};
  rules.set = {{"X-Env", "prod"}};
  rules.add = {{"X-Multi", "b"}};
  ApplyHeaderRules(req.base(), rules);
  EXPECT_EQ(req.count("X-Debug"), 0u);
  EXPECT_EQ(req.count("X-Env"), 1u);
  EXPECT_EQ(req["X-Env"], "prod");
  EXPECT_EQ(req.count("X-Multi"), 2u);
}

// A request filter that removes or sets a name also drops the client's underscore spellings of it
// (helper-76: X_Admin passed remove: [x-admin] and X_User stood beside set x-user, and CGI-style
// backends read both as HTTP_X_ADMIN / HTTP_X_USER). Other underscored names pass; responses are
// left alone.
TEST(HeaderRewriteTest, RequestRulesCoverUnderscoreSpellings) {
  const std::string head =
      "GET / HTTP/1.1\r\nHost: a\r\nX_Admin: 1\r\nx_ADMIN: 2\r\nX_User: evil\r\nX_Other: kept\r\nX-Admin: 3\r\n\r\n";
  HeaderRules rules;
  rules.remove = {"x-admin"};
  rules.set = {{"X-User", "svc"}};
  auto req = ParseHead(head);
  ApplyHeaderRules(req.base(), rules, /*request=*/true);
  EXPECT_EQ(req.count("X_Admin"), 0u);
  EXPECT_EQ(req.count("X-Admin"), 0u);
  EXPECT_EQ(req.count("X_User"), 0u);
  EXPECT_EQ(req["X-User"], "svc");
  EXPECT_EQ(req["X_Other"], "kept");
  auto res = ParseHead(head);
  ApplyHeaderRules(res.base(), rules);
  EXPECT_EQ(res.count("X_Admin"), 2u);
}

// A rule written with '_' covers the dashed spelling too (CGI reads both as one variable).
TEST(HeaderRewriteTest, AnUnderscoredRuleCoversTheDashedName) {
  HeaderRules rules;
  rules.remove = {"x_user"};
  auto req = ParseHead("GET / HTTP/1.1\r\nHost: a\r\nX-User: evil\r\nX_USER: evil2\r\nX-Other: kept\r\n\r\n");
  ApplyHeaderRules(req.base(), rules, /*request=*/true);
  EXPECT_EQ(req.count("X-User"), 0u);
  EXPECT_EQ(req.count("X_User"), 0u);
  EXPECT_EQ(req["X-Other"], "kept");
}

}  // namespace
}  // namespace doorman::dataplane
