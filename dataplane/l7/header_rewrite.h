// Request/response header rewriting for the HTTP proxy, on HttpHead (no sockets, so it is
// unit-testable on parsed strings).
//
// Hop-by-hop fields (RFC 9110 §7.6.1) are removed in both directions: Connection and every field
// it names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade (upgrades are not tunnelled by
// this build). Transfer-Encoding and Content-Length are kept even when Connection names them:
// they frame the body, the proxy re-frames from them, and dropping them would turn the body into
// a second request upstream (request smuggling). Host is never removed either.
#pragma once

#include <string_view>

#include "dataplane/config/runtime_config.h"
#include "dataplane/l4/cidr.h"
#include "dataplane/l7/http_head.h"

namespace doorman::dataplane {

void StripHopByHop(HttpHead& h);

struct ForwardedInfo {
  std::string_view client_ip;         // the peer address of the client connection
  std::string_view proto = "http";    // X-Forwarded-Proto
  std::string_view host;              // the Host the client asked for (X-Forwarded-Host)
  std::string_view authority;         // non-empty for an absolute-form target: becomes Host
  std::string_view origin_target;     // the origin-form target when `authority` is set
  ForwardedForMode forwarded_for = ForwardedForMode::kAppend;
  bool trusted = false;               // the client is a trusted proxy (Route.trusted_proxies)
  const std::vector<l4::Cidr>* trusted_proxies = nullptr;  // to find the client in a trusted chain
  std::string_view port;              // X-Forwarded-Port: the listener port
  std::string_view request_id;        // X-Request-Id to send (already decided by the caller)
};

// Turns a client request head into the one sent upstream: hop-by-hop fields removed,
// X-Forwarded-For/-Proto/-Host/-Port and X-Request-Id set, an absolute-form target turned into
// origin form + Host. Forwarded headers from an untrusted client are never passed on as truth:
//   Append  trusted: incoming X-Forwarded-For + ", " + client ip; untrusted: client ip only
//   Replace client ip only             Off: trusted: untouched; untrusted: removed
// X-Real-IP follows the same modes with a single address. Append: a trusted client's is kept;
// a trusted client without one gets the address nginx's realip module would find (the
// rightmost X-Forwarded-For entry outside trusted_proxies; the leftmost if all are inside; the
// peer without a chain).
// RFC 7239 Forwarded (never created): Append: a trusted client's gets "for=<client ip>"
// appended (our hop, as X-Forwarded-For); Replace: removed; Off: a trusted client's untouched.
// From an untrusted client it is removed in every mode.
// X-Forwarded-Proto/-Host/-Port: a trusted client's values are kept, otherwise ours are set.
// Returns true when the client sent "Expect: 100-continue" (removed here: the proxy answers
// 100 Continue itself before relaying the body).
bool PrepareUpstreamRequest(HttpHead& h, const ForwardedInfo& info);

// The client a trusted proxy's X-Forwarded-For chain names (the X-Real-IP rule above: the
// rightmost entry outside `trusted`, the leftmost if all are inside), when it is an IP address;
// "" without a chain or when that entry is not an address. The caller decides that the peer is
// trusted. Used as the client for rate-limit and source-IP keys behind a trusted proxy (nginx's
// realip module makes it $remote_addr; Envoy's xff_num_trusted_hops its downstream address).
std::string ForwardedClientIp(const HttpHead& h, const std::vector<l4::Cidr>& trusted);

// Applies remove, then set (replace every field of that name), then add (append a field).
// `request`: a request to a backend, where the underscore spellings of the names removed or set
// ("X_User" for x-user) go too: CGI-style backends (PHP, Rack, WSGI) read both as HTTP_X_USER,
// so a client's X_User would otherwise pass a filter that removes or sets x-user.
void ApplyHeaderRules(HttpHead& h, const HeaderRules& rules, bool request = false);

}  // namespace doorman::dataplane
