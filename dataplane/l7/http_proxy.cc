#include "dataplane/l7/http_proxy.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <openssl/ssl.h>

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/ssl.hpp>
#include <type_traits>
#include <optional>
#include <random>
#include <vector>

#include "common/http_head_end.h"
#include "common/log.h"
#include "dataplane/l4/cidr.h"
#include "dataplane/l4/proxy_protocol.h"
#include "dataplane/l4/tcp_proxy.h"
#include "dataplane/l7/access_log.h"
#include "dataplane/l7/filters.h"
#include "dataplane/l7/header_rewrite.h"
#include "dataplane/l7/http_head.h"
#include "dataplane/l7/l7_options.h"
#include "dataplane/l7/policy.h"
#include "dataplane/l7/request_check.h"
#include "dataplane/l7/response_check.h"
#include "dataplane/l7/tls_context.h"
#include "dataplane/server/connect.h"
#include "dataplane/server/deadline.h"
#include "dataplane/server/worker.h"

namespace doorman::dataplane {
namespace {

// Empty lines skipped before a request line (RFC 9112 §2.2: at least one; some clients send a
// CRLF after a POST body). More is not a client but a stream of garbage: 400.
constexpr int kMaxEmptyLines = 32;

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using TlsStream = beast::ssl_stream<Socket>;

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

// Adapts the parsed request head to the router's header lookup.
class HeadHeaders final : public RequestHeaders {
 public:
  explicit HeadHeaders(const HttpHead& h) : h_(h) {}
  std::optional<std::string_view> Get(std::string_view lower_name) const override { return h_.Get(lower_name); }
  std::optional<std::string_view> Cookie(std::string_view name) const override {
    for (const auto& f : h_.fields()) {
      if (f.removed || f.id != http::field::cookie) continue;
      if (const auto v = FindCookie(h_.value(f), name)) return v;
    }
    return std::nullopt;
  }

 private:
  const HttpHead& h_;
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

// Canary dice: per worker (thread_local). Outlier state lives in each endpoint's EndpointState,
// shared by all workers.
uint32_t CanaryDice() {
  thread_local std::minstd_rand rng(std::random_device{}());
  return static_cast<uint32_t>(rng() % 100);
}
const OutlierDetector& Outliers() { return OutlierDetector::Default(); }
std::atomic<int64_t> g_retries_in_flight{0};

bool IEq(std::string_view a, std::string_view b) { return beast::iequals(a, b); }

bool IsHttpParseError(const error_code& ec) {
  if (ec.category() != http::make_error_code(http::error::bad_method).category()) return false;
  return ec != http::error::end_of_stream && ec != http::error::partial_message && ec != http::error::need_buffer &&
         ec != http::error::need_more;
}

struct RelayOutcome {
  error_code ec;
  bool input_failed = false;  // the error came from the side we read from
  bool head_sent = false;     // the message head went out (else the peer got nothing yet)
};

// Where one exchange ended, for the metrics line.
struct Exchange {
  unsigned code = 0;
  std::string_view route;
  std::string backend;
  unsigned retries = 0;
  // Access log only (filled when it is enabled): copies, the request may be rewritten meanwhile.
  std::string method, host, path, request_id;
  std::string client;  // the client a trusted proxy named, when it named one
};

Exchange ExchangeWithCode(unsigned code) {
  Exchange x;
  x.code = code;
  return x;
}

// "1a2b\r\n": the chunk-size line of a chunk of n bytes.
std::string_view ChunkSizeLine(std::size_t n, std::array<char, 20>& buf) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t i = buf.size();
  buf[--i] = '\n';
  buf[--i] = '\r';
  do {
    buf[--i] = kHex[n & 0xf];
    n >>= 4;
  } while (n != 0);
  return std::string_view(buf.data() + i, buf.size() - i);
}

// Ends a head's lines with CRLF where the backend sent bare LFs (see CrlfHead; `checked` is its
// progress through the head in `b`), and puts in the space a status line without a reason lacks
// (see MissingReasonSpace). `b` starts with the unparsed part of a response head (Beast consumes
// a head's lines only whole, each already checked).
void AddMissingReasonSpace(beast::flat_buffer& b, std::size_t* checked) {
  std::string_view d(static_cast<const char*>(b.data().data()), b.size());
  const std::size_t from = std::min(*checked, d.size());
  if (std::string tail; CrlfHead(d, &tail, checked)) {
    // Only the bytes from `from` on change (CRs inserted): grow the buffer, rewrite its end.
    const std::size_t grow = tail.size() - (d.size() - from);
    b.commit(net::buffer_size(b.prepare(grow)));
    std::memcpy(static_cast<char*>(b.data().data()) + from, tail.data(), tail.size());
    d = std::string_view(static_cast<const char*>(b.data().data()), b.size());
  }
  if (!MissingReasonSpace(d)) return;
  std::string fixed(d.substr(0, kReasonSpaceAt));
  fixed += ' ';
  fixed.append(d.substr(kReasonSpaceAt));
  b.clear();
  const auto room = b.prepare(fixed.size());
  std::memcpy(room.data(), fixed.data(), fixed.size());
  b.commit(fixed.size());
  if (*checked > kReasonSpaceAt) ++*checked;  // the lines checked moved by the space
}

// Whether `d` holds only interim response heads (1xx other than 101), the last one possibly
// still arriving: what a backend may send before its answer without it being the answer.
bool OnlyInterimHeads(std::string_view d) {
  static constexpr std::string_view k11 = "HTTP/1.1 1", k10 = "HTTP/1.0 1";
  while (!d.empty()) {
    const std::size_t n = std::min(d.size(), k11.size());
    if (d.substr(0, n) != k11.substr(0, n) && d.substr(0, n) != k10.substr(0, n)) return false;
    if (d.size() >= 12 && d.substr(9, 3) == "101") return false;
    const std::size_t end = HttpHeadEnd(d);  // CRLF or bare-LF line ends (see CrlfHead)
    if (end == std::string_view::npos) return true;  // the rest of this head is on its way
    d.remove_prefix(end);
  }
  return true;
}

// How long a body write may stall once the backend has answered before the upload is given up
// and the answer relayed (see RelayRequestBody).
constexpr std::chrono::milliseconds kEarlyAnswerStall{2000};

// A connection to a backend: a plain socket, or TLS over one (backend protocol HTTPS). It is an
// Asio stream itself, so the proxy's reads and writes need not know which; pooled as is.
class Upstream final : public PooledConnection {
 public:
  using executor_type = Executor;
  using TlsUp = beast::ssl_stream<Socket>;
  explicit Upstream(Socket s) : plain_(std::move(s)) {}
  Upstream(Socket s, net::ssl::context& ctx) : tls_(std::make_unique<TlsUp>(std::move(s), ctx)) {}
  Socket& socket() override { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  // A TLS engine reads whole packets: a record after the response (a stray body, an unasked
  // answer) can sit decrypted or undecrypted in OpenSSL while the socket's queue is empty
  // (helper-93). Asio writes all it reads into the read BIO, so that is where it waits.
  bool HasBufferedInput() override {
    if (!tls_) return false;
    SSL* ssl = tls_->native_handle();
    return SSL_has_pending(ssl) == 1 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0;
  }
  TlsUp* tls() { return tls_.get(); }
  // Connection-bound authentication (NTLM, Negotiate) was offered on it: the backend may tie a
  // login to this connection, so it serves only the client that started it and is never pooled
  // (HAProxy marks such connections private).
  bool private_to_client = false;
  executor_type get_executor() { return socket().get_executor(); }
  template <class Buffers, class Token>
  auto async_read_some(const Buffers& b, Token&& token) {
    if (tls_) return tls_->async_read_some(b, std::forward<Token>(token));
    return plain_->async_read_some(b, std::forward<Token>(token));
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& b, Token&& token) {
    if (tls_) return tls_->async_write_some(b, std::forward<Token>(token));
    return plain_->async_write_some(b, std::forward<Token>(token));
  }

 private:
  std::optional<Socket> plain_;
  std::unique_ptr<TlsUp> tls_;
};

// The name a backend's TLS is checked against when the route sets none: the upstream Host
// without its port ("[::1]:8443" → "::1").
std::string HostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const auto end = host.find(']');
    return std::string(host.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1));
  }
  const auto colon = host.rfind(':');
  return std::string(colon == std::string_view::npos ? host : host.substr(0, colon));
}

// Whether a response offers connection-bound authentication: a WWW-Authenticate or
// Proxy-Authenticate challenge with the NTLM or Negotiate scheme (RFC 4559), whose handshake and
// login belong to the one TCP connection.
bool OffersConnectionBoundAuth(const HttpHead& res) {
  for (const auto& f : res.fields()) {
    if (f.removed || (f.id != http::field::www_authenticate && f.id != http::field::proxy_authenticate)) continue;
    std::string_view v = res.value(f);
    // Each challenge of a comma-separated list; a scheme is a token before a space or the end.
    for (std::size_t at = 0; at <= v.size();) {
      while (at < v.size() && (v[at] == ' ' || v[at] == '\t' || v[at] == ',')) ++at;
      const std::size_t end = v.find_first_of(" \t,", at);
      const std::string_view scheme = v.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
      if (beast::iequals(scheme, "NTLM") || beast::iequals(scheme, "Negotiate")) return true;
      if (end == std::string_view::npos) break;
      at = v.find(',', end);
      if (at == std::string_view::npos) break;
    }
  }
  return false;
}

// ClientStream: Socket (HTTP) or TlsStream (HTTPS, terminated here). Every socket operation runs
// under a coarse per-worker Deadline (dataplane/server/deadline.h) instead of a timer per
// operation; heads are parsed into HttpHead (no allocation per field) and serialized by us.
template <class ClientStream>
class HttpSession : public std::enable_shared_from_this<HttpSession<ClientStream>> {
  static constexpr bool kTls = std::is_same_v<ClientStream, TlsStream>;

 public:
  template <class... StreamArgs>
  HttpSession(Worker& w, ConnectionSlot slot, std::string listener, std::shared_ptr<const TlsServerContext> tls,
              StreamArgs&&... args)
      : w_(w),
        slot_(std::move(slot)),
        tls_(std::move(tls)),
        client_(std::forward<StreamArgs>(args)...),
        client_dl_(w.deadlines(), &Lowest()),
        up_dl_(w.deadlines()),
        listener_(std::move(listener)) {
    const int64_t cap = GetL7Options().max_connections_per_listener;
    if (cap > 0) {
      open_connections_ = ConnectionCounter(listener_);
      over_cap_ = open_connections_->fetch_add(1, std::memory_order_relaxed) + 1 > cap;
      // A refused connection holds no slot while it is answered 503 and lingers: only the
      // connections being served count (helper-97: refused sockets a client kept open held
      // the listener at 503 for 2 s after the real load was gone).
      if (over_cap_) ReleaseCapSlot();
    }
    error_code ec;
    const auto ep = Lowest().remote_endpoint(ec);
    if (!ec) SetClientAddress(ep.address());
    const auto config = w_.shared().config.Load();
    if (const Listener* l = config ? config->FindListener(listener_) : nullptr) {
      client_idle_ = l->idle_timeout;
      proxy_accept_ = l->proxy_protocol_accept;
    }
  }

