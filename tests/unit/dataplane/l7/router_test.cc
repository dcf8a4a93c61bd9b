#include "dataplane/l7/router.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <map>

#include "dataplane/config/compile.h"
#include "doorman/v1/routing.pb.h"

namespace doorman::dataplane {
namespace {

class MapHeaders : public RequestHeaders {
 public:
  explicit MapHeaders(std::map<std::string, std::string> h) : h_(std::move(h)) {}
  std::optional<std::string_view> Get(std::string_view lower_name) const override {
    auto it = h_.find(std::string(lower_name));
    if (it == h_.end()) return std::nullopt;
    return std::string_view(it->second);
  }

 private:
  std::map<std::string, std::string> h_;
};

TEST(RouterTest, NormalizeHost) {
  EXPECT_EQ(NormalizeHost("Example.COM"), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:8080"), "example.com");
  EXPECT_EQ(NormalizeHost("example.com."), "example.com");
  EXPECT_EQ(NormalizeHost("[::1]:80"), "::1");
  EXPECT_EQ(NormalizeHost("[FD00::1]"), "fd00::1");
  EXPECT_EQ(NormalizeHost("::1"), "::1");
  EXPECT_EQ(NormalizeHost(""), "");
}

TEST(RouterTest, SplitTarget) {
  std::string_view path, query, authority = "unchanged";
  SplitTarget("/a/b?x=1&y", &path, &query, &authority);
  EXPECT_EQ(path, "/a/b");
  EXPECT_EQ(query, "x=1&y");
  EXPECT_EQ(authority, "unchanged");
  SplitTarget("HTTP://Host:81/p?q", &path, &query, &authority);
  EXPECT_EQ(authority, "Host:81");
  EXPECT_EQ(path, "/p");
  EXPECT_EQ(query, "q");
  SplitTarget("http://host", &path, &query, &authority);
  EXPECT_EQ(authority, "host");
  EXPECT_EQ(path, "/");
  EXPECT_EQ(query, "");
}

TEST(RouterTest, PrefixIsSegmentWise) {
  struct Case {
    const char* prefix;  // as written in the route
    const char* path;
    bool match;
  };
  // The table from the Kubernetes Ingress documentation, plus edge cases.
  const Case cases[] = {
      {"/", "/anything", true},     {"/", "/", true},
      {"/foo", "/foo", true},       {"/foo", "/foo/", true},
      {"/foo", "/foo/bar", true},   {"/foo", "/foobar", false},
      {"/foo/", "/foo", true},      {"/foo/", "/foo/bar", true},
      {"/aaa/bb", "/aaa/bbb", false}, {"/aaa/bbb", "/aaa/bbb/ccc", true},
      {"/aaa/bbb/", "/aaa/bbb", true}, {"/foo", "/Foo", false},
      {"/foo", "/", false},
      {"/", "*", false},  // OPTIONS *: not a path under "/"
  };
  for (const auto& c : cases) {
    PathMatcher m;
    m.type = PathMatcher::Type::kPrefix;
    m.value = c.prefix;
    while (!m.value.empty() && m.value.back() == '/') m.value.pop_back();
    EXPECT_EQ(m.Matches(c.path), c.match) << c.prefix << " vs " << c.path;
  }
}

TEST(RouterTest, CookieAndQueryParsing) {
  EXPECT_EQ(FindCookie("a=1; beta=yes;c=\"q\"", "beta"), "yes");
  EXPECT_EQ(FindCookie("a=1; c=\"q\"", "c"), "q");
  EXPECT_FALSE(FindCookie("alpha=1", "a").has_value());
  EXPECT_EQ(FindQueryParam("v=2&w", "w"), "");
  EXPECT_EQ(FindQueryParam("v=2&w", "v"), "2");
  EXPECT_FALSE(FindQueryParam("vv=2", "v").has_value());
}

// The name of the route `l` selects for this request, or "<none>".
std::string SelectName(const Listener& l, std::string_view method, std::string_view host, std::string_view target,
                       std::map<std::string, std::string> headers = {}) {
  const MapHeaders h(std::move(headers));
  RequestView v;
  v.method = method;
  v.host = host;
  std::string_view authority;
  SplitTarget(target, &v.path, &v.query, &authority);
  v.headers = &h;
  const Route* r = SelectRoute(l, v);
  return r ? r->name : "<none>";
}

// Routes compiled from a snapshot, so the test covers Compile → SelectRoute end to end.
class SelectRouteTest : public testing::Test {
 protected:
  void SetUp() override {
    v1::Snapshot s;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
      listeners {
        name: "http-80" port: 80 protocol: HTTP
        routes: "exact" routes: "api" routes: "regex" routes: "canary" routes: "wild" routes: "fallback"
      }
      routes { name: "exact" listener: "http-80" match { hosts: "app.example.com" path { type: EXACT value: "/login" } methods: "POST" } }
      routes { name: "api" listener: "http-80" match { hosts: "app.example.com" path { type: PREFIX value: "/api" } } }
      routes { name: "regex" listener: "http-80" match { path { type: REGULAR_EXPRESSION value: "/v[0-9]+/.*" } } }
      routes {
        name: "canary" listener: "http-80"
        match {
          hosts: "app.example.com"
          headers { name: "X-Canary" value: "1" }
          headers { name: "x-user" type: REGULAR_EXPRESSION value: "u[0-9]+" }
          headers { name: "x-any" type: PRESENT }
          query_params { name: "v" value: "2" }
          cookies { name: "beta" value: "yes" }
        }
      }
      routes { name: "wild" listener: "http-80" match { hosts: "*.example.com" } }
      routes { name: "fallback" listener: "http-80" match { hosts: "other.test" path { type: PREFIX value: "/" } } }
    )pb",
                                                              &s));
    auto r = Compile(s, 1, {});
    ASSERT_TRUE(r.ok()) << r.error;
    config_ = r.config;
    listener_ = config_->FindListener("http-80");
  }

