#include "dataplane/l7/http_proxy.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <array>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <type_traits>
#include <optional>
#include <random>
#include <vector>

#include "common/log.h"
#include "dataplane/l4/tcp_proxy.h"
#include "dataplane/l7/access_log.h"
#include "dataplane/l7/filters.h"
#include "dataplane/l7/header_rewrite.h"
#include "dataplane/l7/l7_options.h"
#include "dataplane/l7/policy.h"
#include "dataplane/l7/tls_context.h"
#include "dataplane/server/connect.h"
#include "dataplane/server/worker.h"

namespace doorman::dataplane {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using Stream = beast::basic_stream<tcp, Executor>;
using TlsStream = beast::ssl_stream<Stream>;
using RequestParser = http::request_parser<http::buffer_body>;
using ResponseParser = http::response_parser<http::buffer_body>;

constexpr std::size_t kRelayBuffer = 16 * 1024;
constexpr unsigned kClientClosedRequest = 499;  // nginx's convention, for metrics only

// The client address as the schedulers and SourceIP stickiness key it: raw address bytes, the
// same key the L4 proxy uses, so L4 and L7 routes hash a client alike.
uint64_t ClientAddressHash(const boost::asio::ip::address& a) {
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return lb::HashKey(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  }
  const auto b = a.to_v6().to_bytes();
  return lb::HashKey(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

int64_t SteadyMs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Adapts Beast's fields to the router's header lookup.
class BeastHeaders final : public RequestHeaders {
 public:
  explicit BeastHeaders(const http::fields& f) : f_(f) {}
  std::optional<std::string_view> Get(std::string_view lower_name) const override {
    auto it = f_.find(lower_name);
    if (it == f_.end()) return std::nullopt;
    return std::string_view(it->value().data(), it->value().size());
  }

 private:
  const http::fields& f_;
};

// One X-Request-Id generator per worker thread (sessions never migrate between threads).
RequestIdGenerator& RequestIds() {
  thread_local RequestIdGenerator gen(std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32));
  return gen;
}

// Open client connections per L7 listener name, shared by every worker (touched only on accept
// and close, never per request).
std::shared_ptr<std::atomic<int64_t>> ConnectionCounter(const std::string& listener) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<std::atomic<int64_t>>> counters;
  std::lock_guard lock(mu);
  auto& c = counters[listener];
  if (!c) c = std::make_shared<std::atomic<int64_t>>(0);
  return c;
}

// Per-worker (thread_local) policy state: canary dice and passive outlier detection. Each worker
// ejects endpoints from what it observes itself.
uint32_t CanaryDice() {
  thread_local std::minstd_rand rng(std::random_device{}());
  return static_cast<uint32_t>(rng() % 100);
}
OutlierDetector& Outliers() {
  thread_local OutlierDetector detector;
  return detector;
}
std::atomic<int64_t> g_retries_in_flight{0};

bool IEq(std::string_view a, std::string_view b) { return beast::iequals(a, b); }

// Framing ambiguities Beast's parser lets through but a proxy must refuse (request smuggling,
// RFC 9112 §6): returns why, or "" when the request is safe to forward.
std::string SmugglingRisk(const http::request_header<>& h) {
  std::size_t content_lengths = 0, transfer_encodings = 0;
  std::string_view te;
  for (const auto& f : h) {
    const std::string_view v(f.value().data(), f.value().size());
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) return "CR, LF or NUL in a field value";
    if (f.name() == http::field::content_length) {
      ++content_lengths;
      if (v.empty() || v.find_first_not_of("0123456789") != std::string_view::npos) return "invalid Content-Length";
    }
    if (f.name() == http::field::transfer_encoding) {
      ++transfer_encodings;
      te = v;
    }
  }
  if (content_lengths > 1) return "more than one Content-Length";
  if (transfer_encodings > 0) {
    if (content_lengths > 0) return "both Content-Length and Transfer-Encoding";
    if (transfer_encodings > 1 || !IEq(te, "chunked")) return "Transfer-Encoding other than a single \"chunked\"";
    if (h.version() < 11) return "Transfer-Encoding in an HTTP/1.0 request";
  }
  return "";
}

bool IsHttpParseError(const error_code& ec) {
  if (ec.category() != http::make_error_code(http::error::bad_method).category()) return false;
  return ec != http::error::end_of_stream && ec != http::error::partial_message && ec != http::error::need_buffer &&
         ec != http::error::need_more;
}

struct RelayOutcome {
  error_code ec;
  bool input_failed = false;  // the error came from the side we read from
};

// Where one exchange ended, for the metrics line.
struct Exchange {
  unsigned code = 0;
  std::string_view route;
  std::string backend;
  unsigned retries = 0;
  // Access log only (filled when it is enabled): copies, the request may be rewritten meanwhile.
  std::string method, host, path, request_id;
};

Exchange ExchangeWithCode(unsigned code) {
  Exchange x;
  x.code = code;
  return x;
}

// ClientStream: Stream (HTTP) or TlsStream (HTTPS, terminated here).
template <class ClientStream>
class HttpSession : public std::enable_shared_from_this<HttpSession<ClientStream>> {
  static constexpr bool kTls = std::is_same_v<ClientStream, TlsStream>;

