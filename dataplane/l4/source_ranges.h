// allowedSourceRanges against a peer address as Asio gives it (TCP accept, UDP datagram).
#pragma once

#include <vector>

#include <boost/asio/ip/address.hpp>

#include "dataplane/l4/cidr.h"

namespace doorman::l4 {

inline bool SourceAllowed(const std::vector<Cidr>& ranges, const boost::asio::ip::address& addr) {
  if (addr.is_v4()) {
    const auto b = addr.to_v4().to_bytes();
    return SourceAllowed(ranges, b.data(), b.size());
  }
  const auto b = addr.to_v6().to_bytes();
  return SourceAllowed(ranges, b.data(), b.size());
}

}  // namespace doorman::l4