  std::string Select(std::string_view method, std::string_view host, std::string_view target,
                     std::map<std::string, std::string> headers = {}) {
    return SelectName(*listener_, method, host, target, std::move(headers));
  }

  std::shared_ptr<const RuntimeConfig> config_;
  const Listener* listener_ = nullptr;
};

TEST_F(SelectRouteTest, FirstMatchInListenerOrderWins) {
  struct Case {
    const char* method;
    const char* host;
    const char* target;
    const char* want;
  };
  const Case cases[] = {
      {"POST", "app.example.com", "/login", "exact"},
      {"GET", "app.example.com", "/login", "wild"},        // method mismatch → later route
      {"POST", "app.example.com", "/login/x", "wild"},     // exact is exact
      {"GET", "APP.Example.com:8080", "/api/users", "api"},  // case + port stripped
      {"GET", "app.example.com", "/api", "api"},
      {"GET", "app.example.com", "/apis", "wild"},          // segment-wise prefix
      {"GET", "anything", "/v2/items", "regex"},            // no hosts = any host
      {"GET", "anything", "/v2", "<none>"},                 // full match only
      {"GET", "deep.sub.example.com", "/", "wild"},         // wildcard: one or more labels
      {"GET", "example.com", "/", "<none>"},                // not the bare suffix
      {"GET", "other.test", "/x?y=1", "fallback"},
      {"GET", "unknown.test", "/", "<none>"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Select(c.method, c.host, c.target), c.want) << c.method << " " << c.host << c.target;
  }
}

// A header match on "host" reads the authority the request is routed and forwarded with: an
// absolute-form target's, not the Host field it replaces (helper-125).
TEST(RouterTest, AHostHeaderMatchReadsTheRoutedAuthority) {
  v1::Snapshot s;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
    listeners { name: "http-80" port: 80 protocol: HTTP routes: "by-host-header" }
    routes { name: "by-host-header" listener: "http-80" match { headers { name: "Host" value: "evil.t" } } }
  )pb",
                                                            &s));
  auto r = Compile(s, 1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  const Listener& l = *r.config->FindListener("http-80");
  EXPECT_EQ(SelectName(l, "GET", "evil.t", "/", {{"host", "evil.t"}}), "by-host-header");
  // GET http://good.t/ with Host: evil.t is routed and forwarded as good.t.
  EXPECT_EQ(SelectName(l, "GET", "good.t", "/", {{"host", "evil.t"}}), "<none>");
  EXPECT_EQ(SelectName(l, "GET", "evil.t", "/", {{"host", "good.t"}}), "by-host-header");
  EXPECT_EQ(SelectName(l, "GET", "", "/", {}), "<none>");
}