 public:
  template <class... StreamArgs>
  HttpSession(Worker& w, std::string listener, std::shared_ptr<const TlsServerContext> tls, StreamArgs&&... args)
      : w_(w),
        tls_(std::move(tls)),
        client_(std::forward<StreamArgs>(args)...),
        client_timer_(w.executor()),
        listener_(std::move(listener)) {
    const int64_t cap = GetL7Options().max_connections_per_listener;
    if (cap > 0) {
      open_connections_ = ConnectionCounter(listener_);
      over_cap_ = open_connections_->fetch_add(1, std::memory_order_relaxed) + 1 > cap;
    }
    error_code ec;
    const auto ep = Lowest().socket().remote_endpoint(ec);
    if (!ec) {
      client_ip_ = ep.address().to_string();
      client_hash_ = ClientAddressHash(ep.address());
    }
    const auto config = w_.shared().config.Load();
    if (const Listener* l = config ? config->FindListener(listener_) : nullptr) client_idle_ = l->idle_timeout;
  }

  ~HttpSession() {
    if (open_connections_) open_connections_->fetch_sub(1, std::memory_order_relaxed);
    error_code ignored;
    Lowest().socket().close(ignored);
  }

  static Task<> Run(std::shared_ptr<HttpSession> self) {
    if constexpr (kTls) {
      error_code ec;
      self->Lowest().expires_after(GetL7Options().header_timeout);
      co_await self->client_.async_handshake(net::ssl::stream_base::server, Redirect(ec));
      if (ec) co_return;  // not HTTP yet: nothing to answer
    }
    for (;;) {
      if (!co_await self->ServeOne()) break;
    }
    error_code ignored;
    self->Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (self->linger_) co_await self->Linger();
  }

 private:
  // Reads one request and answers it. Returns true when the connection stays open.
  Task<bool> ServeOne() {
    const L7Options& o = GetL7Options();
    RequestParser p;
    p.header_limit(static_cast<std::uint32_t>(o.max_header_bytes));
    p.body_limit(o.max_body_bytes);
    error_code ec;
    // Keep-alive idle: wait for the first byte of the next request with the idle timeout (the
    // stream's own deadline closes the connection silently). Then the whole header must arrive
    // within the header timeout, enforced by a cancel timer so that a 408 can still be written.
    if (client_buf_.size() == 0) {
      Lowest().expires_after(client_idle_);
      const std::size_t n = co_await client_.async_read_some(client_buf_.prepare(kRelayBuffer), Redirect(ec));
      if (ec) co_return false;
      client_buf_.commit(n);
    }
    Lowest().expires_never();
    bool timer_armed = false;  // armed only if the header is not already buffered (the common case)
    co_await ReadRequestHeader(p, ec, o.header_timeout, &timer_armed);
    const bool timed_out = timer_armed && DisarmClientTimer();
    if (!ec && p.get().target().size() > o.max_request_target) ec = http::error::bad_target;
    if (!ec) {
      std::size_t fields = 0;
      for (auto it = p.get().begin(); it != p.get().end(); ++it) ++fields;
      if (fields > o.max_header_count) ec = http::error::header_limit;
    }
    if (ec) {
      unsigned status = 0;
      std::string why;
      if (timed_out) {
        status = 408;
        why = "request header not received within " + std::to_string(o.header_timeout.count()) + " ms";
      } else if (ec == http::error::header_limit) {
        status = 431;
        why = "request header larger than " + std::to_string(o.max_header_bytes) + " bytes or more than " +
              std::to_string(o.max_header_count) + " fields";
      } else if (ec == http::error::bad_target && p.is_header_done()) {
        status = 414;
        why = "request target longer than " + std::to_string(o.max_request_target) + " bytes";
      } else if (ec == http::error::body_limit) {
        status = 413;
        why = "request body larger than " + std::to_string(o.max_body_bytes) + " bytes";
      } else if (IsHttpParseError(ec)) {
        status = 400;
        why = "malformed request (" + ec.message() + ")";
      }
      if (status != 0) {
        const auto start = Clock::now();
        co_await Respond(status, why, false, 11, false);
        Record(ExchangeWithCode(status), start);
      }
      co_return false;  // EOF, reset, or an error answered above
    }
    if (over_cap_) {
      const auto start = Clock::now();
      co_await Respond(503, "connection limit (" + std::to_string(o.max_connections_per_listener) +
                                ") of listener " + listener_ + " reached", false, p.get().version(), false);
      Record(ExchangeWithCode(503), start);
      co_return false;
    }
    if (const auto why = SmugglingRisk(p.get()); !why.empty()) {
      const auto start = Clock::now();
      co_await Respond(400, "malformed request (" + why + ")", false, 11, false);
      Record(ExchangeWithCode(400), start);
      co_return false;
    }

    // Routes come from the newest config at the time the request arrived; `config` is held for
    // the whole exchange so its Listener/Route pointers stay valid.
    const auto config = w_.shared().config.Load();
    const Listener* listener = config ? config->FindListener(listener_) : nullptr;
    if (listener != nullptr) client_idle_ = listener->idle_timeout;
    w_.shared().http_in_flight.fetch_add(1, std::memory_order_relaxed);
    const auto start = Clock::now();
    Exchange x;
    bool keep = co_await Handle(p, listener, &x);
    if (answer_) {
      LocalAnswer a = std::move(*answer_);
      answer_.reset();
      keep = co_await Respond(a.status, std::move(a.why), a.keep_alive, a.version, a.head, std::move(a.extra));
    }
    Record(x, start);
    w_.shared().http_in_flight.fetch_sub(1, std::memory_order_relaxed);
    co_return keep && !w_.shared().draining.load(std::memory_order_relaxed);
  }

