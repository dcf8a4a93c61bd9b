# CMake generated Testfile for 
# Source directory: /work/main/tests/unit/common
# Build directory: /work/main/build/tests/unit/common
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/unit/common/common_test[1]_include.cmake")