TEST_F(SelectRouteTest, HeadersQueryAndCookiesMustAllMatch) {
  const std::map<std::string, std::string> all = {
      {"x-canary", "1"}, {"x-user", "u42"}, {"x-any", ""}, {"cookie", "a=b; beta=yes"}};
  EXPECT_EQ(Select("GET", "app.example.com", "/?v=2", all), "canary");
  EXPECT_EQ(Select("GET", "app.example.com", "/?v=3", all), "wild");
  auto h = all;
  h["x-user"] = "bob";
  EXPECT_EQ(Select("GET", "app.example.com", "/?v=2", h), "wild");
  h = all;
  h.erase("x-any");
  EXPECT_EQ(Select("GET", "app.example.com", "/?v=2", h), "wild");
  h = all;
  h["cookie"] = "beta=no";
  EXPECT_EQ(Select("GET", "app.example.com", "/?v=2", h), "wild");
  h = all;
  h["x-canary"] = "2";
  EXPECT_EQ(Select("GET", "app.example.com", "/?v=2", h), "wild");
}

// One HTTP listener "web" on port 80 listing `order` (text-format "routes: ..." entries), and
// `routes` (text-format Route messages).
CompileResult CompileWeb(const char* order, const char* routes) {
  v1::Snapshot s;
  if (!google::protobuf::TextFormat::ParseFromString(
          std::string(R"pb(listeners { name: "web" port: 80 protocol: HTTP )pb") + order + "}" + routes, &s)) {
    CompileResult bad;
    bad.error = "snapshot text does not parse";
    return bad;
  }
  return Compile(s, 1, {});
}

// The host that matched ranks a route, not the longest host it lists (Gateway API): a route
// listing a long exact host and a wildcard must not take requests from an exact-host route, and
// among equally specific host matches the longer path wins over the controller's order.
TEST(SelectRoutePrecedence, TheMatchingHostRanksTheRoute) {
  const char* routes = R"pb(
      routes { name: "two" listener: "web" match { hosts: "zzzzzzzzzzzz.ex.com" hosts: "b.ex.com" path { type: PREFIX value: "/" } } }
      routes { name: "mixed" listener: "web" match { hosts: "aaaaaaaa.ex.com" hosts: "*.ex.com" } }
      routes { name: "exactb" listener: "web" match { hosts: "b.ex.com" path { type: PREFIX value: "/api" } } }
      routes { name: "wild" listener: "web" match { hosts: "*.ex.com" path { type: PREFIX value: "/api/v2" } } }
      routes { name: "any" listener: "web" match { path { type: PREFIX value: "/api/v2/deep" } } }
  )pb";
  // The controller's order (by each route's most specific host), and the reverse: the answer
  // must not depend on it.
  for (const char* order : {R"pb(routes: "two" routes: "mixed" routes: "exactb" routes: "wild" routes: "any")pb",
                            R"pb(routes: "any" routes: "wild" routes: "exactb" routes: "mixed" routes: "two")pb"}) {
    const auto r = CompileWeb(order, routes);
    ASSERT_TRUE(r.ok()) << r.error;
    const Listener* l = r.config->FindListener("web");
    auto select = [&](std::string_view host, std::string_view path) {
      RequestView v;
      v.method = "GET";
      v.host = host;
      v.path = path;
      const Route* route = SelectRoute(*l, v);
      return route ? route->name : std::string("<none>");
    };
    EXPECT_EQ(select("b.ex.com", "/api/x"), "exactb") << order;   // same host rank as "two", longer path
    EXPECT_EQ(select("b.ex.com", "/other"), "two") << order;      // exact beats mixed's wildcard
    EXPECT_EQ(select("c.ex.com", "/api/v2/x"), "wild") << order;  // both wildcards: longer path
    EXPECT_EQ(select("c.ex.com", "/x"), "mixed") << order;
    EXPECT_EQ(select("aaaaaaaa.ex.com", "/api/v2/x"), "mixed") << order;  // its exact host
    EXPECT_EQ(select("other.test", "/api/v2/deep/1"), "any") << order;
    EXPECT_EQ(select("c.ex.com", "/api/v2/deep/1"), "wild") << order;  // a host match beats any host
  }
}

