#include "dataplane/server/connect.h"

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace doorman::dataplane {

Task<Socket> ConnectTo(Executor ex, const Endpoint& endpoint, std::chrono::milliseconds timeout,
                       boost::system::error_code& ec) {
  boost::beast::basic_stream<tcp, Executor> stream(ex);
  const auto addr = net::ip::make_address(endpoint.address, ec);
  if (!ec) {
    stream.expires_after(timeout);
    co_await stream.async_connect(tcp::endpoint(addr, endpoint.port), Redirect(ec));
  }
  if (ec) stream.close();
  stream.expires_never();
  boost::system::error_code ignored;
  if (!ec) stream.socket().set_option(tcp::no_delay(true), ignored);
  co_return stream.release_socket();
}

bool IsTimeout(const boost::system::error_code& ec) {
  return ec == boost::beast::error::timeout || ec == net::error::timed_out;
}

}  // namespace doorman::dataplane
