#include "dataplane/l4/l4_options.h"

namespace doorman::dataplane {
namespace {
L4Options& Options() {
  static L4Options options;
  return options;
}
}  // namespace

const L4Options& GetL4Options() { return Options(); }
void SetL4Options(const L4Options& options) { Options() = options; }

}  // namespace doorman::dataplane