// An Exact path wins over a longer regular expression or Prefix that also matches (Gateway API;
// nginx's "location =" before any regex), in either order sent (helper-100).
TEST(SelectRoutePrecedence, AnExactPathBeatsALongerRegex) {
  const char* routes = R"pb(
      routes { name: "login" listener: "web" match { hosts: "a.test" path { type: EXACT value: "/login" } } }
      routes { name: "re" listener: "web" match { hosts: "a.test" path { type: REGULAR_EXPRESSION value: "/[a-z]+(/.*)?" } } }
      routes { name: "longer" listener: "web" match { hosts: "a.test" path { type: PREFIX value: "/login/zzzzzz" } } }
  )pb";
  for (const char* order : {R"pb(routes: "login" routes: "re" routes: "longer")pb",
                            R"pb(routes: "longer" routes: "re" routes: "login")pb"}) {
    const auto r = CompileWeb(order, routes);
    ASSERT_TRUE(r.ok()) << r.error;
    const Listener* l = r.config->FindListener("web");
    auto select = [&](std::string_view path) {
      RequestView v;
      v.method = "GET";
      v.host = "a.test";
      v.path = path;
      const Route* route = SelectRoute(*l, v);
      return route ? route->name : std::string("<none>");
    };
    EXPECT_EQ(select("/login"), "login") << order;
    EXPECT_EQ(select("/logout"), "re") << order;
    EXPECT_EQ(select("/login/zzzzzz/1"), "longer") << order;  // longer than the regex's pattern
  }
}

// An Ingress's https-redirect-h<k> (redirect-only, unless_forwarded_https) is left out for a
// request a trusted proxy received over HTTPS: the next route that matches takes it. A redirect
// route with backends, or one without unless_forwarded_https, is never left out.
TEST(SelectRoutePrecedence, ForwardedHttpsSkipsOnlyRedirectOnlyFallbacks) {
  const char* routes = R"pb(
      routes { name: "fallback" listener: "web" match { hosts: "a.test" }
               filters { redirect { enabled: true scheme: "https" unless_forwarded_https: true } } }
      routes { name: "catch" listener: "web" backends { backend_set: "s" weight: 1 } }
      backend_sets { name: "s" }
  )pb";
  const auto r = CompileWeb(R"pb(routes: "fallback" routes: "catch")pb", routes);
  ASSERT_TRUE(r.ok()) << r.error;
  const Listener* l = r.config->FindListener("web");
  RequestView v;
  v.method = "GET";
  v.host = "a.test";
  v.path = "/zzz";
  ASSERT_NE(SelectRoute(*l, v), nullptr);
  EXPECT_EQ(SelectRoute(*l, v)->name, "fallback");
  EXPECT_TRUE(IsForwardedHttpsFallback(*SelectRoute(*l, v)));
  ASSERT_NE(SelectRoute(*l, v, true), nullptr);
  EXPECT_EQ(SelectRoute(*l, v, true)->name, "catch");
  EXPECT_FALSE(IsForwardedHttpsFallback(*SelectRoute(*l, v, true)));
  for (const char* other : {
           R"pb(routes { name: "fallback" listener: "web" match { hosts: "a.test" } backends { backend_set: "s" weight: 1 }
                         filters { redirect { enabled: true scheme: "https" unless_forwarded_https: true } } })pb",
           R"pb(routes { name: "fallback" listener: "web" match { hosts: "a.test" }
                         filters { redirect { enabled: true scheme: "https" } } })pb"}) {
    const auto r2 = CompileWeb(R"pb(routes: "fallback")pb", (std::string(other) + " backend_sets { name: \"s\" }").c_str());
    ASSERT_TRUE(r2.ok()) << r2.error;
    const Route* route = SelectRoute(*r2.config->FindListener("web"), v, true);
    ASSERT_NE(route, nullptr) << other;
    EXPECT_FALSE(IsForwardedHttpsFallback(*route));
  }
}

