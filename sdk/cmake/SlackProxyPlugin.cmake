# slack_proxy_add_plugin(): the one way a plugin is built, ours or a third
# party's.
#
#   slack_proxy_add_plugin(
#     NAME deny_list                     # plugin name == library file stem
#     LOGIC deny_list.cc                 # the stage itself (unit-testable)
#     REGISTRATION plugin.cc             # schema + SLACK_PROXY_PLUGIN(...)
#     [LIBRARIES Poco::Net ...]          # third-party libraries it needs
#     [TESTS test/deny_list_test.cc])    # GoogleTest files
#
# Produces:
#   <name>.so in SLACK_PROXY_PLUGIN_OUTPUT_DIR (what the proxy loads),
#   sp_<name>_logic (static, PIC) shared by the .so and the tests,
#   sp_<name>_test (when TESTS are given), registered with CTest. The tests
#   also get SLACK_PROXY_PLUGIN_FILE, the path of the built <name>.so, so they
#   can load it through the ABI as the proxy does
#   (slack_proxy/sdk/testing/plugin_under_test.h); the .so is built first.
#
# A plugin sees the SDK and nothing else of the proxy: linking the core, or
# another plugin's library, is a configure error (what two plugins share
# belongs in the SDK or the host), and the core's headers are not on its
# include path.
#
# Works the same in this source tree and out of tree after
# find_package(SlackProxy CONFIG), which defines SlackProxy::sdk and
# SlackProxy::sdk_testing.

if(NOT DEFINED SLACK_PROXY_PLUGIN_OUTPUT_DIR)
  set(SLACK_PROXY_PLUGIN_OUTPUT_DIR "${CMAKE_BINARY_DIR}/lib/slack-proxy/plugins")
endif()

function(slack_proxy_add_plugin)
  cmake_parse_arguments(P "" "NAME" "LOGIC;REGISTRATION;LIBRARIES;TESTS" ${ARGN})
  if(NOT P_NAME OR NOT P_REGISTRATION)
    message(FATAL_ERROR "slack_proxy_add_plugin needs NAME and REGISTRATION")
  endif()
  foreach(lib IN LISTS P_LIBRARIES)
    if(lib MATCHES "^(sp_core|sp_plugin_runtime|SlackProxy::plugin_runtime)$")
      message(FATAL_ERROR
        "plugin '${P_NAME}' links '${lib}': plugins may use only the SDK (SlackProxy::sdk)")
    endif()
    if(lib MATCHES "^sp_.+_(logic|plugin)$")
      message(FATAL_ERROR
        "plugin '${P_NAME}' links '${lib}', another plugin's library: what two plugins "
        "share belongs in the SDK or in a host service, not in one of them")
    endif()
  endforeach()

  set(logic sp_${P_NAME}_logic)
  if(P_LOGIC)
    add_library(${logic} STATIC ${P_LOGIC})
  else()
    add_library(${logic} INTERFACE)
  endif()
  if(P_LOGIC)
    set_target_properties(${logic} PROPERTIES
      POSITION_INDEPENDENT_CODE ON
      CXX_VISIBILITY_PRESET hidden
      VISIBILITY_INLINES_HIDDEN ON)
    target_link_libraries(${logic} PUBLIC SlackProxy::sdk ${P_LIBRARIES})
    target_include_directories(${logic} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  else()
    target_link_libraries(${logic} INTERFACE SlackProxy::sdk ${P_LIBRARIES})
    target_include_directories(${logic} INTERFACE ${CMAKE_CURRENT_SOURCE_DIR})
  endif()

  # This project's own layering check (see plugins/CMakeLists.txt), when present.
  if(TARGET sp_plugin_layering)
    add_dependencies(${logic} sp_plugin_layering)
  endif()

  set(module sp_${P_NAME}_plugin)
  add_library(${module} MODULE ${P_REGISTRATION})
  target_link_libraries(${module} PRIVATE ${logic})
  set_target_properties(${module} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${P_NAME}
    LIBRARY_OUTPUT_DIRECTORY ${SLACK_PROXY_PLUGIN_OUTPUT_DIR}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Everything a plugin needs must be resolved at link time, not by whatever
  # the host happens to have loaded. Not checkable under clang's sanitizers:
  # clang links their runtime into the executable only, so a sanitized
  # plugin refers to it unresolved (a build for that sets
  # SLACK_PROXY_PLUGIN_ALLOW_UNDEFINED, as this project's does).
  if(NOT SLACK_PROXY_PLUGIN_ALLOW_UNDEFINED)
    target_link_options(${module} PRIVATE "LINKER:--no-undefined")
  endif()

  # Tests are built only when the project enabled GoogleTest.
  if(P_TESTS AND TARGET GTest::gtest_main)
    set(test sp_${P_NAME}_test)
    add_executable(${test} ${P_TESTS})
    target_link_libraries(${test} PRIVATE ${logic} SlackProxy::sdk_testing GTest::gtest_main)
    target_compile_definitions(${test} PRIVATE
      "SLACK_PROXY_PLUGIN_FILE=\"$<TARGET_FILE:${module}>\"")
    add_dependencies(${test} ${module})
    gtest_discover_tests(${test} DISCOVERY_TIMEOUT 60)
  endif()
endfunction()
