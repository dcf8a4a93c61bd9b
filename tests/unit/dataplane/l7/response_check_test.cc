#include "dataplane/l7/response_check.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <limits>
#include <memory>

namespace doorman::dataplane {
namespace {

namespace http = boost::beast::http;

// A backend response head parsed as the proxy parses it, then framed for `c`.
struct Framed {
  HttpHead head;
  std::unique_ptr<HeadParser<false>> parser;
  ResponseFrame frame;
  std::string out;  // the head as the client receives it
};

std::unique_ptr<Framed> Frame(std::string_view response, ClientExchange c = {}) {
  auto f = std::make_unique<Framed>();
  f->parser = std::make_unique<HeadParser<false>>(f->head);
  f->parser->body_limit(std::numeric_limits<std::uint64_t>::max());
  f->parser->eager(false);
  if (c.head) f->parser->skip(true);
  boost::system::error_code ec;
  f->parser->put(boost::asio::buffer(response.data(), response.size()), ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(f->parser->is_header_done());
  f->frame = FrameResponse(f->head, *f->parser, c);
  f->head.SerializeResponse(&f->out);
  return f;
}

TEST(ResponseCheckTest, ContentLengthPassesThroughAndKeepsBothConnections) {
  const auto f = Frame("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
  EXPECT_TRUE(f->frame.error.empty());
  EXPECT_EQ(f->frame.framing, Framing::kRaw);
  EXPECT_TRUE(f->frame.keep_client);
  EXPECT_TRUE(f->frame.reuse_upstream);
  EXPECT_FALSE(f->frame.linger);
  EXPECT_EQ(f->out, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
}

TEST(ResponseCheckTest, AListOfEqualLengthsGoesOutAsOne) {
  const auto f = Frame("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok");
  EXPECT_EQ(f->head.Get(http::field::content_length), "2");
  EXPECT_EQ(f->head.Count(http::field::content_length), 1u);
}

TEST(ResponseCheckTest, ChunkedIsReChunkedForHttp11AndDelimitedByCloseForHttp10) {
  const std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto f = Frame(chunked);
  EXPECT_EQ(f->frame.framing, Framing::kChunked);
  EXPECT_TRUE(f->frame.keep_client);
  f = Frame(chunked, {.version = 10});
  EXPECT_EQ(f->frame.framing, Framing::kRaw);
  EXPECT_FALSE(f->frame.keep_client);
  EXPECT_FALSE(f->head.Has("Transfer-Encoding"));
  EXPECT_EQ(f->head.Get("Connection"), "close");
}

TEST(ResponseCheckTest, ACloseDelimitedBodyIsChunkedWithTheBackendsCodingsFirst) {
  auto f = Frame("HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  EXPECT_EQ(f->frame.framing, Framing::kChunked);
  EXPECT_FALSE(f->frame.reuse_upstream);
  EXPECT_EQ(f->head.Get(http::field::transfer_encoding), "gzip, chunked");
  f = Frame("HTTP/1.0 200 OK\r\n\r\n", {.version = 10, .keep_alive = true});
  EXPECT_FALSE(f->frame.keep_client);
  EXPECT_EQ(f->head.Get("Connection"), "close");
}

// A coding other than chunked stays in the relayed body; an HTTP/1.0 client cannot be told
// (RFC 9112 §6.1: no Transfer-Encoding for it), so it gets a 502, not gzip bytes as the content.
// Chunked alone (de-chunked, close-delimited) and header-only answers are fine.
TEST(ResponseCheckTest, AnHttp10ClientIsNeverSentATransferCodedBody) {
  for (const char* te : {"gzip, chunked", "gzip", "Deflate, Chunked", "identity, br"}) {
    SCOPED_TRACE(te);
    const auto f = Frame(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ") + te + "\r\n\r\n", {.version = 10});
    EXPECT_NE(f->frame.error.find("which an HTTP/1.0 client cannot receive"), std::string::npos) << f->frame.error;
    EXPECT_TRUE(f->frame.client_incompatible);  // not the backend's failure
    EXPECT_TRUE(Frame(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ") + te + "\r\n\r\n")->frame.error.empty());
  }
  EXPECT_FALSE(Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", {.version = 10})
                   ->frame.client_incompatible);  // a backend's own framing error
  EXPECT_EQ(Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", {.version = 10})->frame.error,
            "backend response has Transfer-Encoding \"gzip\", which an HTTP/1.0 client cannot receive");
  for (const char* te : {"chunked", "identity, chunked", "Chunked"}) {
    EXPECT_TRUE(Frame(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ") + te + "\r\n\r\n", {.version = 10})
                    ->frame.error.empty())
        << te;
  }
  const auto head = Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", {.version = 10, .head = true});
  EXPECT_TRUE(head->frame.error.empty());
  EXPECT_FALSE(head->head.Has("Transfer-Encoding"));
}

TEST(ResponseCheckTest, IdentityIsDropped) {
  auto f = Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, chunked\r\n\r\n");
  EXPECT_TRUE(f->frame.error.empty());
  EXPECT_EQ(f->head.Get(http::field::transfer_encoding), "chunked");
  f = Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n");
  EXPECT_FALSE(f->head.Has("Transfer-Encoding"));
}

TEST(ResponseCheckTest, SeveralTransferEncodingFieldsAreOneList) {
  // RFC 9110 §5.3: "gzip" then "chunked" is "gzip, chunked" — one field on the way out.
  auto f = Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_TRUE(f->frame.error.empty()) << f->frame.error;
  EXPECT_EQ(f->frame.framing, Framing::kChunked);
  EXPECT_EQ(f->head.Count(http::field::transfer_encoding), 1u);
  EXPECT_EQ(f->head.Get(http::field::transfer_encoding), "gzip, chunked");
  // Only the first field's codings were kept once (the fuzzer's find): the client read the
  // re-chunked body as delimited by the close.
  f = Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, br\r\nTransfer-Encoding: deflate, chunked\r\n\r\n");
  EXPECT_EQ(f->head.Get(http::field::transfer_encoding), "gzip, br, deflate, chunked");
}

TEST(ResponseCheckTest, AmbiguousTransferEncodingsAreRefused) {
  for (const char* te : {"chunked, gzip", "chunked, chunked", "gzip;q=1, chunked", "gzip\xff, chunked", "chunked, identity"}) {
    const auto f = Frame(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ") + te + "\r\n\r\n");
    EXPECT_FALSE(f->frame.error.empty()) << te;
  }
  const auto f = Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(f->frame.error, "backend response has both Transfer-Encoding and Content-Length");
  EXPECT_EQ(Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip;q=1\r\n\r\n")->frame.error,
            "backend response has an invalid Transfer-Encoding");
}

TEST(ResponseCheckTest, HeaderOnlyResponsesKeepTheirDeclaredFraming) {
  // HEAD and 304 describe the body they would have: Transfer-Encoding and Content-Length stay.
  auto f = Frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", {.head = true});
  EXPECT_TRUE(f->frame.error.empty()) << f->frame.error;
  EXPECT_TRUE(f->frame.header_only);
  EXPECT_TRUE(f->frame.keep_client);
  EXPECT_EQ(f->head.Get(http::field::transfer_encoding), "gzip, chunked");
  f = Frame("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_TRUE(f->frame.error.empty()) << f->frame.error;
  f = Frame("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", {.head = true});
  EXPECT_EQ(f->head.Get(http::field::content_length), "7");
  // The client's connection stays; the backend's is not reused after a HEAD (a body written
  // late to it would become the next request's answer: helper-90).
  EXPECT_TRUE(f->frame.keep_client);
  EXPECT_FALSE(f->frame.reuse_upstream);
}

TEST(ResponseCheckTest, NoContentLosesItsFramingFields) {
  const auto f = Frame("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
  EXPECT_TRUE(f->frame.header_only);
  EXPECT_FALSE(f->head.Has("Content-Length"));
  EXPECT_TRUE(f->frame.keep_client);
}

TEST(ResponseCheckTest, AnUnreadRequestBodyClosesLingering) {
  const auto f = Frame("HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", {.body_unread = true});
  EXPECT_FALSE(f->frame.keep_client);
  EXPECT_FALSE(f->frame.reuse_upstream);
  EXPECT_TRUE(f->frame.linger);
  EXPECT_EQ(f->head.Get("Connection"), "close");
}

TEST(ResponseCheckTest, AnHttp10ClientKeptOpenIsToldSo) {
  const auto f = Frame("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", {.version = 10, .keep_alive = true});
  EXPECT_TRUE(f->frame.keep_client);
  EXPECT_EQ(f->head.Get("Connection"), "keep-alive");
}

TEST(ResponseCheckTest, AnInterimHeadLosesBodyFramingAndHopByHopFields) {
  const auto f = Frame("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\nTransfer-Encoding: chunked\r\nKeep-Alive: 5\r\n\r\n");
  HttpHead& h = f->head;
  PrepareInterim(h);
  std::string out;
  h.SerializeResponse(&out);
  EXPECT_EQ(out, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
}

// helper-112: a backend ending its head's lines with bare LF got its client a 502; nginx and
// HAProxy take LF as a line end (RFC 9112 §2.2 allows it).
TEST(ResponseCheckTest, BareLfHeadLinesGetCrlf) {
  std::string out;
  std::size_t checked = 0;
  ASSERT_TRUE(CrlfHead("HTTP/1.1 200 OK\nContent-Length: 4\n\nab\ncd", &out, &checked));
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab\ncd");  // the body untouched
  EXPECT_EQ(checked, out.size() - 5);  // up to the body
  checked = 0;
  ASSERT_TRUE(CrlfHead("HTTP/1.1 200 OK\r\nA: b\n\r\nX", &out, &checked));  // mixed
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nA: b\r\n\r\nX");
  // A head still arriving: its whole lines now, the partial line as it is. The next call looks
  // only past what was checked, and gives the bytes from there on.
  checked = 0;
  ASSERT_TRUE(CrlfHead("HTTP/1.1 204 No Content\nX-A: 1\nX-B", &out, &checked));
  EXPECT_EQ(out, "HTTP/1.1 204 No Content\r\nX-A: 1\r\nX-B");
  const std::string first = out;
  EXPECT_EQ(checked, first.size() - 3);
  ASSERT_TRUE(CrlfHead(first + ": 2\n\n", &out, &checked));
  EXPECT_EQ(out, "X-B: 2\r\n\r\n");
  EXPECT_EQ(checked, first.size() + 7);
  // Lines already checked are not looked at again (a bare LF there is not seen: the caller
  // rewrote them).
  checked = 16;
  EXPECT_FALSE(CrlfHead("HTTP/1.1 200 OK\nA: b\r\n", &out, &checked));
  EXPECT_EQ(checked, 22u);
  // Nothing to do: CRLF throughout (the body's bare LFs are not the head's), or no LF yet.
  for (const char* same : {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na\nb", "HTTP/1.1 200 OK\r\nA: b\r\n",
                           "HTTP/1.1 200 OK", "", "HTTP/1.1 200 OK\r"}) {
    checked = 0;
    EXPECT_FALSE(CrlfHead(same, &out, &checked)) << same;
  }
  // Interim heads: only the first head is rewritten; the next one is when it comes up.
  checked = 0;
  ASSERT_TRUE(CrlfHead("HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\nContent-Length: 0\n\n", &out, &checked));
  EXPECT_EQ(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\nContent-Length: 0\n\n");
  // A lone CR stays for the parser to refuse.
  checked = 0;
  ASSERT_TRUE(CrlfHead("HTTP/1.1 200 OK\nA: b\rc\n\n", &out, &checked));
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n");
}

TEST(ResponseCheckTest, MissingReasonSpace) {
  EXPECT_TRUE(MissingReasonSpace("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(MissingReasonSpace("HTTP/1.1 200 \r\n"));
  EXPECT_FALSE(MissingReasonSpace("HTTP/1.1 200 OK\r\n"));
  EXPECT_FALSE(MissingReasonSpace("HTTP/1.1 20\r\n\r\n"));
  EXPECT_FALSE(MissingReasonSpace("HTTP/1.1 200\r"));
}

}  // namespace
}  // namespace doorman::dataplane
