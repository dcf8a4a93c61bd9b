#include "dataplane/l7/access_log.h"
#include "common/json_escape.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "common/log.h"

namespace doorman::dataplane {
namespace {

int g_fd = -1;

// The queue between the workers and the writer thread.
struct Writer {
  std::mutex mu;
  std::condition_variable cv;       // work for the writer
  std::condition_variable idle_cv;  // the writer emptied the queue (CloseAccessLog)
  std::vector<std::string> queue;
  std::size_t bytes = 0;
  uint64_t dropped = 0;        // since the writer last reported
  uint64_t dropped_total = 0;  // AccessLogDropped
  bool writing = false;
  bool stop = false;
  std::thread thread;
};
Writer* g_writer = nullptr;  // lives until exit (a writer stuck in write(2) is left to it)

// Whole buffer, through short writes and EINTR; an error (EPIPE, ENOSPC) drops the rest.
void WriteAll(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

void WriterLoop(Writer* w, int fd) {
  std::unique_lock lock(w->mu);
  for (;;) {
    w->cv.wait(lock, [&] { return w->stop || !w->queue.empty(); });
    if (w->queue.empty()) return;  // stopping, all written
    std::vector<std::string> batch;
    batch.swap(w->queue);
    w->bytes = 0;
    const uint64_t lost = std::exchange(w->dropped, 0);
    w->writing = true;
    lock.unlock();
    if (lost != 0) {
      log::Warn("access-log", "access log output did not keep up; lines dropped",
                {{"dropped", std::to_string(lost)}});
    }
    std::string chunk;  // whole lines, up to 64 KiB a write
    for (auto& line : batch) {
      if (!chunk.empty() && chunk.size() + line.size() > (64 << 10)) {
        WriteAll(fd, chunk);
        chunk.clear();
      }
      chunk += line;
    }
    if (!chunk.empty()) WriteAll(fd, chunk);
    lock.lock();
    w->writing = false;
    if (w->queue.empty()) w->idle_cv.notify_all();
  }
}

void Field(std::string& out, const char* name, std::string_view value) {
  out += ",\"";
  out += name;
  out += "\":";
  AppendJsonString(out, value);
}

}  // namespace

std::string FormatAccessLog(const AccessLogEntry& e, std::chrono::system_clock::time_point now) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[96];
  std::snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  std::string out;
  out.reserve(256);
  out += "{\"ts\":\"";
  out += ts;
  out += '"';
  Field(out, "listener", e.listener);
  Field(out, "route", e.route);
  Field(out, "backend", e.backend);
  Field(out, "client", e.client_ip);
  Field(out, "method", e.method);
  Field(out, "host", e.host);
  Field(out, "path", e.path);
  Field(out, "request_id", e.request_id);
  out += ",\"tls\":";
  out += e.tls ? "true" : "false";
  out += ",\"status\":" + std::to_string(e.status);
  char dur[32];
  std::snprintf(dur, sizeof(dur), "%.3f", e.duration_s * 1000.0);
  out += ",\"duration_ms\":";
  out += dur;
  out += ",\"retries\":" + std::to_string(e.retries);
  out += "}\n";
  return out;
}

bool OpenAccessLog(const std::string& spec, std::string* error) {
  if (spec == "off") {
    g_fd = -1;
  } else if (spec == "stdout") {
    g_fd = STDOUT_FILENO;
  } else {
    g_fd = ::open(spec.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (g_fd < 0) {
      *error = "cannot open access log " + spec + ": " + std::strerror(errno);
      return false;
    }
  }
  if (g_fd >= 0 && g_writer == nullptr) {
    g_writer = new Writer;
    g_writer->thread = std::thread(WriterLoop, g_writer, g_fd);
  }
  return true;
}

bool AccessLogEnabled() { return g_fd >= 0 && g_writer != nullptr; }

void WriteAccessLog(std::string line) {
  Writer* w = g_writer;
  if (w == nullptr) return;
  std::lock_guard lock(w->mu);
  if (w->stop) return;
  if (w->bytes + line.size() > kAccessLogQueueBytes) {
    ++w->dropped;
    ++w->dropped_total;
    return;
  }
  w->bytes += line.size();
  w->queue.push_back(std::move(line));
  if (w->queue.size() == 1 && !w->writing) w->cv.notify_one();
}

uint64_t AccessLogDropped() {
  Writer* w = g_writer;
  if (w == nullptr) return 0;
  std::lock_guard lock(w->mu);
  return w->dropped_total;
}

void CloseAccessLog(std::chrono::milliseconds max) {
  Writer* w = g_writer;
  if (w == nullptr) return;
  std::unique_lock lock(w->mu);
  const bool drained = w->idle_cv.wait_for(lock, max, [&] { return w->queue.empty() && !w->writing; });
  w->stop = true;
  w->cv.notify_one();
  lock.unlock();
  if (drained) {
    w->thread.join();
  } else {
    w->thread.detach();  // stuck in write(2) on a stalled output: exit does not wait for it
  }
}

}  // namespace doorman::dataplane