// Exact beats a Prefix declared with a trailing '/' (it ranks as "/login"), and a route without a
// path ranks as Prefix "/": its header or method condition puts it first, in either order sent.
TEST(SelectRoutePrecedence, ExactBeatsTrailingSlashPrefixAndNoPathIsSlash) {
  const char* routes = R"pb(
      routes { name: "slash" listener: "web" match { path { type: PREFIX value: "/" } } }
      routes { name: "login-prefix" listener: "web" match { path { type: PREFIX value: "/login/" } } }
      routes { name: "login-exact" listener: "web" match { path { type: EXACT value: "/login" } } }
      routes { name: "by-header" listener: "web" match { headers { name: "x-beta" value: "1" } } }
      routes { name: "by-method" listener: "web" match { methods: "POST" } }
  )pb";
  for (const char* order :
       {R"pb(routes: "login-exact" routes: "login-prefix" routes: "by-header" routes: "by-method" routes: "slash")pb",
        R"pb(routes: "slash" routes: "by-method" routes: "by-header" routes: "login-prefix" routes: "login-exact")pb"}) {
    const auto r = CompileWeb(order, routes);
    ASSERT_TRUE(r.ok()) << r.error;
    const Listener* l = r.config->FindListener("web");
    const std::map<std::string, std::string> beta = {{"x-beta", "1"}};
    const std::map<std::string, std::string> none;
    auto select = [&](std::string_view method, std::string_view path, const std::map<std::string, std::string>& h) {
      const MapHeaders headers(h);
      RequestView v;
      v.method = method;
      v.host = "a.test";
      v.path = path;
      v.headers = &headers;
      const Route* route = SelectRoute(*l, v);
      return route ? route->name : std::string("<none>");
    };
    EXPECT_EQ(select("GET", "/login", none), "login-exact") << order;
    EXPECT_EQ(select("GET", "/login/x", none), "login-prefix") << order;
    EXPECT_EQ(select("GET", "/other", beta), "by-header") << order;
    EXPECT_EQ(select("POST", "/other", none), "by-method") << order;
    EXPECT_EQ(select("GET", "/other", none), "slash") << order;
  }
}

// After the path, Gateway API's order (the controller's RoutePrecedence, kept in step): a method
// match beats any number of header matches, which beat query matches; a route without a path
// ties with Prefix "/" (the earlier route in the controller's order takes it), and one marked
// after_paths (an Ingress host's default backend) ranks after every path of its host. Either
// order sent gives the same answer where the keys differ (helper-79: the dataplane summed the
// conditions and put a path-less route last whatever the controller sent).
TEST(SelectRoutePrecedence, MethodThenHeadersThenQueryAndNoPathAsSlash) {
  const char* routes = R"pb(
      routes { name: "h2" listener: "web" match { headers { name: "x-1" type: PRESENT } headers { name: "x-2" type: PRESENT } } }
      routes { name: "method" listener: "web" match { methods: "GET" } }
      routes { name: "q2" listener: "web" match { query_params { name: "a" value: "1" } query_params { name: "b" value: "1" } } }
      routes { name: "h1" listener: "web" match { headers { name: "x-3" type: PRESENT } } }
      routes { name: "default" listener: "web" match { hosts: "a.test" after_paths: true } }
      routes { name: "slash" listener: "web" match { hosts: "a.test" path { type: PREFIX value: "/" } } }
      routes { name: "host-only" listener: "web" match { hosts: "a.test" } }
  )pb";
  for (const char* order :
       {R"pb(routes: "host-only" routes: "slash" routes: "default" routes: "method" routes: "h2" routes: "h1" routes: "q2")pb",
        R"pb(routes: "q2" routes: "h1" routes: "h2" routes: "method" routes: "default" routes: "slash" routes: "host-only")pb"}) {
    const auto r = CompileWeb(order, routes);
    ASSERT_TRUE(r.ok()) << r.error;
    const Listener* l = r.config->FindListener("web");
    auto select = [&](std::string_view method, std::string_view host, std::string_view target,
                      const std::map<std::string, std::string>& h) { return SelectName(*l, method, host, target, h); };
    const std::map<std::string, std::string> none;
    EXPECT_EQ(select("GET", "b.test", "/", {{"x-1", ""}, {"x-2", ""}}), "method") << order;
    EXPECT_EQ(select("POST", "b.test", "/", {{"x-1", ""}, {"x-2", ""}}), "h2") << order;
    EXPECT_EQ(select("POST", "b.test", "/?a=1&b=1", {{"x-3", ""}}), "h1") << order;
    EXPECT_EQ(select("POST", "b.test", "/?a=1&b=1", none), "q2") << order;
    EXPECT_EQ(select("POST", "b.test", "/", none), "<none>") << order;
    // Same host, no conditions: host-only and slash tie (the earlier one sent wins), the
    // after_paths default never takes a request they match.
    const std::string first = std::string(order).find("\"host-only\"") < std::string(order).find("\"slash\"") ? "host-only" : "slash";
    EXPECT_EQ(select("POST", "a.test", "/x", none), first) << order;
  }
}

