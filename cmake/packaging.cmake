# The .deb (cpack -G DEB in the build directory): the binary, the systemd unit and its user, the
# example host.json and the docs. Installing it enables and starts nothing; see systemd/README.md.
install(FILES ${PROJECT_SOURCE_DIR}/systemd/eni-agent.service
  DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/eni-agent.sysusers
  DESTINATION lib/sysusers.d RENAME eni-agent.conf)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/host.json.example
  ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/CHANGELOG.md
  DESTINATION share/doc/eni-agent)
# The README is short and links the rest under docs/ (host mode, operations, security, ...).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION share/doc/eni-agent/docs
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

set(CPACK_PACKAGE_NAME eni-agent)
set(CPACK_PACKAGE_VENDOR "eni-agent")
# The package's Maintainer: the project's own domain (the one its label and tag keys use).
set(CPACK_PACKAGE_CONTACT "eni-agent maintainers <maintainers@eni-agent.io>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "node agent for AWS: tags pod ENIs and manages secondary ENIs and their links")
set(CPACK_PACKAGE_DESCRIPTION
  "eni-agent tags the ENIs behind pods from their annotations and creates, attaches and brings up
the secondary ENIs that NodeENI objects (Kubernetes) or /etc/eni-agent/host.json (host mode) ask
for. This package carries the binary and the hardened systemd unit for host mode.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# systemd-sysusers (postinst) and the unit's directives come with systemd; adduser is the fallback.
# procps has /bin/kill, the unit's ExecReload (a minimal Debian root lacks it, and reload failed
# there with status=203/EXEC).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd (>= 247) | adduser, procps")
# Packed relocations (agent/CMakeLists.txt) need glibc 2.36's loader: a version need without a
# symbol, which dpkg-shlibdeps does not see (it computes libc6 >= 2.34 from the symbols).
if(ENI_HAVE_PACK_RELATIVE_RELOCS)
  string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libc6 (>= 2.36)")
endif()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/systemd/deb/postinst
  ${PROJECT_SOURCE_DIR}/systemd/deb/prerm
  ${PROJECT_SOURCE_DIR}/systemd/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_GENERATOR DEB)
include(CPack)

# The container image (scripts/image.sh): its name and tag come from here, the project version.
# daemonset/daemonset.yaml and the Helm chart name the same (checked by packaging.image_refs).
set(ENI_AGENT_IMAGE_NAME "ghcr.io/eni-agent/eni-agent" CACHE STRING
  "The image's repository, as daemonset/daemonset.yaml names it")
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/image.env
  CONTENT "ENI_IMAGE_NAME=${ENI_AGENT_IMAGE_NAME}\nENI_IMAGE_TAG=${PROJECT_VERSION}\n")
