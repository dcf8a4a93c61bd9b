// libFuzzer target: the manifest-file parser (--manifests: YAML from files the user edits while
// the controller runs). It must answer every input with objects and per-document errors, in
// bounded time and memory: yaml-cpp 0.7's LoadAll looped for ever on "[]," (found by fuzzing;
// ctest's timeout catches a return of it in the replay). Properties: never crashes or hangs;
// every error names a line within the text; a file that parses also parses as YamlToJson's
// single-document input when it has exactly one document.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controller/source/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto r = doorman::controller::ParseManifests(text, "/fuzz/m.yaml");
  std::size_t lines = 1;
  for (const char c : text) lines += c == '\n';
  for (const auto& e : r.errors) {
    if (e.line < 0 || static_cast<std::size_t>(e.line) > lines + 1) std::abort();
    if (e.message.empty()) std::abort();
  }
  return 0;
}