  ~HttpSession() {
    ReleaseCapSlot();
    error_code ignored;
    Lowest().close(ignored);
  }

  static Task<> Run(std::shared_ptr<HttpSession> self) {
    std::string early;  // bytes that arrived with a PROXY header, after it
    if (self->proxy_accept_ && !co_await self->ReadProxyHeader(early)) co_return;
    if constexpr (kTls) {
      error_code ec;
      self->client_dl_.Arm(GetL7Options().header_timeout);
      if (early.empty()) {
        co_await self->client_.async_handshake(net::ssl::stream_base::server, Redirect(ec));
      } else {
        co_await self->client_.async_handshake(net::ssl::stream_base::server, net::buffer(early), Redirect(ec));
      }
      self->client_dl_.Disarm();
      if (ec) co_return;  // not HTTP yet: nothing to answer
    } else if (!early.empty()) {
      auto b = self->client_buf_.prepare(early.size());
      std::memcpy(b.data(), early.data(), early.size());
      self->client_buf_.commit(early.size());
    }
    for (;;) {
      if (!co_await self->ServeOne()) break;
    }
    self->DropHeld();
    self->ReleaseCapSlot();  // done serving (before the FIN a client may act on): lingering is not serving
    error_code ignored;
    if constexpr (kTls) {
      // close_notify before the FIN (RFC 8446 §6.1; nginx and HAProxy send it): without it a
      // client cannot tell a close-delimited (HTTP/1.0) body cut by a forged FIN from a whole
      // one, and strict clients report an unexpected EOF (helper-121). Sent without waiting for
      // the client's own (marked as received), within a bound in case the socket is full.
      if (self->Lowest().is_open()) {
        SSL_set_shutdown(self->client_.native_handle(), SSL_get_shutdown(self->client_.native_handle()) | SSL_RECEIVED_SHUTDOWN);
        self->client_dl_.Arm(std::chrono::seconds(1));
        co_await self->client_.async_shutdown(Redirect(ignored));
        self->client_dl_.Disarm();
      }
    }
    self->Lowest().shutdown(tcp::socket::shutdown_send, ignored);
    if (self->linger_) co_await self->Linger();
  }

 private:
  // Listener.proxy_protocol.accept: the connection starts with a PROXY v1/v2 header from the
  // balancer in front (strict parser shared with the L4 proxy, bounded in size and by the header
  // timeout). Its source address becomes the client's (X-Forwarded-For, rate-limit and
  // stickiness keys, trustedProxies, access log); bytes read past it go to `early`. A missing or
  // malformed header closes the connection (RST) and counts
  // doorman_l4_drops_total{reason="proxy_protocol"}: nothing is answered, the peer is not HTTP.
  Task<bool> ReadProxyHeader(std::string& early) {
    error_code ec;
    client_dl_.Arm(GetL7Options().header_timeout);
    std::array<char, 512> buf;
    std::string got;
    for (;;) {
      const std::size_t n = co_await Lowest().async_read_some(net::buffer(buf), Redirect(ec));
      if (ec) break;
      got.append(buf.data(), n);
      const auto r = l4::ParseProxyHeader(got);
      if (r.status == l4::ProxyParseResult::kNeedMore) continue;
      if (r.status == l4::ProxyParseResult::kInvalid) {
        log::Debug("l7", "invalid PROXY header; closing", {{"listener", listener_}, {"error", r.error}});
        break;
      }
      client_dl_.Disarm();
      if (l4::UsesAddresses(r.header, false)) SetClientAddress(ToAddress(r.header.source));
      early = got.substr(r.consumed);
      co_return true;
    }
    client_dl_.Disarm();
    w_.metrics().L4Drops(listener_, "proxy_protocol").Increment();
    error_code ignored;
    Lowest().set_option(net::socket_base::linger(true, 0), ignored);
    Lowest().close(ignored);
    co_return false;
  }

  // The client's address: the TCP peer's, or the source of a PROXY header.
  void SetClientAddress(const net::ip::address& a) {
    client_ip_ = a.to_string();
    client_hash_ = ClientAddressHash(a);
    if (a.is_v4()) {
      const auto b = a.to_v4().to_bytes();
      std::copy(b.begin(), b.end(), client_addr_.begin());
      client_addr_len_ = b.size();
    } else {
      const auto b = a.to_v6().to_bytes();
      std::copy(b.begin(), b.end(), client_addr_.begin());
      client_addr_len_ = b.size();
    }
  }
  static net::ip::address ToAddress(const l4::ProxyAddress& a) {
    if (a.v6) return net::ip::address_v6(a.ip);
    return net::ip::address_v4(std::array<uint8_t, 4>{a.ip[0], a.ip[1], a.ip[2], a.ip[3]});
  }

  // Whether the request line in client_buf_ (complete or not) is longer than a line whose
  // target has `max_target` bytes can be (method, spaces and version: 32 bytes at most here).
  std::string_view Buffered() const {
    const auto d = client_buf_.data();
    return {static_cast<const char*>(d.data()), d.size()};
  }

  bool RequestLineTooLong(std::size_t max_target) const {
    const std::string_view buffered = Buffered();
    const std::size_t eol = buffered.find('\n');
    return (eol == std::string_view::npos ? buffered.size() : eol) > max_target + 32;
  }

