#include "dataplane/config/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/hash.h"
#include "doorman/v1/routing.pb.h"

namespace doorman::dataplane {
namespace {

// "DOORMAN-STATE 1 <FNV-1a 64 of the payload, 16 hex digits>\n" then the serialized StateUpdate.
// A flipped byte that still parses as a StateUpdate would otherwise be served as the last good
// state (FNV-1a detects every single-byte change: each step is a bijection of the running hash).
constexpr std::string_view kMagic = "DOORMAN-STATE 1 ";
constexpr std::size_t kHeaderSize = 16 + 16 + 1;

std::string Header(std::string_view payload) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(Fnv1a64(payload)));
  return std::string(kMagic) + hex + "\n";
}

}  // namespace

bool EnsureStateDir(const std::string& dir, std::string* error) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      *error = dir + " is not a directory";
      return false;
    }
  } else if (::mkdir(dir.c_str(), 0700) != 0) {
    *error = "cannot create " + dir + ": " + std::strerror(errno);
    return false;
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    *error = dir + " is not writable: " + std::strerror(errno);
    return false;
  }
  return true;
}

bool SaveState(const std::string& dir, const doorman::v1::StateUpdate& update, std::string* error) {
  std::string payload;
  if (!update.SerializeToString(&payload)) {
    *error = "cannot serialize the routing state";
    return false;
  }
  const std::string bytes = Header(payload) + payload;
  const std::string path = dir + "/" + kStateFileName;
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = "cannot write " + tmp + ": " + std::strerror(errno);
    return false;
  }
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = "cannot write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    *error = "cannot flush " + tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::optional<doorman::v1::StateUpdate> LoadState(const std::string& dir, std::string* error) {
  const std::string path = dir + "/" + kStateFileName;
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  std::string_view payload = bytes;
  if (payload.substr(0, kMagic.size()) == kMagic) {
    if (payload.size() < kHeaderSize || Header(payload.substr(kHeaderSize)) != payload.substr(0, kHeaderSize)) {
      *error = path + " is damaged (its checksum does not match)";
      return std::nullopt;
    }
    payload.remove_prefix(kHeaderSize);
  }  // else: written by a version without the header; loaded as before
  doorman::v1::StateUpdate u;
  if (!u.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    *error = path + " is not a valid routing state";
    return std::nullopt;
  }
  // Every saved state has a version (the controller's start at 1): version 0 is a file that
  // was emptied or cut to nothing (an empty payload parses as an empty StateUpdate), which would
  // otherwise be served as "route nothing".
  if (u.version() == 0) {
    *error = path + " is not a valid routing state (" + (bytes.empty() ? "the file is empty" : "it has no version") + ")";
    return std::nullopt;
  }
  return u;
}

}  // namespace doorman::dataplane
