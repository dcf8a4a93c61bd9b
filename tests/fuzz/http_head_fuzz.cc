// libFuzzer target: a client's request head as the L7 proxy reads and forwards it (the steps of
// http_proxy.cc's ServeOne, without sockets): ScanRequestHead finds the head, Beast's parser (via
// HeadParser) reads it, SmugglingRisk refuses framing ambiguities, StripHopByHop and
// PrepareUpstreamRequest rewrite it, SerializeRequest writes what the backend receives.
// Properties: never crashes; the parser consumes exactly the head ScanRequestHead found (a
// leftover would be read as body or as a second request); and what is sent upstream is one
// well-formed head that a fresh parser reads back whole, with the same method, target, fields and
// framing (so the backend and the proxy agree on where this request ends).
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/l4/cidr.h"
#include "dataplane/l7/header_rewrite.h"
#include "dataplane/l7/http_head.h"
#include "dataplane/l7/request_check.h"

using namespace doorman::dataplane;

namespace {
constexpr std::size_t kMaxHeader = 8192;

struct Parsed {
  boost::system::error_code ec;
  std::size_t used = 0;
  bool done = false;
  bool chunked = false;
  boost::optional<std::uint64_t> length;
};

Parsed Parse(HttpHead& h, std::string_view bytes, std::size_t limit) {
  Parsed r;
  HeadParser<true> p(h);
  p.header_limit(static_cast<std::uint32_t>(limit));
  p.body_limit(1 << 20);
  p.eager(false);
  r.used = p.put(boost::asio::buffer(bytes.data(), bytes.size()), r.ec);
  r.done = p.is_header_done();
  if (r.done) {
    r.chunked = p.chunked();
    r.length = p.content_length();
  }
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view buf(reinterpret_cast<const char*>(data), size);
  std::size_t scanned = 0, end = 0;
  boost::system::error_code scan_ec;
  if (!ScanRequestHead(buf, kMaxHeader, &scanned, &end, &scan_ec) || scan_ec) return 0;
  if (end > size) std::abort();

  HttpHead h;
  const Parsed in = Parse(h, buf.substr(0, end), kMaxHeader);
  if (in.ec || !in.done) return 0;  // answered 400/431 by the proxy
  if (in.used != end) std::abort();  // bytes of the head left behind
  if (!SmugglingRisk(h).empty()) return 0;  // answered 400

  // The client behind a trusted proxy, as rate limits and source-IP keys take it: an address or "".
  static const std::vector<doorman::l4::Cidr> kTrusted = {*doorman::l4::ParseCidr("10.0.0.0/8"),
                                                          *doorman::l4::ParseCidr("::1/128")};
  const std::string client = ForwardedClientIp(h, kTrusted);
  if (!client.empty() && !doorman::l4::AnyContains({*doorman::l4::ParseCidr("0.0.0.0/0"),
                                                    *doorman::l4::ParseCidr("::/0")}, client)) {
    std::abort();
  }

  StripHopByHop(h);
  ForwardedInfo info;
  // The forwarded-header mode and trust come from the input's length (the bytes stay the request's).
  info.forwarded_for = static_cast<ForwardedForMode>(size % 3);
  info.trusted = (size / 3) % 2 == 1;
  info.trusted_proxies = &kTrusted;
  info.client_ip = "10.0.0.1";
  info.host = h.Get(boost::beast::http::field::host).value_or("");
  info.port = "80";
  info.request_id = "fuzz";
  PrepareUpstreamRequest(h, info);
  std::string out;
  h.SerializeRequest(&out);

  // What the backend receives: one head, read back whole and the same.
  std::size_t s2 = 0, e2 = 0;
  boost::system::error_code ec2;
  if (!ScanRequestHead(out, out.size() + 1, &s2, &e2, &ec2) || ec2 || e2 != out.size()) std::abort();
  HttpHead back;
  const Parsed up = Parse(back, out, out.size() + 1);
  if (up.ec || !up.done || up.used != out.size()) std::abort();
  if (!SmugglingRisk(back).empty()) std::abort();
  if (up.chunked != in.chunked || up.length != in.length) std::abort();
  if (back.method_string() != h.method_string() || back.target() != h.target()) std::abort();
  std::size_t i = 0;
  for (const auto& f : h.fields()) {
    if (f.removed) continue;
    while (i < back.fields().size() && back.fields()[i].removed) ++i;
    if (i >= back.fields().size()) std::abort();
    if (back.name(back.fields()[i]) != h.name(f) || back.value(back.fields()[i]) != h.value(f)) std::abort();
    ++i;
  }
  if (i != back.fields().size()) std::abort();
  return 0;
}
