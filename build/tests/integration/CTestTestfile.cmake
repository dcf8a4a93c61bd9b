# CMake generated Testfile for 
# Source directory: /work/main/tests/integration
# Build directory: /work/main/build/tests/integration
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test([=[integration.test_cli]=] "/root/.pyenv/shims/python3" "/work/main/tests/integration/test_cli.py")
set_tests_properties([=[integration.test_cli]=] PROPERTIES  ENVIRONMENT "DOORMAN_BUILD_DIR=/work/main/build;PYTHONDONTWRITEBYTECODE=1" LABELS "integration" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/integration/CMakeLists.txt;4;add_test;/work/main/tests/integration/CMakeLists.txt;0;")
add_test([=[integration.test_end_to_end]=] "/root/.pyenv/shims/python3" "/work/main/tests/integration/test_end_to_end.py")
set_tests_properties([=[integration.test_end_to_end]=] PROPERTIES  ENVIRONMENT "DOORMAN_BUILD_DIR=/work/main/build;PYTHONDONTWRITEBYTECODE=1" LABELS "integration" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/integration/CMakeLists.txt;4;add_test;/work/main/tests/integration/CMakeLists.txt;0;")
add_test([=[integration.demo]=] "bash" "/work/main/scripts/demo.sh")
set_tests_properties([=[integration.demo]=] PROPERTIES  ENVIRONMENT "DOORMAN_DEMO_ONESHOT=1" LABELS "integration" RUN_SERIAL "TRUE" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/integration/CMakeLists.txt;12;add_test;/work/main/tests/integration/CMakeLists.txt;0;")
add_test([=[integration.kube_apiserver_sim]=] "/root/.pyenv/shims/python3" "/work/main/tests/kube-apiserver-sim/test_apiserver.py")
set_tests_properties([=[integration.kube_apiserver_sim]=] PROPERTIES  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1" LABELS "integration" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/integration/CMakeLists.txt;17;add_test;/work/main/tests/integration/CMakeLists.txt;0;")
