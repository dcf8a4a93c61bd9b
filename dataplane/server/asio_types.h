// Concrete Asio types used by the dataplane's I/O code. Every socket and timer is bound to one
// worker's io_context through its concrete executor type (not any_io_executor: the type erasure
// costs measurable CPU per operation, see PERFORMANCE-NOTES). Include only from *_io sources.
#pragma once

#include <utility>  // before Asio's coroutine headers (g++ 12 + Boost 1.74)

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace doorman::dataplane {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Executor = net::io_context::executor_type;
using Socket = net::basic_stream_socket<tcp, Executor>;
using Acceptor = net::basic_socket_acceptor<tcp, Executor>;
using Timer = net::basic_waitable_timer<std::chrono::steady_clock, net::wait_traits<std::chrono::steady_clock>, Executor>;
template <class T = void>
using Task = net::awaitable<T, Executor>;
inline constexpr net::use_awaitable_t<Executor> kUseTask;

// Completion token for `co_await op(..., Redirect(ec))`: errors land in ec instead of throwing
// (closed connections are the normal case on a proxy, exceptions would be far too slow).
inline auto Redirect(boost::system::error_code& ec) { return net::redirect_error(kUseTask, ec); }

}  // namespace doorman::dataplane
