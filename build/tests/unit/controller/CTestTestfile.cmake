# CMake generated Testfile for 
# Source directory: /work/main/tests/unit/controller
# Build directory: /work/main/build/tests/unit/controller
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/unit/controller/controller_test[1]_include.cmake")
include("/work/main/build/tests/unit/controller/controller_grpc_test[1]_include.cmake")