  // Reads one request and answers it. Returns true when the connection stays open.
  Task<bool> ServeOne() {
    const L7Options& o = GetL7Options();
    error_code ec;
    // Keep-alive idle: wait for the first byte of the next request with the idle timeout (closed
    // silently when it passes). Then the whole header must arrive within the header timeout
    // (answered 408).
    // Empty lines before a request line are skipped (RFC 9112 §2.2: a server SHOULD ignore at
    // least one; some clients send one after a POST body), up to kMaxEmptyLines.
    for (int empty_lines = 0;;) {
      // A CR alone may be the first half of an empty line whose LF is in the next segment.
      const bool lone_cr =
          client_buf_.size() == 1 && *static_cast<const char*>(client_buf_.data().data()) == '\r';
      if (client_buf_.size() == 0 || lone_cr) {
        // A new connection's first byte is due within the header timeout (HAProxy's timeout
        // http-request): a connection that never speaks does not hold a --l7-max-connections
        // slot for the whole idle timeout. Between requests, the idle timeout.
        if (lone_cr) {
          client_dl_.Arm(o.header_timeout);
        } else {
          client_dl_.ArmIdle(first_request_ ? std::min(client_idle_, o.header_timeout) : client_idle_);
          // A client that waits before its next request does not keep its upstream connection
          // out of the pool: idle keep-alive clients pinned one backend connection each, past the
          // pool's caps, and exhausted backends with a connection or worker limit (helper-130;
          // nginx and HAProxy's http-reuse share them). Pipelined requests (bytes already here)
          // keep it; the next request usually takes it back from the pool (LIFO).
          PoolHeld();
        }
        const std::size_t n = co_await client_.async_read_some(client_buf_.prepare(kRelayBuffer), Redirect(ec));
        client_dl_.Disarm();
        if (ec) co_return false;
        client_buf_.commit(n);
        continue;  // a lone CR again: its LF is still to come
      }
      const auto* b = static_cast<const char*>(client_buf_.data().data());
      if (empty_lines >= kMaxEmptyLines || client_buf_.size() < 2 || b[0] != '\r' || b[1] != '\n') break;
      client_buf_.consume(2);
      ++empty_lines;
    }
    first_request_ = false;
    {
      const auto d = client_buf_.data();
      if (const std::string why = NotARequestStart({static_cast<const char*>(d.data()), d.size()}, kTls); !why.empty()) {
        const auto start = Clock::now();
        co_await Respond(400, why, false, 11, false);
        Record(ExchangeWithCode(400), start);
        co_return false;
      }
    }
    // The raw head is checked for what Beast's parser tolerates but a proxy must refuse
    // (obs-fold, bare LF: RFC 9112 §2.2, §5.2) before it is parsed.
    bool timed_out = false;
    bool header_armed = false;  // armed once: trickling bytes does not extend it
    std::size_t scanned = 0;
    std::size_t end = 0;
    for (;;) {
      if (ScanHead(&scanned, &end, &ec)) break;
      if (!header_armed) {
        client_dl_.Arm(o.header_timeout);
        header_armed = true;
      }
      const std::size_t n = co_await client_.async_read_some(client_buf_.prepare(kRelayBuffer), Redirect(ec));
      if (ec) {
        timed_out = client_dl_.fired();
        break;
      }
      client_buf_.commit(n);
    }
    if (header_armed) client_dl_.Disarm();
    req_.Clear();
    HeadParser<true> p(req_);
    p.header_limit(static_cast<std::uint32_t>(o.max_header_bytes));
    p.body_limit(o.max_body_bytes);
    bool unfinished_head = false;
    if (!ec) {
      const auto d = client_buf_.data();
      p.eager(false);
      const std::size_t used = p.put(net::buffer(d.data(), end), ec);
      // The whole head, to its empty line, was given: a parser that still wants more stopped in
      // a request line it cannot finish (a version shorter than "HTTP/1.1": "GET / H"), which is
      // malformed, not a head still arriving (helper-135: closed without an answer).
      if (ec == http::error::need_more || (!ec && !p.is_header_done())) {
        unfinished_head = true;
        ec = http::error::partial_message;
      }
      if (!ec) client_buf_.consume(used);
    }
    if (!ec && req_.target().size() > o.max_request_target) ec = http::error::bad_target;
    if (!ec && req_.fields().size() > o.max_header_count) ec = http::error::header_limit;
    if (ec) {
      unsigned status = 0;
      std::string why;
      if (timed_out) {
        status = 408;
        why = "request header not received within " + std::to_string(o.header_timeout.count()) + " ms";
      } else if (ec == http::error::header_limit && !p.is_header_done() && RequestLineTooLong(o.max_request_target)) {
        // The head overflowed inside its request line: a target too long (414), not fields.
        status = 414;
        why = "request target longer than " + std::to_string(o.max_request_target) + " bytes";
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
      } else if (ec == http::error::bad_version && UnsupportedHttpVersion(Buffered())) {
        // nginx answers 505 to a major version above 1 (and serves HTTP/1.2 as 1.1: RFC 9110
        // §6.2's SHOULD, which no client needs); every version but 1.0 and 1.1 is 505 here.
        status = 505;
        why = "HTTP version not supported (HTTP/1.0 and HTTP/1.1 only)";
      } else if (IsHttpParseError(ec)) {
        status = 400;
        why = "malformed request (" + ec.message() + ")";
      } else if (unfinished_head) {
        status = 400;
        why = "malformed request (the request line does not parse: method, target and HTTP/1.x version)";
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
                                ") of listener " + listener_ + " reached", false, req_.version(), false);
      Record(ExchangeWithCode(503), start);
      co_return false;
    }
    unsigned refusal = 400;
    if (std::string why = SmugglingRisk(req_, &refusal); !why.empty()) {
      const auto start = Clock::now();
      // Built before the co_await: GCC 12 destroys a conditional's temporaries in a co_await
      // argument twice.
      if (refusal == 400) why = "malformed request (" + why + ")";
      co_await Respond(refusal, why, false, 11, false);
      Record(ExchangeWithCode(refusal), start);
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
    // A response that went out as keep-alive keeps its connection even when the drain began
    // meanwhile: its client may already be sending the next request, which the drain answers
    // with Connection: close. The connection then waits like any idle one (Dataplane::Shutdown
    // closes those after its idle window), never past the grace period.
    co_return keep;
  }

  // Whether client_buf_ holds a whole request head (request_check.h).
  bool ScanHead(std::size_t* scanned, std::size_t* end, error_code* ec) {
    const auto d = client_buf_.data();
    return ScanRequestHead(std::string_view(static_cast<const char*>(d.data()), d.size()),
                           GetL7Options().max_header_bytes, scanned, end, ec);
  }

  Task<bool> Handle(HeadParser<true>& p, const Listener* listener, Exchange* x) {
    HttpHead& req = req_;
    const unsigned version = req.version();
    const bool head = req.method() == http::verb::head;
    // From the fields as received. "close" wins over "keep-alive" in one Connection field
    // (RFC 9112 §9.3; Beast reads an HTTP/1.0 request's keep-alive token alone).
    const bool client_keep_alive = p.keep_alive() && !(version < 11 && ConnectionLists(req, "close"));
    // A local answer is recorded here and written by ServeOne (not co_awaited inside this
    // function: g++ 12 mis-destroys temporaries in some co_await full-expressions).
    // A body we did not read makes the connection unusable: close after a local answer.
    // The route chosen, once it is: over TLS its Strict-Transport-Security (an Ingress's
    // doorman.dev/hsts, or a responseHeaders set or add rule) goes on the proxy's own answers too (a 504,
    // a 429), as nginx's "add_header ... always" sends it: a browser that only ever met errors
    // on the host would otherwise never learn it.
    const Route* chosen = nullptr;
    auto with_hsts = [&](std::vector<std::pair<std::string, std::string>> extra) {
      if constexpr (kTls) {
        if (chosen != nullptr) {
          for (const auto* rules : {&chosen->response_headers.set, &chosen->response_headers.add}) {
            for (const auto& [name, value] : *rules) {
              if (boost::beast::iequals(name, "strict-transport-security")) extra.emplace_back("Strict-Transport-Security", value);
            }
          }
        }
      }
      return extra;
    };
    auto local = [&](unsigned status, std::string why, bool keep) {
      x->code = status;
      answer_ = LocalAnswer{status, std::move(why), keep && p.is_done() && client_keep_alive, version, head, with_hsts({})};
      return false;
    };
    auto local_with = [&](unsigned status, std::string why, std::vector<std::pair<std::string, std::string>> extra) {
      x->code = status;
      answer_ = LocalAnswer{status, std::move(why), p.is_done() && client_keep_alive, version, head,
                            with_hsts(std::move(extra))};
      return false;
    };

    std::string_view path, query, authority;
    SplitTarget(req.target(), &path, &query, &authority);
    if (AccessLogEnabled()) {
      const auto m = req.method_string();
      x->method.assign(m.data(), m.size());
      // Without the query (tokens live there) and without ";" path parameters (";jsessionid=").
      x->path.clear();
      for (std::size_t i = 0; i < path.size() && x->path.size() < 2048;) {
        const std::size_t semi = path.find(';', i);
        const std::size_t end = semi == std::string_view::npos ? path.size() : semi;
        x->path.append(path.substr(i, std::min(end - i, 2048 - x->path.size())));
        if (semi == std::string_view::npos) break;
        const std::size_t next = path.find('/', semi);
        if (next == std::string_view::npos) break;
        i = next;
      }
      // The host routed on: an absolute-form target's authority, else Host. A userinfo part
      // ("user:password@", refused with 400 below) is a credential: logged as "***@".
      std::string_view host = authority;
      if (host.empty()) host = req.Get(http::field::host).value_or(std::string_view());
      if (const std::size_t at = host.rfind('@'); at != std::string_view::npos) {
        x->host.assign("***@").append(host.substr(at + 1, 256));
      } else {
        x->host.assign(host.substr(0, 256));
      }
    }
    // CONNECT asks for a tunnel, whatever its target's form ("host:443", or an origin-form "/x"
    // some clients send): doorman does not tunnel, and a backend that would (a forward proxy)
    // must not be reached through it.
    if (req.method() == http::verb::connect) co_return local(400, "CONNECT is not supported (doorman does not tunnel)", false);
    if (path.empty() || (path.front() != '/' && path != "*")) co_return local(400, "invalid request target", false);
    // An absolute-form target must name a host (RFC 9110 §4.2.1: "http:///x" is invalid).
    if (req.target().front() != '/' && path != "*" && authority.empty()) {
      co_return local(400, "invalid request target (an absolute URI without a host)", false);
    }
    // A fragment is never part of a request target (RFC 9112 §3.2): "/admin#x" must not route as
    // another path than "/admin" while a backend that drops the fragment serves "/admin".
    if (req.target().find('#') != std::string_view::npos) {
      co_return local(400, "invalid request target (a \"#\" fragment is not sent in HTTP)", false);
    }
    // The asterisk form is for OPTIONS only (RFC 9112 §3.2.4); a Prefix "/" route does not match it.
    if (path == "*" && (req.method() != http::verb::options || !query.empty())) {
      co_return local(400, "the request target \"*\" is only for OPTIONS", false);
    }
    if (HasInvalidPercentEncoding(path)) {
      co_return local(400, "invalid request target (a \"%\" not followed by two hex digits)", false);
    }
    // Routed and forwarded in normal form (router.h NormalizePath): no dot-segment tricks.
    if (HasDotSegmentWithParams(path)) {
      co_return local(400, "invalid request target (a \".\" or \"..\" segment with \";\" parameters)", false);
    }
    const bool normalized = path.front() == '/' && NormalizePath(path, &norm_path_);
    if (normalized) path = norm_path_;
    // Routed without ";" parameters (router.h RoutingPathWithoutParams), forwarded with them.
    std::string_view route_path = path;
    if (path.front() == '/' && RoutingPathWithoutParams(path, &route_path_)) route_path = route_path_;
    if (req.Count(http::field::host) > 1) co_return local(400, "more than one Host header", false);
    const auto host_field = req.Get(http::field::host);
    if (version >= 11 && !host_field) co_return local(400, "missing Host header", false);
    const std::string_view host_header = host_field.value_or(std::string_view());
    if (!ValidHost(host_header) || !ValidHost(authority)) co_return local(400, "invalid Host", false);
    // An http URI with an empty host is invalid (RFC 9110 §4.2.1): "Host:" on an origin-form
    // request names no authority (an absolute-form target's authority replaces it).
    if (host_field && host_header.empty() && authority.empty()) co_return local(400, "empty Host header", false);
    const std::string_view host = authority.empty() ? host_header : authority;
    if (listener == nullptr) co_return local(503, "listener " + listener_ + " was removed", false);

    HeadHeaders headers(req);
    RequestView view;
    view.method = req.method_string();
    view.host = host;
    view.path = route_path;
    view.query = query;
    view.headers = &headers;
    // Whether the peer is one of `r`'s trusted proxies (its forwarded headers are believed).
    auto trusts_peer = [this](const Route& r) { return l4::AnyContains(r.trusted_proxies, client_addr_.data(), client_addr_len_); };
    // A balancer in front that terminated TLS says so (trusted X-Forwarded-Proto: https): an
    // unless_forwarded_https ssl-redirect does not apply, or the client would be redirected to
    // where it already is.
    auto forwarded_https = [&](const Route& r) {
      return r.redirect.unless_forwarded_https && trusts_peer(r) && ForwardedProtoIsHttps(req.Get("X-Forwarded-Proto").value_or(""));
    };
    const Route* route = SelectRoute(*listener, view);
    // Such a request skips an Ingress's https-redirect-h<k> (it has no backends) as if it were
    // not there: the next route that matches (a catch-all), or 404.
    if (route != nullptr && IsForwardedHttpsFallback(*route) && forwarded_https(*route)) {
      route = SelectRoute(*listener, view, /*skip_forwarded_https_fallbacks=*/true);
    }
    if (route == nullptr) {
      co_return local(404, "no route for host \"" + Clip(host) + "\" path \"" + Clip(path) + "\"", true);
    }
    x->route = route->name;
    chosen = route;
    if (version < 11 && !host_field && authority.empty()) {
      // An HTTP/1.0 request without Host goes upstream as HTTP/1.1, which needs one (RFC 9112
      // §3.2): the address the client connected to, as it addressed it.
      error_code lec;
      const auto le = Lowest().local_endpoint(lec);
      if (!lec) {
        auto a = le.address();
        if (a.is_v6() && a.to_v6().is_v4_mapped()) a = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
        // Without a zone index ("%eth0" is no part of a Host).
        const std::string text = a.is_v6() ? "[" + net::ip::address_v6(a.to_v6().to_bytes()).to_string() + "]" : a.to_string();
        req.Insert(http::field::host, "Host", text + ":" + std::to_string(le.port()));
      }
    }
    // Whether the peer is one of the route's trusted proxies (its forwarded headers are believed).
    const bool peer_trusted = trusts_peer(*route);
    if (route->redirect.enabled && !forwarded_https(*route)) {
      // An HTTP/1.0 request without Host is redirected to the address it connected to (the Host
      // inserted above), never to "http:///path", which browsers read as "http://path".
      const std::string_view to_host = host.empty() ? req.Get(http::field::host).value_or("") : host;
      if (to_host.empty() && route->redirect.host.empty()) {
        co_return local(400, "missing Host header (a redirect keeps the request's host)", false);
      }
      co_return local_with(route->redirect.status, "redirecting",
                           {{"Location", RedirectLocation(route->redirect, kTls ? "https" : "http", to_host, listener->port, path, query)}});
    }
    const auto now = Clock::now();
    // Behind a trusted proxy (trustedProxies, X-Forwarded-For not Replace), the client its chain
    // names is the client for rate-limit and source-IP keys (source-hash, maglev, SourceIP
    // stickiness): the proxy's own address would put every client behind it in one bucket and
    // on one endpoint.
    std::string_view key_ip = client_ip_;
    uint64_t key_hash = client_hash_;
    std::string forwarded_client;
    if (peer_trusted && route->forwarded_for != ForwardedForMode::kReplace) {
      forwarded_client = ForwardedClientIp(req, route->trusted_proxies);
      if (!forwarded_client.empty()) {
        if (AccessLogEnabled()) x->client = forwarded_client;
        key_ip = forwarded_client;
        key_hash = ClientAddressHash(net::ip::make_address(forwarded_client));
      }
    }
    if (route->rate_limiter) {
      std::string_view key = key_ip;
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

    bool use_canary = false;
    if (route->canary.enabled) {
      const auto hv = route->canary.header_lower.empty() ? std::nullopt : headers.Get(route->canary.header_lower);
      const auto cv = route->canary.cookie.empty() ? std::nullopt : headers.Cookie(route->canary.cookie);
      auto choice = CanaryByRequest(route->canary, hv, cv);
      if (!choice && !route->sticky_cookie.empty()) {
        // ingress-nginx's default affinity-canary-behavior ("sticky"): a client whose stickiness
        // cookie names an endpoint of one group stays in that group instead of re-drawing the
        // weight on every request.
        if (const auto v = headers.Cookie(route->sticky_cookie)) {
          if (const auto h = ParseStickyCookieValue(*v)) {
            if (route->sticky_canary.count(*h)) {
              choice = true;
            } else if (route->sticky_main.count(*h)) {
              choice = false;
            }
          }
        }
      }
      use_canary = (choice ? *choice : CanaryDice() < route->canary.weight_percent) && route->eligible_endpoints(true) > 0;
    }
    const Endpoint* ep = nullptr;
    const Endpoint* sticky_ep = nullptr;  // the endpoint the client's cookie already names
    if (!route->sticky_cookie.empty()) {
      if (const auto v = headers.Cookie(route->sticky_cookie)) {
        if (const auto h = ParseStickyCookieValue(*v)) {
          const auto& index = use_canary ? route->sticky_canary : route->sticky_main;
          // Failing its active health check moves the client too (draining an instance by
          // failing its check must not leave its sticky clients there), as an ejection does.
          if (auto it = index.find(*h); it != index.end() && lb::Healthy(it->second->health.get()) &&
                                        !Outliers().Ejected(*it->second->state, now)) {
            ep = sticky_ep = it->second;
          }
        }
      }
    }
    if (ep == nullptr && route->sticky && !use_canary) {
      // Stickiness SourceIP: the endpoint this client address was given last (shared with L4).
      ep = route->PickSticky(lb::PickContext{key_hash, 0}, SteadyMs(now));
      if (ep != nullptr && Outliers().Ejected(*ep->state, now)) ep = nullptr;
    }
    if (ep == nullptr) ep = PickHealthy(*route, use_canary, {}, key_hash);
    if (!route->backend_tls_error.empty()) co_return local(502, route->backend_tls_error, true);
    if (ep == nullptr) co_return local(503, "no ready endpoint for route \"" + route->name + "\"", true);
    // Retries: idempotent methods, or any method when the route says non-idempotent. A request
    // body is replayed from a copy taken while it was first sent, so only bodies that fit in
    // kMaxReplayBody (and were completely sent) can be retried.
    const bool retryable =
        route->retry_attempts > 0 && (route->retry_on.non_idempotent || IsIdempotentMethod(view.method));
    const bool had_body = !p.is_done();
    // A request that may reach the backend twice (it may have acted on a request whose connection
    // then closed): idempotent, or the route says so.
    const bool resendable = route->retry_on.non_idempotent || IsIdempotentMethod(view.method);
    replay_.clear();
    replay_ok_ = retryable && had_body;  // stays true while the body copy is complete
    std::optional<std::chrono::steady_clock::time_point> response_deadline;  // the request timeout, once waiting
    uint32_t retries = 0;
    // The retry budget counts requests that are retrying now (Envoy's active retries): one per
    // request from its first retry to its end, however many tries it makes.
    bool retrying = false;
    struct RetryGuard {
      bool* retrying;
      ~RetryGuard() {
        if (*retrying) g_retries_in_flight.fetch_sub(1, std::memory_order_relaxed);
      }
    } retry_guard{&retrying};
    // Whether the policy allows one more try now (counts it when it does).
    auto may_retry = [&]() {
      if (!retryable || retries >= route->retry_attempts) return false;
      if (had_body && (!p.is_done() || !replay_ok_)) return false;  // the body cannot be replayed
      // The request timeout spans every try: none starts once it ran out.
      if (response_deadline && std::chrono::steady_clock::now() >= *response_deadline) return false;
      const int64_t others = g_retries_in_flight.load(std::memory_order_relaxed) - (retrying ? 1 : 0);
      if (!RetryBudgetAllows(w_.shared().http_in_flight.load(std::memory_order_relaxed), others)) return false;
      ++retries;
      x->retries = retries;
      if (!retrying) g_retries_in_flight.fetch_add(1, std::memory_order_relaxed);
      retrying = true;
      w_.metrics().L7Count(L7Event::kRetry, listener_, route->name, "").Increment();
      return true;
    };

    const bool has_body = !p.is_done();
    const bool body_chunked = has_body && p.chunked();
    // The body is re-chunked: the upstream sees the proxy's own spelling, not the client's
    // ("Chunked" is valid, coding names are case-insensitive, but not every backend knows that).
    if (body_chunked) {
      if (const auto te = req.Get(http::field::transfer_encoding); te && *te != "chunked") {
        req.Set(http::field::transfer_encoding, "Transfer-Encoding", "chunked");
      }
    }
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
    fwd.trusted = peer_trusted;
    fwd.trusted_proxies = &route->trusted_proxies;
    const std::string listener_port = std::to_string(listener->port);
    fwd.port = listener_port;
    std::string& request_id = request_id_;
    request_id.clear();
    if (fwd.trusted) {
      if (const auto v = req.Get("X-Request-Id"); v && ValidRequestId(*v)) request_id.assign(*v);
    }
    if (request_id.empty()) RequestIds().NextInto(&request_id);
    fwd.request_id = request_id;
    if (AccessLogEnabled()) x->request_id = request_id;
    std::string rewritten_target;
    if (route->rewrite.enabled && !route->rewrite.path_prefix.empty()) {
      const std::string_view matched =
          route->match.path.type == PathMatcher::Type::kAny ? std::string_view() : std::string_view(route->match.path.value);
      // The prefix matched was the routing path's: the ";" parameters after it are kept. An
      // Exact match is the whole path: nothing after it, its parameters go with it.
      rewritten_target = route->match.path.type == PathMatcher::Type::kExact
                             ? RewritePathPrefix(route_path, matched, route->rewrite.path_prefix)
                             : RewritePathPrefixKeepingParams(path, route_path, matched, route->rewrite.path_prefix);
      if (!query.empty()) rewritten_target.append("?").append(query);
    } else if (normalized) {
      rewritten_target.assign(path);
      if (!query.empty()) rewritten_target.append("?").append(query);
    }
    // A WebSocket Upgrade request keeps Upgrade: websocket and Connection: Upgrade upstream;
    // after a 101 the connection becomes a byte tunnel. Only WebSocket is tunnelled: any other
    // protocol (h2c above all, whose tunnel would carry requests this proxy never routed or
    // checked) is dropped with the other hop-by-hop fields and the request goes on as plain
    // HTTP/1.1, as Envoy does without an explicit upgrade config.
    std::string upgrade;
    if (const auto up_value = req.Get(http::field::upgrade); up_value && version >= 11) {
      bool websocket = false;
      for (const auto token : http::token_list{*up_value}) {
        if (IEq(std::string_view(token.data(), token.size()), "websocket")) websocket = true;
      }
      if (websocket && ConnectionLists(req, "upgrade")) upgrade.assign("websocket");
    }
    // A tunnel opened now would be cut at the end of the grace period: the client is better off
    // reconnecting to another dataplane at once.
    if (!upgrade.empty() && w_.shared().draining.load(std::memory_order_relaxed)) {
      co_return local(503, "this dataplane is shutting down: WebSocket upgrades are refused", false);
    }
    // Expect from an HTTP/1.0 client is ignored (RFC 9110 §10.1.1): no 100 Continue for it.
    const bool expect_continue = PrepareUpstreamRequest(req, fwd) && version >= 11;
    if (!upgrade.empty()) {
      req.Set("Upgrade", upgrade);
      req.Set("Connection", "Upgrade");
    }
    if (!rewritten_target.empty()) req.set_target(rewritten_target);
    if (route->rewrite.enabled && !route->rewrite.host.empty()) req.Set("Host", route->rewrite.host);
    if (!route->request_headers.empty()) ApplyHeaderRules(req, route->request_headers, /*request=*/true);
    const Millis op_timeout = route->idle_timeout.count() > 0 ? route->idle_timeout : client_idle_;
    // The head sent upstream, serialized once (a retry sends it again).
    req_wire_.clear();
    req.SerializeRequest(&req_wire_);

    // HTTPS backends: pooled apart from plain ones and per server name.
    std::string tls_name;
    if (route->backend_tls) {
      tls_name = route->backend_tls_server_name.empty() ? HostWithoutPort(req.Get(http::field::host).value_or(""))
                                                        : route->backend_tls_server_name;
    }
    std::string tls_pool_key;
    auto pool_key = [&](const Endpoint& e) -> const std::string& {
      if (!route->backend_tls) return e.key;
      tls_pool_key.assign("tls|").append(route->backend_tls->pool_id()).append("|");
      tls_pool_key.append(tls_name).append("|").append(e.key);
      return tls_pool_key;
    };

    std::vector<const Endpoint*> tried;
    std::vector<const Endpoint*> unreachable;  // tried, and the connection (or TLS) failed
    // least-connections and p2c weigh endpoints by this count, as they weigh L4 connections:
    // the request is in flight to an endpoint from the moment an attempt chose it (its connect
    // included) until the response is relayed (a WebSocket tunnel: until it closes), or until a
    // failover or retry moves it elsewhere.
    ConnectionSlot in_flight;
    auto hold = [&in_flight](const Endpoint& e) {  // moves the slot to `e` (no-op if it is there)
      if (!e.state) {
        in_flight = ConnectionSlot();
      } else if (in_flight.count() != &e.state->active) {
        in_flight = ConnectionSlot(e.state->active);
      }
    };
    bool sent_continue = false;
    bool force_fresh = false;
    // --l7-abort-on-client-close: a request without a body is watched from its first connect on
    // (one with a body once it is sent: its body is read from the client until then). Every way
    // out of here stops the watch.
    struct StopWatchOnExit {
      HttpSession* session;
      ~StopWatchOnExit() { session->StopWatchingClient(); }
    } stop_watch{this};
    auto client_gone = [&] {  // (stop_watch ends the watch on the way out)
      x->code = kClientClosedRequest;  // no answer, no retry, no failover: the backend connection goes
      return false;
    };
    for (int attempt = 0;; ++attempt) {
      if (!has_body) WatchClient();
      if (client_gone_) co_return client_gone();
      hold(*ep);  // from the choice on: a slow connect counts too
      // 1. An upstream connection: an idle pooled one (watched while idle: never one the backend
      //    closed or wrote to), or a fresh one (next endpoint on failure).
      bool reused = false;
      std::unique_ptr<Upstream> up;
      if (!force_fresh) {
        const std::string& key = pool_key(*ep);
        if (held_ && held_key_ == key) {
          // This client's own connection, peeked like a pooled one: bytes a backend sent late on
          // it would otherwise be read as this request's answer, and the answer they displace
          // would stay in the socket for whoever reuses it next (helper-90).
          if (IdleConnectionAlive(*held_)) {
            up = std::move(held_);
            reused = true;
          } else {
            held_.reset();
          }
        } else {
          DropHeld();
        }
        if (!up) {
          if (auto pooled = w_.pool().Take(key)) {
            up.reset(static_cast<Upstream*>(pooled.release()));  // the pool holds only Upstreams
            reused = true;
          }
        }
      }
      while (!up) {
        if (!force_fresh && !tried.empty()) {  // failing over: the next endpoint may have an idle one
          if (auto pooled = w_.pool().Take(pool_key(*ep))) {
            up.reset(static_cast<Upstream*>(pooled.release()));
            reused = true;
            break;
          }
        }
        error_code cec;
        bool tls_failed = false;
        Socket s = co_await ConnectTo(w_.executor(), *ep, route->connect_timeout, cec, &connecting_);
        if (client_gone_) co_return client_gone();
        if (!cec && route->backend_tls) {
          auto u = std::make_unique<Upstream>(std::move(s), route->backend_tls->context());
          std::string terr;
          if (!route->backend_tls->SetUpConnection(u->tls()->native_handle(), tls_name, &terr)) {
            co_return local(502, "TLS to backends of route \"" + route->name + "\": " + terr, true);
          }
          up_dl_.Bind(&u->socket());
          up_dl_.Arm(route->connect_timeout);
          co_await u->tls()->async_handshake(net::ssl::stream_base::client, Redirect(cec));
          up_dl_.Disarm();
          if (client_gone_) co_return client_gone();
          if (cec && up_dl_.fired()) cec = beast::error::timeout;
          tls_failed = cec.failed();
          if (!cec) {
            up = std::move(u);
            break;
          }
        } else if (!cec) {
          up = std::make_unique<Upstream>(std::move(s));
          break;
        }
        if (!tls_failed && IsLocalResourceError(cec)) {
          // Out of descriptors, ports or memory here: not the backend's fault (no ejection), and
          // every other endpoint would fail alike. Logged at most once per 10 s per worker.
          if (auto repeated = w_.LogRepeats("l7 local " + cec.message())) {
            log::Warn("l7", "cannot open a backend connection: out of local resources",
                      {{"route", route->name}, {"error", cec.message()}, {"repeated", *repeated},
                       {"hint", "raise the open-files limit (LimitNOFILE, ulimit -n)"}});
          }
          co_return local(503, "the proxy is out of local resources (" + cec.message() + ")", true);
        }
        tried.push_back(ep);
        unreachable.push_back(ep);
        log::Debug("l7", tls_failed ? "TLS handshake with backend failed" : "connect to backend failed",
                   {{"route", route->name}, {"backend", ep->key}, {"error", IsTimeout(cec) ? "timeout" : cec.message()}});
        w_.metrics().L7Count(L7Event::kConnectFailure, listener_, route->name, ep->key).Increment();
        NoteFailure(*route, *ep);
        ep = NextUntried(*route, use_canary, tried);
        if (ep == nullptr) {
          // Every endpoint was tried in this request: one that answered (a retried 5xx) may take
          // the next retry rather than ending on this connect failure.
          for (const Endpoint* t : tried) {
            if (std::find(unreachable.begin(), unreachable.end(), t) == unreachable.end()) {
              ep = t;
              break;
            }
          }
          if (ep != nullptr && may_retry()) continue;
          ep = nullptr;
        }
        if (ep == nullptr) {
          x->backend = tried.back()->key;
          const bool timed_out = IsTimeout(cec);
          std::string why = std::string(tls_failed ? "TLS handshake failed with" : "cannot connect to") +
                            " a backend of route \"" + route->name + "\" (";
          why += timed_out ? std::string("timeout") : cec.message();
          why += ")";
          co_return local(timed_out ? 504 : 502, std::move(why), true);
        }
      }
      x->backend = ep->key;
      hold(*ep);  // a failover during the connect moved it
      up_dl_.Bind(&up->socket());
      up_buf_.clear();
      got_response_bytes_ = false;

      // 2. Send the request (head, then the body streamed from the client).
      if (expect_continue && has_body && !sent_continue) {
        static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
        error_code wec;
        client_dl_.Arm(op_timeout);
        co_await net::async_write(client_, net::buffer(k100.data(), k100.size()), Redirect(wec));
        client_dl_.Disarm();
        if (wec) {
          x->code = kClientClosedRequest;
          co_return false;
        }
        sent_continue = true;
      }
      RelayOutcome sent;
      if (!has_body || (attempt > 0 && p.is_done() && replay_ok_)) {
        // No body, or a retry: the head and the copy of the body as first sent.
        const std::array<net::const_buffer, 2> bufs{net::buffer(req_wire_), net::buffer(replay_)};
        up_dl_.Arm(op_timeout);
        co_await net::async_write(*up, bufs, Redirect(sent.ec));
        up_dl_.Disarm();
        if (sent.ec && up_dl_.fired()) sent.ec = beast::error::timeout;
      } else {
        // The head goes out with the first body piece the parser accepted: a request whose body
        // is malformed from the start never reaches the backend.
        sent = co_await RelayRequestBody(p, *up, body_chunked ? Framing::kChunked : Framing::kRaw, op_timeout);
      }
      if (sent.ec) {
        if (sent.input_failed) {
          if (sent.ec == http::error::body_limit) co_return local(413, "request body too large", false);
          if (sent.ec == beast::error::timeout) co_return local(408, "request body not received in time", false);
          if (IsHttpParseError(sent.ec)) co_return local(400, "malformed request body (" + sent.ec.message() + ")", false);
          x->code = kClientClosedRequest;
          co_return false;
        }
        if (reused && !has_body && attempt == 0 && resendable) {  // a pooled connection the backend closed
          force_fresh = true;
          continue;
        }
        if (!has_body && !IsTimeout(sent.ec) && route->retry_on.reset && may_retry()) {
          NoteFailure(*route, *ep);
          tried.push_back(ep);
          if (const Endpoint* next = NextUntried(*route, use_canary, tried)) ep = next;
          force_fresh = false;
          continue;
        }
        // A backend may answer before reading the whole body (413, 401...) and close: its answer
        // is already in our receive queue and is what the client should get (as nginx does).
        if (!has_body || IsTimeout(sent.ec)) {
          co_return local(IsTimeout(sent.ec) ? 504 : 502, "backend write failed (" + sent.ec.message() + ")", true);
        }
      }
      const bool early_answer = sent.ec.failed();

      // 3. The response head (interim 1xx responses are consumed here, not forwarded).
      std::optional<HeadParser<false>> rp;
      error_code rec;
      // The request timeout spans every try (Gateway API, Envoy): counted from the first try's
      // wait for a response; a per-try timeout bounds each try within what is left of it.
      const auto now_wait = std::chrono::steady_clock::now();
      if (!response_deadline) response_deadline = now_wait + route->request_timeout;
      const Millis left = std::max(Millis(1), std::chrono::ceil<Millis>(*response_deadline - now_wait));
      // Only a request a timeout could retry is cut at the per-try timeout (docs/l7.md): a POST
      // on a retrying route, or a body too large to replay, waits for the request timeout.
      const bool timeout_retriable = retryable && route->retry_on.OnTimeout() && (!had_body || (p.is_done() && replay_ok_));
      const bool per_try_binds = timeout_retriable && route->per_try_timeout.count() > 0 && route->per_try_timeout < left;
      const Millis response_timeout = per_try_binds ? route->per_try_timeout : left;
      up_dl_.Arm(response_timeout);
      WatchClient();  // --l7-abort-on-client-close
      unsigned interim = 0;  // 1xx heads read so far (bounded: kMaxInterimResponses)
      for (;;) {
        res_.Clear();
        rp.emplace(res_);
        std::size_t head_checked = 0;  // CrlfHead's progress through this head
        rp->header_limit(static_cast<std::uint32_t>(kMaxResponseHeaderBytes));
        rp->body_limit(std::numeric_limits<std::uint64_t>::max());  // boost::none is broken in Beast 1.74
        rp->eager(false);
        if (head) rp->skip(true);
        // Read until the head is complete (inline: no coroutine frame per request).
        bool any = false;
        for (;;) {
          if (up_buf_.size() > 0) {
            any = true;
            got_response_bytes_ = true;
            AddMissingReasonSpace(up_buf_, &head_checked);
            const std::size_t used = rp->put(up_buf_.data(), rec);
            up_buf_.consume(used);
            head_checked = head_checked > used ? head_checked - used : 0;
            if (!rec && rp->is_header_done()) break;
            if (rec && rec != http::error::need_more) break;
            rec = {};
          }
          const std::size_t n = co_await up->async_read_some(up_buf_.prepare(kRelayBuffer), Redirect(rec));
          if (rec) {
            if (up_dl_.fired()) {
              rec = beast::error::timeout;
            } else if (rec == net::error::eof) {
              rec = any ? http::error::partial_message : http::error::end_of_stream;
            }
            break;
          }
          up_buf_.commit(n);
        }
        if (rec || res_.status() / 100 != 1 || res_.status() == 101) break;
        if (client_gone_) break;                      // 499 below: no interim answer for no one
        if (++interim > kMaxInterimResponses) break;  // answered 502 below
        // Interim answers other than 100 (which this proxy gives or withholds itself): a proxy
        // forwards them (RFC 9110 §15.2: 103 Early Hints, 102) to HTTP/1.1 clients only.
        if (res_.status() != 100 && version >= 11) {
          PrepareInterim(res_);
          out_.clear();
          res_.SerializeResponse(&out_);
          error_code wec;
          StopWatchingClient();  // its cancel must not meet the write
          client_dl_.Arm(op_timeout);
          co_await net::async_write(client_, net::buffer(out_), Redirect(wec));
          client_dl_.Disarm();
          if (!wec && up_dl_.fired()) {
            // The response deadline passed during the write, when nothing was pending on `up` to
            // cancel: it is a timeout now, not a read without a deadline.
            rec = beast::error::timeout;
            break;
          }
          if (!wec) WatchClient();
          if (wec) {
            up_dl_.Disarm();  // never left armed on a socket that dies with `up`
            x->code = kClientClosedRequest;
            co_return false;
          }
        }
      }
      up_dl_.Disarm();
      StopWatchingClient();
      // The client closed while the backend thought: its answer is for no one. The backend
      // connection is dropped (closing it tells the backend), never pooled, never retried.
      if (client_gone_) co_return client_gone();
      if (interim > kMaxInterimResponses) {
        NoteFailure(*route, *ep);
        co_return local(502, "backend sent more than " + std::to_string(kMaxInterimResponses) + " interim (1xx) responses", true);
      }
      if (rec && early_answer) {
        NoteFailure(*route, *ep);
        co_return local(502, "backend write failed (" + sent.ec.message() + ")", true);
      }
      if (rec) {
        // A TLS backend that closed without close_notify reads as stream_truncated.
        if (reused && !has_body && attempt == 0 && !got_response_bytes_ && resendable &&
            (rec == http::error::end_of_stream || rec == net::error::connection_reset || rec == net::error::eof ||
             rec == net::ssl::error::stream_truncated)) {
          force_fresh = true;
          continue;
        }
        NoteFailure(*route, *ep);
        const bool timed_out = IsTimeout(rec);
        // The request timeout itself ends the request; a per-try timeout may be retried.
        if ((timed_out ? per_try_binds && route->retry_on.OnTimeout() : route->retry_on.reset) && may_retry()) {
          tried.push_back(ep);
          if (const Endpoint* next = NextUntried(*route, use_canary, tried)) ep = next;
          force_fresh = false;
          continue;
        }
        if (timed_out && per_try_binds) {
          co_return local(504, "backend did not answer within the per-try timeout (retries: " + std::to_string(retries) + ")", true);
        }
        if (timed_out) co_return local(504, "backend did not answer within the request timeout", true);
        co_return local(502, "invalid or no response from backend (" + rec.message() + ")", true);
      }
      if (const unsigned code = res_.status(); code < 100 || code > 599) {  // RFC 9110 §15
        NoteFailure(*route, *ep);
        co_return local(502, "backend sent status " + std::to_string(code) + " (valid codes are 100 to 599)", true);
      }
      if (res_.status() == 408 && reused && !has_body && attempt == 0 && resendable) {
        // A server may send 408 on a keep-alive connection it is about to close for idleness
        // (RFC 9110 §15.5.9: "the client MAY repeat that request"). On a reused connection that
        // 408 may predate this request, which the backend then never read (sent between the
        // reuse peek and the request): resent once on a fresh connection, as browsers do. Not
        // counted against the backend, nor as a retry (the backend never read the request).
        log::Debug("l7", "408 on a reused backend connection: request resent on a new one",
                   {{"route", route->name}, {"backend", ep->key}});
        force_fresh = true;
        continue;
      }
      // A 5xx counts against the backend, except 501 and 505 (the client asked for a method or
      // version the backend does not implement: as HAProxy, a client must not be able to eject
      // a healthy backend by sending odd requests).
      if (const unsigned code = res_.status(); code >= 500 && code != 501 && code != 505) {
        NoteFailure(*route, *ep);
      } else {
        Outliers().OnSuccess(*ep->state);
      }
      if (route->retry_on.Status(res_.status()) && may_retry()) {  // 5xx and listed 4xx alike
        tried.push_back(ep);
        if (const Endpoint* next = NextUntried(*route, use_canary, tried)) ep = next;
        force_fresh = false;
        continue;  // `up` is dropped: the unread response body makes it unusable
      }
      if (res_.status() == 101) {
        if (upgrade.empty()) co_return local(502, "backend switched protocols without an Upgrade request", false);
        // Only to the protocol asked for (RFC 9110 §7.8): a 101 to h2c, or naming none, would
        // tunnel bytes this proxy never parses.
        const auto to = res_.Get(http::field::upgrade);
        bool to_asked = false;
        if (to) {
          for (const auto& token : http::token_list(*to)) {
            to_asked = IEq(std::string_view(token.data(), token.size()), upgrade);
            break;  // the first one is the protocol switched to
          }
        }
        if (!to_asked) {
          NoteFailure(*route, *ep);
          co_return local(502, "backend switched protocols to " + (to ? "\"" + std::string(*to) + "\"" : std::string("nothing named")) +
                                   ", not to the requested " + upgrade, false);
        }
        x->code = 101;
        Outliers().OnSuccess(*ep->state);
        co_await Tunnel(std::move(up), op_timeout);
        co_return false;
      }

      // 4. The response, streamed to the client.
      HttpHead& res = res_;
      const unsigned status = res.status();
      if (OffersConnectionBoundAuth(res)) up->private_to_client = true;
      StripHopByHop(res);
      if (!route->response_headers.empty()) ApplyHeaderRules(res, route->response_headers);
      // A recipient that forwards a response without Date adds one (RFC 9110 §6.6.1); after the
      // route's rules, so a rule that removes Date replaces the backend's with the proxy's.
      if (!res.Get(http::field::date)) res.Insert(http::field::date, "Date", HttpDateNow());
      if (!route->sticky_cookie.empty() && ep != sticky_ep) {
        res.Insert(http::field::set_cookie, "Set-Cookie", StickySetCookie(route->sticky_cookie, StickyCookieValue(StickyHash(ep->key)),
                                                 route->sticky_ttl, kTls, route->sticky_cookie_path));
      }
      ClientExchange exchange;
      exchange.version = version;
      exchange.head = head;
      exchange.keep_alive = client_keep_alive && !w_.shared().draining.load(std::memory_order_relaxed);
      exchange.body_unread = early_answer || !p.is_done();
      const ResponseFrame frame = FrameResponse(res, *rp, exchange);
      if (frame.linger) linger_ = true;
      if (!frame.error.empty()) {
        // Not the backend's fault when only this client cannot take the response (an HTTP/1.0
        // client and a gzip transfer coding): such clients must not be able to eject it.
        if (!frame.client_incompatible) NoteFailure(*route, *ep);
        co_return local(502, frame.error, true);
      }
      const bool header_only = frame.header_only;
      const bool keep = frame.keep_client;
      const bool upstream_reusable = frame.reuse_upstream;
      const Framing framing = frame.framing;
      x->code = status;
      out_.clear();
      res.SerializeResponse(&out_);
      // Fast path: a Content-Length body already fully buffered goes out with the head in one
      // gather write (PERFORMANCE-NOTES.md).
      if (const auto len = rp->content_length(); !header_only && framing == Framing::kRaw && len && *len <= up_buf_.size()) {
        const std::array<net::const_buffer, 2> bufs{net::buffer(out_),
                                                    net::buffer(up_buf_.data().data(), static_cast<std::size_t>(*len))};
        error_code wec;
        client_dl_.Arm(op_timeout);
        co_await net::async_write(client_, bufs, Redirect(wec));
        client_dl_.Disarm();
        up_buf_.consume(static_cast<std::size_t>(*len));
        if (wec) {
          x->code = kClientClosedRequest;
          co_return false;
        }
        if (upstream_reusable && up_buf_.size() == 0) Hold(pool_key(*ep), std::move(up));
        co_return keep;
      }
      const RelayOutcome got = co_await RelayResponse(*rp, *up, framing, header_only, op_timeout);
      if (got.ec && got.input_failed && !got.head_sent) {
        // The backend failed before the first body byte (closed, or sent a malformed chunk):
        // the head was held back with it, so the client can still get a clean answer.
        NoteFailure(*route, *ep);
        if (got.ec == beast::error::timeout) {
          co_return local(504, "backend did not send the response body in time", false);
        }
        co_return local(502, "invalid or no response from backend (" + got.ec.message() + ")", false);
      }
      if (got.ec) {
        // The response was (partly) sent: all we can do is close both sides.
        if (!got.input_failed) x->code = kClientClosedRequest;
        log::Debug("l7", "response relay failed", {{"route", route->name}, {"backend", ep->key}, {"error", got.ec.message()}});
        co_return false;
      }
      if (upstream_reusable && rp->is_done() && up_buf_.size() == 0) Hold(pool_key(*ep), std::move(up));
      co_return keep;
    }
  }

  // Writes `prefix` (a head not sent yet, or empty), then body_ as a raw piece or as one chunk
  // (plus the last chunk when `last`).
  template <class Out>
  Task<void> WriteBody(Out& out, Deadline& dl, std::string_view prefix, Framing framing, bool last, Millis timeout,
                       error_code& ec) {
    static constexpr std::string_view kCrlf = "\r\n";
    static constexpr std::string_view kLast = "0\r\n\r\n";
    std::array<char, 20> size_line_buf;
    std::array<net::const_buffer, 5> bufs{};
    std::size_t n = 0;
    if (!prefix.empty()) bufs[n++] = net::buffer(prefix.data(), prefix.size());
    if (framing == Framing::kRaw) {
      bufs[n++] = net::buffer(body_);
    } else {
      if (!body_.empty()) {
        const auto size_line = ChunkSizeLine(body_.size(), size_line_buf);
        bufs[n++] = net::buffer(size_line.data(), size_line.size());
        bufs[n++] = net::buffer(body_);
        bufs[n++] = net::buffer(kCrlf.data(), kCrlf.size());
      }
      if (last) bufs[n++] = net::buffer(kLast.data(), kLast.size());
    }
    dl.Arm(timeout);
    co_await net::async_write(out, bufs, Redirect(ec));
    dl.Disarm();
    if (ec && dl.fired()) ec = beast::error::timeout;
    body_.clear();
  }

  // Appends body_ as it goes on the wire (framed) to replay_, or gives up the copy (replay_ok_ =
  // false) once it would exceed kMaxReplayBody.
  void CopyForReplay(Framing framing, bool last) {
    std::array<char, 20> size_line_buf;
    const std::size_t framed = body_.size() + (framing == Framing::kChunked ? 32 : 0);
    if (replay_.size() + framed > kMaxReplayBody) {
      replay_ok_ = false;
      replay_.clear();
      return;
    }
    if (framing == Framing::kRaw) {
      replay_.append(body_);
      return;
    }
    if (!body_.empty()) replay_.append(ChunkSizeLine(body_.size(), size_line_buf)).append(body_).append("\r\n");
    if (last) replay_.append("0\r\n\r\n");
  }

  // Streams a body from `in` (its buffered bytes first) to `out` through the message's parser:
  // the parser checks the framing and de-chunks, the body goes out raw (Content-Length,
  // close-delimited) or re-chunked, and `head` (not sent yet) goes out with the first piece, so a
  // body malformed from the start sends nothing. A request body is also copied for a replay
  // while replay_ok_. RelayOutcome.input_failed: the error came from `in`.
  static bool HasBareLf(net::const_buffer b) {
    const auto* p = static_cast<const char*>(b.data());
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) return true;
    }
    return false;
  }

