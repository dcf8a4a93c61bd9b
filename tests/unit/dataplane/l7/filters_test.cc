#include "dataplane/l7/filters.h"
#include "dataplane/l7/router.h"

#include <gtest/gtest.h>

#include <set>

namespace doorman::dataplane {
namespace {

TEST(FiltersTest, ForwardedProtoIsHttps) {
  for (const char* yes : {"https", "HTTPS", " https ", "https, http", "https,https"}) EXPECT_TRUE(ForwardedProtoIsHttps(yes)) << yes;
  for (const char* no : {"", "http", "http, https", "httpsx", "wss", "h ttps"}) EXPECT_FALSE(ForwardedProtoIsHttps(no)) << no;
}

TEST(FiltersTest, RedirectLocation) {
  struct Case {
    RedirectFilter r;
    const char* scheme;
    const char* host;
    uint16_t listener_port;
    const char* path;
    const char* query;
    const char* want;
  };
  auto R = [](std::string scheme, std::string host, uint32_t port, std::string path) {
    RedirectFilter r;
    r.enabled = true;
    r.scheme = std::move(scheme);
    r.host = std::move(host);
    r.port = port;
    r.path = std::move(path);
    return r;
  };
  // Gateway API: port 0 = the scheme's well-known port when a scheme is given, else the
  // listener's; 80/443 are not written for http/https. The Host header's port plays no part.
  const Case cases[] = {
      {R("https", "", 0, ""), "http", "app.local:8080", 8080, "/a", "x=1", "https://app.local/a?x=1"},
      {R("https", "", 8443, ""), "http", "app.local:8080", 8080, "/a", "", "https://app.local:8443/a"},
      {R("https", "", 443, ""), "http", "app.local", 80, "/", "", "https://app.local/"},
      {R("http", "", 0, ""), "http", "app.local:8080", 8080, "/a", "", "http://app.local/a"},  // scheme given: 80
      {R("", "other.example", 0, ""), "http", "app.local:8080", 8080, "/a", "", "http://other.example:8080/a"},
      {R("", "", 0, "/new"), "http", "app.local", 80, "/old", "q", "http://app.local/new?q"},
      {R("", "", 0, "/new"), "http", "lb.test", 31200, "/r1", "", "http://lb.test:31200/new"},  // no Host port
      {R("", "", 0, "/new"), "http", "lb.test:80", 31200, "/r1", "", "http://lb.test:31200/new"},
      {R("", "", 0, ""), "https", "[::1]:9443", 9443, "/", "", "https://[::1]:9443/"},
      {R("", "", 0, ""), "https", "app.local:443", 443, "/", "", "https://app.local/"},
      {R("", "", 80, ""), "http", "app.local:8080", 8080, "/", "", "http://app.local/"},
      // An IPv6 literal target is bracketed (helper-132: http://2001:db8::1:61900/p was sent).
      {R("", "2001:db8::1", 0, ""), "http", "a.test", 61900, "/p", "q=1", "http://[2001:db8::1]:61900/p?q=1"},
      {R("https", "[2001:db8::1]", 0, ""), "http", "a.test", 80, "/", "", "https://[2001:db8::1]/"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(RedirectLocation(c.r, c.scheme, c.host, c.listener_port, c.path, c.query), c.want) << c.want;
  }
}

TEST(FiltersTest, RewritePathPrefix) {
  struct Case {
    const char* path;
    const char* prefix;
    const char* replacement;
    const char* want;
  };
  const Case cases[] = {
      {"/api/x", "/api", "/", "/x"},       {"/api", "/api", "/", "/"},
      {"/api/", "/api", "/", "/"},         {"/api/x/y", "/api", "/v2", "/v2/x/y"},
      {"/api", "/api", "/v2", "/v2"},      {"/api/x", "/api", "/v2/", "/v2/x"},
      {"/x", "", "/base", "/base/x"},      {"/", "", "/base", "/base/"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(RewritePathPrefix(c.path, c.prefix, c.replacement), c.want) << c.path << " " << c.prefix;
  }
}

TEST(FiltersTest, RewritePathPrefixKeepsTheParametersAfterThePrefix) {
  struct Case {
    const char* raw;
    const char* routed;
    const char* prefix;
    const char* replacement;
    const char* want;
  };
  const Case cases[] = {
      {"/api/users;id=3", "/api/users", "/api", "/v2", "/v2/users;id=3"},
      {"/api;v=1/users;id=3", "/api/users", "/api", "/v2", "/v2/users;id=3"},
      {"/api;v=1", "/api", "/api", "/v2", "/v2"},
      {"/api/a;x/b;y", "/api/a/b", "/api/", "/", "/a;x/b;y"},
      {"/a;x/b", "/a/b", "", "/base", "/base/a;x/b"},
      {"/a/b;jsessionid=1", "/a/b", "/a/b", "/c", "/c"},
      // Segments that do not line up: rewritten as routed.
      {"/api/;x/y", "/api/y", "/api/y", "/z", "/z"},
      // No parameters: the plain rewrite.
      {"/api/x", "/api/x", "/api", "/v2", "/v2/x"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(RewritePathPrefixKeepingParams(c.raw, c.routed, c.prefix, c.replacement), c.want) << c.raw;
  }
}

TEST(FiltersTest, SelectCertificateBySni) {
  const std::vector<std::vector<std::string>> names = {
      {"default.test"}, {"*.example.com"}, {"api.example.com", "www.example.com"}, {"*.example.com", "b.test"}};
  EXPECT_EQ(SelectCertificate(names, ""), 0u);
  EXPECT_EQ(SelectCertificate(names, "unknown.test"), 0u);
  EXPECT_EQ(SelectCertificate(names, "API.example.com."), 2u);  // exact beats wildcard
  EXPECT_EQ(SelectCertificate(names, "shop.example.com"), 1u);  // first wildcard wins
  EXPECT_EQ(SelectCertificate(names, "a.b.example.com"), 0u);   // one label only
  EXPECT_EQ(SelectCertificate(names, "example.com"), 0u);
  EXPECT_EQ(SelectCertificate(names, "b.test"), 3u);
}

// For a name another namespace owns, only that namespace's certificates are candidates: another
// tenant's exact-name certificate does not outrank the owner's wildcard.
TEST(FiltersTest, SelectCertificateHonoursHostOwners) {
  const std::vector<std::vector<std::string>> names = {{"default.test"}, {"*.example.com"}, {"shop.example.com"}, {"b.test"}};
  const std::vector<std::string> namespaces = {"admin", "a", "b", "b"};
  HostOwnership owners;
  owners.Add("shop.example.com", "a", false);
  owners.Add("b.test", "a", false);
  EXPECT_EQ(SelectCertificate(names, "shop.example.com"), 2u);  // no owners: exact beats wildcard
  EXPECT_EQ(SelectCertificate(names, "shop.example.com", &owners, &namespaces), 1u);  // a's wildcard
  EXPECT_EQ(SelectCertificate(names, "SHOP.example.com.", &owners, &namespaces), 1u);
  EXPECT_EQ(SelectCertificate(names, "b.test", &owners, &namespaces), 0u);  // a has none: the default
  EXPECT_EQ(SelectCertificate(names, "other.example.com", &owners, &namespaces), 1u);  // nobody's
  EXPECT_EQ(SelectCertificate(names, "", &owners, &namespaces), 0u);
  const std::vector<std::string> short_list = {"admin"};  // not parallel to names: ignored
  EXPECT_EQ(SelectCertificate(names, "shop.example.com", &owners, &short_list), 2u);
}

TEST(FiltersTest, RequestIds) {
  RequestIdGenerator a(42), b(42), c(43);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto id = a.Next();
    EXPECT_EQ(id.size(), 32u);
    EXPECT_TRUE(ValidRequestId(id));
    EXPECT_TRUE(seen.insert(id).second);
    EXPECT_EQ(id, b.Next());  // deterministic for a seed
  }
  EXPECT_NE(RequestIdGenerator(42).Next(), c.Next());
  EXPECT_FALSE(ValidRequestId(""));
  EXPECT_FALSE(ValidRequestId("has space"));
  EXPECT_FALSE(ValidRequestId(std::string(129, 'a')));
  EXPECT_TRUE(ValidRequestId("abc-123"));
}

}  // namespace
}  // namespace doorman::dataplane
