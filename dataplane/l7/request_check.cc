#include "dataplane/l7/request_check.h"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/rfc7230.hpp>

namespace doorman::dataplane {

namespace http = boost::beast::http;
namespace beast = boost::beast;

namespace {
bool IEq(std::string_view a, std::string_view b) { return beast::iequals(a, b); }
}  // namespace

bool ListsChunked(std::string_view te) {
  for (const auto token : http::token_list{te}) {
    if (IEq(std::string_view(token.data(), token.size()), "chunked")) return true;
  }
  return false;
}

bool ConnectionLists(const HttpHead& h, std::string_view option) {
  for (const auto& f : h.fields()) {
    if (f.removed || f.id != http::field::connection) continue;
    for (const auto token : http::token_list{h.value(f)}) {
      if (IEq(std::string_view(token.data(), token.size()), option)) return true;
    }
  }
  return false;
}

namespace {
// A valid list of transfer codings that ends in one "chunked", with other codings before it
// ("gzip, chunked"): well framed, but with a coding the proxy does not decode.
bool OtherCodingsBeforeChunked(std::string_view te) {
  const http::opt_token_list list{te};
  if (!http::validate_list(list)) return false;
  std::size_t count = 0, chunked = 0;
  bool last_chunked = false;
  for (const auto token : list) {
    ++count;
    last_chunked = IEq(std::string_view(token.data(), token.size()), "chunked");
    if (last_chunked) ++chunked;
  }
  return count > 1 && chunked == 1 && last_chunked;
}
}  // namespace

std::string SmugglingRisk(const HttpHead& h, unsigned* status) {
  if (status != nullptr) *status = 400;
  std::size_t content_lengths = 0, transfer_encodings = 0;
  std::string_view te;
  for (const auto& f : h.fields()) {
    const std::string_view v = h.value(f);
    for (const char c : v) {
      if (c == '\r' || c == '\n' || c == '\0') return "CR, LF or NUL in a field value";
    }
    if (f.id == http::field::content_length) {
      ++content_lengths;
      if (v.empty() || v.find_first_not_of("0123456789") != std::string_view::npos) return "invalid Content-Length";
    }
    if (f.id == http::field::transfer_encoding) {
      ++transfer_encodings;
      te = v;
    }
  }
  if (content_lengths > 1) return "more than one Content-Length";
  if (transfer_encodings > 0) {
    if (content_lengths > 0) return "both Content-Length and Transfer-Encoding";
    if (h.version() < 11) return "Transfer-Encoding in an HTTP/1.0 request";
    if (transfer_encodings == 1 && OtherCodingsBeforeChunked(te)) {
      // RFC 9112 §6.1: a coding the server does not understand SHOULD be 501 (nginx does so).
      if (status != nullptr) *status = 501;
      return "Transfer-Encoding coding other than \"chunked\" not implemented";
    }
    if (transfer_encodings > 1 || !IEq(te, "chunked")) return "Transfer-Encoding other than a single \"chunked\"";
  }
  return "";
}

bool UnsupportedHttpVersion(std::string_view buf) {
  std::string_view line = buf.substr(0, std::min(buf.find('\n'), buf.size()));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // method SP target SP version: anything else (a space in the target, words after the
  // version) is malformed, 400.
  if (std::count(line.begin(), line.end(), ' ') != 2) return false;
  const auto sp = line.rfind(' ');
  const std::string_view v = line.substr(sp + 1);
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.') return false;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return false;
  return v != "HTTP/1.0" && v != "HTTP/1.1";
}

std::string NotARequestStart(std::string_view buf, bool tls_listener) {
  if (buf.empty()) return "";
  const char c = buf.front();
  if (IsTchar(c) || c == '\r' || c == '\n') return "";
  if (!tls_listener && (c == 0x16 || static_cast<unsigned char>(c) == 0x80)) {
    return "a TLS handshake on a plain HTTP listener (use http://, or an HTTPS listener for https://)";
  }
  return "not an HTTP request (a request line starts with a method)";
}

bool ScanRequestHead(std::string_view buf, std::size_t max_header_bytes, std::size_t* scanned, std::size_t* end,
                     boost::system::error_code* ec) {
  std::size_t e = buf.find("\r\n\r\n", *scanned > 3 ? *scanned - 3 : 0);
  if (e == std::string_view::npos) {
    if (buf.find("\n\n", *scanned > 1 ? *scanned - 1 : 0) != std::string_view::npos) {
      *ec = http::error::bad_line_ending;  // a header ended by bare LFs
      return true;
    }
    *scanned = std::max<std::size_t>(buf.size(), 1);
    if (buf.size() > max_header_bytes) {
      *ec = http::error::header_limit;
      return true;
    }
    return false;
  }
  e += 4;
  *end = e;
  const std::string_view head = buf.substr(0, e);
  for (std::size_t i = head.find('\n'); i != std::string_view::npos; i = head.find('\n', i + 1)) {
    if (i == 0 || head[i - 1] != '\r') {
      *ec = http::error::bad_line_ending;
      return true;
    }
    if (i + 1 < head.size() && (head[i + 1] == ' ' || head[i + 1] == '\t')) {
      *ec = http::error::bad_value;  // obs-fold
      return true;
    }
  }
  return true;
}

}  // namespace doorman::dataplane
