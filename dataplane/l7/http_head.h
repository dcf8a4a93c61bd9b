// An HTTP/1.x message head as the proxy forwards it: the received start line and fields kept as
// offsets into one byte string (no allocation per field, unlike beast::http::fields, which
// allocates a node per field), edits recorded in place (removed flags, appended fields) and
// applied when the head is serialized. See docs/benchmarks.md: this "pass-through" head is what
// took the L7 proxy to HAProxy's CPU cost per request.
//
// HeadParser feeds an HttpHead from Beast's own HTTP/1 parser (basic_parser: the same strict
// grammar, limits and framing rules as before), and hands body bytes (de-chunked) to a sink so
// the proxy can re-frame them. No sockets here: unit-testable on strings.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace doorman::dataplane {

// RFC 9110 §5.6.2 tchar: the characters of a token (a method, a field name).
inline bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// `t` (seconds since the epoch, UTC) as an HTTP date, RFC 9110 §5.6.7 IMF-fixdate:
// "Sun, 06 Nov 1994 08:49:37 GMT". Locale-independent.
std::string FormatHttpDate(int64_t t);
// The current time as an HTTP date, formatted at most once per second per thread.
std::string_view HttpDateNow();

class HttpHead {
 public:
  struct Field {
    boost::beast::http::field id = boost::beast::http::field::unknown;
    uint32_t name_off = 0, name_len = 0, value_off = 0, value_len = 0;
    bool added = false;    // bytes live in added_ (else raw_)
    bool removed = false;  // erased: not serialized, not found
  };

  void Clear();

  // Start line. Requests: method/target/version; responses: status/reason/version.
  void SetRequestLine(boost::beast::http::verb method, std::string_view method_str, std::string_view target,
                      unsigned version);
  void SetStatusLine(unsigned status, std::string_view reason, unsigned version);
  boost::beast::http::verb method() const { return method_; }
  std::string_view method_string() const { return View(method_off_, method_len_, false); }
  std::string_view target() const { return target_override_ ? std::string_view(*target_override_) : View(target_off_, target_len_, false); }
  void set_target(std::string_view t) { target_override_ = std::string(t); }
  unsigned version() const { return version_; }
  unsigned status() const { return status_; }
  std::string_view reason() const { return View(reason_off_, reason_len_, false); }

  // Fields in arrival order (removed ones included: check `removed`).
  const std::vector<Field>& fields() const { return fields_; }
  std::size_t live_field_count() const;
  std::string_view name(const Field& f) const { return View(f.name_off, f.name_len, f.added); }
  std::string_view value(const Field& f) const { return View(f.value_off, f.value_len, f.added); }

  // Case-insensitive lookups over live fields. Views into the received head stay valid until
  // Clear(); views into added fields until the next Insert/Set.
  std::optional<std::string_view> Get(std::string_view name) const;
  std::optional<std::string_view> Get(boost::beast::http::field id) const;
  std::size_t Count(std::string_view name) const;
  std::size_t Count(boost::beast::http::field id) const;
  bool Has(std::string_view name) const { return Get(name).has_value(); }

  void Erase(std::string_view name);
  void Erase(boost::beast::http::field id);
  void Insert(std::string_view name, std::string_view value);  // appended after the others
  void Set(std::string_view name, std::string_view value);     // Erase + Insert
  // The same with the name's field id already known (http::field::unknown for names Beast does
  // not know, e.g. X-Forwarded-For): saves the name lookup on the hot path.
  void Insert(boost::beast::http::field id, std::string_view name, std::string_view value);
  void Set(boost::beast::http::field id, std::string_view name, std::string_view value);
  // Parser hook: a received field (copied).
  void AddReceived(boost::beast::http::field id, std::string_view name, std::string_view value);

  // "GET /x HTTP/1.1\r\n" or "HTTP/1.1 200 OK\r\n" (always HTTP/1.1: the proxy speaks 1.1 on
  // both sides and answers 1.0 clients with 1.1 heads, as RFC 9110 §2.5 allows), the live fields,
  // and the blank line — appended to *out.
  void SerializeRequest(std::string* out) const;
  void SerializeResponse(std::string* out) const;

 private:
  std::string_view View(uint32_t off, uint32_t len, bool added) const {
    const std::string& s = added ? added_ : raw_;
    return std::string_view(s.data() + off, len);
  }
  uint32_t Append(std::string& s, std::string_view v) {
    const auto off = static_cast<uint32_t>(s.size());
    s.append(v);
    return off;
  }
  void AppendFields(std::string* out) const;
  void AddField(bool added, boost::beast::http::field id, std::string_view name, std::string_view value);

  std::string raw_;    // received bytes: method, target, reason, names, values
  std::string added_;  // bytes of fields added by Insert/Set
  std::vector<Field> fields_;
  boost::beast::http::verb method_ = boost::beast::http::verb::unknown;
  uint32_t method_off_ = 0, method_len_ = 0, target_off_ = 0, target_len_ = 0, reason_off_ = 0, reason_len_ = 0;
  std::optional<std::string> target_override_;
  unsigned version_ = 11;
  unsigned status_ = 0;
};

// Beast's HTTP/1 parser writing into an HttpHead; body bytes (after de-chunking) are appended to
// *body_sink when one is set, otherwise dropped. One parser per message (Beast parsers are not
// reusable), constructed cheaply on the stack or in place.
template <bool isRequest>
class HeadParser final : public boost::beast::http::basic_parser<isRequest> {
 public:
  explicit HeadParser(HttpHead& head, std::string* body_sink = nullptr) : head_(head), sink_(body_sink) {}
  void set_body_sink(std::string* sink) { sink_ = sink; }
  bool body_chunked_trailer_fields() const { return trailer_fields_; }

 private:
  using error_code = boost::system::error_code;
  using string_view = boost::beast::string_view;
  void on_request_impl(boost::beast::http::verb method, string_view method_str, string_view target, int version,
                       error_code&) override {
    head_.SetRequestLine(method, method_str, target, static_cast<unsigned>(version));
  }
  void on_response_impl(int code, string_view reason, int version, error_code&) override {
    head_.SetStatusLine(static_cast<unsigned>(code), reason, static_cast<unsigned>(version));
  }
  void on_field_impl(boost::beast::http::field name, string_view name_string, string_view value, error_code&) override {
    if (header_done_) {
      trailer_fields_ = true;  // chunked trailers: not forwarded (the body is re-framed)
      return;
    }
    head_.AddReceived(name, name_string, value);
  }
  void on_header_impl(error_code&) override { header_done_ = true; }
  void on_body_init_impl(boost::optional<std::uint64_t> const&, error_code&) override {}
  std::size_t on_body_impl(string_view body, error_code&) override {
    if (sink_ != nullptr) sink_->append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
    if (sink_ != nullptr) sink_->append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  HttpHead& head_;
  std::string* sink_;
  bool header_done_ = false;
  bool trailer_fields_ = false;
};

}  // namespace doorman::dataplane
