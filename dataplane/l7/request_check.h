// Checks on a received HTTP/1.x request head that Beast's parser does not make and a proxy must
// (request smuggling, RFC 9112 §6 and §11.2). Pure: no sockets, so the proxy's framing decisions
// are unit-tested and fuzzed (tests/fuzz/http_head_fuzz.cc) on strings.
#pragma once

#include <boost/system/error_code.hpp>
#include <cstddef>
#include <string>
#include <string_view>

#include "dataplane/l7/http_head.h"

namespace doorman::dataplane {

// Whether a Transfer-Encoding value lists the chunked coding anywhere.
bool ListsChunked(std::string_view te);

// Whether a Connection field of the message lists `option` ("close", "upgrade").
bool ConnectionLists(const HttpHead& h, std::string_view option);

// Framing ambiguities Beast's parser lets through but a proxy must refuse: returns why, or ""
// when the request is safe to forward. `status`, when given, gets the answer's code: 400, or 501
// for a well-framed Transfer-Encoding with a coding other than chunked ("gzip, chunked").
std::string SmugglingRisk(const HttpHead& h, unsigned* status = nullptr);

// Whether the request line at the start of `buf` is "method target version" with a well-formed
// HTTP version other than HTTP/1.0 and HTTP/1.1 ("HTTP/2.0", "HTTP/1.2"), which Beast's parser
// refuses: answered 505.
bool UnsupportedHttpVersion(std::string_view buf);

// Why the first bytes received for a request (after any empty lines) cannot start one, or "":
// a request line starts with a method, a token, so anything else is refused at once instead of
// waiting the header timeout for a line end that never comes (a TLS ClientHello sent to a
// plain HTTP listener above all; on an HTTPS listener, whose bytes are already decrypted, it is
// just not HTTP).
std::string NotARequestStart(std::string_view buf, bool tls_listener = false);

// Whether `buf` (the bytes received from a client) holds a whole request head: its length in
// *end. The search resumes at *scanned (updated when more bytes are needed). Sets *ec and returns
// true for a head larger than `max_header_bytes` without its end, a head ended by bare LFs, a
// bare LF inside it, or obs-fold (a line starting with SP/HTAB). Returns false: read more.
bool ScanRequestHead(std::string_view buf, std::size_t max_header_bytes, std::size_t* scanned, std::size_t* end,
                     boost::system::error_code* ec);

}  // namespace doorman::dataplane
