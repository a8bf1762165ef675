// Build fingerprint: what must be identical between host and plugin for C++
// objects (std::string, vtables, exceptions) to cross the library boundary.
//
// The string is computed by the preprocessor of whoever includes this header,
// so the host's copy describes the host build and the plugin's copy describes
// the plugin build. The host compares the two before it calls into the plugin.
#ifndef SLACK_PROXY_SDK_FINGERPRINT_H
#define SLACK_PROXY_SDK_FINGERPRINT_H

#include <slack_proxy/sdk/abi.h>

// <version> is light and defines the standard-library identification macros.
#include <version>

#define SLACK_PROXY_STR2_(x) #x
#define SLACK_PROXY_STR_(x) SLACK_PROXY_STR2_(x)

#if defined(__clang__)
#define SLACK_PROXY_COMPILER_ "clang-" SLACK_PROXY_STR_(__clang_major__)
#elif defined(__GNUC__)
#define SLACK_PROXY_COMPILER_ "gcc-" SLACK_PROXY_STR_(__GNUC__)
#else
#define SLACK_PROXY_COMPILER_ "unknown-compiler"
#endif

#if defined(_LIBCPP_VERSION)
#define SLACK_PROXY_STDLIB_ "libc++-" SLACK_PROXY_STR_(_LIBCPP_VERSION)
#elif defined(__GLIBCXX__)
// The major version identifies the libstdc++ ABI generation; the dual-ABI
// switch decides the layout of std::string.
#define SLACK_PROXY_STDLIB_ \
  "libstdc++-" SLACK_PROXY_STR_(_GLIBCXX_RELEASE) "-cxx11abi" SLACK_PROXY_STR_(_GLIBCXX_USE_CXX11_ABI)
#else
#define SLACK_PROXY_STDLIB_ "unknown-stdlib"
#endif

// Sanitizers change object layout and allocation, so they are part of it.
#if defined(__SANITIZE_ADDRESS__)
#define SLACK_PROXY_SANITIZE_ "-asan"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLACK_PROXY_SANITIZE_ "-asan"
#endif
#endif
#ifndef SLACK_PROXY_SANITIZE_
#define SLACK_PROXY_SANITIZE_ ""
#endif

// Example: "sdk-0.1.0;gcc-12;libstdc++-12-cxx11abi1"
#ifndef SLACK_PROXY_BUILD_FINGERPRINT
#define SLACK_PROXY_BUILD_FINGERPRINT                                  \
  "sdk-" SLACK_PROXY_SDK_VERSION ";" SLACK_PROXY_COMPILER_ ";" SLACK_PROXY_STDLIB_ \
      SLACK_PROXY_SANITIZE_
#endif

#endif  // SLACK_PROXY_SDK_FINGERPRINT_H
