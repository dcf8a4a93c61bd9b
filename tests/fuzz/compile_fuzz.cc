// libFuzzer target: the dataplane's Snapshot → RuntimeConfig compiler, on whatever a routing
// stream could carry (a Snapshot in protobuf text format, or binary). It must answer every input
// with a config (ACK) or an error naming what is wrong (NACK), never crash; and a snapshot it
// accepted must compile again with itself as the previous config (the update path that carries
// endpoint state over), after which the drain bookkeeping runs.
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dataplane/config/compile.h"
#include "doorman/v1/routing.pb.h"

namespace {
class Quiet : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
  void AddWarning(int, int, const std::string&) override {}
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace doorman;
  const std::string in(reinterpret_cast<const char*>(data), size);
  v1::Snapshot s;
  Quiet quiet;
  google::protobuf::TextFormat::Parser text;
  text.RecordErrorsTo(&quiet);
  if (!text.ParseFromString(in, &s)) {
    s.Clear();
    if (!s.ParseFromString(in)) return 0;
  }
  const dataplane::CompileResult first = dataplane::Compile(s, 1, {});
  if (!first.ok()) {
    if (first.error.empty()) std::abort();  // a NACK says why
    return 0;
  }
  dataplane::CompileOptions again;
  again.previous = first.config.get();
  const dataplane::CompileResult second = dataplane::Compile(s, 2, again);
  if (!second.ok()) std::abort();  // the same snapshot, accepted once, is accepted again
  dataplane::MarkRemovedEndpoints(first.config.get(), *second.config, 1000);
  return 0;
}
