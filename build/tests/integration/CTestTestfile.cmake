# CMake generated Testfile for 
# Source directory: /work/main/tests/integration
# Build directory: /work/main/build/tests/integration
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
