// How the L7 proxy frames a backend's response for the client (RFC 9112 §6, §9.3): what it does
// with the backend's Content-Length and Transfer-Encoding, when it re-chunks, when the client or
// backend connection must close. Pure: no sockets, so these decisions are unit-tested and fuzzed
// (tests/fuzz/response_fuzz.cc) on strings, as request_check.h does for requests.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <string>
#include <string_view>

#include "dataplane/l7/http_head.h"

namespace doorman::dataplane {

// How a body goes out: as received (Content-Length or close-delimited), or re-chunked.
enum class Framing { kRaw, kChunked };

// "HTTP/1.1 200\r\n" (no space after the status code, where RFC 9112 §4 wants one before an
// empty reason) is sent by some embedded servers and accepted by nginx, HAProxy and Envoy;
// Beast's parser refuses it. Whether `head_start` (the unparsed start of a response) begins with
// such a status line: the proxy then inserts a space at offset kReasonSpaceAt before parsing.
bool MissingReasonSpace(std::string_view head_start);
inline constexpr std::size_t kReasonSpaceAt = 12;  // after "HTTP/1.1 200"

// A response head whose lines end in a bare LF ("HTTP/1.1 200 OK\nContent-Length: 2\n\n"):
// RFC 9112 §2.2 lets a recipient take LF as a line end, and nginx and HAProxy accept it from
// backends; Beast's parser does not. `head` is the unparsed part of a response head as it
// arrives; its first *checked bytes are whole lines already ended by CRLF (0 at first). The
// lines after them up to the empty line that ends the head, else up to the last LF, are looked
// at (once each as the head arrives: linear in the head). When one ends in a bare LF, *out gets
// `head` from *checked on with every such line ended by CRLF and the rest (a partial line, or a
// body) unchanged, and true is returned: the caller replaces those bytes. *checked is moved past
// the lines looked at (in the rewritten bytes). A lone CR is left for the parser to refuse.
bool CrlfHead(std::string_view head, std::string* out, std::size_t* checked);

// The client's side of the exchange a response answers.
struct ClientExchange {
  unsigned version = 11;     // the request's HTTP version (10 or 11)
  bool head = false;         // a HEAD request
  bool keep_alive = true;    // the client connection may stay open (its request allows it, no drain)
  bool body_unread = false;  // the request body was not read whole (an early answer)
};

// What FrameResponse decided.
struct ResponseFrame {
  Framing framing = Framing::kRaw;
  bool header_only = false;        // HEAD, 204, 304: no body follows the head
  bool keep_client = false;        // the client connection stays open after this response
  bool reuse_upstream = false;     // the backend connection may go back to the pool
  bool linger = false;             // close the client connection lingering (unread request bytes)
  std::string error;               // non-empty: refuse the response (502) for this reason
  bool client_incompatible = false;  // the error is this client's (HTTP/1.0), not the backend's fault
};

// Rewrites the framing fields of `res` (the backend's response head, hop-by-hop fields already
// stripped, as parsed by `rp`) for the client described by `c`: drops Content-Length and
// Transfer-Encoding where the message may not carry them, normalises Content-Length to one value,
// re-chunks a close-delimited or chunked body for HTTP/1.1 clients, sets Connection. Returns an
// error instead for framing a client could read otherwise than the proxy does.
ResponseFrame FrameResponse(HttpHead& res, const boost::beast::http::basic_parser<false>& rp, const ClientExchange& c);

// An interim (1xx, not 101) response head as forwarded to an HTTP/1.1 client: hop-by-hop fields
// stripped, and no Content-Length or Transfer-Encoding (a 1xx has no body, RFC 9110 §15.2).
void PrepareInterim(HttpHead& res);

}  // namespace doorman::dataplane