// Ingress routes (wildcard_one_label) cover one label with "*.", Gateway-style routes one or more.
TEST(SelectRoutePrecedence, IngressWildcardsCoverOneLabel) {
  v1::Snapshot s;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
      listeners { name: "web" port: 80 protocol: HTTP routes: "ingress" routes: "gateway" }
      listeners { name: "web2" port: 81 protocol: HTTP routes: "ingress-only" }
      routes { name: "ingress" listener: "web" match { hosts: "*.wild.io" wildcard_one_label: true path { type: PREFIX value: "/x" } } }
      routes { name: "gateway" listener: "web" match { hosts: "*.wild.io" } }
      routes { name: "ingress-only" listener: "web2" match { hosts: "*.wild.io" wildcard_one_label: true } }
  )pb",
                                                            &s));
  auto r = Compile(s, 1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  auto select = [&](const char* listener, std::string_view host, std::string_view path) {
    RequestView v;
    v.method = "GET";
    v.host = host;
    v.path = path;
    const Route* route = SelectRoute(*r.config->FindListener(listener), v);
    return route ? route->name : std::string("<none>");
  };
  EXPECT_EQ(select("web", "a.wild.io", "/x"), "ingress");
  EXPECT_EQ(select("web", "a.b.wild.io", "/x"), "gateway");  // two labels: only the Gateway-style route
  EXPECT_EQ(select("web2", "a.b.wild.io", "/"), "<none>");
  EXPECT_EQ(select("web2", "A.Wild.IO:80", "/"), "ingress-only");
  EXPECT_EQ(select("web2", "wild.io", "/"), "<none>");
}

TEST(RouterTest, HostValues) {
  for (const char* ok : {"", "a", "example.com", "example.com:8080", "127.0.0.1:80", "[::1]", "[fd00::1]:443",
                         "xn--bcher-kva.example", "a_b.example", "example.com:"}) {
    EXPECT_TRUE(ValidHost(ok)) << ok;
  }
  for (const char* bad : {"a b", "a@b", "a/b", "a:b:c", "[::1", "[::1]x", "[::g]", "a:8o", "a\tb", "a\"b", "a?b", "a#b",
                          ":80", ":", "[]", "[]:80"}) {
    EXPECT_FALSE(ValidHost(bad)) << bad;
  }
}

TEST(RouterTest, PathsAreNormalisedBeforeRouting) {
  std::string out;
  for (const char* normal : {"/", "/a/b", "/a/b/", "/.well-known/x", "/a/..b/c.", "/%2F", "/a%2Fb", "/x%20y", "/a/b.c/"}) {
    EXPECT_FALSE(NormalizePath(normal, &out)) << normal;
  }
  const std::pair<const char*, const char*> cases[] = {
      {"/public/../admin", "/admin"},   {"/a/./b", "/a/b"},          {"/a/b/..", "/a/"},
      {"/a/b/.", "/a/b/"},              {"/..", "/"},                {"/../../x", "/x"},
      {"/a/%2e%2E/b", "/b"},            {"/%2E", "/"},               {"/a/%7euser", "/a/~user"},
      {"/a/%41", "/a/A"},               {"/bar/..%2Fexact", "/bar/..%2Fexact"},  // %2F is data
      {"/a/b/../../../c/", "/c/"},
      // Repeated slashes are merged (nginx does, by default): "//admin" is "/admin".
      {"//admin", "/admin"},            {"/a//b", "/a/b"},           {"/a///b//", "/a/b/"},
      {"//", "/"},                      {"///", "/"},                {"/a/.//b", "/a/b"},
      {"//..//admin", "/admin"},        {"/%2F/x", "/%2F/x"},
      // Escapes kept get upper-case hex (RFC 3986 §6.2.2.1): "%2f" and "%2F" route alike.
      {"/a%2fb", "/a%2Fb"},             {"/caf%c3%a9", "/caf%C3%A9"}, {"/%2e%2fx", "/.%2Fx"},
  };
  for (const auto& [in, want] : cases) {
    out.clear();
    const bool changed = NormalizePath(in, &out);
    EXPECT_EQ(changed ? out : std::string(in), want) << in;
  }
}

