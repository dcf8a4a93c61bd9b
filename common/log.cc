#include "common/log.h"
#include "common/json_escape.h"
#include "common/line_writer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <utility>

namespace doorman::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_format{static_cast<int>(Format::kText)};
std::atomic<int> g_fd{STDERR_FILENO};
std::atomic<LineWriter*> g_async{nullptr};  // set once, lives until exit

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kWarn: return "WARN";
    case Level::kError: return "ERROR";
  }
  return "INFO";
}

// Text values are quoted (JSON-escaped) when they contain spaces, quotes, '=', any control
// character or any byte >= 0x80, so lines stay parseable and a peer's string (a dataplane's node
// name or build) cannot write a raw terminal escape (ESC 0x1b, the 8-bit CSI 0x9b, a C1 control
// in UTF-8) or a carriage return into the log: AppendJsonString escapes them all.
void AppendTextValue(std::string& out, std::string_view s) {
  bool quote = s.empty();
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '"' || c == '=' || u < 0x20 || u >= 0x7f) quote = true;
  }
  if (quote) {
    AppendJsonString(out, s);
  } else {
    out.append(s);
  }
}

std::string Timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

bool Configure(std::string_view format, std::string_view level) {
  if (format == "text") {
    SetFormat(Format::kText);
  } else if (format == "json") {
    SetFormat(Format::kJson);
  } else {
    return false;
  }
  if (level == "debug") {
    SetLevel(Level::kDebug);
  } else if (level == "info") {
    SetLevel(Level::kInfo);
  } else if (level == "warn") {
    SetLevel(Level::kWarn);
  } else if (level == "error") {
    SetLevel(Level::kError);
  } else {
    return false;
  }
  return true;
}

void SetFormat(Format f) { g_format.store(static_cast<int>(f)); }
void SetLevel(Level l) { g_level.store(static_cast<int>(l)); }
bool Enabled(Level l) { return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed); }

namespace {

struct FieldRange {
  const Field* first;
  const Field* last;
  const Field* begin() const { return first; }
  const Field* end() const { return last; }
};

std::string FormatLine(Level level, std::string_view component, std::string_view message, const Field* first,
                       std::size_t count) {
  const FieldRange fields{first, first + count};
  std::string line;
  line.reserve(128);
  if (static_cast<Format>(g_format.load(std::memory_order_relaxed)) == Format::kJson) {
    line += "{\"ts\":";
    AppendJsonString(line, Timestamp());
    line += ",\"level\":";
    AppendJsonString(line, LevelName(level));
    line += ",\"component\":";
    AppendJsonString(line, component);
    line += ",\"msg\":";
    AppendJsonString(line, message);
    for (const auto& [k, v] : fields) {
      line.push_back(',');
      AppendJsonString(line, k);
      line.push_back(':');
      AppendJsonString(line, v);
    }
    line += "}\n";
  } else {
    line += Timestamp();
    line.push_back(' ');
    line += LevelName(level);
    line.push_back(' ');
    line.append(component);
    line += ": ";
    line.append(message);
    for (const auto& [k, v] : fields) {
      line.push_back(' ');
      line.append(k);
      line.push_back('=');
      AppendTextValue(line, v);
    }
    line.push_back('\n');
  }
  return line;
}

void StopAsyncAtExit() { StopAsync(std::chrono::seconds(1)); }

}  // namespace

void Write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields) {
  Write(level, component, message, fields.begin(), fields.size());
}

void Write(Level level, std::string_view component, std::string_view message, const Field* fields,
           std::size_t count) {
  if (!Enabled(level)) return;
  std::string line = FormatLine(level, component, message, fields, count);
  if (LineWriter* w = g_async.load(std::memory_order_acquire); w != nullptr && w->Write(std::move(line))) return;
  // One write(2) per line keeps concurrent lines from interleaving.
  WriteAllTo(g_fd.load(std::memory_order_relaxed), line.data(), line.size());
}

void StartAsync(std::size_t max_queued_bytes, int fd) {
  if (g_async.load() != nullptr) return;
  g_fd.store(fd);
  g_async.store(new LineWriter(fd, max_queued_bytes, [](uint64_t lost) {
    const Field dropped{"dropped", std::to_string(lost)};
    return FormatLine(Level::kWarn, "log", "the log output did not keep up; lines dropped", &dropped, 1);
  }));
  std::atexit(StopAsyncAtExit);
}

void StopAsync(std::chrono::milliseconds max) {
  if (LineWriter* w = g_async.load(std::memory_order_acquire); w != nullptr) {
    w->Close(max);
    g_fd.store(STDERR_FILENO);
  }
}

uint64_t Dropped() {
  LineWriter* w = g_async.load(std::memory_order_acquire);
  return w == nullptr ? 0 : w->Dropped();
}

}  // namespace doorman::log
