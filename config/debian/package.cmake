# The Debian packages, built by `cpack -G DEB` in the build directory
# (scripts/package.sh builds and checks them; docs/install.md is for whoever
# installs them). Two packages from the install() rules' components:
#   slack-proxy      (component runtime): the proxy in /usr/bin, its built-in
#                    plugins in /usr/lib/slack-proxy/plugins (where the proxy
#                    looks: <exe>/../lib/slack-proxy/plugins), the docs, the
#                    example configs, /etc/slack-proxy/slack-proxy.toml (a
#                    conffile) and the systemd unit
#   slack-proxy-dev  (component dev): the SDK headers, its static libraries
#                    and the CMake package (find_package(SlackProxy CONFIG))
# Kept here, next to the unit, the maintainer scripts and the files that only
# a Debian package ships, so that everything Debian-specific is in one folder;
# the top-level CMakeLists.txt includes it last, once every install() rule
# exists.

set(SLACK_PROXY_DEB_DIR ${CMAKE_CURRENT_LIST_DIR})
set(SLACK_PROXY_DEB_BUILD ${PROJECT_BINARY_DIR}/debian)

# ---- the packaged config: the repository's default, paths made absolute ----
# Generated from config/slack-proxy.toml at configure time, so the two cannot
# drift: the same keys, values and comments, except for what a service needs
# and each replacement below names. A replacement that no longer finds its
# text stops the configure step, so a change to the default that touches one
# of these lines is noticed here, not on an installed machine.
set(default_config ${PROJECT_SOURCE_DIR}/config/slack-proxy.toml)
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${default_config})
file(READ ${default_config} packaged_config)
function(slack_proxy_packaged_config_replace what old new)
  string(FIND "${packaged_config}" "${old}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "config/debian/package.cmake: the ${what} line is no longer in "
                        "config/slack-proxy.toml as\n  ${old}\nUpdate the packaged config's "
                        "replacement to match.")
  endif()
  string(REPLACE "${old}" "${new}" replaced "${packaged_config}")
  set(packaged_config "${replaced}" PARENT_SCOPE)
