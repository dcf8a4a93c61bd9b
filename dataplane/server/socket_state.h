// Adopting a descriptor the dataplane created itself (accept4 or socket with SOCK_NONBLOCK) into
// an Asio socket without the syscalls Asio 1.74 adds for descriptors it did not create:
// * assign() marks every adopted descriptor "possible_dup", so close() first removes it from
//   the epoll set with epoll_ctl(DEL) (closing the last reference would do that by itself);
// * it does not know the descriptor is already non-blocking, so the first asynchronous
//   operation sets O_NONBLOCK again with ioctl(FIONBIO).
// Two syscalls per descriptor, three per proxied TCP connection (docs/benchmarks.md, L4).
//
// Asio keeps both facts as flags in its socket implementation's `state_` (detail::socket_ops),
// reachable only through basic_socket's protected `impl_`. A pointer to that member, formed in a
// derived class, reads it without a cast (the standard rule for protected members). This relies
// on the layout of Boost 1.74's reactive socket service, the version the project builds with
// (Debian 12); with any other Boost version Adopt() falls back to the public calls, which cost
// the syscalls but are correct.
#pragma once

#include <boost/version.hpp>

#include "dataplane/server/asio_types.h"

#if BOOST_VERSION == 107400
#include <boost/asio/detail/socket_ops.hpp>
#endif

namespace doorman::dataplane {

namespace socket_state_detail {
struct SocketImpl : Socket {
  static auto& Of(Socket& s) { return (s.*(&SocketImpl::impl_)).get_implementation(); }
};
}  // namespace socket_state_detail

// Wraps `fd` — a TCP socket this process just created with SOCK_NONBLOCK (accept4 or socket),
// never duplicated — in `s` (closed, bound to its worker's executor). `user_non_blocking`: as
// s.non_blocking(true), Asio's synchronous calls on `s` then fail with would_block instead of
// waiting (else they wait, as after Asio's own first asynchronous operation). On failure `ec` is
// set and the caller still owns `fd`.
inline void Adopt(Socket& s, const tcp& protocol, int fd, bool user_non_blocking, boost::system::error_code& ec) {
  s.assign(protocol, fd, ec);
  if (ec) return;
#if BOOST_VERSION == 107400
  namespace ops = net::detail::socket_ops;
  auto& state = socket_state_detail::SocketImpl::Of(s).state_;
  state = static_cast<ops::state_type>((state & ~ops::possible_dup) | ops::internal_non_blocking |
                                       (user_non_blocking ? ops::user_set_non_blocking : 0));
#else
  if (user_non_blocking) s.non_blocking(true, ec);
  if (ec) {  // give the descriptor back: the caller still owns it on failure
    boost::system::error_code ignored;
    s.release(ignored);
  }
#endif
}

}  // namespace doorman::dataplane
