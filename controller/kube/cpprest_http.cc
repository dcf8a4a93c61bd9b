// The only translation unit that includes cpprestsdk (≈40 s to compile): KubeHttp over
// web::http::client::http_client. Two clients share the configuration: one for ordinary requests
// (keep-alive pool, request timeout) and one for watches (idle timeout: cpprest's asio client
// re-arms its timer on every read, so a streaming body only times out when it stalls).
#include <cpprest/http_client.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "common/pem_no_prompt.h"
#include "controller/kube/http.h"

namespace doorman::controller::kube {
namespace {

namespace http = web::http;
using http::client::http_client;
using http::client::http_client_config;

// How long a failed attempt may have taken and still be retried on a fresh connection (a pooled
// keep-alive connection the server closed fails at once; a real timeout must not double).
constexpr auto kQuickFailure = std::chrono::milliseconds(1500);

class CppRestKubeHttp final : public KubeHttp {
 public:
  CppRestKubeHttp(const KubeConfig& config, HttpOptions options)
      : user_agent_(std::move(options.user_agent)),
        token_(config.token),
        token_file_(config.token_file) {
    if (!token_file_.empty()) token_stamp_ = Stamp(token_file_);
    http_client_config c;
    c.set_validate_certificates(!config.insecure_skip_tls_verify);
    const std::string ca = config.ca_pem;
    const std::string cert = config.client_cert_pem;
    const std::string key = config.client_key_pem;
    if (!ca.empty() || !cert.empty()) {
      c.set_ssl_context_callback([ca, cert, key](boost::asio::ssl::context& ctx) {
        boost::system::error_code ec;  // errors surface as failed handshakes, without key material
        // Never a passphrase prompt from an I/O thread (main refuses an encrypted key up front).
        SSL_CTX_set_default_passwd_cb(ctx.native_handle(), doorman::NoPassphrase);
        if (!ca.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca.data(), ca.size()), ec);
        if (!cert.empty()) {
          ctx.use_certificate_chain(boost::asio::buffer(cert.data(), cert.size()), ec);
          ctx.use_private_key(boost::asio::buffer(key.data(), key.size()), boost::asio::ssl::context::pem, ec);
        }
      });
    }
    c.set_timeout(options.request_timeout);
    api_ = std::make_unique<http_client>(web::uri(config.server), c);
    c.set_timeout(options.watch_idle_timeout);
    watch_ = std::make_unique<http_client>(web::uri(config.server), c);
    server_ = config.server;
    client_config_ = c;
  }

  ~CppRestKubeHttp() override {
    {
      std::lock_guard<std::mutex> lock(cts_mu_);
      watchdog_stop_ = true;
    }
    watchdog_cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
  }

  void BeginShutdown(std::chrono::milliseconds request_deadline, std::chrono::milliseconds budget) override {
    {
      std::lock_guard<std::mutex> lock(cts_mu_);
      if (shutting_down_) return;
      shutting_down_ = true;
      http_client_config c = client_config_;
      c.set_timeout(std::max(request_deadline, std::chrono::milliseconds(100)));
      shutdown_ = std::make_unique<http_client>(web::uri(server_), c);
      cts_.cancel();  // everything in flight; later requests take the fresh token
      cts_ = pplx::cancellation_token_source();
    }
    watchdog_ = std::thread([this, budget] {
      std::unique_lock<std::mutex> lock(cts_mu_);
      if (watchdog_cv_.wait_for(lock, budget, [this] { return watchdog_stop_; })) return;
      lock.unlock();
      log::Warn("kube", "shutdown budget spent: cancelling the remaining API requests",
                {{"budget", std::to_string(budget.count()) + "ms"}});
      Cancel();
    });
  }

  HttpResponse Request(const std::string& method, const std::string& path_and_query, const std::string& body,
                       const std::string& content_type) override {
    return Once(method, path_and_query, body, content_type);
  }

  HttpResponse Stream(const std::string& path_and_query, const std::function<bool(std::string_view)>& on_line,
                      bool* clean) override {
    *clean = false;
    HttpResponse out;
    pplx::cancellation_token token = pplx::cancellation_token::none();
    {
      std::lock_guard<std::mutex> lock(cts_mu_);
      if (cancelled_ || shutting_down_) {
        out.error = "cancelled";
        return out;
      }
      token = cts_.get_token();
    }
    try {
      http::http_response resp = watch_->request(MakeRequest("GET", path_and_query, "", ""), token).get();
      Fill(resp, &out);
      if (out.status != 200) {
        out.body = resp.extract_utf8string(true).get();
        return out;
      }
      // Read what is available without tasks; block (one task) only for the next byte.
      auto buf = resp.body().streambuf();
      std::string line;
      uint8_t chunk[16384];
      const auto eof = concurrency::streams::streambuf<uint8_t>::traits::eof();
      for (;;) {
        const size_t avail = buf.in_avail();
        if (avail == 0) {
          const auto c = buf.bumpc().get();
          if (c == eof) {
            *clean = true;  // the final zero-length chunk
            break;
          }
          if (c == '\n') {
            if (!line.empty() && !on_line(line)) return out;
            line.clear();
          } else {
            line.push_back(static_cast<char>(c));
          }
          continue;
        }
        const size_t n = buf.getn(chunk, std::min(avail, sizeof(chunk))).get();  // available: completes at once
        if (n == 0 || n > sizeof(chunk)) continue;
        for (size_t i = 0; i < n; ++i) {
          if (chunk[i] == '\n') {
            if (!line.empty() && !on_line(line)) return out;
            line.clear();
          } else {
            line.push_back(static_cast<char>(chunk[i]));
          }
        }
      }
      if (!line.empty()) on_line(line);  // a last line without its newline
    } catch (const std::exception& e) {
      out.error = token.is_canceled() ? "cancelled" : e.what();
    }
    return out;
  }

