# Every third-party library is found here, once, by find_package or pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBNL REQUIRED IMPORTED_TARGET libnl-3.0 libnl-route-3.0)
pkg_check_modules(LIBSYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
# libcurl: CURLOPT_AWS_SIGV4 arrived in 7.75. ENI_CURL_PREFIX names the static HTTP(S)-only build
# of scripts/lean-curl.sh (the scripts always pass it); without it, the system's shared libcurl.
set(ENI_CURL_PREFIX "" CACHE PATH "install prefix of scripts/lean-curl.sh's static libcurl (empty: system libcurl)")
unset(CURL_DIR CACHE)  # found afresh each time, so a new prefix (or none) takes effect
if(ENI_CURL_PREFIX)
  find_package(CURL 7.75 REQUIRED CONFIG PATHS "${ENI_CURL_PREFIX}" NO_DEFAULT_PATH)
  message(STATUS "libcurl: static, HTTP(S) only, from ${ENI_CURL_PREFIX}")
else()
  find_package(CURL 7.75 REQUIRED)
  message(STATUS "libcurl: the system's shared library (scripts/lean-curl.sh builds the leaner static one)")
endif()
find_package(jsoncpp REQUIRED)
find_package(pugixml REQUIRED)
find_package(prometheus-cpp REQUIRED COMPONENTS core pull)
find_package(tl-expected REQUIRED)
find_package(yaml-cpp REQUIRED)           # kubeconfig files are YAML
find_package(Threads REQUIRED)

if(ENI_AGENT_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(ENI_AGENT_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# jsoncpp's exported target name differs between builds of the package.
if(TARGET JsonCpp::JsonCpp)
  set(ENI_JSONCPP JsonCpp::JsonCpp)
elseif(TARGET jsoncpp_lib)
  set(ENI_JSONCPP jsoncpp_lib)
else()
  set(ENI_JSONCPP jsoncpp_static)
endif()