// A "%" that is not an escape is refused before normalisation: decoding once around it could
// build a new escape ("/%%361dmin" → "/%61dmin"), and a backend decoding again would serve
// "/admin" to a request routed as another path (found by tests/fuzz/path_fuzz.cc).
TEST(RouterTest, InvalidPercentEncodingIsRecognised) {
  for (const char* bad : {"/%", "/a%", "/a%4", "/%%361dmin", "/%zz", "/%4g", "/100%/x"}) {
    EXPECT_TRUE(HasInvalidPercentEncoding(bad)) << bad;
  }
  for (const char* ok : {"/", "/%41", "/a%2Fb", "/%25", "/%2e%2E/x", "/x%20y%7E"}) {
    EXPECT_FALSE(HasInvalidPercentEncoding(ok)) << ok;
  }
}

TEST(RouterTest, DotSegmentsWithParametersAreRecognised) {
  for (const char* bad : {"/x/..;/admin", "/admin/..;/public", "/.;/a", "/a/..;x=1", "/a/%2e%2E;/b", "/a/%2E;p/b"}) {
    EXPECT_TRUE(HasDotSegmentWithParams(bad)) << bad;
  }
  for (const char* ok : {"/admin;x", "/a/...;/b", "/a/..b;/c", "/a;jsessionid=1/b", "/a/../b", "/.well-known;x/y"}) {
    EXPECT_FALSE(HasDotSegmentWithParams(ok)) << ok;
  }
}

TEST(RouterTest, PathParametersAreNotPartOfTheRoutingPath) {
  std::string out;
  EXPECT_FALSE(RoutingPathWithoutParams("/admin/x", &out));
  const std::pair<const char*, const char*> cases[] = {
      {"/admin;x", "/admin"},                 {"/admin;jsessionid=ABC/list", "/admin/list"},
      {"/x/..;/admin", "/admin"},             {"/x/..;a=b/admin/", "/admin/"},
      {"/.;/admin", "/admin"},                {"/a;p/b;q=1;r", "/a/b"},
      {"/;x", "/"},                           {"/a/%2e%2e;/b", "/b"},
  };
  for (const auto& [in, want] : cases) {
    out.clear();
    ASSERT_TRUE(RoutingPathWithoutParams(in, &out)) << in;
    EXPECT_EQ(out, want) << in;
  }
}

// Snapshot.host_owners: a host another namespace owns is not taken by this namespace's wildcard
// or any-host routes (ingress-nginx serves a named host from its own server block only), while
// the owner's own fallbacks still serve its unmatched paths.
TEST(RouterTest, AnotherNamespacesHostIsNotTakenByAWildcardOrCatchAll) {
  v1::Snapshot s;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
    listeners {
      name: "http-80" port: 80 protocol: HTTP
      routes: "a/shop/exact" routes: "b/wild/any-sub" routes: "a/shop/own-wild" routes: "b/catch/all" routes: "a/shop/catch"
    }
    routes { name: "a/shop/exact" listener: "http-80" owner { namespace: "a" } match { hosts: "shop.example.com" path { type: PREFIX value: "/cart" } } }
    routes { name: "b/wild/any-sub" listener: "http-80" owner { namespace: "b" } match { hosts: "*.example.com" } }
    routes { name: "a/shop/own-wild" listener: "http-80" owner { namespace: "a" } match { hosts: "*.shop.example.com" wildcard_one_label: true } }
    routes { name: "b/catch/all" listener: "http-80" owner { namespace: "b" } match { path { type: PREFIX value: "/login" } } }
    routes { name: "a/shop/catch" listener: "http-80" owner { namespace: "a" } match { path { type: PREFIX value: "/help" } } }
    host_owners { host: "shop.example.com" namespace: "a" }
    host_owners { host: "*.example.com" namespace: "b" }
    host_owners { host: "*.shop.example.com" namespace: "a" wildcard_one_label: true }
    host_owners { host: "bonly.test" namespace: "b" }
  )pb",
                                                            &s));
  auto r = Compile(s, 1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  const Listener& l = *r.config->FindListener("http-80");
  struct Case {
    const char* host;
    const char* target;
    const char* want;
  };
  const Case cases[] = {
      {"shop.example.com", "/cart/1", "a/shop/exact"},
      {"Shop.Example.com.:80", "/other", "<none>"},       // b's wildcard does not take a's host
      {"shop.example.com", "/login", "<none>"},           // nor b's host-less route
      {"shop.example.com", "/help", "a/shop/catch"},      // a's own host-less route does
      {"x.shop.example.com", "/", "a/shop/own-wild"},     // a's one-label wildcard
      {"x.shop.example.com", "/login", "a/shop/own-wild"},
      {"y.x.shop.example.com", "/", "b/wild/any-sub"},    // not a's (one label): b's wildcard
      {"blog.example.com", "/", "b/wild/any-sub"},        // b's own
      {"blog.example.com", "/help", "b/wild/any-sub"},    // a's host-less route ranks after b's wildcard
      {"bonly.test", "/login", "b/catch/all"},            // b's host: b's host-less route
      {"bonly.test", "/help", "<none>"},                  // not a's
      {"unowned.test", "/login", "b/catch/all"},           // nobody's host: everyone's routes
      {"unowned.test", "/help", "a/shop/catch"},
  };
  for (const auto& c : cases) EXPECT_EQ(SelectName(l, "GET", c.host, c.target, {}), c.want) << c.host << c.target;
}