  void Cancel() override {
    std::lock_guard<std::mutex> lock(cts_mu_);
    cancelled_ = true;
    cts_.cancel();
  }

 private:
  static std::string Stamp(const std::string& path) {
    std::error_code ec;
    auto t = std::filesystem::last_write_time(path, ec);  // follows the ..data symlink of projected volumes
    auto size = std::filesystem::file_size(path, ec);
    return std::to_string(t.time_since_epoch().count()) + "/" + std::to_string(size);
  }

  std::string Token() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!token_file_.empty()) {
      const std::string stamp = Stamp(token_file_);
      if (stamp != token_stamp_) {
        if (auto t = ReadFile(token_file_)) {
          std::string v = *t;
          while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ')) v.pop_back();
          if (!v.empty()) {
            token_ = std::move(v);
            token_stamp_ = stamp;
            log::Info("kube", "bearer token file changed, re-read", {{"file", token_file_}});
          }
        }
      }
    }
    return token_;
  }

  http::http_request MakeRequest(const std::string& method, const std::string& path_and_query, const std::string& body,
                                 const std::string& content_type) {
    http::http_request req(method);
    req.set_request_uri(web::uri(path_and_query));
    req.headers().add("User-Agent", user_agent_);
    req.headers().add("Accept", "application/json");
    const std::string token = Token();
    if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
    if (!body.empty()) req.set_body(body, content_type.empty() ? std::string("application/json") : content_type);
    return req;
  }

  static void Fill(const http::http_response& resp, HttpResponse* out) {
    out->status = resp.status_code();
    auto it = resp.headers().find("Retry-After");
    if (it != resp.headers().end()) {
      try {
        out->retry_after = std::chrono::seconds(std::stol(it->second));
      } catch (const std::exception&) {
      }
    }
  }

  HttpResponse Once(const std::string& method, const std::string& path_and_query, const std::string& body,
                    const std::string& content_type) {
    HttpResponse out;
    for (int attempt = 0; attempt < 2; ++attempt) {
      out = HttpResponse{};
      http_client* client = nullptr;
      pplx::cancellation_token token = pplx::cancellation_token::none();
      {
        std::lock_guard<std::mutex> lock(cts_mu_);
        if (cancelled_) {
          out.error = "cancelled";
          return out;
        }
        client = shutting_down_ ? shutdown_.get() : api_.get();
        token = cts_.get_token();
      }
      const auto start = std::chrono::steady_clock::now();
      try {
        http::http_response resp = client->request(MakeRequest(method, path_and_query, body, content_type), token).get();
        Fill(resp, &out);
        out.body = resp.extract_utf8string(true).get();
        return out;
      } catch (const std::exception& e) {
        out.status = 0;
        out.error = token.is_canceled() ? "cancelled" : e.what();
      }
      if (token.is_canceled()) break;  // cancelled (shutdown): not a stale pooled connection
      if (std::chrono::steady_clock::now() - start > kQuickFailure) break;
    }
    return out;
  }

  std::string user_agent_;
  std::mutex mu_;
  std::string token_;  // guarded by mu_
  std::string token_file_;
  std::string token_stamp_;
  std::unique_ptr<http_client> api_;
  std::unique_ptr<http_client> watch_;
  std::string server_;
  http_client_config client_config_;
  std::mutex cts_mu_;  // guards cts_, cancelled_, shutting_down_, shutdown_, watchdog_stop_
  pplx::cancellation_token_source cts_;
  bool cancelled_ = false;
  bool shutting_down_ = false;
  std::unique_ptr<http_client> shutdown_;  // request timeout = the shutdown deadline
  bool watchdog_stop_ = false;
  std::condition_variable watchdog_cv_;
  std::thread watchdog_;
};

}  // namespace

KubeHttpPtr MakeKubeHttp(const KubeConfig& config, HttpOptions options) {
  return std::make_unique<CppRestKubeHttp>(config, std::move(options));
}

}  // namespace doorman::controller::kube
