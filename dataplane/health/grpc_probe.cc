#include "dataplane/health/grpc_probe.h"

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/fd_limit.h"

#include "dataplane/health/health_state.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace doorman::health {

namespace {

namespace hv1 = ::grpc::health::v1;

// A HealthCheckResponse is 2 bytes; anything much larger is not a health reply.
constexpr int kMaxReplyBytes = 4096;

// Whether this process can open a socket of the endpoint's family now. A probe that cannot is
// skipped before gRPC gets to try: gRPC would report the shortage only as a connection failure.
bool CanOpenSocket(const std::string& address) {
  const int fd = ::socket(address.find(':') == std::string::npos ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  return !IsLocalResourceErrno(errno);
}

}  // namespace

struct GrpcProbes::Call {
  std::shared_ptr<::grpc::Channel> channel;
  std::unique_ptr<hv1::Health::Stub> stub;
  ::grpc::ClientContext ctx;
  hv1::HealthCheckRequest request;
  hv1::HealthCheckResponse response;
  Done done;
};

// Holds gRPC initialised for as long as probes may run: a call released by a posted closure (even
// one destroyed unrun with its io_context) finds the library still up.
GrpcProbes::GrpcProbes(Post post) : post_(std::move(post)) { grpc_init(); }

GrpcProbes::~GrpcProbes() {
  Shutdown();
  grpc_shutdown();
}

void GrpcProbes::Start(const std::string& address, uint16_t port, const std::string& service,
                       std::chrono::milliseconds timeout, Done done) {
  const bool can_run = CanOpenSocket(address);
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  {
    std::unique_lock lock(mu_);
    if (shut_down_ || !can_run) {
      lock.unlock();
      const ProbeResult result = can_run ? ProbeResult::kFailed : ProbeResult::kSkipped;
      post_([done = std::move(call->done), result] { done(result); });
      return;
    }
    calls_.emplace(call.get(), call);
    ++pending_;
  }
  ::grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);           // never through $http_proxy / $grpc_proxy
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);   // a connection of its own per probe
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_ENABLE_CHANNELZ, 0);             // no per-channel registry entries
  args.SetMaxReceiveMessageSize(kMaxReplyBytes);
  args.SetUserAgentPrefix("doorman-health-check");
  call->channel = ::grpc::CreateCustomChannel(GrpcTarget(address, port), ::grpc::InsecureChannelCredentials(), args);
  call->stub = hv1::Health::NewStub(call->channel);
  call->ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  call->request.set_service(service);
  Call* c = call.get();  // calls_ owns it until its callback
  call.reset();
  c->stub->async()->Check(&c->ctx, &c->request, &c->response, [this, c, address](::grpc::Status status) {
    ProbeResult result = ProbeResult::kPassed;
    if (!GrpcCheckPassed(static_cast<int>(status.error_code()), static_cast<int>(c->response.status()))) {
      // The message may come from the backend itself (a Check answered UNAVAILABLE "Too many open
      // files"): the shortage counts only when this process cannot open a socket now either.
      const bool local = GrpcFailureIsLocal(status.error_message()) && !CanOpenSocket(address);
      result = local ? ProbeResult::kSkipped : ProbeResult::kFailed;
    }
    Finished(c, result);
  });
}

// On a gRPC thread: the verdict and the call (with its channel) move to the owner's thread, and
// no reference stays here (a channel released on gRPC's callback thread would join that thread).
void GrpcProbes::Finished(Call* c, ProbeResult result) {
  std::shared_ptr<Call> call;
  {
    std::lock_guard lock(mu_);
    auto it = calls_.find(c);
    call = std::move(it->second);
    calls_.erase(it);
  }
  std::function<void()> fn = [call = std::move(call), result] { call->done(result); };
  post_(std::move(fn));
  std::lock_guard lock(mu_);
  if (--pending_ == 0) idle_.notify_all();
}

void GrpcProbes::Shutdown() {
  std::vector<std::shared_ptr<Call>> in_flight;
  {
    std::lock_guard lock(mu_);
    shut_down_ = true;
    for (const auto& [c, call] : calls_) in_flight.push_back(call);
  }
  // Without the lock: a call may finish (even inline) meanwhile; these references keep it alive.
  for (const auto& call : in_flight) call->ctx.TryCancel();
  in_flight.clear();
  std::unique_lock lock(mu_);
  idle_.wait(lock, [this] { return pending_ == 0; });
}

}  // namespace doorman::health