  template <bool isRequest, class In, class Out>
  Task<RelayOutcome> RelayBody(HeadParser<isRequest>& pr, In& in, beast::flat_buffer& in_buf, Deadline& in_dl,
                               Millis read_timeout, Out& out, Deadline& out_dl, std::string_view head,
                               Framing framing, Millis write_timeout) {
    constexpr std::size_t kMaxUnparsed = 64 * 1024;  // a chunk-size line or trailer that never ends
    pr.eager(true);
    body_.clear();
    pr.set_body_sink(&body_);
    error_code ec;
    bool head_sent = false;
    for (;;) {
      if (in_buf.size() > 0) {
        const std::size_t used = pr.put(in_buf.data(), ec);
        in_buf.consume(used);
        if (ec == http::error::need_more) {
          ec = {};
          if (used == 0 && in_buf.size() > kMaxUnparsed) ec = http::error::bad_chunk;
          // What the parser left is a chunk-size line or trailer (chunk data is taken as it
          // comes): Beast waits for a CRLF there, so a line ended by a bare LF would stall until
          // the body timeout. Refuse it at once (RFC 9112 §7.1: chunk lines end in CRLF).
          if (pr.chunked() && HasBareLf(in_buf.data())) ec = http::error::bad_chunk;
        }
        if (ec) co_return RelayOutcome{ec, true, head_sent};
      }
      const bool done = pr.is_done();
      if constexpr (isRequest) {
        if (replay_ok_) CopyForReplay(framing, done);
      }
      Millis write_limit = write_timeout;
      if constexpr (isRequest) {
        if (!done) WatchForEarlyAnswer(out);  // no-op once watching
        // Answered already: the backend may not stop reading the upload (RelayRequestBody).
        if (early_answer_) write_limit = std::min(write_limit, Millis(kEarlyAnswerStall));
      }
      if (!body_.empty() || (done && (!head_sent || framing == Framing::kChunked))) {
        co_await WriteBody(out, out_dl, head_sent ? std::string_view() : head, framing, done, write_limit, ec);
        head_sent = true;
        if (ec) co_return RelayOutcome{ec, false, true};
      }
      if (done) co_return RelayOutcome{};
      in_dl.Arm(read_timeout);
      const std::size_t n = co_await in.async_read_some(in_buf.prepare(kRelayBuffer), Redirect(ec));
      in_dl.Disarm();
      if (ec == net::error::eof && pr.need_eof()) {
        pr.put_eof(ec);  // a close-delimited response body ends here
        if (ec) co_return RelayOutcome{ec, true, head_sent};
        continue;
      }
      if (ec) {
        if (in_dl.fired()) {
          ec = beast::error::timeout;  // for a request body a 408 can still be written
        } else if (ec == net::error::eof) {
          ec = http::error::partial_message;
        }
        co_return RelayOutcome{ec, true, head_sent};
      }
      in_buf.commit(n);
    }
  }