  Task<bool> Handle(RequestParser& p, const Listener* listener, Exchange* x) {
    auto& req = p.get();
    const unsigned version = req.version();
    const bool head = req.method() == http::verb::head;
    const bool client_keep_alive = req.keep_alive();  // before the hop-by-hop fields are stripped
    // A local answer is recorded here and written by ServeOne (not co_awaited inside this
    // function: g++ 12 mis-destroys temporaries in some co_await full-expressions).
    // A body we did not read makes the connection unusable: close after a local answer.
    auto local = [&](unsigned status, std::string why, bool keep) {
      x->code = status;
      answer_ = LocalAnswer{status, std::move(why), keep && p.is_done() && client_keep_alive, version, head, {}};
      return false;
    };
    auto local_with = [&](unsigned status, std::string why, std::vector<std::pair<std::string, std::string>> extra) {
      x->code = status;
      answer_ = LocalAnswer{status, std::move(why), p.is_done() && client_keep_alive, version, head, std::move(extra)};
      return false;
    };

    std::string_view path, query, authority;
    SplitTarget(req.target(), &path, &query, &authority);
    if (AccessLogEnabled()) {
      const auto m = req.method_string();
      x->method.assign(m.data(), m.size());
      x->path.assign(path.substr(0, 2048));
      if (auto h = req.find(http::field::host); h != req.end()) x->host.assign(h->value().data(), std::min<std::size_t>(h->value().size(), 256));
    }
    if (path.empty() || (path.front() != '/' && path != "*")) co_return local(400, "invalid request target", false);
    if (req.count(http::field::host) > 1) co_return local(400, "more than one Host header", false);
    const auto host_it = req.find(http::field::host);
    if (version >= 11 && host_it == req.end()) co_return local(400, "missing Host header", false);
    const std::string_view host_header =
        host_it == req.end() ? std::string_view() : std::string_view(host_it->value().data(), host_it->value().size());
    const std::string_view host = authority.empty() ? host_header : authority;
    if (listener == nullptr) co_return local(503, "listener " + listener_ + " was removed", false);

    BeastHeaders headers(req.base());
    RequestView view;
    const auto method = req.method_string();
    view.method = std::string_view(method.data(), method.size());
    view.host = host;
    view.path = path;
    view.query = query;
    view.headers = &headers;
    const Route* route = SelectRoute(*listener, view);
    if (route == nullptr) {
      co_return local(404, "no route for host \"" + Clip(host) + "\" path \"" + Clip(path) + "\"", true);
    }
    x->route = route->name;
    if (route->redirect.enabled) {
      co_return local_with(route->redirect.status, "redirecting",
                           {{"Location", RedirectLocation(route->redirect, kTls ? "https" : "http", host, path, query)}});
    }
    const auto now = Clock::now();
    if (route->rate_limiter) {
      std::string_view key = client_ip_;
      if (!route->rate_limit_header.empty()) key = headers.Get(route->rate_limit_header).value_or("");
      uint32_t retry_after = 1;
      if (!route->rate_limiter->Allow(key, now, &retry_after)) {
        w_.metrics().L7Count(L7Event::kRateLimited, listener_, route->name, "").Increment();
        co_return local_with(429, "rate limit of route \"" + route->name + "\" exceeded",
                             {{"Retry-After", std::to_string(retry_after)}});
      }
    }
    // Backend group (canary or main), then the sticky endpoint when the cookie names a current
    // one, else the scheduler's pick skipping ejected endpoints.
    const auto cookie_header = headers.Get("cookie");
    bool use_canary = false;
    if (route->canary.enabled) {
      const auto hv = route->canary.header_lower.empty() ? std::nullopt : headers.Get(route->canary.header_lower);
      const auto cv = route->canary.cookie.empty() || !cookie_header ? std::nullopt
                                                                      : FindCookie(*cookie_header, route->canary.cookie);
      use_canary = UseCanary(route->canary, hv, cv, CanaryDice()) && route->eligible_endpoints(true) > 0;
    }
    const Endpoint* ep = nullptr;
    const Endpoint* sticky_ep = nullptr;  // the endpoint the client's cookie already names
    if (!route->sticky_cookie.empty() && cookie_header) {
      if (const auto v = FindCookie(*cookie_header, route->sticky_cookie)) {
        if (const auto h = ParseStickyCookieValue(*v)) {
          const auto& index = use_canary ? route->sticky_canary : route->sticky_main;
          if (auto it = index.find(*h); it != index.end() && !Outliers().Ejected(it->second->key, now)) {
            ep = sticky_ep = it->second;
          }
        }
      }
    }
    if (ep == nullptr && route->sticky && !use_canary) {
      // Stickiness SourceIP: the endpoint this client address was given last (shared with L4).
      ep = route->PickSticky(lb::PickContext{client_hash_, 0}, SteadyMs(now));
      if (ep != nullptr && Outliers().Ejected(ep->key, now)) ep = nullptr;
    }
    if (ep == nullptr) ep = PickHealthy(*route, use_canary, {}, now, client_hash_);
    if (ep == nullptr) co_return local(503, "no ready endpoint for route \"" + route->name + "\"", true);
    const bool retryable = route->retry_attempts > 0 && IsIdempotentMethod(view.method) && p.is_done();
    uint32_t retries = 0;
    struct RetryGuard {
      uint32_t* n;
      ~RetryGuard() { g_retries_in_flight.fetch_sub(*n, std::memory_order_relaxed); }
    } retry_guard{&retries};
    // Whether the policy allows one more try now (counts it when it does).
    auto may_retry = [&]() {
      if (!retryable || retries >= route->retry_attempts) return false;
      if (!RetryBudgetAllows(w_.shared().http_in_flight.load(std::memory_order_relaxed),
                             g_retries_in_flight.load(std::memory_order_relaxed))) {
        return false;
      }
      ++retries;
      x->retries = retries;
      g_retries_in_flight.fetch_add(1, std::memory_order_relaxed);
      w_.metrics().L7Count(L7Event::kRetry, listener_, route->name, "").Increment();
      return true;
    };

    const bool has_body = !p.is_done();
    std::string origin_target;
    if (!authority.empty()) {
      origin_target.assign(path);
      if (!query.empty()) origin_target.append("?").append(query);
    }
    const std::string original_host(host);
    ForwardedInfo fwd;
    fwd.client_ip = client_ip_;
    fwd.proto = kTls ? "https" : "http";
    fwd.host = original_host;
    fwd.authority = authority.empty() ? std::string_view() : original_host;
    fwd.origin_target = origin_target;
    fwd.forwarded_for = route->forwarded_for;
    fwd.trusted = !route->trusted_proxies.empty() && AnyContains(route->trusted_proxies, client_ip_);
    const std::string listener_port = std::to_string(listener->port);
    fwd.port = listener_port;
    std::string request_id;
    if (fwd.trusted) {
      if (auto it = req.find("X-Request-Id"); it != req.end() && ValidRequestId(it->value())) {
        request_id.assign(it->value().data(), it->value().size());
      }
    }
    if (request_id.empty()) request_id = RequestIds().Next();
    fwd.request_id = request_id;
    if (AccessLogEnabled()) x->request_id = request_id;
    std::string rewritten_target;
    if (route->rewrite.enabled && !route->rewrite.path_prefix.empty()) {
      const std::string_view matched =
          route->match.path.type == PathMatcher::Type::kAny ? std::string_view() : std::string_view(route->match.path.value);
      rewritten_target = RewritePathPrefix(path, matched, route->rewrite.path_prefix);
      if (!query.empty()) rewritten_target.append("?").append(query);
    }
    // An Upgrade (WebSocket) request keeps its Upgrade/Connection fields upstream; after a 101
    // the connection becomes a byte tunnel.
    std::string upgrade;
    if (auto up_it = req.find(http::field::upgrade); up_it != req.end() && version >= 11) {
      for (const auto& f : req) {
        if (f.name() != http::field::connection) continue;
        for (const auto token : http::token_list{f.value()}) {
          if (IEq(std::string_view(token.data(), token.size()), "upgrade")) upgrade.assign(up_it->value().data(), up_it->value().size());
        }
      }
    }
    const bool expect_continue = PrepareUpstreamRequest(req.base(), fwd);
    if (!upgrade.empty()) {
      req.set(http::field::upgrade, upgrade);
      req.set(http::field::connection, "Upgrade");
    }
    if (!rewritten_target.empty()) req.target(rewritten_target);
    if (route->rewrite.enabled && !route->rewrite.host.empty()) req.set(http::field::host, route->rewrite.host);
    if (!route->request_headers.empty()) ApplyHeaderRules(req.base(), route->request_headers);
    const Millis op_timeout = route->idle_timeout.count() > 0 ? route->idle_timeout : client_idle_;

    std::vector<const Endpoint*> tried;
    bool sent_continue = false;
    bool force_fresh = false;
    for (int attempt = 0;; ++attempt) {
      // 1. An upstream connection: an idle pooled one, or a fresh one (next endpoint on failure).
      bool reused = false;
      std::optional<Stream> up;
      if (!force_fresh) {
        if (auto pooled = w_.pool().Take(ep->key)) {
          up.emplace(std::move(*pooled));
          reused = true;
        }
      }
      while (!up) {
        if (!force_fresh && !tried.empty()) {  // failing over: the next endpoint may have an idle one
          if (auto pooled = w_.pool().Take(ep->key)) {
            up.emplace(std::move(*pooled));
            reused = true;
            break;
          }
        }
        error_code cec;
        Socket s = co_await ConnectTo(w_.executor(), *ep, route->connect_timeout, cec);
        if (!cec) {
          up.emplace(std::move(s));
          break;
        }
        tried.push_back(ep);
        log::Debug("l7", "connect to backend failed",
                   {{"route", route->name}, {"backend", ep->key}, {"error", IsTimeout(cec) ? "timeout" : cec.message()}});
        w_.metrics().L7Count(L7Event::kConnectFailure, listener_, route->name, ep->key).Increment();
        NoteFailure(*route, *ep);
        ep = NextUntried(*route, use_canary, tried);
        if (ep == nullptr) {
          x->backend = tried.back()->key;
          const bool timed_out = IsTimeout(cec);
          std::string why = "cannot connect to a backend of route \"" + route->name + "\" (";
          why += timed_out ? std::string("timeout") : cec.message();
          why += ")";
          co_return local(timed_out ? 504 : 502, std::move(why), true);
        }
      }
      x->backend = ep->key;

      // 2. Send the request (header, then the body streamed from the client).
      if (expect_continue && has_body && !sent_continue) {
        static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
        error_code wec;
        Lowest().expires_after(op_timeout);
        co_await net::async_write(client_, net::buffer(k100.data(), k100.size()), Redirect(wec));
        if (wec) {
          x->code = kClientClosedRequest;
          co_return false;
        }
        sent_continue = true;
      }
      RelayOutcome sent;
      if (p.is_done()) {
        // Fast path (no body): our own head serialisation, one write (PERFORMANCE-NOTES.md).
        SerializeHead(req.base(), &head_buf_);
        up->expires_after(op_timeout);
        co_await net::async_write(*up, net::buffer(head_buf_), Redirect(sent.ec));
      } else {
        sent = co_await Relay(client_, client_buf_, p, *up, op_timeout, false);
      }
      if (sent.ec) {
        if (sent.input_failed) {
          if (sent.ec == http::error::body_limit) co_return local(413, "request body too large", false);
          if (sent.ec == beast::error::timeout) co_return local(408, "request body not received in time", false);
          if (IsHttpParseError(sent.ec)) co_return local(400, "malformed request body (" + sent.ec.message() + ")", false);
          x->code = kClientClosedRequest;
          co_return false;
        }
        if (reused && !has_body && attempt == 0) {  // the backend closed a pooled connection: retry once
          force_fresh = true;
          continue;
        }
        co_return local(IsTimeout(sent.ec) ? 504 : 502, "backend write failed (" + sent.ec.message() + ")", true);
      }

      // 3. The response header (interim 1xx responses are consumed here, not forwarded).
      beast::flat_buffer up_buf;
      std::optional<ResponseParser> rp;
      error_code rec;
      for (;;) {
        rp.emplace();
        rp->header_limit(static_cast<std::uint32_t>(kMaxResponseHeaderBytes));
        rp->body_limit(std::numeric_limits<std::uint64_t>::max());  // boost::none is broken in Beast 1.74
        if (head) rp->skip(true);
        up->expires_after(route->per_try_timeout.count() > 0 ? route->per_try_timeout : route->request_timeout);
        co_await http::async_read_header(*up, up_buf, *rp, Redirect(rec));
        if (rec || rp->get().result_int() / 100 != 1 || rp->get().result_int() == 101) break;
      }
      if (rec) {
        if (reused && !has_body && attempt == 0 && up_buf.size() == 0 &&
            (rec == http::error::end_of_stream || rec == net::error::connection_reset || rec == net::error::eof)) {
          force_fresh = true;
          continue;
        }
        NoteFailure(*route, *ep);
        const bool timed_out = IsTimeout(rec);
        if ((timed_out ? route->retry_on.status_504 : route->retry_on.reset) && may_retry()) {
          tried.push_back(ep);
          if (const Endpoint* next = NextUntried(*route, use_canary, tried)) ep = next;
          force_fresh = false;
          continue;
        }
        if (timed_out) co_return local(504, "backend did not answer within the request timeout", true);
        co_return local(502, "invalid or no response from backend (" + rec.message() + ")", true);
      }
      if (const unsigned code = rp->get().result_int(); code >= 500) {
        NoteFailure(*route, *ep);
        if (route->retry_on.Status(code) && may_retry()) {
          tried.push_back(ep);
          if (const Endpoint* next = NextUntried(*route, use_canary, tried)) ep = next;
          force_fresh = false;
          continue;  // `up` is dropped: the unread response body makes it unusable
        }
      } else {
        Outliers().OnSuccess(ep->key);
      }
      if (rp->get().result_int() == 101) {
        if (upgrade.empty()) co_return local(502, "backend switched protocols without an Upgrade request", false);
        x->code = 101;
        Outliers().OnSuccess(ep->key);
        co_await Tunnel(std::move(*up), up_buf, *rp, op_timeout);
        co_return false;
      }

      // 4. The response, streamed to the client.
      auto& res = rp->get();
      const unsigned status = res.result_int();
      bool upstream_reusable = res.keep_alive();
      StripHopByHop(res.base());
      if (!route->response_headers.empty()) ApplyHeaderRules(res.base(), route->response_headers);
      if (!route->sticky_cookie.empty() && ep != sticky_ep) {
        res.insert(http::field::set_cookie,
                   StickySetCookie(route->sticky_cookie, StickyCookieValue(StickyHash(route->name, ep->key)),
                                   route->sticky_ttl, kTls));
      }
      const bool header_only = head || status == 204 || status == 304;
      bool keep = client_keep_alive && !w_.shared().draining.load(std::memory_order_relaxed);
      if (!header_only && !rp->is_done() && !res.has_content_length() && !res.chunked()) {
        // Body delimited by the backend closing: re-frame as chunked for HTTP/1.1 clients.
        upstream_reusable = false;
        if (version >= 11) {
          res.chunked(true);
        } else {
          keep = false;
        }
      }
      if (version < 11 && res.chunked()) {
        res.chunked(false);
        keep = false;
      }
      res.version(11);
      if (!keep) {
        res.set(http::field::connection, "close");
      } else if (version < 11) {
        res.set(http::field::connection, "keep-alive");
      }
      x->code = status;
      // Fast path: a Content-Length body already fully buffered goes out with our own head
      // serialisation in one gather write.
      if (const auto len = rp->content_length();
          !header_only && !res.chunked() && len && *len <= up_buf.size() && *len <= kRelayBuffer) {
        SerializeHead(res.base(), &head_buf_);
        const std::array<net::const_buffer, 2> bufs{net::buffer(head_buf_),
                                                    net::buffer(up_buf.data().data(), static_cast<std::size_t>(*len))};
        error_code wec;
        Lowest().expires_after(op_timeout);
        co_await net::async_write(client_, bufs, Redirect(wec));
        up_buf.consume(static_cast<std::size_t>(*len));
        if (wec) {
          x->code = kClientClosedRequest;
          co_return false;
        }
        if (upstream_reusable && up_buf.size() == 0) {
          up->expires_never();
          w_.pool().Put(ep->key, up->release_socket());
        }
        co_return keep;
      }
      const RelayOutcome got = co_await Relay(*up, up_buf, *rp, client_, op_timeout, header_only);
      if (got.ec) {
        // The response was (partly) sent: all we can do is close both sides.
        if (!got.input_failed) x->code = kClientClosedRequest;
        log::Debug("l7", "response relay failed", {{"route", route->name}, {"backend", ep->key}, {"error", got.ec.message()}});
        co_return false;
      }
      if (upstream_reusable && rp->is_done() && up_buf.size() == 0) {
        up->expires_never();
        w_.pool().Put(ep->key, up->release_socket());
      }
      co_return keep;
    }
  }