endfunction()
# The header's usage lines: how this copy is run.
slack_proxy_packaged_config_replace("usage"
  "#   SLACK_TOKEN=xoxb-... slack-proxy --config config/slack-proxy.toml
#   slack-proxy validate config/slack-proxy.toml     # check without starting"
  "# Installed by the slack-proxy Debian package; the slack-proxy service runs
# with it (/usr/share/doc/slack-proxy/install.md). After a change:
#   slack-proxy validate /etc/slack-proxy/slack-proxy.toml   # check it first
#   systemctl reload slack-proxy                             # then apply it")
# The queue in the service's state directory (StateDirectory=slack-proxy).
slack_proxy_packaged_config_replace("[queue] path"
  "path = \"state/queue.db\"          # SQLite file (WAL); relative to the working directory"
  "path = \"/var/lib/slack-proxy/queue.db\"  # SQLite file (WAL): the service's state directory")
# The token from the file systemd passes the service (LoadCredential=).
slack_proxy_packaged_config_replace("slack_sink token"
  "# Delivers to Slack. The token is read from the environment, never from this
# file; the proxy refuses to start without it."
  "# Delivers to Slack. The token is never in this file: the service reads it
# from the copy of /etc/slack-proxy/slack-token that systemd makes for it
# (LoadCredential= in the unit); the proxy refuses to start without it.")
slack_proxy_packaged_config_replace("slack_sink token_env"
  "token_env = \"SLACK_TOKEN\""
  "token_env = \"SLACK_TOKEN\"             # not read: token_file wins
token_file = \"/run/credentials/slack-proxy.service/slack-token\"")
file(WRITE ${SLACK_PROXY_DEB_BUILD}/slack-proxy.toml "${packaged_config}")

# ---- what only the package installs -----------------------------------------
# EXCLUDE_FROM_ALL: `cmake --install` into a prefix (docs/plugin-guide.md)
# leaves /etc and the unit alone; cpack installs the runtime component whole.
install(FILES ${SLACK_PROXY_DEB_BUILD}/slack-proxy.toml
        DESTINATION /etc/slack-proxy COMPONENT runtime EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/config/systemd/slack-proxy.service
        DESTINATION lib/systemd/system COMPONENT runtime EXCLUDE_FROM_ALL)

# Debian policy 12.5 and 12.7: each package's copyright and changelog in its
# own doc directory; the changelog and the man page compressed with gzip -9n
# (no name or time stamp inside, so the package is reproducible). Done at
# configure time, like the packaged config, so that installing the runtime
# component needs nothing built but the proxy and its plugins.
file(STRINGS ${SLACK_PROXY_DEB_DIR}/changelog changelog_top LIMIT_COUNT 1)
set(SLACK_PROXY_DEB_REVISION 1)
if(NOT changelog_top MATCHES "^slack-proxy \\(${PROJECT_VERSION}-${SLACK_PROXY_DEB_REVISION}\\) ")
  message(FATAL_ERROR "config/debian/changelog starts with\n  ${changelog_top}\nbut the "
                      "package is ${PROJECT_VERSION}-${SLACK_PROXY_DEB_REVISION}: add an entry")
endif()
find_program(SLACK_PROXY_GZIP gzip REQUIRED)
foreach(file changelog slack-proxy.1)
  set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
               ${SLACK_PROXY_DEB_DIR}/${file})
  execute_process(COMMAND ${SLACK_PROXY_GZIP} -9n -c ${SLACK_PROXY_DEB_DIR}/${file}
                  OUTPUT_FILE ${SLACK_PROXY_DEB_BUILD}/${file}.gz
                  COMMAND_ERROR_IS_FATAL ANY)
endforeach()
file(RENAME ${SLACK_PROXY_DEB_BUILD}/changelog.gz ${SLACK_PROXY_DEB_BUILD}/changelog.Debian.gz)
install(FILES ${SLACK_PROXY_DEB_BUILD}/slack-proxy.1.gz
        DESTINATION share/man/man1 COMPONENT runtime EXCLUDE_FROM_ALL)
set(deb_components runtime dev)
set(deb_packages slack-proxy slack-proxy-dev)
foreach(component package IN ZIP_LISTS deb_components deb_packages)
  install(FILES ${SLACK_PROXY_DEB_DIR}/copyright ${SLACK_PROXY_DEB_BUILD}/changelog.Debian.gz
          DESTINATION share/doc/${package} COMPONENT ${component} EXCLUDE_FROM_ALL)
  # What lintian reports and we keep, each with why.
  install(FILES ${SLACK_PROXY_DEB_DIR}/${package}.lintian-overrides
          DESTINATION share/lintian/overrides RENAME ${package}
          COMPONENT ${component} EXCLUDE_FROM_ALL)
endforeach()

# ---- CPack --------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME slack-proxy)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
# Every install() rule names one of these; scripts/package.sh checks that a
# plain install holds nothing the packages lack.
set(CPACK_COMPONENTS_ALL runtime dev)
# Stripped (lintian: unstripped-binary-or-object); the build tree keeps the
# debug information.
set(CPACK_STRIP_FILES ON)
set(SLACK_PROXY_DEB_MAINTAINER "Seed 3e2a3def maintainers <maintainers@users.noreply.r-seed-3e2a3def.example>"
    CACHE STRING "The Maintainer field of the Debian packages")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SLACK_PROXY_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_RELEASE ${SLACK_PROXY_DEB_REVISION})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)   # slack-proxy_0.4.0-1_amd64.deb
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Maintainer scripts 0755, conffiles 0644, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME slack-proxy)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
# Library dependencies from dpkg-shlibdeps; the rest by hand: /bin/kill for
# ExecReload, and the CA certificates slack_sink verifies slack.com with.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "procps, ca-certificates")
# Descriptions: the synopsis, then the long text as plain lines; CPack indents
# them and turns an empty line into " ." for the control file.
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
"queue that paces messages to Slack under its rate limits
slack-proxy takes what a client would post to Slack's chat.postMessage (or
to an incoming webhook): Alertmanager, Grafana, CI jobs or Slack's own SDKs.
It queues each message on disk, paces delivery under Slack's rate limits
per channel and per workspace, retries what is transient (honouring
Retry-After), keeps what fails as dead letters, and exports Prometheus
metrics per channel.

This package has the proxy, its built-in plugins, a default configuration
in /etc/slack-proxy and a hardened systemd service.")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
  ${SLACK_PROXY_DEB_DIR}/conffiles
  ${SLACK_PROXY_DEB_DIR}/postinst
  ${SLACK_PROXY_DEB_DIR}/prerm
  ${SLACK_PROXY_DEB_DIR}/postrm)

# A plugin must be built by the proxy's own compiler (major version) and SDK
# (the build fingerprint), so -dev goes with exactly this slack-proxy.
set(CPACK_DEBIAN_DEV_PACKAGE_NAME slack-proxy-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "slack-proxy (= ${PROJECT_VERSION}-${SLACK_PROXY_DEB_REVISION}), libpoco-dev, libboost-dev, libtomlplusplus-dev, libssl-dev, libgtest-dev, libgmock-dev")
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  set(plugin_compiler "g++-${CMAKE_CXX_COMPILER_VERSION_MAJOR}")
elseif(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  set(plugin_compiler "clang-${CMAKE_CXX_COMPILER_VERSION_MAJOR}")
endif()
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "cmake (>= 3.25), ${plugin_compiler}")
set(CPACK_DEBIAN_DEV_DESCRIPTION
"slack-proxy plugin SDK: headers, static libraries, CMake package
Everything needed to build slack-proxy plugins out of tree:
find_package(SlackProxy CONFIG) gives the SDK's targets and
slack_proxy_add_plugin(), and the testing library loads a plugin exactly as
the proxy does. The example plugins are in
/usr/share/doc/slack-proxy/sdk-examples.

A plugin must be built with the same compiler and SDK version as the proxy
that loads it (${plugin_compiler}, slack-proxy ${PROJECT_VERSION}).")

include(CPack)
