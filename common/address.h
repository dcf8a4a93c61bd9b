// What may be written into a Kubernetes LoadBalancer status point (LoadBalancerIngress): an IP
// literal (`ip`) or a DNS-1123 subdomain (`hostname`). The API server refuses anything else with
// 422, so an unchecked --advertise-address would fail every status write of every object.
#pragma once

#include <string>
#include <string_view>

namespace doorman {

bool IsIpLiteral(const std::string& s);                  // IPv4 dotted quad or IPv6 (no zone, no brackets)
// The canonical text of an IP literal (RFC 5952 for IPv6: lower case, zeros compressed), so one
// address has one spelling; "" when `s` is not one.
std::string CanonicalIp(const std::string& s);
bool IsDns1123Label(std::string_view s);                 // [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63
bool IsDns1123Subdomain(std::string_view s);             // dot-separated DNS-1123 labels, <= 253
// An object name as the API server takes it (apimachinery's IsDNS1123Subdomain): the same
// characters, <= 253, but no 63-character bound on a label. Hostnames use IsDns1123Subdomain.
bool IsObjectName(std::string_view s);
bool IsStatusHostname(std::string_view s);               // a DNS-1123 subdomain whose last label is not all digits
inline bool IsValidStatusAddress(const std::string& s) { return IsIpLiteral(s) || IsStatusHostname(s); }
// A Host header value a configuration may set (RFC 9110 §7.2 uri-host[:port]): a host name
// (letters of any case, digits, '-', '_'; labels of 1-63; an optional trailing dot), an IPv4
// literal or a bracketed IPv6 literal, each with an optional ":port" (1-65535).
bool IsHostHeaderValue(std::string_view s);
bool IsLoopbackHost(std::string_view host);              // localhost, 127.0.0.0/8, ::1 (brackets allowed)
// Why an endpoint address reaches the node rather than a pod, as the API server refuses in
// Endpoints and EndpointSlices (ValidateNonSpecialIP): "" for an ordinary address, else the range
// (unspecified or 0.0.0.0/8, loopback, link-local unicast, link-local multicast; an IPv4-mapped
// IPv6 address is judged as the IPv4 address it maps), and the cloud metadata services outside
// those (AWS's fd00:ec2::254, Alibaba's 100.100.100.200). `ip` is an IP literal.
std::string NodeLocalAddressProblem(const std::string& ip);

}  // namespace doorman