  // A request body is streamed while the backend is watched (plain upstreams): a backend may
  // answer before it has read the body (413, 401, a redirect) and then neither read nor close.
  // Once the socket buffers filled, the upload would stall until a timeout and the answer would
  // never arrive. So once the backend has sent an answer (or closed), a body write to it that
  // makes no progress for kEarlyAnswerStall gives the upload up: the answer is relayed and the
  // client connection closed after it (lingering). A backend that answers while it keeps
  // reading (an echo, progress output) still gets the whole body, however slow the client.
  // Interim 1xx heads are not an answer.
  Task<RelayOutcome> RelayRequestBody(HeadParser<true>& p, Upstream& up, Framing framing, Millis op_timeout) {
    early_answer_ = false;
    RelayOutcome r = co_await RelayBody(p, client_, client_buf_, client_dl_,
                                        std::min(op_timeout, GetL7Options().body_timeout), up, up_dl_, req_wire_,
                                        framing, op_timeout);
    StopWatching(up);
    if (r.ec && early_answer_) r = RelayOutcome{net::error::operation_aborted, false};
    co_return r;
  }

  // Watches `up` for bytes while the body is still being sent (one wait at a time; TLS upstreams
  // are not watched: post-handshake records such as session tickets would look like an answer).
  void WatchForEarlyAnswer(Upstream& up) {
    if (up.tls() != nullptr || watched_ != nullptr || early_answer_) return;
    watched_ = &up;
    const std::uint32_t gen = ++watch_gen_;
    up.socket().async_wait(tcp::socket::wait_read, [self = this->shared_from_this(), gen](const error_code& ec) {
      self->OnUpstreamReadable(ec, gen);
    });
  }

