// libFuzzer target: a backend's response head as the L7 proxy reads it and frames it for the
// client (the steps of http_proxy.cc's ServeOne after the request went out, without sockets):
// the missing-reason fix-up, Beast's parser via HeadParser, StripHopByHop, FrameResponse,
// SerializeResponse. The first input byte picks the client side (HTTP/1.0 or 1.1, HEAD, whether
// the connection may stay open, whether the request body was left unread); the rest is what the
// backend sent. An interim head (1xx other than 101) is checked as forwarded instead.
// Properties: never crashes; what the client receives is one head a fresh parser reads back
// whole; the client reads the body the way the proxy writes it (the Content-Length the backend
// framed with, or chunked when re-chunked, or to the close — and then the connection is closed);
// an HTTP/1.0 client never sees Transfer-Encoding; a connection kept open is one the client also
// reads as persistent.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

#include "dataplane/l7/header_rewrite.h"
#include "dataplane/l7/http_head.h"
#include "dataplane/l7/response_check.h"

using namespace doorman::dataplane;
namespace http = boost::beast::http;

namespace {
constexpr std::size_t kMaxHeader = 64 * 1024;  // kMaxResponseHeaderBytes (http_proxy.h)

void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ClientExchange c;
  c.version = (data[0] & 1) ? 11 : 10;
  c.head = (data[0] & 2) != 0;
  c.keep_alive = (data[0] & 4) != 0;
  c.body_unread = (data[0] & 8) != 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (MissingReasonSpace(bytes)) bytes.insert(kReasonSpaceAt, 1, ' ');

  HttpHead res;
  HeadParser<false> rp(res);
  rp.header_limit(static_cast<std::uint32_t>(kMaxHeader));
  rp.body_limit(std::numeric_limits<std::uint64_t>::max());
  rp.eager(false);
  if (c.head) rp.skip(true);
  boost::system::error_code ec;
  rp.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec || !rp.is_header_done()) return 0;  // 502 (or more to read)
  const unsigned status = res.status();
  if (status / 100 == 1 && status != 101) {
    // An interim head, forwarded to an HTTP/1.1 client: read back whole, with no body framing.
    PrepareInterim(res);
    std::string out;
    res.SerializeResponse(&out);
    HttpHead back;
    HeadParser<false> cp(back);
    cp.eager(false);
    boost::system::error_code ec2;
    const std::size_t used = cp.put(boost::asio::buffer(out.data(), out.size()), ec2);
    Check(!ec2 && cp.is_header_done() && cp.is_done() && used == out.size() && back.status() == status);
    Check(back.Count(http::field::transfer_encoding) == 0 && back.Count(http::field::content_length) == 0);
    return 0;
  }
  if (status < 200 || status > 599) return 0;  // 101 takes another path; others: 502
  const bool in_chunked = rp.chunked();
  const auto in_length = rp.content_length();

  StripHopByHop(res);
  const bool had_te = res.Count(http::field::transfer_encoding) > 0;
  const ResponseFrame f = FrameResponse(res, rp, c);
  if (!f.error.empty()) {  // 502: only ever for a Transfer-Encoding the proxy cannot pass on
    Check(had_te);
    return 0;
  }
  Check(f.header_only == (c.head || status == 204 || status == 304));
  if (c.body_unread) Check(!f.keep_client && !f.reuse_upstream && f.linger);
  if (!c.keep_alive) Check(!f.keep_client);
  std::string out;
  res.SerializeResponse(&out);

  // What the client receives: one head, read back whole.
  HttpHead back;
  HeadParser<false> cp(back);
  cp.header_limit(static_cast<std::uint32_t>(out.size() + 1));
  cp.body_limit(std::numeric_limits<std::uint64_t>::max());
  cp.eager(false);
  if (c.head) cp.skip(true);
  boost::system::error_code ec2;
  const std::size_t used = cp.put(boost::asio::buffer(out.data(), out.size()), ec2);
  Check(!ec2 && cp.is_header_done() && used == out.size());
  Check(back.status() == status);
  if (c.version < 11) Check(back.Count(http::field::transfer_encoding) == 0);
  // The client reads the body the way the proxy writes it.
  if (!f.header_only) {
    if (f.framing == Framing::kChunked) {
      Check(c.version >= 11 && cp.chunked() && !cp.content_length());
    } else if (in_length) {
      Check(!in_chunked && cp.content_length() == in_length && !cp.chunked());
    } else if (!rp.is_done()) {
      // Raw and not length-delimited: the body (de-chunked, or the backend's close-delimited one)
      // runs to the close, so the client must read it that way and the connection must close.
      Check(cp.need_eof() && !f.keep_client && !cp.chunked() && !cp.content_length());
    }
  }
  if (f.keep_client) {
    Check(cp.keep_alive());
    if (!f.header_only) Check(!cp.need_eof());
  } else {
    Check(!cp.keep_alive());
  }
  // A backend connection goes back to the pool only when the response was length-delimited.
  if (f.reuse_upstream) Check(rp.keep_alive() && !(!f.header_only && !rp.is_done() && !in_chunked && !in_length));
  return 0;
}