  // After a 101: forwards the response head, then copies bytes both ways until either side
  // closes or a direction stays idle for `idle` (route idle timeout, else the listener's). Snapshot
  // updates do not touch an open tunnel.
  Task<void> Tunnel(Stream upstream_stream, beast::flat_buffer& up_buf, ResponseParser& rp, Millis idle) {
    auto upstream = std::make_shared<Stream>(std::move(upstream_stream));
    error_code ec;
    http::response_serializer<http::buffer_body> sr{rp.get()};
    Lowest().expires_after(idle);
    co_await http::async_write_header(client_, sr, Redirect(ec));
    if (ec) co_return;
    // Backend → client in its own coroutine (keeps the session alive); client → backend here.
    auto self = this->shared_from_this();
    std::string pending(static_cast<const char*>(up_buf.data().data()), up_buf.size());
    net::co_spawn(
        w_.executor(),
        [self, upstream, pending = std::move(pending), idle]() mutable -> Task<void> {
          co_await Pipe(*upstream, self->client_, std::move(pending), idle, self->up_relay_buf_);
          error_code ignored;
          upstream->socket().close(ignored);
          self->Lowest().socket().cancel(ignored);  // ends the other direction's read
          self->Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
        },
        net::detached);
    std::string from_client(static_cast<const char*>(client_buf_.data().data()), client_buf_.size());
    client_buf_.consume(client_buf_.size());
    co_await Pipe(client_, *upstream, std::move(from_client), idle, relay_buf_);
    error_code ignored;
    upstream->socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  template <class In, class Out>
  static Task<void> Pipe(In& in, Out& out, std::string pending, Millis idle, std::array<char, kRelayBuffer>& buf) {
    error_code ec;
    if (!pending.empty()) {
      beast::get_lowest_layer(out).expires_after(idle);
      co_await net::async_write(out, net::buffer(pending), Redirect(ec));
      if (ec) co_return;
    }
    for (;;) {
      beast::get_lowest_layer(in).expires_after(idle);
      const std::size_t n = co_await in.async_read_some(net::buffer(buf), Redirect(ec));
      if (ec) co_return;
      beast::get_lowest_layer(out).expires_after(idle);
      co_await net::async_write(out, net::buffer(buf.data(), n), Redirect(ec));
      if (ec) co_return;
    }
  }

  // "HTTP/1.1 200 OK\r\n" / "GET /x HTTP/1.1\r\n" + fields + "\r\n" into *out (reused buffer).
  template <bool isRequest>
  static void SerializeHead(const http::header<isRequest, http::fields>& h, std::string* out) {
    out->clear();
    if constexpr (isRequest) {
      const auto m = h.method_string();
      const auto t = h.target();
      out->append(m.data(), m.size()).append(" ").append(t.data(), t.size()).append(" HTTP/1.1\r\n");
    } else {
      out->append("HTTP/1.1 ").append(std::to_string(h.result_int())).append(" ");
      const auto r = h.reason();
      if (r.empty()) {
        const auto dr = http::obsolete_reason(h.result());
        out->append(dr.data(), dr.size());
      } else {
        out->append(r.data(), r.size());
      }
      out->append("\r\n");
    }
    for (const auto& f : h) {
      const auto n = f.name_string();
      const auto v = f.value();
      out->append(n.data(), n.size()).append(": ").append(v.data(), v.size()).append("\r\n");
    }
    out->append("\r\n");
  }

  void NoteFailure(const Route& route, const Endpoint& ep) {
    if (Outliers().OnFailure(ep.key, Clock::now())) {
      w_.metrics().L7Count(L7Event::kEjection, listener_, route.name, ep.key).Increment();
      log::Info("l7", "endpoint ejected by outlier detection", {{"route", route.name}, {"backend", ep.key}});
    }
  }

  // The scheduler's next endpoint not in `tried` and not ejected; if every candidate is ejected,
  // the first untried one (never fail a request only because of ejections: panic mode).
  // `client_hash` feeds source-hash / maglev; each further attempt re-hashes it so a hashing
  // scheduler can move past an endpoint that was tried or ejected (as the L4 proxy does).
  static const Endpoint* PickHealthy(const Route& route, bool canary, const std::vector<const Endpoint*>& tried,
                                     Clock::time_point now, uint64_t client_hash) {
    const Endpoint* fallback = nullptr;
    const std::size_t n = route.eligible_endpoints(canary);
    lb::PickContext ctx{client_hash, 0};
    for (std::size_t i = 0; i < 2 * n + 1; ++i) {
      if (i > 0) ctx.hash = lb::Rehash(ctx.hash, i);
      const Endpoint* e = route.PickEndpoint(ctx, canary);
      if (e == nullptr) return nullptr;
      if (std::find(tried.begin(), tried.end(), e) != tried.end()) continue;
      if (!Outliers().Ejected(e->key, now)) return e;
      if (fallback == nullptr) fallback = e;
    }
    return fallback;
  }

  static const Endpoint* NextUntried(const Route& route, bool canary, const std::vector<const Endpoint*>& tried) {
    if (tried.size() >= std::min(route.eligible_endpoints(canary), kMaxConnectAttempts)) return nullptr;
    return PickHealthy(route, canary, tried, Clock::now(), 0);
  }

  // Streams a message whose header was read by `p` from `in` to `out`, as Beast's relay example
  // does: the serializer re-frames the body (chunked or Content-Length) from the header fields.
  template <bool isRequest, class In, class Out>
  Task<RelayOutcome> Relay(In& in, beast::flat_buffer& in_buf, http::parser<isRequest, http::buffer_body>& p,
                           Out& out, Millis op_timeout, bool header_only) {
    http::serializer<isRequest, http::buffer_body> sr{p.get()};
    error_code ec;
    if (header_only) {
      beast::get_lowest_layer(out).expires_after(op_timeout);
      co_await http::async_write_header(out, sr, Redirect(ec));
      co_return RelayOutcome{ec, false};
    }
    do {
      if (!p.is_done()) {
        p.get().body().data = relay_buf_.data();
        p.get().body().size = relay_buf_.size();
        if constexpr (isRequest) {  // the client's body: a 408 must stay possible
          beast::get_lowest_layer(in).expires_never();
          ArmClientTimer(std::min(op_timeout, GetL7Options().body_timeout));
        } else {
          beast::get_lowest_layer(in).expires_after(op_timeout);
        }
        co_await http::async_read_some(in, in_buf, p, Redirect(ec));
        if constexpr (isRequest) {
          if (DisarmClientTimer()) ec = beast::error::timeout;
        }
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return RelayOutcome{ec, true};
        const std::size_t got = relay_buf_.size() - p.get().body().size;
        // Nothing to forward yet (e.g. only a chunk header arrived): an empty piece would make
        // the serializer emit a zero-size chunk, which ends a chunked body early.
        if (got == 0 && !p.is_done()) continue;
        p.get().body().size = got;
        // An empty last piece must carry no buffer at all, or the serializer writes an empty
        // chunk ("0\r\n\r\n") before the real last chunk.
        p.get().body().data = got == 0 ? nullptr : relay_buf_.data();
        p.get().body().more = !p.is_done();
      } else {
        p.get().body().data = nullptr;
        p.get().body().size = 0;
        p.get().body().more = false;  // buffer_body defaults to "more to come"
      }
      beast::get_lowest_layer(out).expires_after(op_timeout);
      co_await http::async_write(out, sr, Redirect(ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return RelayOutcome{ec, false};
    } while (!p.is_done() && !sr.is_done());
    co_return RelayOutcome{};
  }

  // A short text/plain answer of the proxy's own. Returns whether the connection stays open.
  // Reads until a whole request header is in client_buf_, checks its raw bytes for what Beast's
  // parser tolerates but a proxy must refuse (obs-fold, bare LF: RFC 9112 §2.2, §5.2), then parses
  // it with `p` and consumes it from the buffer.
  Task<void> ReadRequestHeader(RequestParser& p, error_code& ec, Millis timeout, bool* timer_armed) {
    const std::size_t limit = GetL7Options().max_header_bytes;
    std::size_t scanned = 0;
    std::size_t end = std::string_view::npos;
    for (;;) {
      const auto d = client_buf_.data();
      const std::string_view buf(static_cast<const char*>(d.data()), d.size());
      end = buf.find("\r\n\r\n", scanned > 3 ? scanned - 3 : 0);
      if (end != std::string_view::npos) {
        end += 4;
        break;
      }
      if (buf.find("\n\n", scanned > 1 ? scanned - 1 : 0) != std::string_view::npos) {
        ec = http::error::bad_line_ending;  // a header ended by bare LFs
        co_return;
      }
      scanned = buf.size();
      if (buf.size() > limit) {
        ec = http::error::header_limit;
        co_return;
      }
      if (!*timer_armed) {
        ArmClientTimer(timeout);
        *timer_armed = true;
      }
      const std::size_t n = co_await client_.async_read_some(client_buf_.prepare(kRelayBuffer), Redirect(ec));
      if (ec) co_return;
      client_buf_.commit(n);
    }
    const auto d = client_buf_.data();
    const std::string_view head(static_cast<const char*>(d.data()), end);
    for (std::size_t i = head.find('\n'); i != std::string_view::npos; i = head.find('\n', i + 1)) {
      if (i == 0 || head[i - 1] != '\r') {
        ec = http::error::bad_line_ending;
        co_return;
      }
      if (i + 1 < head.size() && (head[i + 1] == ' ' || head[i + 1] == '\t')) {
        ec = http::error::bad_value;  // obs-fold
        co_return;
      }
    }
    p.eager(false);
    const std::size_t used = p.put(net::buffer(head.data(), head.size()), ec);
    if (!ec && !p.is_header_done()) ec = http::error::partial_message;
    client_buf_.consume(used);
  }

  // After an answer that closes the connection while the client may still be sending: read and
  // discard for a short while so that close() does not turn into a RST that destroys the answer
  // in the client's receive queue.
  Task<void> Linger() {
    constexpr std::size_t kMaxLingerBytes = 1 << 20;
    std::size_t total = 0;
    Lowest().expires_after(std::chrono::seconds(2));
    error_code ec;
    while (!ec && total < kMaxLingerBytes) {
      total += co_await client_.async_read_some(net::buffer(relay_buf_), Redirect(ec));
    }
  }

  // A deadline for client reads that cancels the read instead of closing the socket (as the
  // stream's own timeout would), so that a 408 can still be written.
  void ArmClientTimer(Millis timeout) {
    const uint64_t gen = ++timer_gen_;
    timer_fired_ = false;
    client_timer_.expires_after(timeout);
    client_timer_.async_wait([weak = this->weak_from_this(), gen](const error_code& ec) {
      if (ec) return;
      auto self = weak.lock();
      if (!self || self->timer_gen_ != gen) return;
      self->timer_fired_ = true;
      error_code ignored;
      self->Lowest().socket().cancel(ignored);
    });
  }
  // Returns whether the deadline passed.
  bool DisarmClientTimer() {
    ++timer_gen_;
    client_timer_.cancel();
    return timer_fired_;
  }

  Task<bool> Respond(unsigned status, std::string why, bool keep_alive, unsigned version, bool head,
                     std::vector<std::pair<std::string, std::string>> extra = {}) {
    if (!keep_alive) linger_ = true;
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    for (const auto& [name, value] : extra) res.set(name, value);
    if (!keep_alive) {
      res.set(http::field::connection, "close");
    } else if (version < 11) {
      res.set(http::field::connection, "keep-alive");
    }
    res.body() = "doorman: " + why + "\n";
    res.prepare_payload();
    if (head) res.body().clear();  // keep Content-Length, send no body
    error_code ec;
    Lowest().expires_after(client_idle_);
    co_await http::async_write(client_, res, Redirect(ec));
    co_return !ec && keep_alive;
  }

  void Record(const Exchange& x, Clock::time_point start) {
    auto& m = w_.metrics();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    m.L7Requests(listener_, x.route, x.backend, x.code).Increment();
    m.L7Duration(listener_, x.route).Observe(seconds);
    if (AccessLogEnabled()) {
      AccessLogEntry e;
      e.listener = listener_;
      e.route = x.route;
      e.backend = x.backend;
      e.client_ip = client_ip_;
      e.method = x.method;
      e.host = x.host;
      e.path = x.path;
      e.request_id = x.request_id;
      e.tls = kTls;
      e.status = x.code;
      e.duration_s = seconds;
      e.retries = x.retries;
      WriteAccessLog(FormatAccessLog(e, std::chrono::system_clock::now()));
    }
  }

  static std::string Clip(std::string_view s) {
    constexpr std::size_t kMax = 200;
    std::string out(s.substr(0, kMax));
    for (char& c : out) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return s.size() > kMax ? out + "..." : out;
  }

  struct LocalAnswer {
    unsigned status = 0;
    std::string why;
    bool keep_alive = false;
    unsigned version = 11;
    bool head = false;
    std::vector<std::pair<std::string, std::string>> extra;  // e.g. Location, Retry-After
  };

  Stream& Lowest() { return beast::get_lowest_layer(client_); }

  Worker& w_;
  std::shared_ptr<const TlsServerContext> tls_;  // keeps this connection's certificates alive
  ClientStream client_;
  Timer client_timer_;
  uint64_t timer_gen_ = 0;
  bool timer_fired_ = false;
  bool linger_ = false;
  bool over_cap_ = false;
  std::shared_ptr<std::atomic<int64_t>> open_connections_;
  std::optional<LocalAnswer> answer_;
  std::string listener_;
  std::string client_ip_;
  uint64_t client_hash_ = 0;  // lb::HashKey of the client address bytes (same key as the L4 proxy)
  beast::flat_buffer client_buf_;
  std::array<char, kRelayBuffer> relay_buf_;
  std::array<char, kRelayBuffer> up_relay_buf_;
  std::string head_buf_;  // SerializeHead output, reused  // WebSocket tunnel, backend → client
  Millis client_idle_ = kDefaultL7IdleTimeout;
};

template <class Session>
void Spawn(Worker& worker, std::shared_ptr<Session> session) {
  net::co_spawn(worker.executor(), Session::Run(std::move(session)), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::Error("l7", "session failed", {{"error", ex.what()}});
    }
  });
}

}  // namespace

void StartHttpSession(Worker& worker, Socket client, const std::string& listener_name) {
  error_code ignored;
  client.set_option(tcp::no_delay(true), ignored);
  const auto config = worker.shared().config.Load();
  const Listener* l = config ? config->FindListener(listener_name) : nullptr;
  if (l != nullptr && l->protocol == Protocol::kHttps) {
    if (!l->tls) return;  // closes: the listener lost its certificates in this generation
    auto tls = l->tls;
    auto& ctx = tls->initial();
    Spawn(worker, std::make_shared<HttpSession<TlsStream>>(worker, listener_name, std::move(tls), Stream(std::move(client)), ctx));
    return;
  }
  Spawn(worker, std::make_shared<HttpSession<Stream>>(worker, listener_name, nullptr, std::move(client)));
}

}  // namespace doorman::dataplane