  void StopWatching(Upstream& up) {
    if (watched_ != &up) return;
    watched_ = nullptr;
    error_code ignored;
    up.socket().cancel(ignored);  // the wait; nothing else is pending on `up` here
  }

  void OnUpstreamReadable(const error_code& ec, std::uint32_t gen) {
    if (gen != watch_gen_ || watched_ == nullptr) return;
    if (ec) {  // cancelled by a deadline: the next body piece watches again
      watched_ = nullptr;
      return;
    }
    Upstream& up = *watched_;
    watched_ = nullptr;
    // What arrived goes to up_buf_, where the response reader starts (it skips interim heads).
    const auto room = up_buf_.prepare(kRelayBuffer);
    const ssize_t r = ::recv(up.socket().native_handle(), room.data(), room.size(), MSG_DONTWAIT);
    if (r > 0) up_buf_.commit(static_cast<std::size_t>(r));
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      WatchForEarlyAnswer(up);
      return;
    }
    if (r > 0 && OnlyInterimHeads(std::string_view(static_cast<const char*>(up_buf_.data().data()), up_buf_.size()))) {
      WatchForEarlyAnswer(up);  // e.g. an unsolicited 100 Continue: keep sending
      return;
    }
    // An answer (or the backend closed or reset): from now on the upload may not stall.
    early_answer_ = true;
    up_dl_.Tighten(kEarlyAnswerStall);  // the body write in progress, if any
  }

  // --l7-abort-on-client-close: watches the client socket while the response head is awaited
  // (nothing else is pending on it then). Not when bytes of a next request are already buffered
  // (a pipelining client that half-closes still wants its answers).
  void WatchClient() {
    if (!GetL7Options().abort_on_client_close || client_watched_ || client_gone_ || client_buf_.size() > 0) return;
    if constexpr (kTls) {
      if (SSL_pending(client_.native_handle()) > 0) return;  // a next request, decrypted and buffered
    }
    client_watched_ = true;
    const std::uint32_t gen = ++client_watch_gen_;
    Lowest().async_wait(
        tcp::socket::wait_read,
        [self = this->shared_from_this(), gen](const error_code& ec) { self->OnClientReadable(ec, gen); });
  }

  void StopWatchingClient() {
    if (!client_watched_) return;
    client_watched_ = false;
    error_code ignored;
    Lowest().cancel(ignored);  // the wait; nothing else is pending here
  }

  void OnClientReadable(const error_code& ec, std::uint32_t gen) {
    if (gen != client_watch_gen_ || !client_watched_) return;
    client_watched_ = false;
    if (ec) return;  // cancelled
    pollfd pfd{Lowest().native_handle(), POLLIN | POLLRDHUP, 0};
    if (::poll(&pfd, 1, 0) != 1) return;
    int pending = 0;
    ::ioctl(pfd.fd, FIONREAD, &pending);
    // Gone: a reset, or a FIN with nothing before it (plain) or after a TLS record (the client's
    // close_notify, most likely). Bytes without a FIN, or a plain request pipelined before a FIN,
    // are a client still talking: not watched any further (a wait would only fire again).
    const bool reset = (pfd.revents & (POLLERR | POLLHUP)) != 0;
    const bool fin = (pfd.revents & POLLRDHUP) != 0;
    if (!reset && !(fin && (pending == 0 || kTls))) return;
    client_gone_ = true;
    up_dl_.Tighten(Millis(0));  // ends the wait for the head (or a TLS handshake) at the next sweep
    error_code ignored;
    if (connecting_ != nullptr) connecting_->cancel(ignored);  // a connect in progress
  }

  // Writes the response head in out_ (with the first body piece, as one write), then streams the
  // rest of the body from the backend.
  Task<RelayOutcome> RelayResponse(HeadParser<false>& rp, Upstream& up, Framing framing, bool header_only,
                                   Millis op_timeout) {
    if (header_only || rp.is_done()) {
      error_code ec;
      client_dl_.Arm(op_timeout);
      co_await net::async_write(client_, net::buffer(out_), Redirect(ec));
      client_dl_.Disarm();
      if (ec) co_return RelayOutcome{client_dl_.fired() ? error_code(beast::error::timeout) : ec, false};
      co_return RelayOutcome{};
    }
    co_return co_await RelayBody(rp, up, up_buf_, up_dl_, op_timeout, client_, client_dl_, out_, framing, op_timeout);
  }

  // After a 101: forwards the response head, then copies bytes both ways until either side
  // closes or the tunnel stays idle (no byte either way) for `idle` (route idle timeout, else the
  // listener's). Snapshot updates do not touch an open tunnel.
  struct TunnelState {
    TunnelState(std::unique_ptr<Upstream> u, DeadlineList& list, Socket* client)
        : up(std::move(u)), dl(list, client, &up->socket()), backend_done(client->get_executor()) {}
    std::unique_ptr<Upstream> up;
    Deadline dl;
    Timer backend_done;             // cancelled when the backend → client direction ends
    bool backend_finished = false;
    std::array<char, kRelayBuffer> to_client, to_backend;
  };

  Task<void> Tunnel(std::unique_ptr<Upstream> upstream, Millis idle) {
    auto st = std::make_shared<TunnelState>(std::move(upstream), w_.deadlines(), &Lowest());
    error_code ec;
    out_.clear();
    res_.SerializeResponse(&out_);  // as received: Upgrade and Connection stay
    st->dl.Arm(idle);
    co_await net::async_write(client_, net::buffer(out_), Redirect(ec));
    if (ec) co_return;
    // Backend → client in its own coroutine (keeps the session alive); client → backend here.
    auto self = this->shared_from_this();
    std::string pending(static_cast<const char*>(up_buf_.data().data()), up_buf_.size());
    up_buf_.clear();
    net::co_spawn(
        w_.executor(),
        [self, st, pending = std::move(pending), idle]() mutable -> Task<void> {
          try {
            co_await Pipe(*st->up, self->client_, std::move(pending), idle, st->dl, st->to_client);
          } catch (const std::exception& e) {
            // Still end the tunnel below: the other direction waits for this one.
            log::Warn("l7", "WebSocket tunnel direction failed", {{"error", e.what()}});
          }
          error_code ignored;
          st->backend_finished = true;
          st->backend_done.cancel();
          st->dl.Disarm();
          st->up->socket().close(ignored);
          self->Lowest().cancel(ignored);  // ends the other direction's read
          // TLS: Run sends close_notify, then the FIN (a FIN here would come first).
          if constexpr (!kTls) self->Lowest().shutdown(tcp::socket::shutdown_send, ignored);
        },
        net::detached);
    std::string from_client(static_cast<const char*>(client_buf_.data().data()), client_buf_.size());
    client_buf_.consume(client_buf_.size());
    const PipeEnd client_end = co_await Pipe(client_, *st->up, std::move(from_client), idle, st->dl, st->to_backend);
    error_code ignored;
    const error_code& cec = client_end.ec;
    if (client_end.in_read && cec && cec != net::error::eof && cec != net::error::operation_aborted &&
        cec != net::ssl::error::stream_truncated) {
      // The client reset: not a half-close. The backend learns it as a reset and both
      // directions end now (HAProxy passes the reset on; nginx closes both ways). A FIN left a
      // backend that ignores half-closes holding the tunnel until the idle timeout (helper-118).
      // (A failed write to the backend is the backend's end: the other direction still reads
      // what it sent before, below.)
      st->up->socket().set_option(net::socket_base::linger(true, 0), ignored);
      st->up->socket().close(ignored);
    } else {
      st->up->socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    // A client that half-closed still gets what the backend sends until it closes (or the tunnel
    // idles out): the session (and its shutdown of the client side) waits for that direction.
    if (!st->backend_finished) {
      st->backend_done.expires_at(Timer::time_point::max());
      co_await st->backend_done.async_wait(Redirect(ec));
    }
    // What the backend sent may still wait in the client socket's send queue, and the
    // session's close would throw it away if the client has sent bytes not read here (a close
    // with unread data is a reset): wait until the client has taken it all (SIOCOUTQ 0; at
    // once after a clean end), it is gone, or nothing moved for the idle timeout; then linger
    // (read and drop what it still sends, bounded) before the close (helper-120).
    if (!st->dl.fired()) co_await DrainToClient(idle);  // after an idle timeout, nothing moves
    linger_ = true;
  }

  Task<void> DrainToClient(Millis idle) {
    Timer timer(Lowest().get_executor());
    std::chrono::milliseconds wait{2};
    int last = -1;
    auto progress = std::chrono::steady_clock::now();
    while (Lowest().is_open()) {
      const int queued = UnsentBytes(Lowest().native_handle());
      if (queued == 0) co_return;
      const auto now = std::chrono::steady_clock::now();
      if (queued != last) {
        last = queued;
        progress = now;
      } else if (now - progress >= idle) {
        co_return;
      }
      error_code ignored;
      timer.expires_after(wait);
      co_await timer.async_wait(Redirect(ignored));
      wait = std::min(wait * 2, std::chrono::milliseconds(50));
    }
  }

  // How a Pipe ended: the error, and whether reading `in` (not writing `out`) met it (eof:
  // `in` ended cleanly).
  struct PipeEnd {
    error_code ec;
    bool in_read = false;
  };

  // Copies `in` to `out` until an error.
  template <class In, class Out>
  static Task<PipeEnd> Pipe(In& in, Out& out, std::string pending, Millis idle, Deadline& dl,
                            std::array<char, kRelayBuffer>& buf) {
    error_code ec;
    if (!pending.empty()) {
      dl.Arm(idle);
      co_await net::async_write(out, net::buffer(pending), Redirect(ec));
      if (ec) co_return PipeEnd{ec, false};
    }
    for (;;) {
      dl.Arm(idle);
      const std::size_t n = co_await in.async_read_some(net::buffer(buf), Redirect(ec));
      if (ec) co_return PipeEnd{ec, true};
      dl.Arm(idle);
      co_await net::async_write(out, net::buffer(buf.data(), n), Redirect(ec));
      if (ec) co_return PipeEnd{ec, false};
    }
  }

  void NoteFailure(const Route& route, const Endpoint& ep) {
    if (Outliers().OnFailure(*ep.state, Clock::now())) {
      w_.metrics().L7Count(L7Event::kEjection, listener_, route.name, ep.key).Increment();
      log::Info("l7", "endpoint ejected by outlier detection", {{"route", route.name}, {"backend", ep.key}});
    }
  }

  // The scheduler's next endpoint not in `tried` (schedulers skip ejected endpoints unless every
  // one is: panic mode, never fail a request only because of ejections), else Route::FirstUntried.
  // `client_hash` feeds source-hash / maglev; each further attempt re-hashes it so a hashing
  // scheduler can move past an endpoint that was tried (as the L4 proxy does).
  static const Endpoint* PickHealthy(const Route& route, bool canary, const std::vector<const Endpoint*>& tried,
                                     uint64_t client_hash) {
    const std::size_t n = route.eligible_endpoints(canary);
    lb::PickContext ctx{client_hash, 0};
    for (std::size_t i = 0; i < 2 * n + 1; ++i) {
      if (i > 0) ctx.hash = lb::Rehash(ctx.hash, i);
      const Endpoint* e = route.PickEndpoint(ctx, canary);
      if (e == nullptr) return nullptr;
      if (std::find(tried.begin(), tried.end(), e) == tried.end()) return e;
    }
    return route.FirstUntried(canary, tried);
  }

  static const Endpoint* NextUntried(const Route& route, bool canary, const std::vector<const Endpoint*>& tried) {
    if (tried.size() >= std::min(route.eligible_endpoints(canary), kMaxConnectAttempts)) return nullptr;
    return PickHealthy(route, canary, tried, 0);
  }

  void ReleaseCapSlot() {
    if (open_connections_) open_connections_->fetch_sub(1, std::memory_order_relaxed);
    open_connections_.reset();
  }

  // After an answer that closes the connection while the client may still be sending: read and
  // discard for a short while so that close() does not turn into a RST that destroys the answer
  // in the client's receive queue.
  // Reads and drops what the client still sends (bounded), so that closing with its bytes
  // unread does not reset the connection and throw away what it has not read yet. From the TCP
  // socket, on TLS too: after close_notify, SSL_read would return at once without reading
  // (helper-122), and nothing read here needs decrypting.
  Task<void> Linger() {
    constexpr std::size_t kMaxLingerBytes = 1 << 20;
    std::array<char, 4096> buf;
    std::size_t total = 0;
    client_dl_.Arm(std::chrono::seconds(2));
    error_code ec;
    while (!ec && total < kMaxLingerBytes) {
      total += co_await Lowest().async_read_some(net::buffer(buf), Redirect(ec));
    }
    client_dl_.Disarm();
  }

  // A short text/plain answer of the proxy's own. Returns whether the connection stays open.
  Task<bool> Respond(unsigned status, std::string why, bool keep_alive, unsigned version, bool head,
                     std::vector<std::pair<std::string, std::string>> extra = {}) {
    // Draining (SIGTERM): the proxy's own answers close the connection too, and say so.
    if (w_.shared().draining.load(std::memory_order_relaxed)) keep_alive = false;
    if (!keep_alive) linger_ = true;
    const std::string body = "doorman: " + why + "\n";
    const auto reason = http::obsolete_reason(static_cast<http::status>(status));
    out_.clear();
    out_.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(reason.data(), reason.size());
    out_.append("\r\nDate: ").append(HttpDateNow());
    out_.append("\r\nContent-Type: text/plain; charset=utf-8\r\n");
    for (const auto& [name, value] : extra) out_.append(name).append(": ").append(value).append("\r\n");
    if (!keep_alive) {
      out_.append("Connection: close\r\n");
    } else if (version < 11) {
      out_.append("Connection: keep-alive\r\n");
    }
    out_.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
    if (!head) out_.append(body);  // HEAD: keep Content-Length, send no body
    error_code ec;
    client_dl_.Arm(client_idle_);
    co_await net::async_write(client_, net::buffer(out_), Redirect(ec));
    client_dl_.Disarm();
    co_return !ec && keep_alive;
  }

  void Record(const Exchange& x, Clock::time_point start) {
    auto& m = w_.metrics();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    // The series of the previous request is usually this one's: skip the label lookup.
    // A changed worker epoch means cached series may have been removed (endpoints retired).
    if (metric_cache_.requests == nullptr || metric_cache_.epoch != m.epoch() || metric_cache_.code != x.code ||
        metric_cache_.route != x.route || metric_cache_.backend != x.backend) {
      metric_cache_.requests = &m.L7Requests(listener_, x.route, x.backend, x.code);
      metric_cache_.code = x.code;
      metric_cache_.epoch = m.epoch();
      metric_cache_.route.assign(x.route);
      metric_cache_.backend = x.backend;
      metric_cache_.duration = &m.L7Duration(listener_, x.route);
    }
    metric_cache_.requests->Increment();
    metric_cache_.duration->Observe(seconds);
    if (AccessLogEnabled()) {
      AccessLogEntry e;
      e.listener = listener_;
      e.route = x.route;
      e.backend = x.backend;
      e.client_ip = x.client.empty() ? std::string_view(client_ip_) : std::string_view(x.client);
      e.peer_ip = client_ip_;
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
    // Control bytes and bytes >= 0x80 become '?': the answer says charset=utf-8 and echoes
    // client input, which must not carry raw bytes that are not UTF-8.
    for (char& c : out) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
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

  struct MetricCache {
    prometheus::Counter* requests = nullptr;
    prometheus::Histogram* duration = nullptr;
    unsigned code = 0;
    uint64_t epoch = 0;  // WorkerMetrics::epoch() when looked up
    std::string route, backend;
  };

  Socket& Lowest() { return beast::get_lowest_layer(client_); }

  // The held connection back to the pool, unless it is private to this client (kept then).
  void PoolHeld() {
    if (held_ && !held_->private_to_client) w_.pool().Put(held_key_, std::move(held_));
  }
  // The held connection given up: pooled, or closed when private to this client.
  void DropHeld() {
    PoolHeld();
    held_.reset();
  }

  void Hold(const std::string& key, std::unique_ptr<Upstream> up) {
    DropHeld();
    held_ = std::move(up);
    held_key_ = key;
  }

  Worker& w_;
  ConnectionSlot slot_;
  std::shared_ptr<const TlsServerContext> tls_;  // keeps this connection's certificates alive
  ClientStream client_;
  Deadline client_dl_;  // client reads and writes
  Deadline up_dl_;      // the current upstream connection's reads and writes
  bool linger_ = false;
  bool over_cap_ = false;
  Upstream* watched_ = nullptr;  // the upstream watched for an early answer (RelayRequestBody)
  std::uint32_t watch_gen_ = 0;  // tells a stale watch completion from the current one
  bool early_answer_ = false;    // the backend answered (or closed) before the body was sent
  bool got_response_bytes_ = false;  // the current upstream exchange received a byte
  bool client_watched_ = false;      // WatchClient's wait is pending
  std::uint32_t client_watch_gen_ = 0;
  bool client_gone_ = false;         // the client closed while a response head was awaited
  Socket* connecting_ = nullptr;     // the upstream socket of a connect in progress (ConnectTo)
  std::shared_ptr<std::atomic<int64_t>> open_connections_;
  std::optional<LocalAnswer> answer_;
  std::string listener_;
  std::string client_ip_;
  uint64_t client_hash_ = 0;  // lb::HashKey of the client address bytes (same key as the L4 proxy)
  std::array<uint8_t, 16> client_addr_{};  // the client address in network order (4 or 16 bytes)
  std::size_t client_addr_len_ = 0;
  beast::flat_buffer client_buf_;
  beast::flat_buffer up_buf_;  // the current upstream connection's unparsed bytes
  HttpHead req_, res_;         // reused across requests (capacity kept)
  std::string req_wire_;       // the request head as sent upstream
  std::string out_;            // response head / local answer being written
  std::string body_;           // body bytes between the parser and the next write
  std::string request_id_;     // X-Request-Id of the current request
  std::string replay_;         // the request body as first sent (framed), for a retry
  std::string route_path_;     // the current request's routing path, when it had ";" parameters
  std::string norm_path_;      // the current request's path in normal form, when it was not
  bool replay_ok_ = false;     // replay_ holds the whole body sent so far
  // The upstream connection of this client connection's last exchange, kept for its next request
  // (as HAProxy keeps a server connection attached to its session), peeked before each reuse.
  // Returned to the pool when the client connection ends.
  std::unique_ptr<Upstream> held_;
  std::string held_key_;
  MetricCache metric_cache_;
  Millis client_idle_ = kDefaultL7IdleTimeout;
  bool first_request_ = true;  // no byte of a request read yet on this connection
  bool proxy_accept_ = false;  // Listener.proxy_protocol.accept
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

void StartHttpSession(Worker& worker, Socket client, const std::string& listener_name, ConnectionSlot slot) {
  error_code ignored;
  client.set_option(tcp::no_delay(true), ignored);
  const auto config = worker.shared().config.Load();
  const Listener* l = config ? config->FindListener(listener_name) : nullptr;
  if (l != nullptr && l->protocol == Protocol::kHttps) {
    if (!l->tls) return;  // closes: the listener lost its certificates in this generation
    auto tls = l->tls;
    auto& ctx = tls->initial();
    Spawn(worker, std::make_shared<HttpSession<TlsStream>>(worker, std::move(slot), listener_name, std::move(tls),
                                                           std::move(client), ctx));
    return;
  }
  Spawn(worker, std::make_shared<HttpSession<Socket>>(worker, std::move(slot), listener_name, nullptr, std::move(client)));
}

}  // namespace doorman::dataplane
