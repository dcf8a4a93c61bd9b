#include "dataplane/server/essential.h"

#include <gtest/gtest.h>

#include <new>
#include <stdexcept>

namespace doorman::dataplane {
namespace {

TEST(EssentialLoopTest, ANormalEndIsQuiet) {
  EssentialLoop("deadline sweep")(nullptr);  // returns
  SUCCEED();
}

// An exception escaping a worker's sweep or accept loop must not be dropped (a worker without
// timeouts keeps saying ready): it is logged, naming the loop, and the process aborts.
TEST(EssentialLoopDeathTest, AnExceptionIsLoggedAndAborts) {
  EXPECT_DEATH(EssentialLoop("deadline sweep")(std::make_exception_ptr(std::bad_alloc())),
               "essential loop ended by an exception.*loop=\"?deadline sweep\"?.*bad_alloc");
  EXPECT_DEATH(EssentialLoop("accept loop")(std::make_exception_ptr(42)), "not a std::exception");
}

}  // namespace
}  // namespace doorman::dataplane
