#include "dataplane/l7/access_log.h"
#include "common/json_escape.h"
#include "common/line_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

#include "common/log.h"

namespace doorman::dataplane {
namespace {

int g_fd = -1;
std::string g_path;  // the file's path, when the log is a file
LineWriter* g_writer = nullptr;  // lives until exit (a writer stuck in write(2) is left to it)

// The log file opened for appending (created 0640), or -1 with errno.
int OpenForAppend(const std::string& path) { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640); }

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
  Field(out, "peer", e.peer_ip);
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
    g_fd = OpenForAppend(spec);
    if (g_fd < 0) {
      *error = "cannot open access log " + spec + ": " + std::strerror(errno);
      return false;
    }
    g_path = spec;
  }
  if (g_fd >= 0 && g_writer == nullptr) {
    g_writer = new LineWriter(g_fd, kAccessLogQueueBytes, [](uint64_t lost) {
      log::Warn("access-log", "access log output did not keep up; lines dropped", {{"dropped", std::to_string(lost)}});
      return std::string();
    });
  }
  return true;
}

bool ReopenAccessLog(std::string* error) {
  if (g_path.empty() || g_fd < 0) return true;
  const int fd = OpenForAppend(g_path);
  if (fd < 0) {
    *error = "cannot reopen access log " + g_path + ": " + std::strerror(errno);
    return false;
  }
  // The writer thread keeps writing to g_fd: dup3 swaps the file under it in one step, so no
  // line is lost or written to a closed descriptor.
  const bool ok = ::dup3(fd, g_fd, O_CLOEXEC) >= 0;
  if (!ok) *error = "cannot reopen access log " + g_path + ": " + std::strerror(errno);
  ::close(fd);
  return ok;
}

bool AccessLogEnabled() { return g_fd >= 0 && g_writer != nullptr; }

void WriteAccessLog(std::string line) {
  if (g_writer != nullptr) g_writer->Write(std::move(line));
}

uint64_t AccessLogDropped() { return g_writer == nullptr ? 0 : g_writer->Dropped(); }

void CloseAccessLog(std::chrono::milliseconds max) {
  if (g_writer != nullptr) g_writer->Close(max);
}

}  // namespace doorman::dataplane
