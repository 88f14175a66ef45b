# Build options. Sanitizers and warnings are options, never hand edits.
option(ENI_AGENT_BUILD_TESTS "Build the unit, integration and netns tests" ON)
option(ENI_AGENT_BUILD_BENCH "Build the Google Benchmark micro benchmarks" OFF)
option(ENI_AGENT_WERROR "Treat warnings as errors (CI turns this on)" OFF)
set(ENI_AGENT_SANITIZE "" CACHE STRING "Sanitizers to build with, e.g. address;undefined")

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

# Every target of ours links this INTERFACE target for its warnings.
add_library(eni_warnings INTERFACE)
target_compile_options(eni_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual -Wpedantic)
if(ENI_AGENT_WERROR)
  target_compile_options(eni_warnings INTERFACE -Werror)
endif()

if(ENI_AGENT_SANITIZE)
  string(REPLACE ";" "," _eni_sanitizers "${ENI_AGENT_SANITIZE}")
  add_compile_options(-fsanitize=${_eni_sanitizers} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_eni_sanitizers})
endif()

# libFuzzer targets need clang; they are built only when the compiler is clang.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  set(ENI_AGENT_HAVE_LIBFUZZER ON)
else()
  set(ENI_AGENT_HAVE_LIBFUZZER OFF)
endif()

# ccache, when present, makes rebuilds in several build directories (CI's normal, sanitizer and
# fuzzer builds) share their object files.
find_program(ENI_AGENT_CCACHE ccache)
if(ENI_AGENT_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${ENI_AGENT_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${ENI_AGENT_CCACHE})
endif()
