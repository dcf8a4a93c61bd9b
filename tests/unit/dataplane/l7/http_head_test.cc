#include "dataplane/l7/http_head.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

namespace doorman::dataplane {
namespace {

namespace http = boost::beast::http;
using boost::system::error_code;

// Feeds `text` to a HeadParser in one piece; returns the bytes consumed.
template <bool isRequest>
std::size_t Feed(HeadParser<isRequest>& p, std::string_view text, error_code& ec) {
  return p.put(boost::asio::buffer(text.data(), text.size()), ec);
}

TEST(HttpHeadTest, ParsesRequestLineAndFieldsInOrder) {
  HttpHead h;
  HeadParser<true> p(h);
  p.eager(false);
  error_code ec;
  const std::string text = "GET /a?b=1 HTTP/1.0\r\nHost: x\r\nX-Multi: 1\r\nx-multi: 2\r\nCookie: a=b\r\n\r\nrest";
  EXPECT_EQ(Feed(p, text, ec), text.size() - 4);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.is_header_done());
  EXPECT_EQ(h.method(), http::verb::get);
  EXPECT_EQ(h.method_string(), "GET");
  EXPECT_EQ(h.target(), "/a?b=1");
  EXPECT_EQ(h.version(), 10u);
  EXPECT_EQ(h.Get("host"), "x");
  EXPECT_EQ(h.Get(http::field::host), "x");
  EXPECT_EQ(h.Get("X-MULTI"), "1");  // the first of several
  EXPECT_EQ(h.Count("x-multi"), 2u);
  EXPECT_EQ(h.Count(http::field::cookie), 1u);
  EXPECT_FALSE(h.Get("absent").has_value());
  EXPECT_FALSE(h.Get(http::field::unknown).has_value());
  std::string out;
  h.SerializeRequest(&out);
  EXPECT_EQ(out, "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Multi: 1\r\nx-multi: 2\r\nCookie: a=b\r\n\r\n");
}

TEST(HttpHeadTest, EditsAreAppliedWhenSerialized) {
  HttpHead h;
  HeadParser<true> p(h);
  p.eager(false);
  error_code ec;
  Feed(p, "POST /old HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-B: 2\r\nx-a: 3\r\nContent-Length: 0\r\n\r\n", ec);
  ASSERT_FALSE(ec);
  const std::string_view host_before = *h.Get("host");  // views into received bytes survive edits
  h.Erase("x-a");
  h.Set("X-B", "two");
  h.Insert("X-New", "n");
  h.set_target("/new");
  EXPECT_EQ(host_before, "x");
  EXPECT_EQ(h.Count("X-A"), 0u);
  EXPECT_EQ(h.Get("x-b"), "two");
  EXPECT_EQ(h.live_field_count(), 4u);
  std::string out;
  h.SerializeRequest(&out);
  EXPECT_EQ(out, "POST /new HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-B: two\r\nX-New: n\r\n\r\n");
}

TEST(HttpHeadTest, ResponseStatusLineKeepsReasonOrUsesTheStandardOne) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, std::string>>{
           {"HTTP/1.1 404 Gone Fishing\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 404 Gone Fishing\r\n"},
           {"HTTP/1.0 503 \r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 503 Service Unavailable\r\n"},
           // A code without a standard reason keeps an empty one (helper-112: it was the text
           // "<unknown-status>").
           {"HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 299 \r\n"},
           {"HTTP/1.1 298 \r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 298 \r\n"},
           {"HTTP/1.1 299 Custom\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 299 Custom\r\n"}}) {
    HttpHead h;
    HeadParser<false> p(h);
    p.eager(false);
    error_code ec;
    Feed(p, text, ec);
    ASSERT_FALSE(ec) << text;
    std::string out;
    h.SerializeResponse(&out);
    EXPECT_EQ(out.substr(0, want.size()), want);
    EXPECT_NE(out.find("Content-Length: 0\r\n\r\n"), std::string::npos);
  }
}

TEST(HttpHeadTest, ChunkedBodyIsDechunkedIntoTheSinkAndTrailersAreNotFields) {
  HttpHead h;
  std::string body;
  HeadParser<false> p(h, &body);
  p.eager(true);
  error_code ec;
  const std::string text =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
  EXPECT_EQ(Feed(p, text, ec), text.size());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.is_done());
  EXPECT_TRUE(p.chunked());
  EXPECT_EQ(body, "hello world");
  EXPECT_EQ(h.Count("x-trailer"), 0u);
  EXPECT_TRUE(p.body_chunked_trailer_fields());
}

TEST(HttpHeadTest, BodyArrivingInPiecesAndLimits) {
  HttpHead h;
  std::string body;
  HeadParser<true> p(h, &body);
  p.eager(true);
  p.body_limit(8);
  error_code ec;
  std::string all = "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabcdef";
  std::size_t used = 0;
  for (std::size_t end = 1; end <= all.size() && !p.is_done(); ++end) {
    // The parser wants the whole head at once, then takes the body as it comes.
    const std::size_t n = Feed(p, std::string_view(all).substr(used, end - used), ec);
    if (ec == http::error::need_more) ec = {};
    ASSERT_FALSE(ec) << ec.message();
    used += n;
  }
  EXPECT_TRUE(p.is_done());
  EXPECT_EQ(body, "abcdef");

  HttpHead h2;
  HeadParser<true> big(h2);
  big.body_limit(8);
  Feed(big, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n", ec);
  EXPECT_EQ(ec, http::error::body_limit);
}

TEST(HttpHeadTest, ClearResetsEverything) {
  HttpHead h;
  {
    HeadParser<true> p(h);
    error_code ec;
    Feed(p, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", ec);
  }
  h.set_target("/y");
  h.Insert("A", "b");
  h.Clear();
  EXPECT_EQ(h.fields().size(), 0u);
  EXPECT_EQ(h.target(), "");
  HeadParser<true> p(h);
  error_code ec;
  Feed(p, "DELETE /z HTTP/1.1\r\nHost: q\r\n\r\n", ec);
  EXPECT_EQ(h.target(), "/z");
  EXPECT_EQ(h.Get("host"), "q");
  EXPECT_EQ(h.method(), http::verb::delete_);
}

TEST(HttpDate, ImfFixdate) {
  // Python's email.utils.formatdate(t, usegmt=True) for the same instants.
  EXPECT_EQ(FormatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110's example
  EXPECT_EQ(FormatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(1798761599), "Thu, 31 Dec 2026 23:59:59 GMT");
  EXPECT_EQ(FormatHttpDate(4102444799), "Thu, 31 Dec 2099 23:59:59 GMT");
  const std::string_view now = HttpDateNow();
  EXPECT_EQ(now.size(), 29u);
  EXPECT_EQ(now.substr(25), " GMT");
}

}  // namespace
}  // namespace doorman::dataplane
