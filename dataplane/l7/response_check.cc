#include "dataplane/l7/response_check.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>

#include "dataplane/l7/header_rewrite.h"


namespace doorman::dataplane {

namespace http = boost::beast::http;

bool MissingReasonSpace(std::string_view p) {
  if (p.size() < kReasonSpaceAt + 2) return false;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return p.substr(0, 5) == "HTTP/" && digit(p[5]) && p[6] == '.' && digit(p[7]) && p[8] == ' ' && digit(p[9]) &&
         digit(p[10]) && digit(p[11]) && p[12] == '\r' && p[13] == '\n';
}

bool CrlfHead(std::string_view d, std::string* out, std::size_t* checked) {
  // The head's lines received so far from *checked: up to the empty line that ends the head, else
  // up to the last LF.
  const std::size_t from = std::min(*checked, d.size());
  bool bare = false, ended = false;
  std::size_t end = from;  // just after the last whole line
  while (!ended) {
    const std::size_t nl = d.find('\n', end);
    if (nl == std::string_view::npos) break;
    const bool crlf = nl > end && d[nl - 1] == '\r';
    bare = bare || !crlf;
    ended = nl - end == (crlf ? 1u : 0u);  // the empty line that ends the head
    end = nl + 1;
  }
  if (!bare) {
    *checked = end;
    return false;
  }
  out->clear();
  out->reserve(d.size() - from + (end - from) / 8 + 8);
  for (std::size_t pos = from; pos < end;) {
    const std::size_t nl = d.find('\n', pos);
    std::string_view line = d.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out->append(line).append("\r\n");
    pos = nl + 1;
  }
  *checked = from + out->size();
  out->append(d.substr(end));
  return true;
}

namespace {
// Parses a Transfer-Encoding list (RFC 9112 §6.1, empty elements allowed): the codings other
// than "identity", joined by ", " in *kept, the last one in *last ("" when none), and whether
// chunked comes before the last in *chunked_before_last. False when an element is not a token:
// transfer parameters ("gzip;q=1", which no registered coding takes) included, since
// clients and Beast's parser would not agree on where such a list ends.
bool TransferCodings(std::string_view list, std::string* kept, std::string_view* last, bool* chunked_before_last) {
  kept->clear();
  *last = {};
  *chunked_before_last = false;
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  };
  while (true) {
    const std::size_t comma = list.find(',');
    const std::string_view element = trim(list.substr(0, comma));
    if (!element.empty()) {
      for (const char c : element) {
        if (!IsTchar(c)) return false;
      }
      const std::string_view name = element;
      if (!boost::beast::iequals(name, "identity")) {
        if (!kept->empty()) *kept += ", ";
        *kept += element;
        if (boost::beast::iequals(*last, "chunked")) *chunked_before_last = true;
        *last = name;
      }
    }
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}
}  // namespace

ResponseFrame FrameResponse(HttpHead& res, const http::basic_parser<false>& rp, const ClientExchange& c) {
  ResponseFrame f;
  const unsigned status = res.status();
  f.reuse_upstream = rp.keep_alive();
  // A 204 never carries Content-Length (RFC 9110 §8.6) nor Transfer-Encoding (RFC 9112 §6.1);
  // the parser already framed it empty.
  if (status == 204) {
    res.Erase(http::field::content_length);
    res.Erase(http::field::transfer_encoding);
  }
  f.header_only = c.head || status == 204 || status == 304;
  // A backend that writes a body to a HEAD (a GET handler answering both: a common bug) may do
  // so after the head, later than any peek: that body would be read as the next request's
  // answer, and the answer it displaces by whoever reuses the connection after (helper-90). A
  // HEAD's connection is closed instead; HEAD is rare enough for the connect it costs.
  if (c.head) f.reuse_upstream = false;
  f.keep_client = c.keep_alive;
  if (c.body_unread) {
    // The rest of the client's body was not read: close after this answer, lingering so the
    // unread bytes do not turn the close into a reset that destroys the answer.
    f.keep_client = false;
    f.reuse_upstream = false;
    f.linger = true;
  }
  // Framing a client could read otherwise than we do (RFC 9112 §6.3): Content-Length beside a
  // Transfer-Encoding that does not end in chunked is ambiguous and refused; beside a chunked
  // one it is dropped (the proxy re-frames from the parser anyway).
  std::string te_codings;  // the backend's Transfer-Encoding, kept when re-chunking
  if (res.Count(http::field::transfer_encoding) > 0) {
    // Several Transfer-Encoding fields are one list (RFC 9110 §5.3), as the parser read them:
    // "gzip" then "chunked" is chunked, so all go out as one field.
    std::string te;
    std::size_t te_fields = 0;
    for (const auto& field : res.fields()) {
      if (field.removed || field.id != http::field::transfer_encoding) continue;
      if (te_fields++ > 0) te += ", ";
      te += res.value(field);
    }
    // "identity" is no transfer coding (RFC 9112 dropped it): kept, "identity, chunked"
    // hangs clients that look for chunked alone.
    std::string_view last;
    bool chunked_before_last = false;
    if (!TransferCodings(te, &te_codings, &last, &chunked_before_last)) {
      f.error = "backend response has an invalid Transfer-Encoding";
      return f;
    }
    if (te_codings != te || te_fields > 1) {  // "identity, chunked" goes out as "chunked"
      if (te_codings.empty()) {
        res.Erase(http::field::transfer_encoding);
      } else {
        res.Set(http::field::transfer_encoding, "Transfer-Encoding", te_codings);
      }
    }
    if (chunked_before_last || rp.chunked() != boost::beast::iequals(last, "chunked")) {
      // "chunked, gzip": chunked is not the last coding, so the body is close-delimited and
      // still chunk-encoded; re-chunking it would apply chunked twice (RFC 9112 §6.1). The
      // parser refuses a Transfer-Encoding field after one ending in chunked; this also holds
      // if it did not.
      f.error = "backend response has a Transfer-Encoding where chunked is not the last coding";
      return f;
    }
    if (!rp.chunked() && res.Count(http::field::content_length) > 0) {
      f.error = "backend response has both Transfer-Encoding and Content-Length";
      return f;
    }
    res.Erase(http::field::content_length);
    if (c.version < 11 && !f.header_only) {
      // A coding other than chunked (gzip...) stays in the body the proxy relays, and an
      // HTTP/1.0 client cannot be told about it (no Transfer-Encoding for it, RFC 9112 §6.1): it
      // would read the coded bytes as the content. Refused, as nginx refuses any coding but
      // chunked; HTTP/1.1 clients get the codings listed.
      std::string_view rest = te_codings;
      if (boost::beast::iequals(last, "chunked") && rest.size() >= last.size()) rest.remove_suffix(last.size());
      while (!rest.empty() && (rest.back() == ' ' || rest.back() == ',')) rest.remove_suffix(1);
      if (!rest.empty()) {
        f.error = "backend response has Transfer-Encoding \"" + std::string(rest) +
                  "\", which an HTTP/1.0 client cannot receive";
        f.client_incompatible = true;  // valid for HTTP/1.1: no outlier failure for the backend
        return f;
      }
    }
  } else if (const auto cl = rp.content_length(); cl && !f.header_only) {
    // One Content-Length of plain digits on the way out, whatever list of equal values the
    // parser accepted ("2, 2": RFC 9110 §8.6 lets a recipient take it as one; a client
    // reading it otherwise would lose the framing of everything after it).
    const auto v = res.Get(http::field::content_length);
    if (res.Count(http::field::content_length) != 1 || !v || v->empty() ||
        v->find_first_not_of("0123456789") != std::string_view::npos) {
      res.Set(http::field::content_length, "Content-Length", std::to_string(*cl));
    }
  }
  // An HTTP/1.0 client never sees Transfer-Encoding (RFC 9112 §6.1), HEAD/204/304 included;
  // the framing below reads the parser's state, not the field.
  if (c.version < 11) res.Erase(http::field::transfer_encoding);
  if (!f.header_only && !rp.is_done() && rp.chunked()) {
    if (c.version >= 11) {
      f.framing = Framing::kChunked;  // de-chunked by the parser, re-chunked on the way out
    } else {
      f.keep_client = false;  // an HTTP/1.0 client: the body ends at close
    }
  } else if (!f.header_only && !rp.is_done() && !rp.content_length()) {
    // Body delimited by the backend closing: re-frame as chunked for HTTP/1.1 clients.
    f.reuse_upstream = false;
    if (c.version >= 11) {
      // Codings the backend applied (gzip...) stay listed, chunked goes last.
      res.Set(http::field::transfer_encoding, "Transfer-Encoding",
              te_codings.empty() ? std::string("chunked") : te_codings + ", chunked");
      f.framing = Framing::kChunked;
    } else {
      f.keep_client = false;
    }
  }
  if (!f.keep_client) {
    res.Set("Connection", "close");
  } else if (c.version < 11) {
    res.Set("Connection", "keep-alive");
  }
  return f;
}

void PrepareInterim(HttpHead& res) {
  StripHopByHop(res);
  res.Erase(http::field::content_length);
  res.Erase(http::field::transfer_encoding);
}

}  // namespace doorman::dataplane
