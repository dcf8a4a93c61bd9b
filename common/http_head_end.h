// Where an HTTP/1.x message head ends. Header-only: shared by the proxy (dataplane/l7) and the
// health checker's pure library (dataplane/health), which links nothing else.
#pragma once

#include <cstddef>
#include <string_view>

namespace doorman {

// Where the first head in `d` ends (just after its empty line), its lines ended by CRLF or by a
// bare LF (as nginx and HAProxy read response heads); npos when that head has not ended yet.
inline std::size_t HttpHeadEnd(std::string_view d) {
  for (std::size_t pos = 0;;) {
    const std::size_t nl = d.find('\n', pos);
    if (nl == std::string_view::npos) return nl;
    if (nl == pos || (nl == pos + 1 && d[pos] == '\r')) return nl + 1;
    pos = nl + 1;
  }
}

}  // namespace doorman
