# CMake generated Testfile for 
# Source directory: /work/main/tests/unit/dataplane
# Build directory: /work/main/build/tests/unit/dataplane
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/unit/dataplane/dataplane_lb_test[1]_include.cmake")
include("/work/main/build/tests/unit/dataplane/dataplane_compile_test[1]_include.cmake")
include("/work/main/build/tests/unit/dataplane/dataplane_l7_test[1]_include.cmake")