TEST(RouterTest, HostOwnershipFindsTheMostSpecificOwner) {
  HostOwnership o;
  EXPECT_TRUE(o.empty());
  EXPECT_TRUE(o.Add("A.example.com", "a", false));
  EXPECT_TRUE(o.Add("*.example.com", "b", false));
  EXPECT_TRUE(o.Add("*.one.example.com", "c", true));
  EXPECT_TRUE(o.Add("a.example.com", "a", false));   // the same owner again
  EXPECT_FALSE(o.Add("a.example.com", "z", false));  // a second namespace: the first stays
  EXPECT_FALSE(o.Add("", "a", false));
  EXPECT_FALSE(o.Add("x.test", "", false));
  EXPECT_FALSE(o.Add("*", "a", false));
  EXPECT_EQ(o.OwnerOf("a.example.com"), "a");
  EXPECT_EQ(o.OwnerOf("z.example.com"), "b");
  EXPECT_EQ(o.OwnerOf("deep.z.example.com"), "b");
  EXPECT_EQ(o.OwnerOf("x.one.example.com"), "c");
  EXPECT_EQ(o.OwnerOf("y.x.one.example.com"), "b");  // c's covers one label only
  EXPECT_EQ(o.OwnerOf("example.com"), "");
  EXPECT_EQ(o.OwnerOf(".example.com"), "");
  EXPECT_EQ(o.OwnerOf("a..example.com"), "");
  EXPECT_EQ(o.OwnerOf("other.test"), "");
  EXPECT_TRUE(o.HasOwnerOtherThan("a"));
  HostOwnership single;
  single.Add("x.test", "a", false);
  EXPECT_FALSE(single.HasOwnerOtherThan("a"));
  EXPECT_TRUE(single.HasOwnerOtherThan("b"));
}

// Garbage in host_owners does not refuse the snapshot: the entry is skipped with a warning.
TEST(RouterTest, MalformedHostOwnersAreSkippedWithAWarning) {
  v1::Snapshot s;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
    listeners { name: "http-80" port: 80 protocol: HTTP routes: "b/x/any" }
    routes { name: "b/x/any" listener: "http-80" owner { namespace: "b" } }
    host_owners { host: "a.test" namespace: "a" }
    host_owners { host: "a.test" namespace: "c" }
    host_owners { host: "" namespace: "a" }
  )pb",
                                                            &s));
  auto r = Compile(s, 1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.warnings.size(), 2u);
  const Listener& l = *r.config->FindListener("http-80");
  EXPECT_EQ(SelectName(l, "GET", "a.test", "/", {}), "<none>");
  EXPECT_EQ(SelectName(l, "GET", "b.test", "/", {}), "b/x/any");
}

}  // namespace
}  // namespace doorman::dataplane
