# Every third-party library is found here, once, by find_package or pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBNL REQUIRED IMPORTED_TARGET libnl-3.0 libnl-route-3.0)
pkg_check_modules(LIBSYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
# libcurl: CURLOPT_AWS_SIGV4 arrived in 7.75. ENI_CURL_PREFIX names the static HTTP(S)-only build
# of scripts/lean-curl.sh (the scripts always pass it); without it, the system's shared libcurl.
set(ENI_CURL_PREFIX "" CACHE PATH "install prefix of scripts/lean-curl.sh's static libcurl (empty: system libcurl)")
unset(CURL_DIR CACHE)  # found afresh each time, so a new prefix (or none) takes effect
# Static where Debian's -dev packages ship the archive, for memory: a shared library's code is
# resident almost whole (its file is in the page cache and the kernel maps the neighbours of each
# page it faults in), and its relocations dirty pages at load. Linked in with --gc-sections and
# packed relocations (agent/CMakeLists.txt), only the objects the agent calls are mapped: 2 MiB less
# RSS (docs/benchmarks.md, "Memory"). The price: a fix in one of them needs a rebuild of the agent,
# as libcurl's already does. OpenSSL goes static only with the static libcurl: the system's
# libcurl.so brings the shared one, and one process must not carry both.
option(ENI_AGENT_STATIC_DEPS "Link OpenSSL, libnl, pugixml and yaml-cpp statically (RSS)" ON)
unset(OPENSSL_SSL_LIBRARY CACHE)
unset(OPENSSL_CRYPTO_LIBRARY CACHE)
if(ENI_CURL_PREFIX AND ENI_AGENT_STATIC_DEPS)
  set(OPENSSL_USE_STATIC_LIBS TRUE)
endif()
if(ENI_CURL_PREFIX)
  find_package(CURL 7.75 REQUIRED CONFIG PATHS "${ENI_CURL_PREFIX}" NO_DEFAULT_PATH)
  message(STATUS "libcurl: static, HTTP(S) only, from ${ENI_CURL_PREFIX}")
  if(ENI_AGENT_STATIC_DEPS)
    # Its exported target names the shared libnghttp2 by path: the archive beside it instead.
    get_target_property(_eni_curl_deps CURL::libcurl INTERFACE_LINK_LIBRARIES)
    list(TRANSFORM _eni_curl_deps REPLACE "libnghttp2\\.so$" "libnghttp2.a")
    set_target_properties(CURL::libcurl PROPERTIES INTERFACE_LINK_LIBRARIES "${_eni_curl_deps}")
  endif()
else()
  find_package(CURL 7.75 REQUIRED)
  message(STATUS "libcurl: the system's shared library (scripts/lean-curl.sh builds the leaner static one)")
endif()
find_package(OpenSSL 3 REQUIRED)  # SHA-256 (the tag hash, ClientTokens); libcurl's TLS
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

# ENI_LIBNL, ENI_PUGIXML, ENI_YAML_CPP: what the targets link, the archive or the shared library.
set(ENI_LIBNL PkgConfig::LIBNL)
set(ENI_PUGIXML pugixml::pugixml)
set(ENI_YAML_CPP yaml-cpp)
if(ENI_AGENT_STATIC_DEPS)
  find_library(ENI_LIBNL_ROUTE_A libnl-route-3.a REQUIRED)
  find_library(ENI_LIBNL_A libnl-3.a REQUIRED)
  find_library(ENI_PUGIXML_A libpugixml.a REQUIRED)
  find_library(ENI_YAML_CPP_A libyaml-cpp.a REQUIRED)
  add_library(eni_libnl_static INTERFACE)
  target_include_directories(eni_libnl_static INTERFACE ${LIBNL_INCLUDE_DIRS})
  target_link_libraries(eni_libnl_static INTERFACE ${ENI_LIBNL_ROUTE_A} ${ENI_LIBNL_A} Threads::Threads m)
  add_library(eni_pugixml_static INTERFACE)
  target_include_directories(eni_pugixml_static INTERFACE
    $<TARGET_PROPERTY:pugixml::pugixml,INTERFACE_INCLUDE_DIRECTORIES>)
  target_link_libraries(eni_pugixml_static INTERFACE ${ENI_PUGIXML_A})
  add_library(eni_yaml_cpp_static INTERFACE)
  target_include_directories(eni_yaml_cpp_static INTERFACE
    $<TARGET_PROPERTY:yaml-cpp,INTERFACE_INCLUDE_DIRECTORIES>)
  target_link_libraries(eni_yaml_cpp_static INTERFACE ${ENI_YAML_CPP_A})
  set(ENI_LIBNL eni_libnl_static)
  set(ENI_PUGIXML eni_pugixml_static)
  set(ENI_YAML_CPP eni_yaml_cpp_static)
endif()

# jsoncpp's exported target name differs between builds of the package.
if(TARGET JsonCpp::JsonCpp)
  set(ENI_JSONCPP JsonCpp::JsonCpp)
elseif(TARGET jsoncpp_lib)
  set(ENI_JSONCPP jsoncpp_lib)
else()
  set(ENI_JSONCPP jsoncpp_static)
endif()
